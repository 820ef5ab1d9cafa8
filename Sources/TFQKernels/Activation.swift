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

    /// y = R(x), and x overwritten with R'(x): what training's forward pass keeps, so that
    /// backward is one multiply (``backward(_:derivative:dx:count:pool:)``) and GELU's tanh
    /// is evaluated once per element and step, not twice. Same values as ``forward`` and
    /// ``backward(_:x:dx:count:pool:)``, bit for bit.
    public func forwardKeepingDerivative(_ x: UnsafeMutablePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
                                         pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            var i = range.lowerBound
            let rx = UnsafeMutableRawPointer(x), ry = UnsafeMutableRawPointer(y)
            while i + 8 <= range.upperBound {
                let (value, slope) = valueAndDerivative(rx.loadUnaligned(fromByteOffset: i * 4, as: V.self))
                ry.storeBytes(of: value, toByteOffset: i * 4, as: V.self)
                rx.storeBytes(of: slope, toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound {
                let (value, slope) = valueAndDerivative(V(repeating: x[i]))
                y[i] = value[0]; x[i] = slope[0]
                i += 1
            }
        }
    }

    /// dx = dy · R'(x) from the derivative ``forwardKeepingDerivative(_:_:count:pool:)`` kept;
    /// dx may alias dy.
    public func backward(_ dy: UnsafePointer<Float>, derivative: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
                         count: Int, pool: ThreadPool) {
        pool.parallelFor(count, grain: 4096) { range in
            var i = range.lowerBound
            let rd = UnsafeRawPointer(derivative), rdy = UnsafeRawPointer(dy), rdx = UnsafeMutableRawPointer(dx)
            while i + 8 <= range.upperBound {
                let product = rdy.loadUnaligned(fromByteOffset: i * 4, as: V.self) * rd.loadUnaligned(fromByteOffset: i * 4, as: V.self)
                rdx.storeBytes(of: product, toByteOffset: i * 4, as: V.self)
                i += 8
            }
            while i < range.upperBound { dx[i] = dy[i] * derivative[i]; i += 1 }
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
            return v.replacing(with: 0, where: v .< V.zero)  // a vector, not 0: see FastMath.exp
        case .gelu:
            let halfV = V(repeating: 0.5) * v
            return FastMath.multiplyAdd(halfV, Self.geluTanh(v), halfV)
        case .silu:
            return v / (V(repeating: 1) + FastMath.exp(-v))
        }
    }

    @inline(__always)
    func derivative(_ v: V) -> V {
        switch self {
        case .relu:
            return V(repeating: 1).replacing(with: 0, where: v .<= V.zero)
        case .gelu:
            return Self.geluDerivative(v, tanh: Self.geluTanh(v))
        case .silu:
            let sigma = V(repeating: 1) / (V(repeating: 1) + FastMath.exp(-v))
            return sigma * (V(repeating: 1) + v * (V(repeating: 1) - sigma))
        }
    }

    @inline(__always)
    func valueAndDerivative(_ v: V) -> (V, V) {
        guard self == .gelu else { return (forward(v), derivative(v)) }
        let t = Self.geluTanh(v)
        let halfV = V(repeating: 0.5) * v
        return (FastMath.multiplyAdd(halfV, t, halfV), Self.geluDerivative(v, tanh: t))
    }

    /// tanh(√(2/π)·(x + 0.044715·x³)), shared by GELU's value and derivative.
    @inline(__always)
    static func geluTanh(_ v: V) -> V {
        FastMath.tanh(V(repeating: geluScale) * FastMath.multiplyAdd(V(repeating: 0.044715) * v * v, v, v))
    }

    @inline(__always)
    static func geluDerivative(_ v: V, tanh t: V) -> V {
        let dInner = V(repeating: geluScale) * FastMath.multiplyAdd(V(repeating: 3 * 0.044715) * v, v, V(repeating: 1))
        let half = V(repeating: 0.5)
        return FastMath.multiplyAdd(half * v * FastMath.multiplyAdd(-t, t, V(repeating: 1)), dInner, FastMath.multiplyAdd(half, t, half))
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
