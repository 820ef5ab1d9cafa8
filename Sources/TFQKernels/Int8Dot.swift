import Builtin

/// The innermost step of the int8 kernels: 16 rows × 4 columns of int8 weights (one
/// 64-byte chunk of the interleaved layout) times 4 int8 activations, added to 16 int32 sums.
///
/// The portable path widens with shifts on `SIMD16<Int32>`: correct on every target. The
/// AVX2 path (`-DTFQ_AVX2`) uses `vpmaddubsw`/`vpmaddwd`, which multiply and pair-sum 32
/// bytes per instruction.
enum Int8Dot {
    /// One vector conversion (LLVM's `sitofp`, which every target lowers): the standard
    /// library's generic initializer converts lane by lane.
    @inline(__always)
    static func toFloat(_ sums: SIMD16<Int32>) -> SIMD16<Float> {
        var result = SIMD16<Float>()
        result._storage._value = Builtin.sitofp_Vec16xInt32_Vec16xFPIEEE32(sums._storage._value)
        return result
    }

    #if TFQ_AVX2 && arch(x86_64)
    @inline(__always)
    static func accumulate(_ sums: inout SIMD16<Int32>, weights: UnsafeRawPointer, activations x: UInt32) {
        let xv = X86.broadcast(x)
        let magnitude = X86.sign(xv, xv)
        sums.lowHalf &+= X86.dot4(magnitude, X86.sign(weights.loadUnaligned(as: SIMD32<Int8>.self), xv))
        sums.highHalf &+= X86.dot4(magnitude, X86.sign(weights.loadUnaligned(fromByteOffset: 32, as: SIMD32<Int8>.self), xv))
    }

    @inline(__always)
    static func accumulate4(_ s0: inout SIMD16<Int32>, _ s1: inout SIMD16<Int32>, _ s2: inout SIMD16<Int32>, _ s3: inout SIMD16<Int32>,
                            weights: UnsafeRawPointer, _ x0: UInt32, _ x1: UInt32, _ x2: UInt32, _ x3: UInt32) {
        let low = weights.loadUnaligned(as: SIMD32<Int8>.self)
        let high = weights.loadUnaligned(fromByteOffset: 32, as: SIMD32<Int8>.self)
        @inline(__always) func add(_ s: inout SIMD16<Int32>, _ x: UInt32) {
            let xv = X86.broadcast(x)
            let magnitude = X86.sign(xv, xv)
            s.lowHalf &+= X86.dot4(magnitude, X86.sign(low, xv))
            s.highHalf &+= X86.dot4(magnitude, X86.sign(high, xv))
        }
        add(&s0, x0); add(&s1, x1); add(&s2, x2); add(&s3, x3)
    }
    #else
    @inline(__always)
    static func accumulate(_ sums: inout SIMD16<Int32>, weights: UnsafeRawPointer, activations x: UInt32) {
        let words = weights.loadUnaligned(as: SIMD16<Int32>.self)
        let a = Int32(bitPattern: x)
        // Byte j of each 32-bit lane is that row's weight for column 4·quad + j.
        sums &+= ((words &<< 24) &>> 24) &* SIMD16(repeating: (a &<< 24) &>> 24)
        sums &+= ((words &<< 16) &>> 24) &* SIMD16(repeating: (a &<< 16) &>> 24)
        sums &+= ((words &<< 8) &>> 24) &* SIMD16(repeating: (a &<< 8) &>> 24)
        sums &+= (words &>> 24) &* SIMD16(repeating: a &>> 24)
    }

    @inline(__always)
    static func accumulate4(_ s0: inout SIMD16<Int32>, _ s1: inout SIMD16<Int32>, _ s2: inout SIMD16<Int32>, _ s3: inout SIMD16<Int32>,
                            weights: UnsafeRawPointer, _ x0: UInt32, _ x1: UInt32, _ x2: UInt32, _ x3: UInt32) {
        let words = weights.loadUnaligned(as: SIMD16<Int32>.self)
        let w0 = (words &<< 24) &>> 24, w1 = (words &<< 16) &>> 24, w2 = (words &<< 8) &>> 24, w3 = words &>> 24
        @inline(__always) func add(_ s: inout SIMD16<Int32>, _ x: UInt32) {
            let a = Int32(bitPattern: x)
            s &+= w0 &* SIMD16(repeating: (a &<< 24) &>> 24)
            s &+= w1 &* SIMD16(repeating: (a &<< 16) &>> 24)
            s &+= w2 &* SIMD16(repeating: (a &<< 8) &>> 24)
            s &+= w3 &* SIMD16(repeating: a &>> 24)
        }
        add(&s0, x0); add(&s1, x1); add(&s2, x2); add(&s3, x3)
    }
    #endif
}
