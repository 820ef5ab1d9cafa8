#if canImport(Glibc)
import Glibc
#endif

/// The feed-forward nonlinearity R.
public enum Activation: String, Sendable, Codable, CaseIterable {
    /// max(0, x), as in the seed.
    case relu
    /// GPT-2's tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case gelu

    static let geluScale: Float = 0.797_884_560_802_865_4  // √(2/π)

    /// y = R(x), elementwise over `count` values.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            switch self {
            case .relu:
                for i in range { y[i] = max(0, x[i]) }
            case .gelu:
                for i in range {
                    let v = x[i]
                    y[i] = 0.5 * v * (1 + Self.tanh(Self.geluScale * (v + 0.044715 * v * v * v)))
                }
            }
        }
    }

    /// dx = dy · R'(x), elementwise; dx may alias dy.
    public func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            switch self {
            case .relu:
                for i in range { dx[i] = x[i] > 0 ? dy[i] : 0 }
            case .gelu:
                for i in range {
                    let v = x[i]
                    let t = Self.tanh(Self.geluScale * (v + 0.044715 * v * v * v))
                    let dInner = Self.geluScale * (1 + 3 * 0.044715 * v * v)
                    dx[i] = dy[i] * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * dInner)
                }
            }
        }
    }

    /// tanh from one expm1: accurate near zero too, and cheaper than libm's tanhf.
    @inline(__always)
    static func tanh(_ x: Float) -> Float {
        if abs(x) > 9 { return x > 0 ? 1 : -1 }
        let e = expm1f(2 * x)
        return e / (e + 2)
    }
}
