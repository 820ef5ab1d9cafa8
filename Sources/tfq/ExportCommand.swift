import ArgumentParser
import TFQExport
import TFQImport
import TFQFormat
import TFQKernels
#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr are mutable C globals
#endif

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Turn a training checkpoint (or an imported fp32 model) into a model file for the runtime (int8, fp16 or fp32).",
        discussion: """
        --int8 quantizes every matrix multiplied at inference and the token embedding to int8,
        symmetric, one scale per --group-size weights along the reduction dimension (fp16 by
        default, see --scales), in the runtime's interleaved layout; LayerNorm parameters and biases stay fp32, small
        vocabulary tables too, and mid-sized ones are fp16 (see --embedding). The group size and the
        layers whose inputs are quantized in two int8 passes at run time are chosen by measuring
        (see --accuracy): the fastest settings that meet the accuracy target, or those given. Tensors
        are zstd-compressed where that pays (--no-zstd keeps every tensor raw, for a fully
        zero-copy load; `tfq unpack` turns a compressed file into one). The quality report,
        measured on --eval-data (default: the checkpoint's validation split), is printed and
        stored in the file; a model tfq did not train (an import) has no split, so without
        --eval-data its report is skipped, and without --calibration-data its int8 weights are
        rounded to nearest rather than chosen by GPTQ.
        """
    )

    @Argument(help: "The training checkpoint or fp32 model (.tfq).") var checkpoint: String
    @Option(name: .shortAndLong, help: "The model file to write.") var output: String
    @Flag(help: "int8 weights with per-group scales.") var int8 = false
    @Flag(help: "fp16 matrices.") var fp16 = false
    @Flag(help: "fp32, as trained.") var fp32 = false
    @Option(help: "Weights per scale group: a multiple of 4 dividing every row, 'row', or 'auto' (the largest multiple of 4 up to 64 dividing the row). Default: as --accuracy target chooses (auto or 32), else auto.")
    var groupSize: GroupSizeArgument?
    @Option(help: "int8: the group scales as f16 (the default: format 1.5's q8f16, 2 bytes a group) or f32 (q8, 4 bytes a group, readable by tfq before format 1.5).")
    var scales: ExportOptions.ScalePrecision?
    @Option(help: "int8: the vocabulary tables (tok_emb, lm_head) as int8, fp16 (the position table too), fp32, or auto (fp32 when they hold at most 1/64 of the parameters, fp16 up to 1/6, int8 beyond).")
    var embedding: ExportOptions.EmbeddingPrecision?
    @Option(help: "int8: the first N blocks (or 'all') quantize their layers' inputs in two int8 passes at run time (more accurate, twice the integer work there).")
    var twoPassLayers: LayerCountArgument?
    @Flag(help: "int8: the classifier quantizes its input in two int8 passes too (twice the head's integer work).")
    var twoPassClassifier = false
    @Flag(help: "int8: in every block, the layers that read a norm's output (attention's qkv, the feed-forward up and gate) quantize their inputs in two int8 passes: most of the accuracy of --two-pass-layers all, for the integer work of those layers only.")
    var twoPassNormInputs = false
    @Option(help: "int8: weights per scale group in the vocabulary tables (default: --group-size, or as --accuracy target chooses); finer groups cut the error of the lookup and the head.")
    var tableGroupSize: GroupSizeArgument?
    @Option(help: "int8: 'target' (the default unless --group-size, --table-group-size or a two-pass option is given) measures settings from the fastest (groups of up to 64, two passes in the first block) to finer groups and more inputs in two passes, on the quality report's text, and keeps the first whose report meets top-1 agreement >= 99.5%, Δppl <= 0.05%, mean KL <= 5e-5 within 0.30x the fp32 weights (none: the closest by mean KL); 'fast' takes the settings as given (by default the fastest), measured but not against the target.")
    var accuracy: ExportOptions.Accuracy?
    @Flag(inversion: .prefixedNo, help: "int8: choose the weights with GPTQ on calibration text (--no-gptq rounds each weight to nearest).")
    var gptq = true
    @Option(help: "int8: GPTQ's calibration text (default: the checkpoint's training split).") var calibrationData: String?
    @Option(help: "int8: calibration tokens GPTQ reads (default 16384).") var calibrationTokens: Int?
    @Option(name: .customLong("zstd"), parsing: .upToNextOption,
            help: ArgumentHelp("Compress tensors with zstd where it pays, at LEVEL (default 3; the default behaviour).", valueName: "level"))
    var zstdLevels: [Int32] = []
    var zstdLevel: Int32 { zstdLevels.last ?? Self.defaultZstdLevel }
    static let defaultZstdLevel: Int32 = 3
    @Flag(help: "Store every tensor raw.") var noZstd = false
    @Option(help: "Text for the quality report.") var evalData: String?
    @Option(help: "Positions the quality report covers.") var evalTokens = 32_768
    @OptionGroup var threading: ThreadOptions
    @Flag(help: "Print one JSON object instead of the table.") var json = false
    @Flag(help: "Write a GGUF file for llama.cpp instead: --int8 is Q8_0 (blocks of 32), --fp16 F16, --fp32 F32.") var gguf = false

    /// The first option given that sets what `--accuracy target` chooses.
    var settingsGivenByHand: String? {
        [("--group-size", groupSize != nil), ("--table-group-size", tableGroupSize != nil), ("--two-pass-layers", twoPassLayers != nil),
         ("--two-pass-classifier", twoPassClassifier), ("--two-pass-norm-inputs", twoPassNormInputs)].first { $0.1 }?.0
    }

    func validate() throws {
        let chosen = [int8, fp16, fp32].filter { $0 }.count
        if chosen != 1 { throw UsageError("choose exactly one of --int8, --fp16, --fp32") }
        if gguf {
            let given = [("--group-size", groupSize != nil), ("--embedding", embedding != nil), ("--two-pass-layers", twoPassLayers != nil),
                         ("--two-pass-classifier", twoPassClassifier), ("--two-pass-norm-inputs", twoPassNormInputs),
                         ("--table-group-size", tableGroupSize != nil), ("--no-gptq", !gptq), ("--scales", scales != nil),
                         ("--calibration-data", calibrationData != nil), ("--calibration-tokens", calibrationTokens != nil),
                         ("--zstd", !zstdLevels.isEmpty), ("--no-zstd", noZstd), ("--eval-data", evalData != nil),
                         ("--accuracy", accuracy != nil)]
            if let flag = given.first(where: { $0.1 })?.0 {
                throw UsageError("\(flag) does not apply to --gguf (Q8_0 is llama.cpp's: blocks of 32, rounded to nearest; no quality report)")
            }
            return
        }
        if zstdLevels.count > 1 { throw UsageError("--zstd takes one level") }
        if zstdLevel < 1 || zstdLevel > 19 { throw UsageError("--zstd level must be 1 to 19 (got \(zstdLevel))") }
        if noZstd && !zstdLevels.isEmpty { throw UsageError("give --zstd or --no-zstd, not both") }
        if let calibrationTokens, calibrationTokens < 1 { throw UsageError("--calibration-tokens must be at least 1") }
        if let twoPassLayers, twoPassLayers.value < 0 { throw UsageError("--two-pass-layers must be 0 or more, or 'all'") }
        if !int8 {
            let given = [("--embedding", embedding != nil), ("--two-pass-layers", twoPassLayers != nil), ("--no-gptq", !gptq),
                         ("--calibration-data", calibrationData != nil), ("--calibration-tokens", calibrationTokens != nil),
                         ("--two-pass-classifier", twoPassClassifier), ("--two-pass-norm-inputs", twoPassNormInputs),
                         ("--table-group-size", tableGroupSize != nil), ("--scales", scales != nil), ("--accuracy", accuracy != nil)]
            if let flag = given.first(where: { $0.1 })?.0 { throw UsageError("\(flag) applies to --int8 exports only") }
        }
        if let embedding, embedding != .int8, embedding != .auto,
           let flag = twoPassClassifier ? "--two-pass-classifier" : tableGroupSize != nil ? "--table-group-size" : nil {
            throw UsageError("\(flag) is for int8 vocabulary tables, and --embedding \(embedding.rawValue) keeps them \(embedding.rawValue)")
        }
        if !gptq, let flag = calibrationData != nil ? "--calibration-data" : calibrationTokens != nil ? "--calibration-tokens" : nil {
            throw UsageError("\(flag) is for GPTQ, which --no-gptq turns off")
        }
        if evalTokens < 1 { throw UsageError("--eval-tokens must be at least 1") }
        if accuracy == .target, let flag = settingsGivenByHand {
            throw UsageError("--accuracy target chooses the group sizes and the layers in two passes itself; give --accuracy fast to set them (\(flag) was given)")
        }
        try threading.check()
    }

    func run() throws {
        if gguf { return try runGGUF() }
        var options = ExportOptions(precision: int8 ? .int8 : fp16 ? .fp16 : .fp32, threads: threading.count)
        if let groupSize { options.groupSize = groupSize.value }
        if let embedding { options.embedding = embedding }
        if let scales { options.scales = scales }
        if let twoPassLayers { options.twoPassLayers = twoPassLayers.value }
        options.twoPassClassifier = twoPassClassifier
        options.twoPassNormInputs = twoPassNormInputs
        options.tableGroupSize = tableGroupSize?.value
        // Settings given by hand are taken as given; --accuracy target with them is refused.
        options.accuracy = accuracy ?? (settingsGivenByHand == nil ? .target : .fast)
        options.gptq = gptq
        options.calibrationData = calibrationData
        if let calibrationTokens { options.calibrationTokens = calibrationTokens }
        options.zstdLevel = noZstd ? nil : zstdLevel
        options.evalData = evalData
        options.evalTokens = evalTokens
        let summary = try Exporter.export(checkpoint: checkpoint, output: output, options: options)
        for note in [summary.note, summary.tableNote, summary.scalesNote].compactMap({ $0 }) { fputs("note: \(note.text(naming: TFQCommand.flag))\n", stderr) }
        if let note = summary.accuracyNote { fputs("note: \(note.text(naming: TFQCommand.flag))\n", stderr) }
        if summary.quality == nil {
            fputs("note: quality report skipped: the model was not trained by tfq, so it has no validation text; give --eval-data FILE\n", stderr)
        }
        if json {
            struct Output: Encodable {
                var output: String, file_bytes: Int, fp32_weight_bytes: Int, weights: String?, tables: String?
                var two_pass_activations: [String]?, note: String?, scales_note: String?
                var quality: QualityReport?
                var accuracy_trials: [Trial]?, accuracy_kept: Int?, accuracy_note: String?
            }
            struct Trial: Encodable {
                var settings: String, top1_agreement_percent: Double, delta_perplexity_percent: Double, mean_kl: Double
                var file_bytes: Int, met: Bool
            }
            let trials = summary.accuracyTrials.map {
                Trial(settings: $0.settings.text(naming: TFQCommand.flag), top1_agreement_percent: $0.quality.top1AgreementPercent,
                      delta_perplexity_percent: $0.quality.deltaPerplexityPercent, mean_kl: $0.quality.meanKL,
                      file_bytes: $0.fileBytes, met: $0.met)
            }
            print(try JSONOutput.string(Output(output: summary.output, file_bytes: summary.fileBytes, fp32_weight_bytes: summary.fp32WeightBytes,
                                               weights: summary.weightMethod, tables: summary.tables,
                                               two_pass_activations: summary.twoPass?.layers,
                                               note: summary.note?.text(naming: TFQCommand.flag),
                                               scales_note: summary.scalesNote?.text(naming: TFQCommand.flag), quality: summary.quality,
                                               accuracy_trials: trials.isEmpty ? nil : trials, accuracy_kept: summary.accuracyKept,
                                               accuracy_note: summary.accuracyNote?.text(naming: TFQCommand.flag))))
            return
        }
        if !summary.accuracyTrials.isEmpty {
            let target = QualityTarget()
            print("settings measured against the accuracy target (top-1 >= \(format2(target.top1AgreementPercent))%, Δppl <= \(format2(target.deltaPerplexityPercent))%, "
                  + "mean KL <= \(scientific(target.meanKL)), <= \(format2(target.sizeRatio)) × the fp32 weights):")
            print(Table.render(header: ["settings", "top-1", "Δppl", "mean KL", "size", ""], rows: summary.accuracyTrials.indices.map { i in
                let trial = summary.accuracyTrials[i], settings = trial.settings.text(naming: TFQCommand.flag)
                return [settings.isEmpty ? "the fast settings" : settings, format4(trial.quality.top1AgreementPercent) + "%",
                        format4(trial.quality.deltaPerplexityPercent) + "%", scientific(trial.quality.meanKL),
                        format2(Double(trial.fileBytes) / Double(summary.fp32WeightBytes)) + "×",
                        [trial.met ? "met" : nil, i == summary.accuracyKept ? "written" : nil].compactMap { $0 }.joined(separator: ", ")]
            }, rightAligned: [1, 2, 3, 4]))
        }
        print("wrote \(summary.output): \(summary.fileBytes) bytes (\(format2(Double(summary.fileBytes) / Double(summary.fp32WeightBytes))) × the fp32 weights)"
              + (summary.weightMethod.map { ", int8 weights by \($0)" } ?? "") + (summary.tables.map { ", vocabulary tables \($0)" } ?? "")
              + (summary.twoPass.map { ", inputs in two passes for \($0.layers.count) of \($0.of) int8 layers" } ?? ""))
        guard let q = summary.quality else { return }
        print(Table.render(header: ["on \(q.positions) positions", "fp32", "exported"], rows: [
            ["cross-entropy", format4(q.referenceCrossEntropy), format4(q.modelCrossEntropy)],
            ["perplexity", format4(q.referencePerplexity), format4(q.modelPerplexity)],
            ["bits per byte", q.referenceBitsPerByte.map(format4) ?? "-", q.modelBitsPerByte.map(format4) ?? "-"],
        ], rightAligned: [1, 2]))
        print("Δppl \(format4(q.deltaPerplexityPercent))%  top-1 agreement \(format4(q.top1AgreementPercent))%  "
              + "mean KL \(scientific(q.meanKL))  max |Δlogit| \(format4(q.maxAbsLogitError))"
              + (q.skipped > 0 ? "  (\(q.skipped) positions skipped: characters outside the vocabulary)" : ""))
        let worst = q.tensorRelativeError.sorted { $0.value > $1.value }.prefix(3)
        if !worst.isEmpty {
            print("largest relative quantization error: " + worst.map { "\($0.key) \(format4($0.value * 100))%" }.joined(separator: ", "))
        }
    }
}

extension ExportCommand {
    func runGGUF() throws {
        let summary: GGUFExporter.Summary
        do {
            summary = try GGUFExporter.export(checkpoint, output: output, precision: int8 ? .q8_0 : fp16 ? .f16 : .f32)
        } catch let error as ImportError {
            throw UsageError(error.description)
        }
        for note in summary.notes { fputs("note: \(note)\n", stderr) }
        if !summary.keptF32.isEmpty { fputs("note: kept F32 (rows not whole blocks of 32): \(summary.keptF32.joined(separator: ", "))\n", stderr) }
        print("wrote \(output): GGUF \(summary.architecture), \(summary.tensors) tensors \(int8 ? "Q8_0" : fp16 ? "F16" : "F32"), \(summary.fileBytes) bytes")
    }
}

extension ExportOptions.EmbeddingPrecision: ExpressibleByArgument {}
extension ExportOptions.ScalePrecision: ExpressibleByArgument {}
extension ExportOptions.Accuracy: ExpressibleByArgument {}

/// A number of blocks, or `all` of them.
struct LayerCountArgument: ExpressibleByArgument {
    let value: Int
    init?(argument: String) {
        if argument == "all" { value = Int.max } else if let n = Int(argument) { value = n } else { return nil }
    }
}

/// `--group-size`: a number, `row` for one group per row, or `auto`.
struct GroupSizeArgument: ExpressibleByArgument {
    let value: ExportOptions.GroupSize
    init?(argument: String) {
        if argument == "row" { value = .row } else if argument == "auto" { value = .auto } else if let n = Int(argument), n > 0 { value = .size(n) } else { return nil }
    }
}
