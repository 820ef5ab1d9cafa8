import TFQKernels
/// Token plus position embedding: x[n] = tokens[id[n]] + positions[n mod T].
public enum Embedding {
    /// Writes `rows` rows of `dim` floats to `x`; row n is the sum of its token's row of
    /// `tokenTable` and the row of `positionTable` for position n mod `length`.
    public static func forward(ids: UnsafePointer<Int32>, tokenTable: UnsafePointer<Float>, positionTable: UnsafePointer<Float>,
                               x: UnsafeMutablePointer<Float>, rows: Int, length: Int, dim: Int, pool: ThreadPool) {
        pool.parallelFor(rows, grain: 16) { range in
            for n in range {
                let out = x + n * dim
                out.update(from: tokenTable + Int(ids[n]) * dim, count: dim)
                VectorOps.add(positionTable + (n % length) * dim, into: out, count: dim)
            }
        }
    }

    /// Scatter-add: dTokens[id[n]] += dx[n], dPositions[n mod T] += dx[n]. Threads split the
    /// embedding dimension, so two rows with the same id never race.
    public static func backward(dx: UnsafePointer<Float>, ids: UnsafePointer<Int32>, dTokens: UnsafeMutablePointer<Float>,
                                dPositions: UnsafeMutablePointer<Float>, rows: Int, length: Int, dim: Int, pool: ThreadPool) {
        pool.parallelFor(dim, grain: 16) { range in
            for n in 0..<rows {
                let g = dx + n * dim + range.lowerBound
                VectorOps.add(g, into: dTokens + Int(ids[n]) * dim + range.lowerBound, count: range.count)
                VectorOps.add(g, into: dPositions + (n % length) * dim + range.lowerBound, count: range.count)
            }
        }
    }
}
