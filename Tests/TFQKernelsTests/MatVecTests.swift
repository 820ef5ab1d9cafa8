import Testing
@testable import TFQKernels

/// The decode step's matrix-vector product: the summation order of formats/tfq.md §11.1
/// (mad-sum¹⁶), for fp32 weights and for fp16 weights widened as they are read.
@Suite struct MatVecTests {
    /// Deterministic values in [-1, 1), with some exponents far apart so that the order of
    /// the sums shows in the bits.
    static func values(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { i in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let v = Float(state >> 40) / Float(1 << 23) - 1
            return i % 7 == 0 ? v * 1024 : v
        }
    }

    /// §11.1's mad-sum¹⁶, one multiply-add at a time.
    static func madSum16(_ a: ArraySlice<Float>, _ b: [Float]) -> Float {
        let a = Array(a)
        var lanes = [Float](repeating: 0, count: 16)
        var i = 0
        while i + 16 <= a.count {
            for l in 0..<16 { multiplyAdd(&lanes[l], a[i + l], b[i + l]) }
            i += 16
        }
        for width in [8, 4, 2] { for l in 0..<width { lanes[l] = lanes[l] + lanes[l + width] } }
        var s = lanes[0] + lanes[1]
        while i < a.count { s = s + a[i] * b[i]; i += 1 }
        return s
    }

    @Test(arguments: [(13, 37), (16, 64), (7, 128), (33, 15)])
    func halvesGiveTheBitsOfTheirFloatCopy(rows: Int, columns: Int) {
        let halves = Self.values(rows * columns, seed: 5).map { Float16($0) }
        let weights = halves.map { Float($0) }
        let x = Self.values(columns, seed: 9)
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            var fromFloats = [Float](repeating: .nan, count: rows), fromHalves = [Float](repeating: .nan, count: rows)
            MatVec.multiply(weights, rows: rows, columns: columns, x: x, y: &fromFloats, pool: pool)
            MatVec.multiply(halves, rows: rows, columns: columns, x: x, y: &fromHalves, pool: pool)
            let expected = (0..<rows).map { Self.madSum16(weights[($0 * columns)..<(($0 + 1) * columns)], x) }
            #expect(fromFloats.map(\.bitPattern) == expected.map(\.bitPattern), "fp32, \(threads) threads")
            #expect(fromHalves.map(\.bitPattern) == expected.map(\.bitPattern), "fp16, \(threads) threads")
        }
    }

    @Test func widenCopiesARowExactly() {
        let halves = Self.values(21, seed: 3).map { Float16($0) } + [.infinity, -.infinity, Float16(bitPattern: 1), -0.0]
        var out = [Float](repeating: .nan, count: halves.count)
        VectorOps.widen(halves, into: &out, count: halves.count)
        #expect(out.map(\.bitPattern) == halves.map { Float($0).bitPattern })
    }
}
