import CKernels
import Testing
@testable import TFQKernels

/// The int8 inner loop of this build's ISA path (sdot, NEON, AVX-512 VNNI, AVX2 or portable), for
/// one, two and four tokens, against the portable path and against sums of single products:
/// integer sums, so equal bit for bit.
@Suite struct Int8DotTests {
    /// The path the build compiled is the one its defines ask for (a define without the
    /// matching CPU flag does not compile at all; see CKernels/tfq_int8.h).
    @Test func compiledPathMatchesTheBuildDefines() {
        #if arch(arm64) && TFQ_ARM_DOTPROD
        #expect(Int8Dot.path == "sdot")
        #elseif arch(arm64)
        #expect(Int8Dot.path == "neon")
        #elseif TFQ_AVX512VNNI && arch(x86_64)
        #expect(Int8Dot.path == "vnni")
        #elseif TFQ_AVX2 && arch(x86_64)
        #expect(Int8Dot.path == "avx2")
        #else
        #expect(Int8Dot.path == "portable")
        #endif
    }

    /// The build runs here (CI builds for the machine it runs on), and a CPU without any
    /// feature is told which one this build needs.
    @Test func theBuildsCPUFeaturesAreCheckedAtStart() {
        #expect(CPUFeatures.missingFromThisCPU == nil)
        #expect(CPUFeatures.missing(from: .max) == nil)
        #if TFQ_AVX2 && arch(x86_64)
        #expect(CPUFeatures.missing(from: 0) == "FMA")
        #expect(CPUFeatures.missing(from: TFQ_CPU_FMA) == "AVX2")
        #if TFQ_AVX512VNNI
        // A VNNI build is made for a CPU with AVX-512F and BW too; without VNNI it is refused.
        #expect(CPUFeatures.missing(from: TFQ_CPU_FMA | TFQ_CPU_AVX2 | TFQ_CPU_AVX512F | TFQ_CPU_AVX512BW) == "AVX-512 VNNI")
        #expect(CPUFeatures.hasAVX512VNNI)
        // Every CPU with VNNI has DQ, which such a build may use anywhere: it is checked too.
        #expect(CPUFeatures.missing(from: TFQ_CPU_FMA | TFQ_CPU_AVX2 | TFQ_CPU_AVX512F | TFQ_CPU_AVX512BW | TFQ_CPU_AVX512VNNI) == "AVX-512DQ")
        #endif
        #elseif TFQ_ARM_DOTPROD && arch(arm64)
        #expect(CPUFeatures.missing(from: TFQ_CPU_FMA) == "the dot product (ARMv8.2 sdot)")
        #expect(CPUFeatures.missing(from: TFQ_CPU_FMA | TFQ_CPU_DOTPROD) == nil)
        #else
        #expect(CPUFeatures.missing(from: 0) == nil)
        #endif
    }

    /// Random bytes in [-127, 127], with runs of the extremes: every product ±127·127 and
    /// pair sums at the int16 limit the NEON path relies on.
    static func bytes(_ count: Int, seed: UInt64) -> [Int8] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { i in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            switch i % 11 {
            case 0, 1: return 127
            case 2: return -127
            default: return Int8(Int(state % 255) - 127)
            }
        }
    }

    /// The build's kernels called as Q8MatMul calls them: each token's offsets first.
    static func offsets(_ x: UnsafePointer<Int8>, tokens: Int, stride: Int, quads: Int) -> [Int32] {
        var offsets = [Int32](repeating: 0, count: tokens)
        for t in 0..<tokens { Int8Dot.offsets(x + t * stride, groups: 1, groupSize: quads * 4, into: &offsets[t]) }
        return offsets
    }

    static func group(_ w: UnsafeRawPointer, _ x: UnsafePointer<Int8>, quads: Int) -> SIMD16<Int32> {
        Int8Dot.group(w, x, quads: quads, offsets: offsets(x, tokens: 1, stride: 0, quads: quads))
    }

    static func group4(_ w: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int)
        -> (SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>, SIMD16<Int32>) {
        Int8Dot.group4(w, x, stride: stride, quads: quads, offsets: offsets(x, tokens: 4, stride: stride, quads: quads), offsetStride: 1)
    }

    static func group2(_ w: UnsafeRawPointer, _ x: UnsafePointer<Int8>, stride: Int, quads: Int) -> (SIMD16<Int32>, SIMD16<Int32>) {
        Int8Dot.group2(w, x, stride: stride, quads: quads, offsets: offsets(x, tokens: 2, stride: stride, quads: quads), offsetStride: 1)
    }

    /// The VNNI path's offsets: 128·Σ x per group, over groups that fill its 32-byte steps,
    /// leave a tail of whole words, or are a single word, at the extremes of x.
    @Test(arguments: [4, 28, 32, 36, 64, 132])
    func offsetsAreTheGroupSumsTimes128(groupSize: Int) {
        let groups = 5
        var x = Self.bytes(groups * groupSize, seed: UInt64(groupSize))
        for i in 0..<groupSize { x[i] = -127 }   // the most negative group
        for i in groupSize..<(2 * groupSize) { x[i] = 127 }
        let expected = (0..<groups).map { g in 128 * x[(g * groupSize)..<((g + 1) * groupSize)].reduce(Int32(0)) { $0 + Int32($1) } }
        var offsets = [Int32](repeating: 0, count: groups)
        #if arch(x86_64)
        if CPUFeatures.hasAVX512VNNI {
            Int8Dot.vnniOffsets(x, groups: groups, groupSize: groupSize, into: &offsets)
            #expect(offsets == expected)
        }
        #endif
        if Int8Dot.needsOffsets {
            offsets = [Int32](repeating: 0, count: groups)
            Int8Dot.offsets(x, groups: groups, groupSize: groupSize, into: &offsets)
            #expect(offsets == expected)
        }
        #expect(Int8Dot.needsOffsets == (Int8Dot.path == "vnni"))
    }

    /// Row r's sum over `quads` chunks: chunk q holds row r's 4 weights at bytes 4r..4r+3.
    static func reference(_ w: [Int8], _ x: [Int8], xOffset: Int, quads: Int) -> [Int32] {
        (0..<16).map { r in
            var sum: Int32 = 0
            for q in 0..<quads { for j in 0..<4 { sum += Int32(w[q * 64 + 4 * r + j]) * Int32(x[xOffset + q * 4 + j]) } }
            return sum
        }
    }

    @Test(arguments: [1, 2, 3, 8, 16, 33])
    func groupSumsEqualSingleProducts(quads: Int) {
        // Opposite signs at the extremes make the largest sums: 4·quads·127² must still be exact.
        var w = Self.bytes(quads * 64, seed: UInt64(quads))
        var x = Self.bytes(quads * 4 * 4 + 7, seed: UInt64(100 + quads))
        for i in 0..<64 { w[i] = 127 }
        for i in 0..<4 { x[i] = 127 }
        let stride = quads * 4 + 1   // an odd stride: the four-token loads are unaligned
        w.withUnsafeBytes { wb in
            x.withUnsafeBufferPointer { xb in
                let expected = (0..<4).map { t in SIMD16(Self.reference(w, x, xOffset: t * stride, quads: quads)) }
                #expect(Self.group(wb.baseAddress!, xb.baseAddress!, quads: quads) == expected[0])
                #expect(Int8Dot.portableGroup(wb.baseAddress!, xb.baseAddress!, quads: quads) == expected[0])
                let four = Self.group4(wb.baseAddress!, xb.baseAddress!, stride: stride, quads: quads)
                #expect([four.0, four.1, four.2, four.3] == expected)
                let portable = Int8Dot.portableGroup4(wb.baseAddress!, xb.baseAddress!, stride: stride, quads: quads)
                #expect([portable.0, portable.1, portable.2, portable.3] == expected)
                let two = Self.group2(wb.baseAddress!, xb.baseAddress! + stride, stride: stride, quads: quads)
                #expect([two.0, two.1] == [expected[1], expected[2]])
                #if arch(arm64)
                if CPUFeatures.hasDotProduct {
                    #expect(Int8Dot.sdotGroup(wb.baseAddress!, xb.baseAddress!, quads: quads) == expected[0])
                    let sdot = Int8Dot.sdotGroup4(wb.baseAddress!, xb.baseAddress!, stride: stride, quads: quads)
                    #expect([sdot.0, sdot.1, sdot.2, sdot.3] == expected)
                    let sdot2 = Int8Dot.sdotGroup2(wb.baseAddress!, xb.baseAddress! + stride, stride: stride, quads: quads)
                    #expect([sdot2.0, sdot2.1] == [expected[1], expected[2]])
                }
                #elseif arch(x86_64)
                if CPUFeatures.hasAVX512VNNI {
                    #expect(Int8Dot.vnniGroup(wb.baseAddress!, xb.baseAddress!, quads: quads) == expected[0])
                    let vnni = Int8Dot.vnniGroup4(wb.baseAddress!, xb.baseAddress!, stride: stride, quads: quads)
                    #expect([vnni.0, vnni.1, vnni.2, vnni.3] == expected)
                    let vnni2 = Int8Dot.vnniGroup2(wb.baseAddress!, xb.baseAddress! + stride, stride: stride, quads: quads)
                    #expect([vnni2.0, vnni2.1] == [expected[1], expected[2]])
                }
                #endif
            }
        }
    }

    /// Many random chunks, so every lane position and sign combination is seen.
    @Test func randomGroupsAgreeWithThePortablePath() {
        for seed in 1...200 {
            let quads = 1 + seed % 17
            let w = Self.bytes(quads * 64, seed: UInt64(seed) << 8)
            let x = Self.bytes(quads * 16, seed: UInt64(seed) << 9)
            w.withUnsafeBytes { wb in
                x.withUnsafeBufferPointer { xb in
                    let fast = Self.group(wb.baseAddress!, xb.baseAddress!, quads: quads)
                    #expect(fast == Int8Dot.portableGroup(wb.baseAddress!, xb.baseAddress!, quads: quads))
                    let four = Self.group4(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads)
                    let portable = Int8Dot.portableGroup4(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads)
                    #expect(four == portable)
                    #expect(four.0 == fast)
                    let two = Self.group2(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads)
                    #expect(two.0 == portable.0 && two.1 == portable.1)
                    #if arch(arm64)
                    if CPUFeatures.hasDotProduct {
                        #expect(Int8Dot.sdotGroup(wb.baseAddress!, xb.baseAddress!, quads: quads) == fast)
                        #expect(Int8Dot.sdotGroup4(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads) == portable)
                        #expect(Int8Dot.sdotGroup2(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads) == (portable.0, portable.1))
                    }
                    #elseif arch(x86_64)
                    if CPUFeatures.hasAVX512VNNI {
                        #expect(Int8Dot.vnniGroup(wb.baseAddress!, xb.baseAddress!, quads: quads) == fast)
                        #expect(Int8Dot.vnniGroup4(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads) == portable)
                        #expect(Int8Dot.vnniGroup2(wb.baseAddress!, xb.baseAddress!, stride: quads * 4, quads: quads) == (portable.0, portable.1))
                    }
                    #endif
                }
            }
        }
    }
}
