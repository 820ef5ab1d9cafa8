/// y = W·x for an fp32 or fp16 row-major W [rows × columns]: the decode step's
/// matrix-vector product.
///
/// Every row's dot product is summed in one order in every build (formats/tfq.md §11.1):
/// 16 lanes, lane j accumulating columns ≡ j (mod 16) with ``multiplyAdd``, the lanes folded
/// in halves (``fold(_:)``), then the last columns % 16 products one by one. An AVX2 or NEON
/// build holds a lane set in two registers, an AVX-512 build in one; the sums are the same.
/// fp16 weights are widened exactly as they are loaded, so they give the bits of their fp32
/// copy, reading half the bytes.
public enum MatVec {
    typealias Lanes = SIMD16<Float>

    /// Writes the `rows` floats of W·x to `y` (`x`: `columns` floats), the rows split across `pool`.
    public static func multiply(_ w: UnsafePointer<Float>, rows: Int, columns: Int, x: UnsafePointer<Float>,
                                y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        multiplyRows(w, rows: rows, columns: columns, x: x, y: y, pool: pool)
    }

    /// `multiply` for fp16 weights.
    public static func multiply(_ w: UnsafePointer<Float16>, rows: Int, columns: Int, x: UnsafePointer<Float>,
                                y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        multiplyRows(w, rows: rows, columns: columns, x: x, y: y, pool: pool)
    }

    @inline(__always)
    static func multiplyRows<Weight: MatVecWeight>(_ w: UnsafePointer<Weight>, rows: Int, columns: Int, x: UnsafePointer<Float>,
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
    static func dot4<Weight: MatVecWeight>(_ rows: UnsafePointer<Weight>, columns: Int, x: UnsafePointer<Float>) -> (Float, Float, Float, Float) {
        let w0 = rows, w1 = w0 + columns, w2 = w1 + columns, w3 = w2 + columns
        var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
        let whole = columns & ~15
        var i = 0
        while i < whole {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            multiplyAdd(&a0, Weight.lanes(w0 + i), xv); multiplyAdd(&a1, Weight.lanes(w1 + i), xv)
            multiplyAdd(&a2, Weight.lanes(w2 + i), xv); multiplyAdd(&a3, Weight.lanes(w3 + i), xv)
            i &+= 16
        }
        var s0 = fold(a0), s1 = fold(a1), s2 = fold(a2), s3 = fold(a3)
        while i < columns {
            let xi = x[i]
            s0 += w0[i].float * xi; s1 += w1[i].float * xi; s2 += w2[i].float * xi; s3 += w3[i].float * xi
            i &+= 1
        }
        return (s0, s1, s2, s3)
    }

    @inline(__always)
    static func dot2<Weight: MatVecWeight>(_ rows: UnsafePointer<Weight>, columns: Int, x: UnsafePointer<Float>) -> (Float, Float) {
        let w0 = rows, w1 = w0 + columns
        var a0 = Lanes(), a1 = Lanes()
        let whole = columns & ~15
        var i = 0
        while i < whole {
            let xv = UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self)
            multiplyAdd(&a0, Weight.lanes(w0 + i), xv); multiplyAdd(&a1, Weight.lanes(w1 + i), xv)
            i &+= 16
        }
        var s0 = fold(a0), s1 = fold(a1)
        while i < columns { s0 += w0[i].float * x[i]; s1 += w1[i].float * x[i]; i &+= 1 }
        return (s0, s1)
    }

    /// One row in dot4's order (the rows after the last group of four, or of two).
    @inline(__always)
    static func dot<Weight: MatVecWeight>(_ row: UnsafePointer<Weight>, columns: Int, x: UnsafePointer<Float>) -> Float {
        var a = Lanes()
        let whole = columns & ~15
        var i = 0
        while i < whole {
            multiplyAdd(&a, Weight.lanes(row + i), UnsafeRawPointer(x + i).loadUnaligned(as: Lanes.self))
            i &+= 16
        }
        var s = fold(a)
        while i < columns { s += row[i].float * x[i]; i &+= 1 }
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

/// A weight type ``MatVec`` reads: fp32 as stored, or fp16 widened exactly.
protocol MatVecWeight {
    /// The 16 weights from `p` on, as floats.
    static func lanes(_ p: UnsafePointer<Self>) -> SIMD16<Float>
    /// The weight as a float.
    var float: Float { get }
}

extension Float: MatVecWeight {
    @inline(__always)
    static func lanes(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
        UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
    }

    @inline(__always)
    var float: Float { self }
}

extension Float16: MatVecWeight {
    @inline(__always)
    static func lanes(_ p: UnsafePointer<Float16>) -> SIMD16<Float> {
        HalfPrecision.widen(UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float16>.self))
    }

    @inline(__always)
    var float: Float { HalfPrecision.widen(self) }
}
