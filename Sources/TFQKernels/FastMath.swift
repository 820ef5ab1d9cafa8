/// Vectorized exp and tanh for the activation and softmax kernels: libm's scalar calls
/// were a third of a training step.
public enum FastMath {
    /// The vector the functions work on: eight floats.
    public typealias V = SIMD8<Float>

    /// e^x, relative error about 2e-7 over the float range; inputs below −87 give 0.
    ///
    /// x = n·ln2 + r with |r| ≤ ln2/2; e^r from its Taylor series to r⁶ (error < r⁷/7! ≈ 1e-7);
    /// 2^n by writing n into the exponent bits.
    @inline(__always)
    public static func exp(_ x: V) -> V {
        // Comparisons with a vector, not a scalar: Swift 6.0 compiles `x .< -87.3` for aarch64
        // into a loop over the lanes with a branch each (the same values either way).
        let low = V(repeating: -87.3), high = V(repeating: 88.3)
        let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        // Adding 1.5·2²³ rounds to the nearest integer and leaves it in the low mantissa bits.
        let magic = V(repeating: 12_582_912)
        let shifted = multiplyAdd(clamped, V(repeating: 1.442_695_04), magic)
        let n = shifted - magic
        let r = multiplyAdd(n, V(repeating: -1.428_606_765_330_187e-6), multiplyAdd(n, V(repeating: -0.693_145_751_953_125), clamped))
        var p = V(repeating: 1.0 / 720)
        p = multiplyAdd(p, r, V(repeating: 1.0 / 120))
        p = multiplyAdd(p, r, V(repeating: 1.0 / 24))
        p = multiplyAdd(p, r, V(repeating: 1.0 / 6))
        p = multiplyAdd(p, r, V(repeating: 0.5))
        p = multiplyAdd(p, r, V(repeating: 1))
        p = multiplyAdd(p, r, V(repeating: 1))
        let integer = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
        let scale = unsafeBitCast((integer &+ 127) &<< 23, to: V.self)
        let result = p * scale
        return result.replacing(with: 0, where: x .< low)
    }

    /// tanh(x) = 1 − 2/(e^{2x} + 1); absolute error about 1e-7.
    @inline(__always)
    public static func tanh(_ x: V) -> V {
        let low = V(repeating: -10), high = V(repeating: 10)  // vectors: see exp
        let clamped = x.replacing(with: low, where: x .< low).replacing(with: high, where: x .> high)
        let e = exp(2 * clamped)
        return V(repeating: 1) - V(repeating: 2) / (e + V(repeating: 1))
    }

    /// a·b + c, fused where the build has FMA (SIMDConfig's `multiplyAdd` decides).
    @inline(__always)
    static func multiplyAdd(_ a: V, _ b: V, _ c: V) -> V {
        var sum = c
        TFQKernels.multiplyAdd(&sum, a, b)
        return sum
    }

    /// Scalar e^x through the vector path, for tails.
    @inline(__always)
    public static func exp(_ x: Float) -> Float { exp(V(repeating: x))[0] }
}
