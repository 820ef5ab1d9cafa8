// Compile-time choices of vector width and fused multiply-add, set by the build's defines
// (tools/build.sh passes them with the matching CPU flags). Without any define the code is
// the portable standard-SIMD path: correct everywhere, slower.

#if TFQ_AVX512
/// The GEMM's vector: one AVX-512 register.
public typealias FloatVector = SIMD16<Float>
#else
/// The GEMM's vector: one AVX2 register, or two SSE/NEON registers.
public typealias FloatVector = SIMD8<Float>
#endif

/// What the build's arithmetic is, where formats/tfq.md §11 leaves the choice to it.
public enum Arithmetic {
    /// The multiply-adds of §11 (``multiplyAdd``) round once (fused): every ARM64 build and
    /// x86-64 builds with FMA (`-DTFQ_FMA`). The portable x86-64 build rounds the product
    /// and then the sum. `tfq run --json` reports it as `fused_multiply_add`.
    public static let fusedMultiplyAdd: Bool = {
        #if TFQ_FMA || arch(arm64)
        return true
        #else
        return false
        #endif
    }()
}

/// `accumulator += a * b`, fused where the target has FMA. Without FMA, `addingProduct`
/// would become a library call per lane, so the portable build multiplies and adds.
@inline(__always)
func multiplyAdd(_ accumulator: inout SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}

@inline(__always)
func multiplyAdd(_ accumulator: inout SIMD16<Float>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}

@inline(__always)
func multiplyAdd(_ accumulator: inout Float, _ a: Float, _ b: Float) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}
