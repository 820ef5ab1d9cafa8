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
        try OutputPath.check(output)  // before calibration and measurement, which take a while
        // Opened once, by the runtime: that checks every tensor the architecture needs, and
        // the same model is the fp32 reference the quality report measures against.
        let reference = try Model(path: checkpoint)
        let source = reference.file, metadata = reference.metadata
        let config = metadata.config
        let tensors = parameters(of: source)
        let (options, tableNote) = try resolvingTables(tensors, of: source, options: options)
        let training = try source.metadataSection("training", as: TrainingState.self)
        let evalText = try evaluationText(options: options, training: training, checkpoint: checkpoint)
        let quantized = quantizedNames(tensors, options: options)
        try checkGroupSizes(options: options, tensors: tensors.filter { quantized.contains($0.name) })
        var calibration = try Calibration.run(reference, weights: quantized.subtracting([TensorName.tokenEmbedding]), options: options, training: training)

        // The model is written raw next to the output first, measured with the runtime, and
        // then written again with the quality report and the requested compression. The
        // staged copy is the first writer's unpublished file: locked, so no other write of
        // `output` takes it for a dead run's leftover, and removed when `stagingWriter` goes.
        let stagingWriter = try TFQWriter(path: output)
        defer { stagingWriter.discard() }
        var model = ModelMetadata(kind: "model", config: config, tokenizer: metadata.tokenizer)
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
        let (errors, chosen, fullScales) = try writeWeights(tensors, of: source, quantized: quantized,
                                                            halves: halfNames(tensors, options: options),
                                                            hessians: &calibration.hessians, options: options, to: stagingWriter)
        let scalesNote: OptionMessage? = fullScales.isEmpty ? nil
            : "\(fullScales.joined(separator: ", ")) kept f32 scales (q8): \(fullScales.count == 1 ? "its" : "their") weights reach beyond what an f16 scale can hold (|w| above about 8.3 million)"
        let staging = try stagingWriter.finishStaged(metadata: model.encoded())
        // How the int8 values were chosen, as it happened: GPTQ for the layers it ran on, and
        // plain rounding for the rest (a token-embedding table always).
        let rounded = quantized.subtracting(chosen).sorted()
        let method = options.precision != .int8 ? nil : chosen.isEmpty ? "round-to-nearest" : rounded.isEmpty ? "gptq" : "gptq+rounded"
        if case .object(var section) = model.sections["quantization"] {
            section["weights"] = method.map { .string($0) } ?? .null
            section["calibration"] = chosen.isEmpty ? .null : .object([
                "source": .string(calibration.source ?? ""), "tokens": .integer(Int64(calibration.tokens)),
                "damping": .number(Calibration.damping), "rounded": .array(rounded.map { .string($0) }),
            ])
            model.sections["quantization"] = .object(section)
        }

        let quality = try evalText.map {
            try measure(reference: reference, exported: staging, text: $0, tokenizer: metadata.tokenizer, options: options, tensorErrors: errors)
        }
        if let quality { model.sections["quality"] = try JSONValue(encoding: quality) }
        let staged = try TFQFile(path: staging)
        let writer = try TFQWriter(path: output)
        let compression: TensorCompression = options.zstdLevel.map { .zstd(level: $0) } ?? .none
        for info in staged.tensors {
            try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                           bytes: staged.bytes(info), compression: compression)
        }
        try writer.finish(metadata: model.encoded())
        let size = try TFQFile(path: output).fileLength
        let fp32Bytes = tensors.reduce(0) { $0 + $1.elementCount * 4 }
        return ExportSummary(output: output, fileBytes: size, fp32WeightBytes: fp32Bytes, quality: quality,
                             weightMethod: method, note: calibration.note, tableNote: tableNote, scalesNote: scalesNote,
                             tables: options.precision == .int8 ? options.embedding.rawValue : nil,
                             twoPass: options.precision == .int8 ? (twoPass, quantized.intersection(linears).count) : nil)
    }

    /// Writes every tensor converted as `options` says (the `quantized` ones int8, choosing the
    /// values with GPTQ where `hessians` has the layer's input; the `halves` f16); returns each converted tensor's relative error,
    /// the tensors GPTQ chose, and the int8 tensors that kept f32 scales although `options` asked for f16 ones (their
    /// scales would overflow binary16). The caller finishes `writer`.
    static func writeWeights(_ tensors: [TensorInfo], of source: TFQFile, quantized: Set<String>, halves: Set<String>,
                             hessians: inout [String: Calibration.Hessian], options: ExportOptions,
                             to writer: TFQWriter) throws -> (errors: [String: Double], gptq: Set<String>, fullScales: [String]) {
        let pool = ThreadPool(threads: options.threads)
        var errors: [String: Double] = [:]
        var chosen = Set<String>()
        var fullScales: [String] = []
        for tensor in tensors {
            let floats = source.floats(tensor)
            try floats.withUnsafeBufferPointer { values in
                switch options.precision {
                case .int8 where quantized.contains(tensor.name):
                    let rows = tensor.shape[0], columns = tensor.shape[1]
                    let group = options.group(for: tensor.name, columns: columns)
                    // Each H is freed once its last layer is chosen.
                    let hessian = hessians.removeValue(forKey: tensor.name).flatMap { $0.columns == columns ? $0 : nil }
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
                    if dtype != options.int8DType { fullScales.append(tensor.name) }
                    guard let made = result else { throw ExportError("\(tensor.name): its weights could not be quantized") }
                    let bytes = made.bytes
                    if made.gptq { chosen.insert(tensor.name) }
                    let info = try bytes.withUnsafeBytes {
                        try writer.add(name: tensor.name, dtype: dtype, shape: tensor.shape, layout: .interleaved16x4,
                                       groupSize: group, bytes: $0)
                    }
                    errors[tensor.name] = relativeError(values, bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) })
                case .fp16 where tensor.shape.count == 2, .int8 where halves.contains(tensor.name):
                    let halves = values.map { Float16($0) }
                    try halves.withUnsafeBytes { _ = try writer.add(name: tensor.name, dtype: .f16, shape: tensor.shape, bytes: $0) }
                    errors[tensor.name] = relativeError(values, halves.map(Float.init))
                default:
                    try writer.add(name: tensor.name, shape: tensor.shape, floats: values)
                }
            }
        }
        return (errors, chosen, fullScales)
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

    /// Cross-entropy, agreement and divergence of the exported model against the fp32
    /// checkpoint, both run by the runtime, on the same positions.
    static func measure(reference model: Model, exported path: String, text: String, tokenizer: Tokenizer,
                        options: ExportOptions, tensorErrors: [String: Double]) throws -> QualityReport {
        let reference = try Session(model: model, threads: options.threads)
        let candidate = try Session(model: try Model(path: path), threads: options.threads)
        let c = try ModelComparison.measure(reference: reference, candidate: candidate,
                                            tokens: tokenizer.encodeAllowingUnknown(text), maxPositions: options.evalTokens)
        guard c.positions > 0 else { throw ExportError("the evaluation text has no position the model's vocabulary can encode") }
        // Finite but huge weights (a run that diverged after its last finite step) overflow
        // in the forward pass: such a model predicts nothing, and exporting it helps no one.
        guard c.referenceCrossEntropy.isFinite else {
            throw ExportError("\(model.file.path): the model's own predictions are not finite on the evaluation text "
                              + "(cross-entropy \(c.referenceCrossEntropy)): its weights have diverged; nothing was exported")
        }
        return QualityReport(positions: c.positions, skipped: c.skipped, referenceCrossEntropy: c.referenceCrossEntropy,
                             modelCrossEntropy: c.candidateCrossEntropy, top1AgreementPercent: c.top1AgreementPercent,
                             meanKL: c.meanKL, maxAbsLogitError: c.maxAbsLogitError, tensorRelativeError: tensorErrors,
                             referenceBitsPerByte: c.referenceBitsPerByte, modelBitsPerByte: c.candidateBitsPerByte,
                             kvCache: candidate.kvCachePrecision.rawValue)
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
