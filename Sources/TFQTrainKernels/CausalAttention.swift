import TFQKernels
/// Multi-head causal self-attention: per head h, Y_h = softmax(Q_h K_hᵀ / √d_k, causal) V_h.
///
/// Works on the fused projection `qkv` [batch·T × 3·dim] (Q, K, V side by side in each row)
/// and writes `y` [batch·T × dim] with the heads side by side. The attention weights are
/// kept for the backward pass.
///
/// Every product is a GEMM on strided views of `qkv` (no copies): scores Q·Kᵀ, outputs P·V,
/// and backward's dY·Vᵀ, Pᵀ·dY, dS·K and dSᵀ·Q. Rows go in blocks of `rowBlock`, each block
/// multiplying only the keys its last row can see; within a block, each GEMM skips the
/// tiles the causal mask zeroes (``Triangle``), so the masked half costs little.
/// Threads split the (batch, head) pairs; each has a single-threaded GEMM of its own.
public struct CausalAttention {
    /// Sequences, positions per sequence (T), heads, and model width (floats per row of `y`).
    public let batch: Int, length: Int, heads: Int, dim: Int
    /// Query rows per block of scores.
    public let rowBlock: Int
    /// Values per head, d_k.
    public var headDim: Int { dim / heads }
    /// Floats needed to keep the weights: batch × heads × T × T.
    public var probabilityCount: Int { batch * heads * length * length }
    /// Scratch floats per thread (backward's block of ∂L/∂P).
    public var scratchPerThread: Int { rowBlock * length }

    /// Attention over `batch` sequences of `length` positions; `heads` must divide `dim`.
    /// `rowBlock` is capped at `length`.
    public init(batch: Int, length: Int, heads: Int, dim: Int, rowBlock: Int = 64) {
        precondition(dim % heads == 0 && rowBlock > 0)
        self.batch = batch; self.length = length; self.heads = heads; self.dim = dim
        self.rowBlock = min(rowBlock, max(1, length))
    }

    /// One single-threaded GEMM for each of `threads` threads: what forward and backward take
    /// as `gemms`.
    public static func gemms(threads: Int) -> [GEMM] {
        (0..<threads).map { _ in GEMM(pool: ThreadPool(threads: 1)) }
    }

    /// Writes `y` from `qkv`, and the attention weights to `probabilities` (``probabilityCount``
    /// floats, zero above the diagonal). `gemms` needs one entry per thread of `pool`.
    public func forward(qkv: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, probabilities: UnsafeMutablePointer<Float>,
                        gemms: [GEMM], pool: ThreadPool) {
        precondition(gemms.count >= pool.threadCount)
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        let count = batch * H
        pool.run { worker in
            let workers = pool.threadCount
            let gemm = gemms[worker]
            for bh in (count * worker / workers)..<(count * (worker + 1) / workers) {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D
                let p = probabilities + bh * T * T
                let keysTransposed = MatrixView(rows + D + h * dk, rowStride: 1, columnStride: 3 * D)
                var r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + rowBlock)
                    // S[r0..<r1, 0..<r1] = Q[r0..<r1] · K[0..<r1]ᵀ
                    gemm.multiply(m: r1 - r0, n: r1, k: dk, a: MatrixView(rows + r0 * 3 * D + h * dk, columns: 3 * D),
                                  b: keysTransposed, c: p + r0 * T, ldc: T, accumulate: false, zeros: .cBelowDiagonal(offset: r0))
                    for i in r0..<r1 {
                        let row = p + i * T
                        Softmax.inPlace(row, count: i + 1, scale: scale)
                        (row + i + 1).update(repeating: 0, count: T - i - 1)
                    }
                    // Y[r0..<r1] = P[r0..<r1, 0..<r1] · V[0..<r1]
                    gemm.multiply(m: r1 - r0, n: dk, k: r1, a: MatrixView(p + r0 * T, columns: T),
                                  b: MatrixView(rows + 2 * D + h * dk, columns: 3 * D),
                                  c: y + (b * T + r0) * D + h * dk, ldc: D, accumulate: false, zeros: .aBelowDiagonal(offset: r0))
                    r0 = r1
                }
            }
        }
    }

    /// dqkv = ∂L/∂qkv (overwritten) from dy = ∂L/∂y. `scratch` holds `threads ×
    /// scratchPerThread` floats.
    public func backward(dy: UnsafePointer<Float>, qkv: UnsafePointer<Float>, probabilities: UnsafePointer<Float>,
                         dqkv: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, gemms: [GEMM], pool: ThreadPool) {
        precondition(gemms.count >= pool.threadCount)
        let (T, D, dk, H) = (length, dim, headDim, heads)
        let scale = 1 / Float(dk).squareRoot()
        dqkv.update(repeating: 0, count: batch * T * 3 * D)
        let count = batch * H
        pool.run { worker in
            let workers = pool.threadCount
            let gemm = gemms[worker]
            let dP = scratch + worker * scratchPerThread   // [rowBlock × T], row stride T
            for bh in (count * worker / workers)..<(count * (worker + 1) / workers) {
                let b = bh / H, h = bh % H
                let rows = qkv + b * T * 3 * D, drows = dqkv + b * T * 3 * D
                let p = probabilities + bh * T * T
                var r0 = 0
                while r0 < T {
                    let r1 = min(T, r0 + rowBlock), m = r1 - r0
                    let dyBlock = MatrixView(dy + (b * T + r0) * D + h * dk, columns: D)
                    // dP = dY[r0..<r1] · V[0..<r1]ᵀ
                    gemm.multiply(m: m, n: r1, k: dk, a: dyBlock,
                                  b: MatrixView(rows + 2 * D + h * dk, rowStride: 1, columnStride: 3 * D),
                                  c: dP, ldc: T, accumulate: false, zeros: .cBelowDiagonal(offset: r0))
                    // dV[0..<r1] += P[r0..<r1, 0..<r1]ᵀ · dY[r0..<r1]
                    gemm.multiply(m: r1, n: dk, k: m, a: MatrixView(p + r0 * T, rowStride: 1, columnStride: T), b: dyBlock,
                                  c: drows + 2 * D + h * dk, ldc: 3 * D, accumulate: true, zeros: .aAboveDiagonal(offset: r0))
                    // dS_ij = P_ij (dP_ij − Σ_j P_ij dP_ij) / √d_k, in place of dP; 0 where j > i
                    for i in r0..<r1 {
                        let pr = p + i * T, dr = dP + (i - r0) * T
                        let weighted = VectorOps.dot(pr, dr, count: i + 1)
                        for j in 0...i { dr[j] = pr[j] * (dr[j] - weighted) * scale }
                        (dr + i + 1).update(repeating: 0, count: r1 - i - 1)
                    }
                    // dQ[r0..<r1] += dS · K[0..<r1];  dK[0..<r1] += dSᵀ · Q[r0..<r1]
                    gemm.multiply(m: m, n: dk, k: r1, a: MatrixView(dP, columns: T),
                                  b: MatrixView(rows + D + h * dk, columns: 3 * D),
                                  c: drows + r0 * 3 * D + h * dk, ldc: 3 * D, accumulate: true, zeros: .aBelowDiagonal(offset: r0))
                    gemm.multiply(m: r1, n: dk, k: m, a: MatrixView(dP, rowStride: 1, columnStride: T),
                                  b: MatrixView(rows + r0 * 3 * D + h * dk, columns: 3 * D),
                                  c: drows + D + h * dk, ldc: 3 * D, accumulate: true, zeros: .aAboveDiagonal(offset: r0))
                    r0 = r1
                }
            }
        }
    }
}
