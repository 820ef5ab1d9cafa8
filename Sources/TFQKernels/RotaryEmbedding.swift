#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Rotary position embeddings as llama2.c applies them: within each head, the adjacent pair
/// (2j, 2j+1) of a query or key at position p turns by the angle p·θ^(−2j/d_k).
///
/// The cosines and sines are tabulated once per model, [context][d_k/2], computed in Float
/// with libm exactly as llama2.c computes them per token, so the rotation is bit-identical.
public final class RotaryEmbedding: @unchecked Sendable {
    /// Values per head (d_k), even: the rotation turns pairs.
    public let headDim: Int
    /// Positions tabulated: ``apply(_:heads:position:)`` takes positions below this.
    public let contextLength: Int
    private let cosines: UnsafeMutablePointer<Float>
    private let sines: UnsafeMutablePointer<Float>

    /// Tabulates the cosines and sines for `contextLength` positions with base `theta`; nil
    /// when the tables cannot be allocated.
    public init?(headDim: Int, contextLength: Int, theta: Float) {
        precondition(headDim % 2 == 0)
        self.headDim = headDim
        self.contextLength = contextLength
        let half = headDim / 2
        // Every entry is written below.
        guard let cosines = AlignedMemory.availableFloats(contextLength * half, zeroed: false) else { return nil }
        guard let sines = AlignedMemory.availableFloats(contextLength * half, zeroed: false) else {
            AlignedMemory.free(cosines)
            return nil
        }
        self.cosines = cosines
        self.sines = sines
        for position in 0..<contextLength {
            for j in 0..<half {
                let frequency = 1 / powf(theta, Float(2 * j) / Float(headDim))
                let angle = Float(position) * frequency
                cosines[position * half + j] = cosf(angle)
                sines[position * half + j] = sinf(angle)
            }
        }
    }

    deinit {
        AlignedMemory.free(cosines)
        AlignedMemory.free(sines)
    }

    /// Rotates `heads` consecutive heads of `vector` (heads·d_k floats) for `position`.
    @inline(__always)
    public func apply(_ vector: UnsafeMutablePointer<Float>, heads: Int, position: Int) {
        let half = headDim / 2
        let c = cosines + position * half, s = sines + position * half
        for h in 0..<heads {
            let v = vector + h * headDim
            for j in 0..<half {
                let x0 = v[2 * j], x1 = v[2 * j + 1]
                v[2 * j] = x0 * c[j] - x1 * s[j]
                v[2 * j + 1] = x0 * s[j] + x1 * c[j]
            }
        }
    }
}
