import TFQFormat
import TFQKernels

/// GPTQ (Frantar et al., 2022): int8 weights chosen for what the layer computes rather than
/// weight by weight. Columns are quantized in order; each column's rounding error is spread
/// over the columns not yet quantized, weighted by the inverse of the layer's input second
/// moment H = XᵀX, so the layer's output on inputs like the calibration X moves least.
///
/// Each row is independent (rows run across the pool). A group's scale is set from the row's
/// already-updated weights when its first column comes up. With H = I this is exactly plain
/// rounding (`Q8Codec.encode`).
enum GPTQ {
    /// Values [rows × columns] and scales [rows × columns/groupSize], row-major, as
    /// `Q8Codec.pack` takes them.
    struct Quantized {
        var values: [Int8]
        var scales: [Float]
    }

    /// Quantizes `weights` [rows × columns] (row-major) for inputs with second moment
    /// `hessian` [columns × columns]. `damping` × the mean of H's diagonal is added to the
    /// diagonal, tenfold more for each retry while H is not positive definite; nil if it never
    /// is (the caller then rounds plainly).
    static func quantize(_ weights: UnsafeBufferPointer<Float>, rows: Int, columns: Int, groupSize: Int, dtype: DType = .q8,
                         hessian: [Double], damping: Double = Calibration.damping, pool: ThreadPool) -> Quantized? {
        precondition(weights.count == rows * columns && hessian.count == columns * columns && columns % groupSize == 0)
        var h = hessian
        // An input that is always zero says nothing about its column: that weight is dropped.
        var dead = [Bool](repeating: false, count: columns)
        var diagonalSum = 0.0
        for i in 0..<columns {
            if h[i * columns + i] <= 0 { dead[i] = true; h[i * columns + i] = 1 }
            diagonalSum += h[i * columns + i]
        }
        var factor: [Float]?
        var lambda = damping * diagonalSum / Double(columns)
        for _ in 0..<4 where factor == nil {
            var damped = h
            for i in 0..<columns { damped[i * columns + i] += lambda }
            factor = inverseUpperFactor(damped, n: columns).map { $0.map(Float.init) }
            lambda *= 10
        }
        guard let u = factor else { return nil }

        let groups = columns / groupSize
        var values = [Int8](repeating: 0, count: rows * columns)
        var scales = [Float](repeating: 0, count: rows * groups)
        values.withUnsafeMutableBufferPointer { valuesOut in
            scales.withUnsafeMutableBufferPointer { scalesOut in
                u.withUnsafeBufferPointer { u in
                    let valuesOut = valuesOut, scalesOut = scalesOut
                    pool.parallelFor(rows, grain: max(1, 4096 / columns)) { range in
                        let w = UnsafeMutablePointer<Float>.allocate(capacity: columns)
                        defer { w.deallocate() }
                        for r in range {
                            for c in 0..<columns { w[c] = dead[c] ? 0 : weights[r * columns + c] }
                            quantizeRow(w, columns: columns, groupSize: groupSize, dtype: dtype, u: u,
                                        values: valuesOut.baseAddress! + r * columns, scales: scalesOut.baseAddress! + r * groups)
                        }
                    }
                }
            }
        }
        return Quantized(values: values, scales: scales)
    }

    /// One row's sweep: `w` is updated in place as columns are quantized.
    static func quantizeRow(_ w: UnsafeMutablePointer<Float>, columns: Int, groupSize: Int, dtype: DType = .q8,
                            u: UnsafeBufferPointer<Float>, values: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        var scale: Float = 0
        for i in 0..<columns {
            if i % groupSize == 0 {
                var maximum: Float = 0
                for c in i..<(i + groupSize) { maximum = max(maximum, abs(w[c])) }
                scale = Q8Codec.scale(maxAbs: maximum, dtype: dtype)
                scales[i / groupSize] = scale
            }
            // The same rounding as Q8Codec.encode.
            let q = Float(Q8Codec.quantize(w[i], scale: scale))
            values[i] = Int8(q)
            let error = (w[i] - q * scale) / u[i * columns + i]
            let row = u.baseAddress! + i * columns
            for j in (i + 1)..<columns { w[j] -= error * row[j] }
        }
    }

    /// The upper-triangular U with H⁻¹ = UᵀU, for symmetric positive definite H [n × n]
    /// (row-major); nil if H is not positive definite.
    ///
    /// With P the order-reversing permutation, the Cholesky factor M of PHP gives
    /// H = (PMP)(PMP)ᵀ with PMP upper triangular, so H⁻¹ = UᵀU for U = (PMP)⁻¹ = P·M⁻¹·P:
    /// one factorization and one triangular inverse, no full inverse.
    static func inverseUpperFactor(_ h: [Double], n: Int) -> [Double]? {
        // M: the lower Cholesky factor of PHP, row by row.
        var m = [Double](repeating: 0, count: n * n)
        let ok = m.withUnsafeMutableBufferPointer { m -> Bool in
            for i in 0..<n {
                for j in 0...i {
                    var sum = h[(n - 1 - i) * n + (n - 1 - j)]
                    sum -= dot(m.baseAddress! + i * n, m.baseAddress! + j * n, count: j)
                    if i == j {
                        guard sum > 0, sum.isFinite else { return false }
                        m[i * n + i] = sum.squareRoot()
                    } else {
                        m[i * n + j] = sum / m[j * n + j]
                    }
                }
            }
            return true
        }
        guard ok else { return nil }
        // X = M⁻¹ (lower), row i from M·X = I: X_i = (e_i − Σ_{k<i} M_ik X_k) / M_ii.
        var x = [Double](repeating: 0, count: n * n)
        x.withUnsafeMutableBufferPointer { x in
            for i in 0..<n {
                let row = x.baseAddress! + i * n
                row[i] = 1
                for k in 0..<i {
                    let factor = m[i * n + k], other = x.baseAddress! + k * n
                    for j in 0...k { row[j] -= factor * other[j] }
                }
                let inverse = 1 / m[i * n + i]
                for j in 0...i { row[j] *= inverse }
            }
        }
        // U = P·X·P.
        var u = [Double](repeating: 0, count: n * n)
        for i in 0..<n {
            for j in i..<n { u[i * n + j] = x[(n - 1 - i) * n + (n - 1 - j)] }
        }
        return u
    }

    /// Σ a[k]·b[k], four lanes at a time.
    @inline(__always)
    static func dot(_ a: UnsafePointer<Double>, _ b: UnsafePointer<Double>, count: Int) -> Double {
        var lanes = SIMD4<Double>(), k = 0
        while k + 4 <= count {
            lanes += UnsafeRawPointer(a + k).loadUnaligned(as: SIMD4<Double>.self)
                * UnsafeRawPointer(b + k).loadUnaligned(as: SIMD4<Double>.self)
            k += 4
        }
        var sum = lanes.sum()
        while k < count { sum += a[k] * b[k]; k += 1 }
        return sum
    }
}
