/// y = W·x for an fp32 row-major W [rows × columns]: the decode step's matrix-vector product.
///
/// Every row's dot product is summed in one order in every build (formats/tfq.md §11.1):
/// 16 lanes, lane j accumulating columns ≡ j (mod 16) with ``multiplyAdd``, the lanes folded
/// in halves (``fold(_:)``), then the last columns % 16 products one by one. An AVX2 or NEON
/// build holds a lane set in two registers, an AVX-512 build in one; the sums are the same.
public enum MatVec {
    typealias Lanes = SIMD16<Float>

    /// Writes the `rows` floats of W·x to `y` (`x`: `columns` floats), the rows split across `pool`.
    public static func multiply(_ w: UnsafePointer<Float>, rows: Int, columns: Int, x: UnsafePointer<Float>,
                                y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let grain = max(4, 16384 / max(1, columns)) / 4 * 4
        pool.parallelFor(rows, grain: grain) { range in
            var r = range.lowerBound
            #if arch(x86_64) && !TFQ_AVX2 && !TFQ_AVX512
            // Baseline x86-64 has 16 SSE registers: four rows' 16 lanes (4 registers each)
            // would spill, so two rows at a time share each load of x.
            while r + 2 <= range.upperBound {
                let (a, b) = dot2(w + r * columns, columns: columns, x: x)
                y[r] = a; y[r + 1] = b
                r += 2
            }
            #else
            // Four rows at a time share each load of x.
            while r + 4 <= range.upperBound {
                let (a, b, c, d) = dot4(w + r * columns, columns: columns, x: x)
                y[r] = a; y[r + 1] = b; y[r + 2] = c; y[r + 3] = d
                r += 4
            }
            #endif
            while r < range.upperBound { y[r] = dot(w + r * columns, columns: columns, x: x); r += 1 }
        }
    }

    @inline(__always)
    static func dot4(_ rows: UnsafePointer<Float>, columns: Int, x: UnsafePointer<Float>) -> (Float, Float, Float, Float) {
        var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
        let rx = UnsafeRawPointer(x), rw = UnsafeRawPointer(rows)
        var i = 0
        while i + 16 <= columns {
            let xv = rx.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self)
            multiplyAdd(&a0, rw.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self), xv)
            multiplyAdd(&a1, rw.loadUnaligned(fromByteOffset: (columns + i) * 4, as: Lanes.self), xv)
            multiplyAdd(&a2, rw.loadUnaligned(fromByteOffset: (2 * columns + i) * 4, as: Lanes.self), xv)
            multiplyAdd(&a3, rw.loadUnaligned(fromByteOffset: (3 * columns + i) * 4, as: Lanes.self), xv)
            i += 16
        }
        var s0 = fold(a0), s1 = fold(a1), s2 = fold(a2), s3 = fold(a3)
        while i < columns {
            s0 += rows[i] * x[i]; s1 += rows[columns + i] * x[i]; s2 += rows[2 * columns + i] * x[i]; s3 += rows[3 * columns + i] * x[i]
            i += 1
        }
        return (s0, s1, s2, s3)
    }

    @inline(__always)
    static func dot2(_ rows: UnsafePointer<Float>, columns: Int, x: UnsafePointer<Float>) -> (Float, Float) {
        var a0 = Lanes(), a1 = Lanes()
        let rx = UnsafeRawPointer(x), rw = UnsafeRawPointer(rows)
        var i = 0
        while i + 16 <= columns {
            let xv = rx.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self)
            multiplyAdd(&a0, rw.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self), xv)
            multiplyAdd(&a1, rw.loadUnaligned(fromByteOffset: (columns + i) * 4, as: Lanes.self), xv)
            i += 16
        }
        var s0 = fold(a0), s1 = fold(a1)
        while i < columns { s0 += rows[i] * x[i]; s1 += rows[columns + i] * x[i]; i += 1 }
        return (s0, s1)
    }

    /// One row in dot4's order (the rows after the last group of four, or of two).
    @inline(__always)
    static func dot(_ row: UnsafePointer<Float>, columns: Int, x: UnsafePointer<Float>) -> Float {
        var a = Lanes()
        let rx = UnsafeRawPointer(x), rw = UnsafeRawPointer(row)
        var i = 0
        while i + 16 <= columns {
            multiplyAdd(&a, rw.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self), rx.loadUnaligned(fromByteOffset: i * 4, as: Lanes.self))
            i += 16
        }
        var s = fold(a)
        while i < columns { s += row[i] * x[i]; i += 1 }
        return s
    }

    /// The lanes' total in halves: lane j ⊕ lane j+8, then j ⊕ j+4, j ⊕ j+2, and the last two.
    /// Four dependent adds where a lane-by-lane sum (the standard library's `sum()`) is 15.
    @inline(__always)
    static func fold(_ lanes: Lanes) -> Float {
        let eight = lanes.lowHalf + lanes.highHalf
        let four = eight.lowHalf + eight.highHalf
        let two = four.lowHalf + four.highHalf
        return two[0] + two[1]
    }
}
