#if canImport(Glibc)
import Glibc
#endif

/// Multi-head causal self-attention: per head h, Y_h = softmax(Q_h K_hᵀ / √d_k, causal) V_h.
///
/// Works on the fused projection `qkv` [batch·T × 3·dim] (Q, K, V side by side in each row)
/// and writes `y` [batch·T × dim] with the heads side by side. The attention weights are
/// kept for the backward pass.
public struct CausalAttention {
    public let batch: Int, length: Int, heads: Int, dim: Int
    public var headDim: Int { dim / heads }
    /// Floats needed to keep the weights: batch × heads × T × T.
    public var probabilityCount: Int { batch * heads * length * length }

    public init(batch: Int, length: Int, heads: Int, dim: Int) {
        precondition(dim % heads == 0)
        self.batch = batch; self.length = length; self.heads = heads; self.dim = dim
    }

    public func forward(qkv: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        pool.parallelFor(batch * heads) { range in
            for bh in range {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D
                for i in 0..<T {
                    let q = rows + i * 3 * D + h * dk
                    let p = probabilities + (bh * T + i) * T
                    var maxScore = -Float.infinity
                    for j in 0...i {
                        let score = VectorOps.dot(q, rows + j * 3 * D + D + h * dk, count: dk) * scale
                        p[j] = score
                        maxScore = max(maxScore, score)
                    }
                    var total: Float = 0
                    for j in 0...i { let e = expf(p[j] - maxScore); p[j] = e; total += e }
                    let inverse = 1 / total
                    for j in 0...i { p[j] *= inverse }
                    for j in (i + 1)..<T { p[j] = 0 }
                    let out = y + (b * T + i) * D + h * dk
                    out.update(repeating: 0, count: dk)
                    for j in 0...i { VectorOps.axpy(p[j], rows + j * 3 * D + 2 * D + h * dk, out, count: dk) }
                }
            }
        }
    }

    /// dqkv = ∂L/∂qkv (overwritten) from dy = ∂L/∂y.
    public func backward(dy: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
                         dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        dqkv.update(repeating: 0, count: batch * T * 3 * D)
        pool.run { worker in
            let workers = pool.threadCount
            let count = self.batch * H
            let dp = scratch + worker * T  // one row of ∂L/∂P per thread
            for bh in (count * worker / workers)..<(count * (worker + 1) / workers) {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D, drows = dqkv + b * T * 3 * D
                for i in 0..<T {
                    let p = probabilities + (bh * T + i) * T
                    let g = dy + (b * T + i) * D + h * dk
                    // dP_ij = dy_i · v_j; dV_j += P_ij dy_i
                    var weighted: Float = 0
                    for j in 0...i {
                        dp[j] = VectorOps.dot(g, rows + j * 3 * D + 2 * D + h * dk, count: dk)
                        weighted += p[j] * dp[j]
                        VectorOps.axpy(p[j], g, drows + j * 3 * D + 2 * D + h * dk, count: dk)
                    }
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
