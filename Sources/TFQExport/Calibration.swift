@_spi(Calibration) import TFQRuntime
import TFQKernels
import TFQModel
import TFQTrain

/// What GPTQ weighs rounding errors by: the second moment H = XᵀX of the inputs of each
/// linear layer, gathered by running the fp32 model over windows of calibration text.
enum Calibration {
    /// GPTQ's damping: this fraction of H's mean diagonal is added to its diagonal.
    static let damping = 0.01
    /// A fixed seed ("tfqg") for the windows, so an export is reproducible.
    static let seed: UInt64 = 0x7466_7167

    /// One layer input's H, [columns × columns] in Float; layers that read the same input
    /// (llama's gate and up) share one.
    final class Hessian {
        let columns: Int
        let sums: UnsafeMutablePointer<Float>
        init(columns: Int) { self.columns = columns; sums = AlignedMemory.floats(columns * columns) }
        deinit { AlignedMemory.free(sums) }
        /// H in Double, as GPTQ factors it.
        var doubles: [Double] { (0..<(columns * columns)).map { Double(sums[$0]) } }
    }

    struct Result {
        var hessians: [String: Hessian] = [:]
        /// Tokens the model read.
        var tokens = 0
        /// The calibration file's name; nil when there was none.
        var source: String?
        /// Why GPTQ was not used, when it was asked for and could not be.
        var note: OptionMessage?
    }

    /// H for each weight in `weights` (the int8 layers GPTQ will choose), from
    /// `--calibration-data` or else the checkpoint's training split, over up to
    /// `options.calibrationTokens` tokens in windows of the context (at most 256 tokens).
    static func run(_ model: Model, weights: Set<String>, options: ExportOptions, training: TrainingState?) throws -> Result {
        var result = Result()
        guard options.precision == .int8, options.gptq, !weights.isEmpty else { return result }
        let tokens: [Int32], source: String
        if let path = options.calibrationData {
            let text: String
            do { text = try Corpus.readText(path) } catch { throw ExportError("\(error)") }
            tokens = model.tokenizer.encodeAllowingUnknown(text)
            source = path
        } else if let path = training?.dataPath, let text = try? Corpus.readText(path) {
            let all = model.tokenizer.encodeAllowingUnknown(text)
            // Training held out the last 10% of the tokens (of the bytes, for BPE) when it had
            // no validation file: calibration stops at 85%, clear of it.
            tokens = training?.validationPath != nil ? all : Array(all[..<(all.count - all.count * 15 / 100)])
            source = path
        } else {
            let why = training == nil ? "the model was not trained by tfq" : "the training data is not at its recorded path"
            result.note = "no calibration text (\(why); give \(option: "calibration_data") FILE): int8 weights rounded to nearest"
            return result
        }
        let window = min(model.config.contextLength, 256, tokens.count)
        guard window >= 2 else { throw ExportError("\(source): too little calibration text for the model's vocabulary") }

        // Every layer's H is held until its weights are chosen; GPTQ then needs about five
        // more n × n Double matrices for the widest layer.
        let widths = model.linearShapes.filter { weights.contains($0.name) }.map(\.columns)
        let bytes = widths.reduce(0) { $0 + $1 * $1 * 4 } + 40 * (widths.max() ?? 0) * (widths.max() ?? 0)
        if bytes > ProcessMemory.physicalBytes / 2 {
            result.note = "GPTQ would need \(bytes >> 20) MB, more than half of this machine's memory: int8 weights rounded to nearest"
            return result
        }

        let session = try Session(model: model, threads: options.threads)
        let gemm = session.calibrationGEMM
        var hessians: [String: Hessian] = [:]
        var previous: (input: UnsafePointer<Float>, rows: Int, hessian: Hessian)?
        session.linearInputObserver = { name, x, rows, columns in
            guard weights.contains(name) else { previous = nil; return }
            // Consecutive layers on the same input (gate, then up) share its H.
            if let last = previous, last.input == x, last.rows == rows, last.hessian.columns == columns {
                hessians[name] = last.hessian
                return
            }
            let h = hessians[name] ?? Hessian(columns: columns)
            hessians[name] = h
            previous = (x, rows, h)
            gemm.multiply(m: columns, n: columns, k: rows, a: .transposed(x, columns: columns), b: MatrixView(x, columns: columns),
                          c: h.sums, ldc: columns, accumulate: true)
        }
        let windows = max(1, options.calibrationTokens / window)
        var random = Xoshiro256(seed: seed)
        for _ in 0..<windows {
            let start = Int.random(in: 0...(tokens.count - window), using: &random)
            session.reset()
            previous = nil
            try session.evaluate(Array(tokens[start..<(start + window)]), allLogits: true, borrowingLogits: { _ in })
        }
        result.hessians = hessians
        result.tokens = windows * window
        result.source = String(source.split(separator: "/").last ?? Substring(source))
        return result
    }
}
