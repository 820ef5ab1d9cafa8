import TFQKernels
/// Parameter updates over contiguous ranges of a flat parameter buffer.
public enum Optimizer {
    /// AdamW (decoupled weight decay): m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
    /// p −= lr·(m̂ / (√v̂ + ε) + decay·p), with bias-corrected m̂, v̂ at `step` (from 1),
    /// where g is the stored gradient times `gradientScale` (gradient clipping's factor,
    /// applied here instead of in a pass of its own).
    public static func adamW(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, count: Int,
                             learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float,
                             step: Int, gradientScale: Float = 1, pool: ThreadPool) {
        adamW(parameters: parameters, gradients: gradients, m: m, v: v, segments: [(count, weightDecay)],
              learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon, step: step,
              gradientScale: gradientScale, pool: pool)
    }

    /// AdamW over consecutive segments of the buffers, each with its own weight decay (the
    /// matrices decay, gains and biases do not), in one job: the same values as one call per
    /// segment, element by element, with one fork/join per step instead of one per tensor.
    public static func adamW(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                             segments: [(count: Int, weightDecay: Float)],
                             learningRate: Float, beta1: Float, beta2: Float, epsilon: Float,
                             step: Int, gradientScale: Float = 1, pool: ThreadPool) {
        // m̂ = m / (1 − β1ᵗ) and √v̂ = √v / √(1 − β2ᵗ), as reciprocals: one division and one
        // square root per element instead of three divisions and a root.
        let inverseCorrection1 = Float(1 / (1 - Double(beta1).power(step)))
        let inverseRootCorrection2 = Float(1 / (1 - Double(beta2).power(step)).squareRoot())
        let count = segments.reduce(0) { $0 + $1.count }
        pool.parallelFor(count, grain: 1024) { range in
            var start = 0
            for segment in segments {
                let lower = max(start, range.lowerBound), upper = min(start + segment.count, range.upperBound)
                start += segment.count
                guard lower < upper else { if start >= range.upperBound { break } else { continue } }
                adamW(lower..<upper, parameters: parameters, gradients: gradients, m: m, v: v, learningRate: learningRate,
                      beta1: beta1, beta2: beta2, epsilon: epsilon, weightDecay: segment.weightDecay,
                      inverseCorrection1: inverseCorrection1, inverseRootCorrection2: inverseRootCorrection2,
                      gradientScale: gradientScale)
            }
        }
    }

    @inline(__always)
    private static func adamW(_ range: Range<Int>, parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                              m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>,
                              learningRate: Float, beta1: Float, beta2: Float, epsilon: Float, weightDecay: Float,
                              inverseCorrection1: Float, inverseRootCorrection2: Float, gradientScale: Float) {
        typealias V = SIMD8<Float>
        // Eight at a time (same arithmetic, lane by lane), then the tail.
        let rp = UnsafeMutableRawPointer(parameters), rg = UnsafeRawPointer(gradients)
        let rm = UnsafeMutableRawPointer(m), rv = UnsafeMutableRawPointer(v)
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            let offset = i * 4
            let g = rg.loadUnaligned(fromByteOffset: offset, as: V.self) * V(repeating: gradientScale)
            let mi = V(repeating: beta1) * rm.loadUnaligned(fromByteOffset: offset, as: V.self) + V(repeating: 1 - beta1) * g
            let vi = V(repeating: beta2) * rv.loadUnaligned(fromByteOffset: offset, as: V.self) + V(repeating: 1 - beta2) * g * g
            rm.storeBytes(of: mi, toByteOffset: offset, as: V.self)
            rv.storeBytes(of: vi, toByteOffset: offset, as: V.self)
            let update = (mi * V(repeating: inverseCorrection1)) / (vi.squareRoot() * V(repeating: inverseRootCorrection2) + V(repeating: epsilon))
            let p = rp.loadUnaligned(fromByteOffset: offset, as: V.self)
            rp.storeBytes(of: p - V(repeating: learningRate) * (update + V(repeating: weightDecay) * p), toByteOffset: offset, as: V.self)
            i += 8
        }
        for i in i..<range.upperBound {
            let g = gradients[i] * gradientScale
            let mi = beta1 * m[i] + (1 - beta1) * g
            let vi = beta2 * v[i] + (1 - beta2) * g * g
            m[i] = mi
            v[i] = vi
            let update = (mi * inverseCorrection1) / (vi.squareRoot() * inverseRootCorrection2 + epsilon)
            parameters[i] -= learningRate * (update + weightDecay * parameters[i])
        }
    }

    /// Plain gradient descent, the seed's θ ← θ − η·∂L/∂θ, with ∂L/∂θ the stored gradient
    /// times `gradientScale`.
    public static func sgd(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>, count: Int,
                           learningRate: Float, gradientScale: Float = 1, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            for i in range { parameters[i] -= learningRate * (gradients[i] * gradientScale) }
        }
    }

    /// ‖g‖₂ over `count` floats, accumulated in Double per thread. `prepare` runs on each
    /// chunk just before it is read (it may write the chunk): a pass that produces the
    /// values can hand them over while they are still in L1.
    public static func norm(_ values: UnsafePointer<Float>, count: Int, pool: ThreadPool,
                            prepare: (Range<Int>) -> Void = { _ in }) -> Double {
        withUnsafeTemporaryAllocation(of: Double.self, capacity: pool.threadCount) { partial in
            let threads = pool.threadCount
            pool.run { worker in
                let end = count * (worker + 1) / threads
                var i = count * worker / threads, sum = 0.0
                while i < end {
                    let chunk = min(256, end - i)
                    prepare(i..<(i + chunk))
                    sum += Double(VectorOps.dot(values + i, values + i, count: chunk))
                    i += chunk
                }
                partial[worker] = sum
            }
            return partial.reduce(0, +).squareRoot()
        }
    }
}

extension Double {
    func power(_ exponent: Int) -> Double {
        var result = 1.0, base = self, e = exponent
        while e > 0 { if e & 1 == 1 { result *= base }; base *= base; e >>= 1 }
        return result
    }
}
