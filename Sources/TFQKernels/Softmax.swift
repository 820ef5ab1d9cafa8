/// Numerically safe softmax over a row, vectorized.
public enum Softmax {
    /// Replaces `count` floats with their softmax, shifting by the row's maximum first so no
    /// exponential overflows.
    @inline(__always)
    public static func inPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
        typealias V = FastMath.V
        var maximum = -Float.infinity
        for j in 0..<count { maximum = max(maximum, row[j]) }
        let shift = V(repeating: maximum)
        var total: Float = 0
        var j = 0
        let raw = UnsafeMutableRawPointer(row)
        while j + 8 <= count {
            let e = FastMath.exp(raw.loadUnaligned(fromByteOffset: j * 4, as: V.self) - shift)
            raw.storeBytes(of: e, toByteOffset: j * 4, as: V.self)
            total += e.sum()
            j += 8
        }
        while j < count { let e = FastMath.exp(row[j] - maximum); row[j] = e; total += e; j += 1 }
        let inverse = 1 / total
        for j in 0..<count { row[j] *= inverse }
    }
}
