/// y = W·x for an fp32 row-major W [rows × columns]: the decode step's matrix-vector product.
public enum MatVec {
    public static func multiply(_ w: UnsafePointer<Float>, rows: Int, columns: Int, x: UnsafePointer<Float>,
                                y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let grain = max(4, 16384 / max(1, columns)) / 4 * 4
        pool.parallelFor(rows, grain: grain) { range in
            var r = range.lowerBound
            // Four rows at a time share each load of x.
            while r + 4 <= range.upperBound {
                let (a, b, c, d) = dot4(w + r * columns, columns: columns, x: x)
                y[r] = a; y[r + 1] = b; y[r + 2] = c; y[r + 3] = d
                r += 4
            }
            while r < range.upperBound { y[r] = VectorOps.dot(w + r * columns, x, count: columns); r += 1 }
        }
    }

    @inline(__always)
    static func dot4(_ rows: UnsafePointer<Float>, columns: Int, x: UnsafePointer<Float>) -> (Float, Float, Float, Float) {
        typealias V = FloatVector
        let w = V.scalarCount
        var a0 = V(), a1 = V(), a2 = V(), a3 = V()
        let rx = UnsafeRawPointer(x), rw = UnsafeRawPointer(rows)
        var i = 0
        while i + w <= columns {
            let xv = rx.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            multiplyAdd(&a0, rw.loadUnaligned(fromByteOffset: i * 4, as: V.self), xv)
            multiplyAdd(&a1, rw.loadUnaligned(fromByteOffset: (columns + i) * 4, as: V.self), xv)
            multiplyAdd(&a2, rw.loadUnaligned(fromByteOffset: (2 * columns + i) * 4, as: V.self), xv)
            multiplyAdd(&a3, rw.loadUnaligned(fromByteOffset: (3 * columns + i) * 4, as: V.self), xv)
            i += w
        }
        var s0 = a0.sum(), s1 = a1.sum(), s2 = a2.sum(), s3 = a3.sum()
        while i < columns {
            s0 += rows[i] * x[i]; s1 += rows[columns + i] * x[i]; s2 += rows[2 * columns + i] * x[i]; s3 += rows[3 * columns + i] * x[i]
            i += 1
        }
        return (s0, s1, s2, s3)
    }
}
