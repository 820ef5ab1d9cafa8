import TFQKernels

extension VectorOps {
    /// dBias += column sums of dY [rows × columns]; split over columns so threads never share an output.
    public static func accumulateBiasGradient(_ dy: UnsafePointer<Float>, rows: Int, columns: Int,
                                              into dBias: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        pool.parallelFor(columns, grain: 64) { range in
            for r in 0..<rows {
                VectorOps.add(dy + r * columns + range.lowerBound, into: dBias + range.lowerBound, count: range.count)
            }
        }
    }
}
