/// Small vector routines over contiguous floats, vectorized with the portable SIMD types.
public enum VectorOps {
    /// The vector the routines work in: eight floats.
    public typealias V = SIMD8<Float>

    /// The dot product of `count` floats of `a` and `b`.
    @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) -> Float {
        var acc0 = V(), acc1 = V()
        var i = 0
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        while i + 16 <= count {
            acc0 += ra.loadUnaligned(fromByteOffset: i * 4, as: V.self) * rb.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            acc1 += ra.loadUnaligned(fromByteOffset: (i + 8) * 4, as: V.self) * rb.loadUnaligned(fromByteOffset: (i + 8) * 4, as: V.self)
            i += 16
        }
        var sum = (acc0 + acc1).sum()
        while i < count { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    /// The sum of `count` floats of `a`.
    @inline(__always)
    public static func sum(_ a: UnsafePointer<Float>, count: Int) -> Float {
        var acc = V()
        var i = 0
        let ra = UnsafeRawPointer(a)
        while i + 8 <= count { acc += ra.loadUnaligned(fromByteOffset: i * 4, as: V.self); i += 8 }
        var total = acc.sum()
        while i < count { total += a[i]; i += 1 }
        return total
    }

    /// x *= alpha
    @inline(__always)
    public static func scale(_ x: UnsafeMutablePointer<Float>, by alpha: Float, count: Int) {
        var i = 0
        let rx = UnsafeMutableRawPointer(x)
        let va = V(repeating: alpha)
        while i + 8 <= count {
            rx.storeBytes(of: rx.loadUnaligned(fromByteOffset: i * 4, as: V.self) * va, toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < count { x[i] *= alpha; i += 1 }
    }

    /// y += x
    @inline(__always)
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        while i + 8 <= count {
            ry.storeBytes(of: ry.loadUnaligned(fromByteOffset: i * 4, as: V.self) + rx.loadUnaligned(fromByteOffset: i * 4, as: V.self),
                          toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < count { y[i] += x[i]; i += 1 }
    }

    /// y = x widened from fp16, exactly.
    @inline(__always)
    public static func widen(_ x: UnsafePointer<Float16>, into y: UnsafeMutablePointer<Float>, count: Int) {
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
        while i + 8 <= count {
            ry.storeBytes(of: HalfPrecision.widen(rx.loadUnaligned(fromByteOffset: i * 2, as: SIMD8<Float16>.self)), toByteOffset: i * 4, as: V.self)
            i += 8
        }
        while i < count { y[i] = HalfPrecision.widen(x[i]); i += 1 }
    }

    /// Adds `bias` to each of `rows` rows of `x` [rows × columns].
    public static func addBias(_ bias: UnsafePointer<Float>, to x: UnsafeMutablePointer<Float>, rows: Int, columns: Int, pool: ThreadPool) {
        pool.parallelFor(rows, grain: 8) { range in
            for r in range { add(bias, into: x + r * columns, count: columns) }
        }
    }
}
