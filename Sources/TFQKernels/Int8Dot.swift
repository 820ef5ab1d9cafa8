import Builtin
import CKernels

/// The innermost step of the int8 kernels: one quantization group of one 16-row block (one
/// 64-byte chunk of the interleaved layout per column quad) times the group's int8
/// activations, as 16 exact int32 sums.
///
/// The ISA paths are C (CKernels/tfq_int8.h), chosen by the build's defines: `sdot` with
/// `-DTFQ_ARM_DOTPROD`, NEON widening multiplies on every other ARM64 build, AVX-512 VNNI
/// with `-DTFQ_AVX512VNNI`, AVX2 with `-DTFQ_AVX2`. Everywhere else the portable path widens
/// with shifts on `SIMD16<Int32>`.
/// The sums are integers, so every path gives the same bits (the tests compare them).
enum Int8Dot {
    /// The path this build compiled (the tests check it against the defines).
    static let path: String = {
        #if arch(arm64) && TFQ_ARM_DOTPROD
        return "sdot"
        #elseif arch(arm64)
        return "neon"
        #elseif TFQ_AVX512VNNI && arch(x86_64)
        return "vnni"
        #elseif TFQ_AVX2 && arch(x86_64)
        return "avx2"
        #else
        return "portable"
        #endif
    }()

    /// One vector conversion (LLVM's `sitofp`, which every target lowers): the standard
    /// library's generic initializer converts lane by lane.
    @inline(__always)
    static func toFloat(_ sums: SIMD16<Int32>) -> SIMD16<Float> {
        var result = SIMD16<Float>()
        result._storage._value = Builtin.sitofp_Vec16xInt32_Vec16xFPIEEE32(sums._storage._value)
        return result
    }

    /// Whether this build's kernels read the activations' group offsets (``offsets(_:groups:groupSize:into:)``):
    /// only the VNNI path, which multiplies the weights as unsigned bytes (tfq_int8.h).
    static var needsOffsets: Bool {
        #if TFQ_AVX512VNNI && arch(x86_64)
        return true
        #else
        return false
        #endif
    }

    /// 128·Σ x over each of `groups` consecutive groups of `groupSize` activations at `x`,
    /// where ``needsOffsets``; otherwise writes nothing (the other paths never read them).
    @inline(__always)
    static func offsets(_ x: UnsafePointer<Int8>, groups: Int, groupSize: Int, into offsets: UnsafeMutablePointer<Int32>) {
        #if TFQ_AVX512VNNI && arch(x86_64)
        tfq_int8_offsets_vnni_selected(x, groups, groupSize, offsets)
        #endif
    }

    /// Σ over `quads` chunks at `weights` (64 bytes apart) with the activation quads at `x`;
    /// `offsets` points at the group's offset (read where ``needsOffsets``).
    @inline(__always)
    static func group(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, quads: Int, offsets: UnsafePointer<Int32>) -> SIMD16<Int32> {
        #if arch(arm64) && TFQ_ARM_DOTPROD
        return tfq_int8_group_sdot(weights.assumingMemoryBound(to: Int8.self), x, quads)
        #elseif arch(arm64)
        return tfq_int8_group_neon(weights.assumingMemoryBound(to: Int8.self), x, quads)
        #elseif TFQ_AVX512VNNI && arch(x86_64)
        return one { tfq_int8_group_vnni_selected(weights.assumingMemoryBound(to: Int8.self), x, quads, offsets, $0) }
        #elseif TFQ_AVX2 && arch(x86_64)
        return tfq_int8_group_avx2(weights.assumingMemoryBound(to: Int8.self), x, quads)
        #else
        return portableGroup(weights, x, quads: quads)
        #endif
    }

    /// `group` for four tokens whose activations are `stride` bytes apart, sharing each load;
    /// their offsets are `offsetStride` apart.
    @inline(__always)
    static func group4(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int,
                       offsets: UnsafePointer<Int32>, offsetStride: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        #if arch(arm64) || ((TFQ_AVX2 || TFQ_AVX512VNNI) && arch(x86_64))
        let w = weights.assumingMemoryBound(to: Int8.self)
        #endif
        #if arch(arm64) && TFQ_ARM_DOTPROD
        return four { tfq_int8_group4_sdot(w, x, stride, quads, $0) }
        #elseif arch(arm64)
        return four { tfq_int8_group4_neon(w, x, stride, quads, $0) }
        #elseif TFQ_AVX512VNNI && arch(x86_64)
        return four { tfq_int8_group4_vnni_selected(w, x, stride, quads, offsets, offsetStride, $0) }
        #elseif TFQ_AVX2 && arch(x86_64)
        return four { tfq_int8_group4_avx2(w, x, stride, quads, $0) }
        #else
        return portableGroup4(weights, x, stride: stride, quads: quads)
        #endif
    }

    /// `group` for two tokens whose activations are `stride` bytes apart (a two-pass
    /// activation's q₁ and q₂), sharing each load; their offsets are `offsetStride` apart.
    @inline(__always)
    static func group2(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int,
                       offsets: UnsafePointer<Int32>, offsetStride: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>) {
        #if arch(arm64) || ((TFQ_AVX2 || TFQ_AVX512VNNI) && arch(x86_64))
        let w = weights.assumingMemoryBound(to: Int8.self)
        #endif
        #if arch(arm64) && TFQ_ARM_DOTPROD
        return two { tfq_int8_group2_sdot(w, x, stride, quads, $0) }
        #elseif arch(arm64)
        return two { tfq_int8_group2_neon(w, x, stride, quads, $0) }
        #elseif TFQ_AVX512VNNI && arch(x86_64)
        return two { tfq_int8_group2_vnni_selected(w, x, stride, quads, offsets, offsetStride, $0) }
        #elseif TFQ_AVX2 && arch(x86_64)
        return two { tfq_int8_group2_avx2(w, x, stride, quads, $0) }
        #else
        return (portableGroup(weights, x, quads: quads), portableGroup(weights, x + stride, quads: quads))
        #endif
    }

    /// The VNNI one-token function writes its 16 sums through a pointer (tfq_int8.h says why).
    @inline(__always)
    static func one(_ body: (UnsafeMutablePointer<Int32>) -> Void) -> SIMD16<Int32> {
        var sums = SIMD16<Int32>()
        withUnsafeMutableBytes(of: &sums) { body($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        return sums
    }

    /// The C four-token functions write 4 × 16 sums through a pointer.
    @inline(__always)
    static func four(_ body: (UnsafeMutablePointer<Int32>) -> Void) -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        var sums = (SIMD16<Int32>(), SIMD16<Int32>(), SIMD16<Int32>(), SIMD16<Int32>())
        withUnsafeMutableBytes(of: &sums) { body($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        return sums
    }

    /// The C two-token functions write 2 × 16 sums through a pointer.
    @inline(__always)
    static func two(_ body: (UnsafeMutablePointer<Int32>) -> Void) -> (SIMD16<Int32>, SIMD16<Int32>) {
        var sums = (SIMD16<Int32>(), SIMD16<Int32>())
        withUnsafeMutableBytes(of: &sums) { body($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        return sums
    }

    #if arch(arm64)
    /// The sdot path in any ARM64 build (a call, not inlined, without TFQ_ARM_DOTPROD), so
    /// the tests check it wherever the CPU has the instruction (`CPUFeatures.hasDotProduct`).
    static func sdotGroup(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, quads: Int) -> SIMD16<Int32> {
        tfq_int8_group_sdot(weights.assumingMemoryBound(to: Int8.self), x, quads)
    }

    static func sdotGroup4(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        four { tfq_int8_group4_sdot(weights.assumingMemoryBound(to: Int8.self), x, stride, quads, $0) }
    }

    static func sdotGroup2(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>) {
        two { tfq_int8_group2_sdot(weights.assumingMemoryBound(to: Int8.self), x, stride, quads, $0) }
    }
    #endif

    #if arch(x86_64)
    /// The AVX-512 VNNI path in any x86-64 build (a call, not inlined, without
    /// TFQ_AVX512VNNI), so the tests check it wherever the CPU has it (`CPUFeatures.hasAVX512VNNI`);
    /// each computes its tokens' offsets as the kernels' callers do.
    static func vnniOffsets(_ x: UnsafePointer<Int8>, groups: Int, groupSize: Int, into offsets: UnsafeMutablePointer<Int32>) {
        tfq_int8_offsets_vnni(x, groups, groupSize, offsets)
    }

    static func vnniGroup(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, quads: Int) -> SIMD16<Int32> {
        var offset: Int32 = 0
        tfq_int8_offsets_vnni(x, 1, quads * 4, &offset)
        return one { tfq_int8_group_vnni(weights.assumingMemoryBound(to: Int8.self), x, quads, &offset, $0) }
    }

    static func vnniGroup4(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        var offsets = [Int32](repeating: 0, count: 4)
        for t in 0..<4 { tfq_int8_offsets_vnni(x + t * stride, 1, quads * 4, &offsets[t]) }
        return four { tfq_int8_group4_vnni(weights.assumingMemoryBound(to: Int8.self), x, stride, quads, offsets, 1, $0) }
    }

    static func vnniGroup2(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>) {
        var offsets = [Int32](repeating: 0, count: 2)
        for t in 0..<2 { tfq_int8_offsets_vnni(x + t * stride, 1, quads * 4, &offsets[t]) }
        return two { tfq_int8_group2_vnni(weights.assumingMemoryBound(to: Int8.self), x, stride, quads, offsets, 1, $0) }
    }
    #endif

    /// The portable path, compiled in every build so the tests can compare the ISA paths
    /// with it: byte j of each 32-bit lane is that row's weight for column 4·quad + j, sign
    /// extended by a shift pair.
    @inline(__always)
    static func portableGroup(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, quads: Int) -> SIMD16<Int32> {
        var sums = SIMD16<Int32>()
        for quad in 0..<quads {
            let chunk = weights + quad * 64
            tfq_prefetch(chunk + 1024)
            let words = chunk.loadUnaligned(as: SIMD16<Int32>.self)
            let a = Int32(bitPattern: UnsafeRawPointer(x + quad * 4).loadUnaligned(as: UInt32.self))
            sums &+= ((words &<< 24) &>> 24) &* SIMD16(repeating: (a &<< 24) &>> 24)
            sums &+= ((words &<< 16) &>> 24) &* SIMD16(repeating: (a &<< 16) &>> 24)
            sums &+= ((words &<< 8) &>> 24) &* SIMD16(repeating: (a &<< 8) &>> 24)
            sums &+= (words &>> 24) &* SIMD16(repeating: a &>> 24)
        }
        return sums
    }

    @inline(__always)
    static func portableGroup4(_ weights: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        var s0 = SIMD16<Int32>(), s1 = SIMD16<Int32>(), s2 = SIMD16<Int32>(), s3 = SIMD16<Int32>()
        for quad in 0..<quads {
            let chunk = weights + quad * 64
            tfq_prefetch(chunk + 1024)
            let words = chunk.loadUnaligned(as: SIMD16<Int32>.self)
            let w0 = (words &<< 24) &>> 24, w1 = (words &<< 16) &>> 24, w2 = (words &<< 8) &>> 24, w3 = words &>> 24
            let xp = UnsafeRawPointer(x + quad * 4)
            @inline(__always) func add(_ s: inout SIMD16<Int32>, _ offset: Int) {
                let a = Int32(bitPattern: xp.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
                s &+= w0 &* SIMD16(repeating: (a &<< 24) &>> 24)
                s &+= w1 &* SIMD16(repeating: (a &<< 16) &>> 24)
                s &+= w2 &* SIMD16(repeating: (a &<< 8) &>> 24)
                s &+= w3 &* SIMD16(repeating: a &>> 24)
            }
            add(&s0, 0); add(&s1, stride); add(&s2, 2 * stride); add(&s3, 3 * stride)
        }
        return (s0, s1, s2, s3)
    }
}
