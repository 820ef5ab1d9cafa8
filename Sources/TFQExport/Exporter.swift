import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQModel
@_spi(Calibration) import TFQRuntime
import TFQTrain

/// Why an export could not be made; the message names the file or flag.
public struct ExportError: OptionNamingError {
    /// The one-line message.
    public let message: OptionMessage
    init(_ message: OptionMessage) { self.message = message }
    init(_ text: String) { message = OptionMessage(stringLiteral: text) }
}

/// What an export wrote and how good it is.
public struct ExportSummary: Sendable {
    /// The path of the model file written.
    public var output: String
    /// The written file's length in bytes.
    public var fileBytes: Int
    /// What the model's parameters take as fp32 (4 bytes each), to compare `fileBytes` with.
    public var fp32WeightBytes: Int
    /// nil when there was no text to measure on (a model not trained by tfq, exported
    /// without `evalData`).
    public var quality: QualityReport?
    /// How int8 weights were chosen: `gptq`, `gptq+rounded` (some tensors rounded, e.g. a
    /// token-embedding table) or `round-to-nearest`; nil unless int8.
    public var weightMethod: String?
    /// Why GPTQ was not used, when it was asked for and could not be.
    public var note: OptionMessage?
    /// Why options for int8 tables did nothing: `auto` kept the tables fp16 or fp32.
    public var tableNote: OptionMessage?
    /// Which int8 tensors kept f32 scales although f16 ones were asked for (their weights
    /// are beyond what an f16 scale can hold).
    public var scalesNote: OptionMessage?
    /// How the vocabulary tables were stored (`int8`, `fp16` or `fp32`, as `--embedding`
    /// names them; `auto` resolved); nil unless int8.
    public var tables: String?
    /// The int8 layers whose inputs are quantized in two passes (`two_pass_activations`),
    /// and how many int8 layers there are; nil unless int8.
    public var twoPass: (layers: [String], of: Int)?
    /// The settings measured against ``ExportOptions/target``, fastest first, when the export
    /// chose by it (``ExportOptions/Accuracy/target`` with text to measure on). The file
    /// written is the first that met it, or when none did, the one ``accuracyNote`` names.
    public var accuracyTrials: [AccuracyTrial] = []
    /// Which of ``accuracyTrials`` was written; nil when there are none.
    public var accuracyKept: Int?
    /// Why the target did not decide the settings: no text to measure on, or no setting met it.
    public var accuracyNote: OptionMessage?
}

/// Checkpoint → model file: drops training state, converts the weights (int8 with per-group
/// scales in the runtime's interleaved layout, fp16, or fp32), measures the result against
/// the fp32 checkpoint, and writes the file with its quality report.
public enum Exporter {
    /// How int8 export stores the vocabulary tables (`tok_emb`, `lm_head`): as asked, or for
    /// `auto` by their share of the parameters. The lookup's error enters every layer and a
    /// tied table is also the last matrix, so precise tables buy the most accuracy per byte
    /// while they are a small part of the model (BENCHMARKS.md, "int8 on BPE models").
    static func tablePrecision(_ tensors: [TensorInfo], options: ExportOptions) -> ExportOptions.EmbeddingPrecision {
        guard options.embedding == .auto else { return options.embedding }
        let (tableParameters, allParameters) = parameterCounts(tensors)
        // Up to 1/64 of the parameters (character and byte vocabularies), fp32 adds at most
        // ~5% to the file; up to 1/6 (small BPE vocabularies), fp16 adds at most ~0.04× the
        // fp32 weights; larger tables are int8, or they would dominate the file.
        if tableParameters * 64 <= allParameters { return .fp32 }
        if tableParameters * 6 <= allParameters { return .fp16 }
        return .int8
    }

    /// `options` with the tables' precision decided (``tablePrecision(_:options:)``), and a note
    /// when that leaves options for int8 tables without effect. A table or position table
    /// holding a value fp16 cannot (beyond ±65504) is refused when fp16 was asked for, and
    /// keeps `auto` to int8.
    static func resolvingTables(_ tensors: [TensorInfo], of source: TFQFile, options: ExportOptions) throws -> (ExportOptions, OptionMessage?) {
        guard options.precision == .int8 else { return (options, nil) }
        var resolved = options
        resolved.embedding = tablePrecision(tensors, options: options)
        let halves = halfNames(tensors, options: resolved)
        if let name = tensors.first(where: { halves.contains($0.name) && source.floats($0).contains { !Float16($0).isFinite } })?.name {
            guard options.embedding == .auto else {
                throw ExportError("\(name) holds a value beyond fp16's range (±65504): use \(option: "embedding") int8 or fp32")
            }
            resolved.embedding = .int8
        }
        guard resolved.embedding != .int8, options.twoPassClassifier || options.tableGroupSize != nil else { return (resolved, nil) }
        let (tables, all) = parameterCounts(tensors)
        let permille = tables * 1000 / max(1, all)
        let kept = "the vocabulary tables are \(resolved.embedding.rawValue) (\(permille / 10).\(permille % 10)% of the parameters): "
        let note: OptionMessage = options.twoPassClassifier
            ? "\(option: "two_pass_classifier") applies to int8 tables only; give \(option: "embedding") int8 for them"
            : "\(option: "table_group_size") applies to int8 tables only; give \(option: "embedding") int8 for them"
        return (resolved, kept + note)
    }

    /// The parameters of the vocabulary tables, and of the whole model.
    static func parameterCounts(_ tensors: [TensorInfo]) -> (tables: Int, all: Int) {
        let tables = tensors.filter { ExportOptions.vocabularyTables.contains($0.name) }.reduce(0) { $0 + $1.elementCount }
        return (tables, tensors.reduce(0) { $0 + $1.elementCount })
    }

    /// The matrices int8 export quantizes: every weight multiplied at inference, and the
    /// vocabulary tables (`tok_emb`, `lm_head`) when ``tablePrecision(_:options:)`` says int8;
    /// never gpt's position table.
    static func quantizedNames(_ tensors: [TensorInfo], options: ExportOptions) -> Set<String> {
        guard options.precision == .int8 else { return [] }
        let tablesInt8 = tablePrecision(tensors, options: options) == .int8
        let matrices = tensors.filter { $0.shape.count == 2 && $0.name != TensorName.positionEmbedding }
        return Set(matrices.map(\.name).filter { tablesInt8 || !ExportOptions.vocabularyTables.contains($0) })
    }

    /// The tensors an int8 export stores as f16: with fp16 tables, the vocabulary tables and
    /// gpt's position table (the other half of the lookup).
    static func halfNames(_ tensors: [TensorInfo], options: ExportOptions) -> Set<String> {
        guard options.precision == .int8, tablePrecision(tensors, options: options) == .fp16 else { return [] }
        let tables = ExportOptions.vocabularyTables.union([TensorName.positionEmbedding])
        return Set(tensors.map(\.name).filter { tables.contains($0) })
    }

    /// The int8 layers of the first `options.twoPassLayers` blocks, with
    /// `options.twoPassNormInputs` every block's layers that read a norm's output, and with
    /// `options.twoPassClassifier` the classifier (`classifier`: `tok_emb` when tied): their
    /// inputs are quantized in two passes at run time. Layer 0's activations weigh most on
    /// accuracy (BENCHMARKS.md, "int8 quality").
    static func twoPassNames(_ quantized: Set<String>, options: ExportOptions, linears: Set<String>, classifier: String) -> [String] {
        quantized.intersection(linears).filter { name in
            if name == classifier { return options.twoPassClassifier }
            let parts = name.split(separator: ".")
            guard parts.count > 2, parts[0] == "blocks", let index = Int(parts[1]) else { return false }
            if options.twoPassNormInputs {
                // The layers that read a norm's output: attention's and the feed-forward's first.
                let block = TensorName.Block(index)
                if [block.qkvWeight, block.upWeight, block.gateWeight].contains(name) { return true }
            }
            return index < options.twoPassLayers
        }.sorted()
    }

    /// The model's own tensors in `file`: a checkpoint's optimizer state left out.
    static func parameters(of file: TFQFile) -> [TensorInfo] {
        file.tensors.filter { !$0.name.hasPrefix("adam.") }
    }

    /// Exports the checkpoint (or imported model) at `checkpoint` to a model file at `output`
    /// as `options` say, and returns what was written; throws naming the first problem.
    public static func export(checkpoint: String, output: String, options: ExportOptions) throws -> ExportSummary {
        let target = options.precision == .int8 && options.accuracy == .target
        if target && options.setsAccuracySettings {
            throw ExportError("\(option: "accuracy") target chooses the group sizes and the layers in two passes itself; "
                              + "give \(option: "accuracy") fast to set them")
        }
        try OutputPath.check(output)  // before calibration and measurement, which take a while
        // Opened once, by the runtime: that checks every tensor the architecture needs, and
        // the same model is the fp32 reference the quality report measures against.
        let reference = try Model(path: checkpoint)
        let source = reference.file
        let tensors = parameters(of: source)
        let (options, tableNote) = try resolvingTables(tensors, of: source, options: options)
        let training = try source.metadataSection("training", as: TrainingState.self)
        let evalText = try evaluationText(options: options, training: training, checkpoint: checkpoint)
        let quantized = quantizedNames(tensors, options: options)
        let quantizedTensors = tensors.filter { quantized.contains($0.name) }
        try checkGroupSizes(options: options, tensors: quantizedTensors)
        let calibration = try Calibration.run(reference, weights: quantized.subtracting([TensorName.tokenEmbedding]), options: options, training: training)
        let fp32Bytes = tensors.reduce(0) { $0 + $1.elementCount * 4 }

        // The settings to measure, fastest first: one unless the target chooses, and there
        // is text to measure on. All are staged and measured in one pass of the reference
        // model, which costs about as much as each of them.
        let tables = quantizedTensors.filter { ExportOptions.vocabularyTables.contains($0.name) }
        let steps = target && evalText != nil
            ? options.accuracySteps(columns: quantizedTensors.filter { !tables.contains($0) }.map { $0.shape[1] },
                                    tableColumns: tables.first?.shape[1])
            : [options]
        for step in steps.dropFirst() { try checkGroupSizes(options: step, tensors: quantizedTensors) }
        var staged: [Staged] = []
        defer { for step in staged { step.writer.discard() } }
        var quantizedBytes = QuantizedTensors()  // the steps share many tensors' int8 bytes
        for step in steps {
            staged.append(try stage(reference, tensors: tensors, quantized: quantized, calibration: calibration, options: step,
                                    output: output, cache: &quantizedBytes))
        }
        let qualities = try evalText.map {
            try measure(reference: reference, exported: staged.map(\.path), text: $0, tokenizer: reference.metadata.tokenizer,
                        options: options, tensorErrors: staged.map(\.errors))
        }
        // Each step's metadata with its report, and the length its output file would have.
        let metadata = try staged.indices.map { i in
            var model = staged[i].model
            if let quality = qualities?[i] { model.sections["quality"] = try JSONValue(encoding: quality) }
            return try model.encoded()
        }
        let fileBytes = staged.indices.map { staged[$0].outputBytes(metadataBytes: metadata[$0].count) }
        var kept = 0
        var trials: [AccuracyTrial] = []
        var accuracyNote: OptionMessage?
        if target, let qualities {
            trials = steps.indices.map {
                AccuracyTrial(settings: steps[$0].accuracySettings, quality: qualities[$0], fileBytes: fileBytes[$0],
                              met: options.target.isMet(by: qualities[$0], fileBytes: fileBytes[$0], fp32Bytes: fp32Bytes))
            }
            if let met = trials.firstIndex(where: \.met) {
                kept = met
            } else {
                // Nothing met the target: the closest setting within the size, by mean KL.
                let fits = trials.indices.filter { Double(trials[$0].fileBytes) <= options.target.sizeRatio * Double(fp32Bytes) }
                kept = (fits.isEmpty ? Array(trials.indices) : fits).min { trials[$0].quality.meanKL < trials[$1].quality.meanKL }!
                let settings = trials[kept].settings.options.isEmpty ? "the fast settings" : trials[kept].settings
                accuracyNote = "no setting met the accuracy target; kept the closest (by mean KL" + (fits.isEmpty ? "" : " within the size") + "): " + settings
            }
        } else if target {
            accuracyNote = "the accuracy target needs text to measure on, and there is none: the fast settings; give \(option: "eval_data") FILE to choose by the target"
        }
        let stagedFile = try TFQFile(path: staged[kept].path)
        let writer = try TFQWriter(path: output)
        let compression: TensorCompression = options.zstdLevel.map { .zstd(level: $0) } ?? .none
        for info in stagedFile.tensors {
            try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                           bytes: stagedFile.bytes(info), compression: compression)
        }
        try writer.finish(metadata: metadata[kept])
        let size = try TFQFile(path: output).fileLength
        return ExportSummary(output: output, fileBytes: size, fp32WeightBytes: fp32Bytes, quality: qualities?[kept],
                             weightMethod: staged[kept].method, note: calibration.note, tableNote: tableNote, scalesNote: staged[kept].scalesNote,
                             tables: options.precision == .int8 ? options.embedding.rawValue : nil,
                             twoPass: options.precision == .int8 ? staged[kept].twoPass : nil,
                             accuracyTrials: trials, accuracyKept: trials.isEmpty ? nil : kept, accuracyNote: accuracyNote)
    }

    /// A model written raw next to its output (so the runtime maps it in place), to be
    /// measured and then written again, compressed as asked, with its quality report.
    struct Staged {
        /// The staged copy is its writer's unpublished file: locked, so no other write of the
        /// output takes it for a dead run's leftover, and removed when the writer discards it.
        var writer: TFQWriter
        var path: String
        /// Its metadata, without the quality report.
        var model: ModelMetadata
        var errors: [String: Double]
        var method: String?
        var scalesNote: OptionMessage?
        var twoPass: (layers: [String], of: Int)
        /// Where the output's tensors would end, compressed as asked, and its directory's length.
        var tensorsEnd: Int, directoryBytes: Int

        /// The output file's length with `metadataBytes` of metadata: the header and tensors,
        /// then the metadata, then the directory (formats/tfq.md §4).
        func outputBytes(metadataBytes: Int) -> Int { tensorsEnd + metadataBytes + directoryBytes }
    }

    /// Writes the model as `options` say, raw, to a staged file beside `output`; int8 tensors
    /// already in `cache` (the same tensor, group size and scale type) are not made again.
    static func stage(_ reference: Model, tensors: [TensorInfo], quantized: Set<String>, calibration: Calibration.Result,
                      options: ExportOptions, output: String, cache: inout QuantizedTensors) throws -> Staged {
        let source = reference.file, metadata = reference.metadata, config = metadata.config
        let stagingWriter = try TFQWriter(path: output)
        var finished = false
        defer { if !finished { stagingWriter.discard() } }
        var model = ModelMetadata(kind: "model", config: config, tokenizer: metadata.tokenizer)
        let training = try source.metadataSection("training", as: TrainingState.self)
        model.provenance.sourceCheckpointCRC32 = fingerprint(source)
        model.provenance.sourceSteps = training?.step
        model.provenance.sourceValLoss = training?.lastValLoss
        let linears = Set(reference.linearShapes.map(\.name))
        let twoPass = twoPassNames(quantized, options: options, linears: linears, classifier: TensorName.head(config))
        model.sections["quantization"] = .object([
            "scheme": .string(options.precision == .int8 ? "q8_symmetric_grouped" : options.precision == .fp16 ? "f16" : "f32"),
            "group_size": options.precision == .int8 ? .string(options.groupSize.description) : .null,
            "layout": .string(options.precision == .int8 ? Q8Layout.interleaved16x4.description : "row-major"),
            "zstd_level": .integer(Int64(options.zstdLevel ?? 0)),
            "two_pass_activations": .array(twoPass.map { .string($0) }),
        ])
        if let imported = metadata.sections["import"] { model.sections["import"] = imported }
        let written = try writeWeights(tensors, of: source, quantized: quantized, halves: halfNames(tensors, options: options),
                                       hessians: calibration.hessians, cache: &cache, options: options, to: stagingWriter)
        let scalesNote: OptionMessage? = written.fullScales.isEmpty ? nil
            : "\(written.fullScales.joined(separator: ", ")) kept f32 scales (q8): \(written.fullScales.count == 1 ? "its" : "their") weights reach beyond what an f16 scale can hold (|w| above about 8.3 million)"
        let stagedMetadata = try model.encoded()
        let path = try stagingWriter.finishStaged(metadata: stagedMetadata)
        // How the int8 values were chosen, as it happened: GPTQ for the layers it ran on, and
        // plain rounding for the rest (a token-embedding table always).
        let rounded = quantized.subtracting(written.gptq).sorted()
        let method = options.precision != .int8 ? nil : written.gptq.isEmpty ? "round-to-nearest" : rounded.isEmpty ? "gptq" : "gptq+rounded"
        if case .object(var section) = model.sections["quantization"] {
            section["weights"] = method.map { .string($0) } ?? .null
            section["calibration"] = written.gptq.isEmpty ? .null : .object([
                "source": .string(calibration.source ?? ""), "tokens": .integer(Int64(calibration.tokens)),
                "damping": .number(Calibration.damping), "rounded": .array(rounded.map { .string($0) }),
            ])
            model.sections["quantization"] = .object(section)
        }
        // The output holds the same tensors in the same order, each aligned as here but
        // stored compressed where that pays.
        var tensorsEnd = written.stored.first?.info.offset ?? 0, rawEnd = tensorsEnd
        for (info, storedBytes) in written.stored {
            tensorsEnd = TensorGeometry.alignUp(tensorsEnd)! + storedBytes
            rawEnd = info.offset + info.storedLength
        }
        let stagedBytes = try TFQFile(path: path).fileLength  // raw: mapped, not read
        finished = true
        return Staged(writer: stagingWriter, path: path, model: model, errors: written.errors, method: method, scalesNote: scalesNote,
                      twoPass: (twoPass, quantized.intersection(linears).count),
                      tensorsEnd: tensorsEnd, directoryBytes: stagedBytes - rawEnd - stagedMetadata.count)
    }

    /// int8 tensors already made by an export, by name, group size and scale type: the same
    /// weights, Hessian and group give the same values, so a later step takes them from here.
    struct QuantizedTensors {
        struct Key: Hashable { var name: String, group: Int, dtype: DType }
        /// The bytes, whether GPTQ chose them, the scale type they ended with, and their
        /// relative error against the fp32 weights.
        var made: [Key: (bytes: [UInt8], gptq: Bool, dtype: DType, error: Double?)] = [:]
    }

    /// Writes every tensor converted as `options` says, raw (the `quantized` ones int8, choosing
    /// the values with GPTQ where `hessians` has the layer's input; the `halves` f16). Returns
    /// each converted tensor's relative error, the tensors GPTQ chose, the int8 tensors that
    /// kept f32 scales although `options` asked for f16 ones (their scales would overflow
    /// binary16), and each tensor as written with the bytes it would take compressed as
    /// `options` ask. The caller finishes `writer`.
    static func writeWeights(_ tensors: [TensorInfo], of source: TFQFile, quantized: Set<String>, halves: Set<String>,
                             hessians: [String: Calibration.Hessian], cache: inout QuantizedTensors, options: ExportOptions,
                             to writer: TFQWriter) throws
        -> (errors: [String: Double], gptq: Set<String>, fullScales: [String], stored: [(info: TensorInfo, storedBytes: Int)]) {
        let pool = ThreadPool(threads: options.threads)
        let compression: TensorCompression = options.zstdLevel.map { .zstd(level: $0) } ?? .none
        var errors: [String: Double] = [:]
        var chosen = Set<String>()
        var fullScales: [String] = []
        var stored: [(info: TensorInfo, storedBytes: Int)] = []
        /// Writes `bytes` raw and notes what they take compressed.
        func add(_ name: String, dtype: DType, shape: [Int], layout: Q8Layout = .rowMajor, groupSize: Int = 0,
                 bytes: UnsafeRawBufferPointer) throws -> TensorInfo {
            let info = try writer.add(name: name, dtype: dtype, shape: shape, layout: layout, groupSize: groupSize, bytes: bytes)
            let form = try TFQWriter.storedForm(bytes, dtype: dtype, compression: compression)
            stored.append((info, form.compressed?.count ?? bytes.count))
            return info
        }
        for tensor in tensors {
            let floats = source.floats(tensor)
            try floats.withUnsafeBufferPointer { values in
                switch options.precision {
                case .int8 where quantized.contains(tensor.name):
                    let rows = tensor.shape[0], columns = tensor.shape[1]
                    let group = options.group(for: tensor.name, columns: columns)
                    let key = QuantizedTensors.Key(name: tensor.name, group: group, dtype: options.int8DType)
                    if cache.made[key] == nil {
                        let hessian = hessians[tensor.name].flatMap { $0.columns == columns ? $0 : nil }
                        /// The tensor's bytes as `dtype`, and whether GPTQ chose them; nil when GPTQ's
                        /// updated weights took a scale past what `dtype` holds.
                        func quantize(_ dtype: DType) throws -> (bytes: [UInt8], gptq: Bool)? {
                            if let hessian, let q = GPTQ.quantize(values, rows: rows, columns: columns, groupSize: group, dtype: dtype,
                                                                  hessian: hessian.doubles, damping: Calibration.damping, pool: pool) {
                                guard q.scales.allSatisfy(\.isFinite) else { return nil }
                                let bytes = try q.values.withUnsafeBufferPointer { v in
                                    try q.scales.withUnsafeBufferPointer { s in
                                        try Q8Codec.pack(values: v, scales: s, rows: rows, cols: columns, groupSize: group,
                                                         layout: .interleaved16x4, dtype: dtype)
                                    }
                                }
                                return (bytes, true)
                            }
                            return (try Q8Codec.encode(values, rows: rows, cols: columns, groupSize: group, layout: .interleaved16x4, dtype: dtype), false)
                        }
                        // Weights an f16 scale cannot hold keep f32 scales, decided before GPTQ runs.
                        var dtype = options.int8DType == .q8f16 && !Q8Codec.halfScalesFit(values) ? .q8 : options.int8DType
                        var result = try quantize(dtype)
                        if result == nil && dtype == .q8f16 {
                            dtype = .q8
                            result = try quantize(dtype)
                        }
                        guard let made = result else { throw ExportError("\(tensor.name): its weights could not be quantized") }
                        cache.made[key] = (made.bytes, made.gptq, dtype, nil)
                    }
                    let made = cache.made[key]!
                    if made.dtype != options.int8DType { fullScales.append(tensor.name) }
                    if made.gptq { chosen.insert(tensor.name) }
                    let info = try made.bytes.withUnsafeBytes {
                        try add(tensor.name, dtype: made.dtype, shape: tensor.shape, layout: .interleaved16x4, groupSize: group, bytes: $0)
                    }
                    // Measured once per made tensor, like the bytes.
                    let error = made.error ?? relativeError(values, made.bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) })
                    cache.made[key]?.error = error
                    errors[tensor.name] = error
                case .fp16 where tensor.shape.count == 2, .int8 where halves.contains(tensor.name):
                    let halves = values.map { Float16($0) }
                    _ = try halves.withUnsafeBytes { try add(tensor.name, dtype: .f16, shape: tensor.shape, bytes: $0) }
                    errors[tensor.name] = relativeError(values, halves.map(Float.init))
                default:
                    _ = try add(tensor.name, dtype: .f32, shape: tensor.shape, bytes: UnsafeRawBufferPointer(values))
                }
            }
        }
        return (errors, chosen, fullScales, stored)
    }

    static func relativeError(_ original: UnsafeBufferPointer<Float>, _ restored: [Float]) -> Double {
        var difference = 0.0, norm = 0.0
        for i in 0..<original.count {
            let d = Double(original[i]) - Double(restored[i])
            difference += d * d
            norm += Double(original[i]) * Double(original[i])
        }
        return norm > 0 ? (difference / norm).squareRoot() : 0
    }

    static func checkGroupSizes(options: ExportOptions, tensors: [TensorInfo]) throws {
        guard options.precision == .int8 else { return }
        for (option, size) in [("group_size", options.groupSize), ("table_group_size", options.tableGroupSize)] {
            if case .size(let n) = size, n < 4 || n % 4 != 0 {
                throw ExportError("\(option: option) \(n) is not supported: use a multiple of 4 (e.g. 32, 64, 128) or 'row'")
            }
        }
        for tensor in tensors {
            let columns = tensor.shape[1]
            let group = options.group(for: tensor.name, columns: columns)
            guard columns % group == 0, columns % 4 == 0 else {
                let table = ExportOptions.vocabularyTables.contains(tensor.name) && options.tableGroupSize != nil
                let option = table ? "table_group_size" : "group_size", size = table ? "\(options.tableGroupSize!)" : "\(options.groupSize)"
                throw ExportError("\(option: option) \(size) does not divide the \(columns) columns of \(tensor.name)")
            }
        }
    }

    /// The text the quality report is computed on; nil for a model tfq did not train (an
    /// import) when no text is given: there is no split to measure on.
    static func evaluationText(options: ExportOptions, training: TrainingState?, checkpoint: String) throws -> String? {
        if let path = options.evalData {
            do { return try Corpus.readText(path) } catch { throw ExportError("\(error)") }
        }
        guard let training else { return nil }
        if let validation = training.validationPath, let text = try? Corpus.readText(validation) { return text }
        guard let path = training.dataPath, let text = try? Corpus.readText(path) else {
            throw ExportError("\(checkpoint): its training data is not at the recorded path; give \(option: "eval_data") FILE")
        }
        // The same split training used: the last 10% of the tokens; by characters here, and
        // the report counts positions, so an off-by-some boundary does not matter.
        let scalars = Array(text.unicodeScalars)
        var tail = String.UnicodeScalarView()
        tail.append(contentsOf: scalars[(scalars.count - scalars.count / 10)...])
        return String(tail)
    }

    /// Cross-entropy, agreement and divergence of each exported model against the fp32
    /// checkpoint, all run by the runtime, on the same positions.
    static func measure(reference model: Model, exported paths: [String], text: String, tokenizer: Tokenizer,
                        options: ExportOptions, tensorErrors: [[String: Double]]) throws -> [QualityReport] {
        let reference = try Session(model: model, threads: options.threads)
        let candidates = try paths.map { try Session(model: try Model(path: $0), threads: options.threads) }
        let comparisons = try ModelComparison.measure(reference: reference, candidates: candidates,
                                                      tokens: tokenizer.encodeAllowingUnknown(text), maxPositions: options.evalTokens)
        guard let first = comparisons.first, first.positions > 0 else {
            throw ExportError("the evaluation text has no position the model's vocabulary can encode")
        }
        // Finite but huge weights (a run that diverged after its last finite step) overflow
        // in the forward pass: such a model predicts nothing, and exporting it helps no one.
        guard first.referenceCrossEntropy.isFinite else {
            throw ExportError("\(model.file.path): the model's own predictions are not finite on the evaluation text "
                              + "(cross-entropy \(first.referenceCrossEntropy)): its weights have diverged; nothing was exported")
        }
        return comparisons.indices.map { i in
            let c = comparisons[i]
            return QualityReport(positions: c.positions, skipped: c.skipped, referenceCrossEntropy: c.referenceCrossEntropy,
                                 modelCrossEntropy: c.candidateCrossEntropy, top1AgreementPercent: c.top1AgreementPercent,
                                 meanKL: c.meanKL, maxAbsLogitError: c.maxAbsLogitError, tensorRelativeError: tensorErrors[i],
                                 referenceBitsPerByte: c.referenceBitsPerByte, modelBitsPerByte: c.candidateBitsPerByte,
                                 kvCache: candidates[i].kvCachePrecision.rawValue)
        }
    }

    static func fingerprint(_ file: TFQFile) -> String {
        var crc = CRC32()
        // Each tensor's stored CRC-32 in directory order, then the metadata bytes
        // (formats/tfq.md, provenance): the tensors are not read a second time.
        for info in file.tensors { withUnsafeBytes(of: info.crc32.littleEndian) { crc.update($0) } }
        crc.update(file.metadataJSON)
        return CRC32.hex(crc.value)
    }
}

#if canImport(Glibc)
import Glibc
#endif
