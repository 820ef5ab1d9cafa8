/// Numerically safe softmax over a row, vectorized.
public enum Softmax {
    /// Replaces `count` floats with their softmax, shifting by the row's maximum first so no
    /// exponential overflows.
    @inline(__always)
    public static func inPlace(_ row: UnsafeMutablePointer<Float>, count: Int) {
        softmax(row, count: count, scale: 1, scaled: false)
    }

    /// Replaces `count` floats x with softmax(scale · x): the same values as multiplying each
    /// float by `scale` first and then ``inPlace(_:count:)``, in one pass fewer.
    @inline(__always)
    public static func inPlace(_ row: UnsafeMutablePointer<Float>, count: Int, scale: Float) {
        softmax(row, count: count, scale: scale, scaled: true)
    }

    @inline(__always)
    private static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int, scale: Float, scaled: Bool) {
        typealias V = FastMath.V
        let raw = UnsafeMutableRawPointer(row)
        @inline(__always) func load(_ j: Int) -> V {
            let x = raw.loadUnaligned(fromByteOffset: j * 4, as: V.self)
            return scaled ? x * V(repeating: scale) : x
        }
        @inline(__always) func value(_ j: Int) -> Float { scaled ? row[j] * scale : row[j] }
        // The maximum is the same in any order, so it is taken eight lanes at a time.
        var maxima = V(repeating: -.infinity)
        var j = 0
        while j + 8 <= count { let x = load(j); maxima = maxima.replacing(with: x, where: x .> maxima); j += 8 }
        var maximum = maxima.max()
        while j < count { maximum = max(maximum, value(j)); j += 1 }
        // The sum's order is fixed (formats/tfq.md §11): each group of eight summed, the groups
        // in order, then the tail.
        let shift = V(repeating: maximum)
        var total: Float = 0
        j = 0
        while j + 8 <= count {
            let e = FastMath.exp(load(j) - shift)
            raw.storeBytes(of: e, toByteOffset: j * 4, as: V.self)
            total += e.sum()
            j += 8
        }
        while j < count { let e = FastMath.exp(value(j) - maximum); row[j] = e; total += e; j += 1 }
        let inverse = 1 / total
        for j in 0..<count { row[j] *= inverse }
    }
}
