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

/// `accumulator += a * b`, fused where the target has FMA. Without FMA, `addingProduct`
/// would become a library call per lane, so the portable build multiplies and adds.
@inline(__always)
func multiplyAdd(_ accumulator: inout FloatVector, _ a: FloatVector, _ b: FloatVector) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}

#if TFQ_AVX512
@inline(__always)
func multiplyAdd(_ accumulator: inout SIMD8<Float>, _ a: SIMD8<Float>, _ b: SIMD8<Float>) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}
#endif

@inline(__always)
func multiplyAdd(_ accumulator: inout Float, _ a: Float, _ b: Float) {
    #if TFQ_FMA || arch(arm64)
    accumulator.addProduct(a, b)
    #else
    accumulator += a * b
    #endif
}
