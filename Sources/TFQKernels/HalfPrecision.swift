#if arch(arm64) || TFQ_AVX2
import Builtin
#endif

/// How a KV cache stores keys and values.
public enum KVCachePrecision: String, Sendable, CaseIterable {
    /// Floats as computed: attention over the cache is exact to float arithmetic.
    case f32
    /// IEEE half precision (11 significant bits, |x| ≤ 65504), rounded to nearest when
    /// stored: decode reads half the bytes per cached position. llama.cpp's default too.
    case f16

    /// Bytes one cached value takes: 4 for floats, 2 for halves.
    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// A scalar type a KV cache holds: loads widen to floats, stores round from them. Indices
/// count elements, not bytes.
protocol CacheScalar {
    static func load8(_ base: UnsafeRawPointer, _ index: Int) -> SIMD8<Float>
    static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float
    static func store(_ value: Float, _ base: UnsafeMutableRawPointer, _ index: Int)
}

extension Float: CacheScalar {
    @inline(__always)
    static func load8(_ base: UnsafeRawPointer, _ index: Int) -> SIMD8<Float> {
        base.loadUnaligned(fromByteOffset: index * 4, as: SIMD8<Float>.self)
    }

    @inline(__always)
    static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        base.loadUnaligned(fromByteOffset: index * 4, as: Float.self)
    }

    @inline(__always)
    static func store(_ value: Float, _ base: UnsafeMutableRawPointer, _ index: Int) {
        base.storeBytes(of: value, toByteOffset: index * 4, as: Float.self)
    }
}

extension Float16: CacheScalar {
    @inline(__always)
    static func load8(_ base: UnsafeRawPointer, _ index: Int) -> SIMD8<Float> {
        HalfPrecision.widen(base.loadUnaligned(fromByteOffset: index * 2, as: SIMD8<Float16>.self))
    }

    @inline(__always)
    static func load(_ base: UnsafeRawPointer, _ index: Int) -> Float {
        HalfPrecision.widen(base.loadUnaligned(fromByteOffset: index * 2, as: Float16.self))
    }

    @inline(__always)
    static func store(_ value: Float, _ base: UnsafeMutableRawPointer, _ index: Int) {
        base.storeBytes(of: Float16(value), toByteOffset: index * 2, as: Float16.self)
    }
}

/// Conversions from IEEE half precision, vectorized for the f16 KV cache.
public enum HalfPrecision {
    /// Sixteen halves to sixteen floats, exactly: one vcvtph2ps on AVX-512, two on AVX2 or
    /// NEON's fcvtl pairs, `widen` twice elsewhere.
    @inline(__always)
    public static func widen(_ halves: SIMD16<Float16>) -> SIMD16<Float> {
        #if arch(arm64) || TFQ_AVX2
        var widened = SIMD16<Float>()
        widened._storage._value = Builtin.fpext_Vec16xFPIEEE16_Vec16xFPIEEE32(halves._storage._value)
        return widened
        #else
        return SIMD16(lowHalf: widen(halves.lowHalf), highHalf: widen(halves.highHalf))
        #endif
    }

    /// One half to a float, exactly, through the vector conversion (no library call).
    @inline(__always)
    public static func widen(_ half: Float16) -> Float {
        widen(SIMD8(repeating: half))[0]
    }

    /// Eight halves to eight floats, exactly (infinities and NaNs included).
    @inline(__always)
    public static func widen(_ halves: SIMD8<Float16>) -> SIMD8<Float> {
        #if arch(arm64) || TFQ_AVX2
        // One instruction: fcvtl on ARM64, vcvtph2ps (F16C, which every AVX2 CPU has) on x86.
        // Through the builtin: the standard library's SIMD8<Float>(halves) was not inlined,
        // a call per eight values.
        var widened = SIMD8<Float>()
        widened._storage._value = Builtin.fpext_Vec8xFPIEEE16_Vec8xFPIEEE32(halves._storage._value)
        return widened
        #else
        // Without F16C the conversion above is a library call per lane; this is integer
        // arithmetic on all eight. Shifting a half's exponent and mantissa into a float's
        // place gives a float 2¹¹² times smaller, for normal and subnormal halves alike.
        let bits = SIMD8<UInt32>(truncatingIfNeeded: unsafeBitCast(halves, to: SIMD8<UInt16>.self))
        let magnitude = (bits & 0x7fff) &<< 13
        let scaled = unsafeBitCast(unsafeBitCast(magnitude, to: SIMD8<Float>.self) * SIMD8<Float>(repeating: 0x1p112),
                                   to: SIMD8<UInt32>.self)
        // Infinity and NaN (all-ones exponent) keep an all-ones exponent.
        let widened = scaled.replacing(with: magnitude | 0x7f80_0000, where: (bits & 0x7c00) .== 0x7c00)
        return unsafeBitCast(widened | ((bits & 0x8000) &<< 16), to: SIMD8<Float>.self)
        #endif
    }
}
