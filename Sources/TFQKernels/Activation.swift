/// The feed-forward nonlinearity R.
public enum Activation: String, Sendable, Codable, CaseIterable {
    /// max(0, x), as in the seed.
    case relu
    /// GPT-2's tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
    case gelu
    /// x·σ(x) (swish): the gate of llama's SwiGLU feed-forward, W2·(SiLU(W1·x) ⊙ W3·x).
    case silu

    static let geluScale: Float = 0.797_884_560_802_865_4  // √(2/π)

    /// y = R(x), elementwise over `count` values.
    public func forward(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            var i = range.lowerBound
            let rx = UnsafeRawPointer(x), ry = UnsafeMutableRawPointer(y)
            while i + 8 <= range.upperBound {
                let v = rx.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                ry.storeBytes(of: forward(v), toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound { y[i] = forward(V(repeating: x[i]))[0]; i += 1 }
        }
    }

    /// dx = dy · R'(x), elementwise; dx may alias dy.
    public func backward(_ dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            var i = range.lowerBound
            let rx = UnsafeRawPointer(x), rdy = UnsafeRawPointer(dy), rdx = UnsafeMutableRawPointer(dx)
            while i + 8 <= range.upperBound {
                let v = rx.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                let g = rdy.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                rdx.storeBytes(of: g * derivative(v), toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound { dx[i] = dy[i] * derivative(V(repeating: x[i]))[0]; i += 1 }
        }
    }

    typealias V = SIMD8<Float>

    @inline(__always)
    func forward(_ v: V) -> V {
        switch self {
        case .relu:
            return v.replacing(with: 0, where: v .< 0)
        case .gelu:
            let inner = V(repeating: Self.geluScale) * (v + V(repeating: 0.044715) * v * v * v)
            return V(repeating: 0.5) * v * (V(repeating: 1) + FastMath.tanh(inner))
        case .silu:
            return v / (V(repeating: 1) + FastMath.exp(-v))
        }
    }

    @inline(__always)
    func derivative(_ v: V) -> V {
        switch self {
        case .relu:
            return V(repeating: 1).replacing(with: 0, where: v .<= 0)
        case .gelu:
            let t = FastMath.tanh(V(repeating: Self.geluScale) * (v + V(repeating: 0.044715) * v * v * v))
            let dInner = V(repeating: Self.geluScale) * (V(repeating: 1) + V(repeating: 3 * 0.044715) * v * v)
            return V(repeating: 0.5) * (V(repeating: 1) + t) + V(repeating: 0.5) * v * (V(repeating: 1) - t * t) * dInner
        case .silu:
            let sigma = V(repeating: 1) / (V(repeating: 1) + FastMath.exp(-v))
            return sigma * (V(repeating: 1) + v * (V(repeating: 1) - sigma))
        }
    }
}

extension Activation {
    /// y = R(gate) ⊙ up, elementwise over `count` values (SwiGLU with `.silu`); y may alias
    /// either input.
    public func forward(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>,
                        count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            var i = range.lowerBound
            let rg = UnsafeRawPointer(gate), ru = UnsafeRawPointer(up), ry = UnsafeMutableRawPointer(y)
            while i + 8 <= range.upperBound {
                let g = rg.loadUnaligned(fromByteOffset: i * 4, as: V.self), u = ru.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                ry.storeBytes(of: forward(g) * u, toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound { y[i] = forward(V(repeating: gate[i]))[0] * up[i]; i += 1 }
        }
    }
}
