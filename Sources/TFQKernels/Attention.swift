/// Multi-head causal self-attention: per head h, Y_h = softmax(Q_h K_hᵀ / √d_k, causal) V_h.
///
/// Works on the fused projection `qkv` [batch·T × 3·dim] (Q, K, V side by side in each row)
/// and writes `y` [batch·T × dim] with the heads side by side. The attention weights are
/// kept for the backward pass.
///
/// Each head's keys (and values, backward) are first transposed into a `d_k × T` scratch, so
/// a row of scores is d_k vector updates over the keys rather than T short dot products with
/// a horizontal sum each.
public struct CausalAttention {
    public let batch: Int, length: Int, heads: Int, dim: Int
    public var headDim: Int { dim / heads }
    /// Floats needed to keep the weights: batch × heads × T × T.
    public var probabilityCount: Int { batch * heads * length * length }
    /// Scratch floats per thread for forward and backward.
    public var scratchPerThread: Int { length * (2 * headDim + 1) }

    public init(batch: Int, length: Int, heads: Int, dim: Int) {
        precondition(dim % heads == 0)
        self.batch = batch; self.length = length; self.heads = heads; self.dim = dim
    }

    /// Copies column block `column ..< column + d_k` of `rows` [T × stride] into `out` [d_k × T].
    @inline(__always)
    private func transpose(_ rows: UnsafePointer<Float>, stride: Int, column: Int, into out: UnsafeMutablePointer<Float>) {
        for j in 0..<length {
            let source = rows + j * stride + column
            for d in 0..<headDim { out[d * length + j] = source[d] }
        }
    }

    /// `scratch` holds `threads × scratchPerThread` floats.
    public func forward(qkv: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        let count = batch * H
        pool.run { worker in
            let workers = pool.threadCount
            let keysT = scratch + worker * scratchPerThread
            for bh in (count * worker / workers)..<(count * (worker + 1) / workers) {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D
                transpose(rows, stride: 3 * D, column: D + h * dk, into: keysT)
                for i in 0..<T {
                    let q = rows + i * 3 * D + h * dk
                    let p = probabilities + (bh * T + i) * T
                    p.update(repeating: 0, count: T)
                    for d in 0..<dk { VectorOps.axpy(q[d] * scale, keysT + d * T, p, count: i + 1) }
                    Softmax.inPlace(p, count: i + 1)
                    let out = y + (b * T + i) * D + h * dk
                    out.update(repeating: 0, count: dk)
                    for j in 0...i { VectorOps.axpy(p[j], rows + j * 3 * D + 2 * D + h * dk, out, count: dk) }
                }
            }
        }
    }

    /// dqkv = ∂L/∂qkv (overwritten) from dy = ∂L/∂y. `scratch` as for forward.
    public func backward(dy: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
                         dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        dqkv.update(repeating: 0, count: batch * T * 3 * D)
        let count = batch * H
        pool.run { worker in
            let workers = pool.threadCount
            let valuesT = scratch + worker * scratchPerThread
            let dp = valuesT + dk * T  // one row of ∂L/∂P
            for bh in (count * worker / workers)..<(count * (worker + 1) / workers) {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D, drows = dqkv + b * T * 3 * D
                transpose(rows, stride: 3 * D, column: 2 * D + h * dk, into: valuesT)
                for i in 0..<T {
                    let p = probabilities + (bh * T + i) * T
                    let g = dy + (b * T + i) * D + h * dk
                    // dP_ij = dy_i · v_j; dV_j += P_ij dy_i
                    dp.update(repeating: 0, count: i + 1)
                    for d in 0..<dk { VectorOps.axpy(g[d], valuesT + d * T, dp, count: i + 1) }
                    let weighted = VectorOps.dot(p, dp, count: i + 1)
                    for j in 0...i { VectorOps.axpy(p[j], g, drows + j * 3 * D + 2 * D + h * dk, count: dk) }
                    // dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij); dQ_i += dS_ij K_j / √dk; dK_j += dS_ij Q_i / √dk
                    let q = rows + i * 3 * D + h * dk, dq = drows + i * 3 * D + h * dk
                    for j in 0...i {
                        let ds = p[j] * (dp[j] - weighted) * scale
                        VectorOps.axpy(ds, rows + j * 3 * D + D + h * dk, dq, count: dk)
                        VectorOps.axpy(ds, q, drows + j * 3 * D + D + h * dk, count: dk)
                    }
                }
            }
        }
    }
}

/// Numerically safe softmax over a row, vectorized.
public enum Softmax {
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
