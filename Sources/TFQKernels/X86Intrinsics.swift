#if TFQ_AVX2 && arch(x86_64)
import Builtin

/// The few AVX2 integer instructions the int8 kernels need, through the compiler's
/// builtins (compiled only with `-DTFQ_AVX2` and a target CPU that has AVX2: the builtins
/// do not compile for a CPU without the feature).
enum X86 {
    /// The 4 bytes of `x` repeated across 32 bytes.
    @inline(__always)
    static func broadcast(_ x: UInt32) -> SIMD32<Int8> {
        unsafeBitCast(SIMD8<UInt32>(repeating: x), to: SIMD32<Int8>.self)
    }

    /// `vpsignb`: a, negated where b < 0, zeroed where b = 0.
    @inline(__always)
    static func sign(_ a: SIMD32<Int8>, _ b: SIMD32<Int8>) -> SIMD32<Int8> {
        var result = SIMD32<Int8>()
        result._storage._value = Builtin.int_x86_avx2_psign_b(a._storage._value, b._storage._value)
        return result
    }

    /// Per 32-bit lane, Σ of 4 products of unsigned bytes of `a` (≤ 127 here, so the
    /// `vpmaddubsw` pair sums cannot saturate) with signed bytes of `b`.
    @inline(__always)
    static func dot4(_ a: SIMD32<Int8>, _ b: SIMD32<Int8>) -> SIMD8<Int32> {
        var pairs = SIMD16<Int16>()
        pairs._storage._value = Builtin.int_x86_avx2_pmadd_ub_sw(a._storage._value, b._storage._value)
        var quads = SIMD8<Int32>()
        quads._storage._value = Builtin.int_x86_avx2_pmadd_wd(pairs._storage._value, SIMD16<Int16>(repeating: 1)._storage._value)
        return quads
    }
}
#endif
