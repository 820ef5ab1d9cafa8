import Testing
import TFQFormat
import TFQKernels
@testable import TFQExport

/// GPTQ against what it promises: the factor it works with is H⁻¹'s, with H = I it is plain
/// rounding exactly, and on correlated inputs it moves the layer's output less than plain
/// rounding does.
@Suite struct GPTQTests {
    /// A deterministic stream of uniform values in [−1, 1).
    struct Stream {
        var state: UInt64
        mutating func next() -> Double {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Double(state >> 11) / Double(1 << 52) - 1
        }
    }

    /// X [samples × n] with strongly correlated columns (random mixtures of n/4 sources plus
    /// a little noise), and H = XᵀX.
    static func correlatedInputs(samples: Int, n: Int, seed: UInt64) -> (x: [Double], h: [Double]) {
        var random = Stream(state: seed)
        let sources = max(1, n / 4)
        let mixing = (0..<(sources * n)).map { _ in random.next() }
        var x = [Double](repeating: 0, count: samples * n)
        for s in 0..<samples {
            let z = (0..<sources).map { _ in random.next() }
            for j in 0..<n {
                var v = 0.05 * random.next()
                for k in 0..<sources { v += z[k] * mixing[k * n + j] }
                x[s * n + j] = v
            }
        }
        var h = [Double](repeating: 0, count: n * n)
        for s in 0..<samples { for i in 0..<n { for j in 0..<n { h[i * n + j] += x[s * n + i] * x[s * n + j] } } }
        return (x, h)
    }

    @Test(arguments: [1, 7, 33, 64])
    func factorIsTheInverseCholeskyFactor(n: Int) throws {
        let h = Self.correlatedInputs(samples: 4 * n + 8, n: n, seed: UInt64(n)).h
        var damped = h
        for i in 0..<n { damped[i * n + i] += 0.01 }
        let u = try #require(GPTQ.inverseUpperFactor(damped, n: n))
        for i in 0..<n { for j in 0..<i { #expect(u[i * n + j] == 0) }; #expect(u[i * n + i] > 0) }
        // UᵀU·H = I.
        var worst = 0.0
        for i in 0..<n {
            for j in 0..<n {
                var sum = 0.0
                for k in 0..<n {
                    var inverse = 0.0   // (UᵀU)[i][k]
                    for m in 0...min(i, k) { inverse += u[m * n + i] * u[m * n + k] }
                    sum += inverse * damped[k * n + j]
                }
                worst = max(worst, abs(sum - (i == j ? 1 : 0)))
            }
        }
        #expect(worst < 1e-6, "‖UᵀU·H − I‖∞ = \(worst)")
    }

    @Test func notPositiveDefiniteGivesNil() {
        #expect(GPTQ.inverseUpperFactor([1, 2, 2, 1], n: 2) == nil)
        #expect(GPTQ.inverseUpperFactor([.nan, 0, 0, 1], n: 2) == nil)
    }

    static func weights(rows: Int, columns: Int, seed: UInt64) -> [Float] {
        var random = Stream(state: seed)
        return (0..<(rows * columns)).map { _ in Float(random.next() * 0.1) }
    }

    /// Plain rounding's dequantized weights, row-major.
    static func rounded(_ w: [Float], rows: Int, columns: Int, groupSize: Int) throws -> (values: [Int8], scales: [Float], dequantized: [Float]) {
        let bytes = try w.withUnsafeBufferPointer { try Q8Codec.encode($0, rows: rows, cols: columns, groupSize: groupSize, layout: .rowMajor) }
        let groups = columns / groupSize
        let values = bytes[..<(rows * columns)].map { Int8(bitPattern: $0) }
        let offset = Q8Codec.scalesOffset(rows: rows, cols: columns, layout: .rowMajor)
        let scales = (0..<(rows * groups)).map { i in
            bytes.withUnsafeBytes { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self))) }
        }
        let dequantized = (0..<(rows * columns)).map { (i: Int) -> Float in
            let scale = scales[(i / columns) * groups + (i % columns) / groupSize]
            return Float(values[i]) * scale
        }
        return (values, scales, dequantized)
    }

    @Test(arguments: [4, 16, 48])
    func identityHessianIsPlainRounding(groupSize: Int) throws {
        let rows = 21, columns = 96
        let w = Self.weights(rows: rows, columns: columns, seed: 5)
        var identity = [Double](repeating: 0, count: columns * columns)
        for i in 0..<columns { identity[i * columns + i] = 3 }
        let q = try #require(w.withUnsafeBufferPointer {
            GPTQ.quantize($0, rows: rows, columns: columns, groupSize: groupSize, hessian: identity, pool: ThreadPool(threads: 2))
        })
        let plain = try Self.rounded(w, rows: rows, columns: columns, groupSize: groupSize)
        #expect(q.values == plain.values)
        #expect(q.scales == plain.scales)
    }

    @Test(arguments: [(24, 64, 16), (40, 96, 32), (17, 128, 64)])
    func correlatedInputsMoveTheOutputLessThanRounding(shape: (Int, Int, Int)) throws {
        let (rows, columns, groupSize) = shape
        let (x, h) = Self.correlatedInputs(samples: 512, n: columns, seed: UInt64(columns))
        let w = Self.weights(rows: rows, columns: columns, seed: UInt64(rows))
        let q = try #require(w.withUnsafeBufferPointer {
            GPTQ.quantize($0, rows: rows, columns: columns, groupSize: groupSize, hessian: h, pool: ThreadPool(threads: 2))
        })
        #expect(q.values.allSatisfy { $0 >= -127 } && q.scales.allSatisfy { $0 > 0 })
        let groups = columns / groupSize
        let gptq = (0..<(rows * columns)).map { (i: Int) -> Float in
            let scale = q.scales[(i / columns) * groups + (i % columns) / groupSize]
            return Float(q.values[i]) * scale
        }
        let plain = try Self.rounded(w, rows: rows, columns: columns, groupSize: groupSize).dequantized
        /// ‖X·(W − Ŵ)ᵀ‖² over the calibration inputs.
        func outputError(_ quantized: [Float]) -> Double {
            var total = 0.0
            for s in 0..<(x.count / columns) {
                for r in 0..<rows {
                    var d = 0.0
                    for c in 0..<columns { d += x[s * columns + c] * Double(w[r * columns + c] - quantized[r * columns + c]) }
                    total += d * d
                }
            }
            return total
        }
        let ratio = outputError(gptq) / outputError(plain)
        #expect(ratio < 0.5, "GPTQ's output error is \(ratio) × plain rounding's")
    }

    @Test func deadInputsZeroTheirColumn() throws {
        let rows = 16, columns = 32
        var (_, h) = Self.correlatedInputs(samples: 256, n: columns, seed: 9)
        for k in 0..<columns { h[5 * columns + k] = 0; h[k * columns + 5] = 0 }
        let w = Self.weights(rows: rows, columns: columns, seed: 2)
        let q = try #require(w.withUnsafeBufferPointer {
            GPTQ.quantize($0, rows: rows, columns: columns, groupSize: 16, hessian: h, pool: ThreadPool(threads: 1))
        })
        for r in 0..<rows { #expect(q.values[r * columns + 5] == 0) }
    }
}
