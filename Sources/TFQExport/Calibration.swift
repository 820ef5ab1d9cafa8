@_spi(Calibration) import TFQRuntime
import TFQKernels
import TFQModel

/// The second moment H = XᵀX of the inputs of chosen linear layers, gathered by running the
/// fp32 model over windows of calibration text: what GPTQ weighs rounding errors by.
enum Calibration {
    /// H for each weight in `weights`, over up to `maxTokens` tokens of `tokens` taken as
    /// windows of the model's context (at most 256 tokens each) at seeded random offsets.
    static func hessians(model: Model, tokens: [Int32], weights: Set<String>, maxTokens: Int, seed: UInt64,
                         threads: Int) throws -> [String: [Double]] {
        let window = min(model.config.contextLength, 256, tokens.count)
        guard window >= 2, !weights.isEmpty else { return [:] }
        let windows = max(1, maxTokens / window)
        let session = Session(model: model, threads: threads)
        let gemm = GEMM(pool: ThreadPool(threads: threads))
        var sums: [String: UnsafeMutablePointer<Float>] = [:]
        var widths: [String: Int] = [:]
        defer { for buffer in sums.values { AlignedMemory.free(buffer) } }
        session.linearInputObserver = { name, x, rows, columns in
            guard weights.contains(name) else { return }
            let h: UnsafeMutablePointer<Float>
            if let existing = sums[name] { h = existing } else {
                h = AlignedMemory.floats(columns * columns)
                sums[name] = h; widths[name] = columns
            }
            gemm.multiply(m: columns, n: columns, k: rows, a: .transposed(x, columns: columns), b: MatrixView(x, columns: columns),
                          c: h, ldc: columns, accumulate: true)
        }
        var random = Xoshiro256(seed: seed)
        for _ in 0..<windows {
            let start = Int.random(in: 0...(tokens.count - window), using: &random)
            session.reset()
            try tokens[start..<(start + window)].withUnsafeBufferPointer { _ = try session.evaluate($0, allLogits: true) }
        }
        var result: [String: [Double]] = [:]
        for (name, h) in sums {
            let n = widths[name]!
            result[name] = (0..<(n * n)).map { Double(h[$0]) }
        }
        return result
    }
}
