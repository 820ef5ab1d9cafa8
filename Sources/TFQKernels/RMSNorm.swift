/// RMSNorm over the last dimension (llama): y = x / sqrt(mean(x²) + eps) · weight.
public enum RMSNorm {
    /// x, y: [rows × dim]; y may alias x.
    public static func forward(x: UnsafePointer<Float>, weight: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>,
                               rows: Int, dim: Int, eps: Float, pool: ThreadPool) {
        pool.parallelFor(rows, grain: 4) { range in
            for r in range {
                let row = x + r * dim, out = y + r * dim
                // llama2.c's order: the mean square plus eps, one reciprocal square root, then
                // weight · (s · x).
                let meanSquare = VectorOps.dot(row, row, count: dim) / Float(dim)
                let s = 1 / (meanSquare + eps).squareRoot()
                for i in 0..<dim { out[i] = weight[i] * (s * row[i]) }
            }
        }
    }
}
