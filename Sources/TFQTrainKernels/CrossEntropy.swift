import TFQKernels
#if canImport(Glibc)
import Glibc
#endif

/// Softmax and cross-entropy fused: one pass over the logits gives each row's loss and
/// leaves the probabilities behind for the backward pass.
public enum CrossEntropy {
    /// Replaces each row of `logits` [rows × vocab] by its softmax and returns the summed
    /// loss −Σ log p[target]. Rows whose target is negative are skipped (loss 0).
    @discardableResult
    public static func forward(logits: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
                               losses: UnsafeMutablePointer<Float>, pool: ThreadPool) -> Double {
        pool.parallelFor(rows, grain: 8) { range in
            for r in range {
                let row = logits + r * vocab
                Softmax.inPlace(row, count: vocab)
                let target = Int(targets[r])
                // log p = logit − max − log Σ; computed from the probability it loses
                // nothing that matters at float precision for losses well above 1e-7.
                losses[r] = target >= 0 ? -logf(max(row[target], Float.leastNormalMagnitude)) : 0
            }
        }
        var sum = 0.0
        for r in 0..<rows { sum += Double(losses[r]) }
        return sum
    }

    /// dLogits = scale · (p − onehot(target)), in place over the probabilities.
    public static func backward(probabilities: UnsafeMutablePointer<Float>, targets: UnsafePointer<Int32>, rows: Int, vocab: Int,
                                scale: Float, pool: ThreadPool) {
        pool.parallelFor(rows, grain: 8) { range in
            for r in range {
                let row = probabilities + r * vocab
                let target = Int(targets[r])
                if target < 0 { row.update(repeating: 0, count: vocab); continue }
                for v in 0..<vocab { row[v] *= scale }
                row[target] -= scale
            }
        }
    }
}
