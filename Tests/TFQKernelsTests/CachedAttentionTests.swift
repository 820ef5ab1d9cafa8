import Foundation
import Testing
@testable import TFQKernels

/// The runtime's attention over its KV cache against the textbook formula in Double:
/// softmax(q·kᵀ/√d)·V per head over the visible positions, for decode (one query) and
/// prefill (many, four at a time and the rest one by one), with grouped-query heads, for
/// a cache of floats and one of halves.
@Suite struct CachedAttentionTests {
    /// One layer's cache holding keys `k` and values `v` ([positions × kvDim] each) for
    /// positions 0..<positions, and NaN garbage beyond them, as a session's cache holds.
    /// (Float arrays as byte buffers: a half cache uses the first half of each.)
    static func filledCache(_ attention: CachedAttention, k: [Float], v: [Float], positions: Int) -> (keys: [Float], values: [Float]) {
        var keys = [Float](repeating: .nan, count: attention.cacheValuesPerLayer)
        var values = [Float](repeating: .nan, count: attention.cacheValuesPerLayer)
        k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
            keys.withUnsafeMutableBytes { keysp in values.withUnsafeMutableBytes { valuesp in
                for position in 0..<positions {
                    attention.store(key: kp.baseAddress! + position * attention.kvDim, value: vp.baseAddress! + position * attention.kvDim,
                                    position: position, keys: keysp.baseAddress!, values: valuesp.baseAddress!)
                }
            } }
        } }
        return (keys, values)
    }

    /// `attend` for `tokens` queries (q: [tokens × heads·headDim]) from position `start`.
    static func attend(_ attention: CachedAttention, q: [Float], tokens: Int, start: Int, cache: (keys: [Float], values: [Float]),
                       pool: ThreadPool) -> [Float] {
        let qDim = attention.heads * attention.headDim
        var output = [Float](repeating: .nan, count: tokens * qDim)
        q.withUnsafeBufferPointer { qp in cache.keys.withUnsafeBytes { keysp in cache.values.withUnsafeBytes { valuesp in
            output.withUnsafeMutableBufferPointer { op in
                attention.attend(queries: qp.baseAddress!, queryStride: qDim, tokens: tokens, start: start,
                                 keys: keysp.baseAddress!, values: valuesp.baseAddress!,
                                 output: op.baseAddress!, outputStride: qDim, pool: pool)
            }
        } } }
        return output
    }

    static let shapes = [(2, 2, 16, 0, 1), (4, 2, 24, 5, 1), (2, 1, 64, 0, 11), (3, 3, 20, 7, 9), (6, 6, 64, 0, 128), (2, 2, 8, 30, 4),
                         (2, 2, 32, 3, 1), (2, 1, 48, 0, 6), (1, 1, 96, 4, 1), (2, 2, 7, 2, 5)]

    /// With a half cache, the formula's keys and values are the halves' values: the kernel
    /// must compute exactly what it stored, in float arithmetic.
    @Test(arguments: KVCachePrecision.allCases, shapes)
    func matchesTheTextbookFormula(precision: KVCachePrecision, shape: (Int, Int, Int, Int, Int)) {
        let (heads, kvHeads, headDim, start, tokens) = shape
        let attention = CachedAttention(heads: heads, kvHeads: kvHeads, headDim: headDim, context: start + tokens + 3, precision: precision)
        let kvDim = kvHeads * headDim, qDim = heads * headDim
        let k = randomFloats((start + tokens) * kvDim, seed: 11), v = randomFloats((start + tokens) * kvDim, seed: 12)
        let q = randomFloats(tokens * qDim, seed: 13).map { $0 * 4 }
        let cache = Self.filledCache(attention, k: k, v: v, positions: start + tokens)
        let (k16, v16) = precision == .f16 ? (k.map { Float(Float16($0)) }, v.map { Float(Float16($0)) }) : (k, v)
        #expect(precision == .f32 || zip(k, k16).contains { $0 != $1 }, "rounding to halves must change some keys")
        for threads in [1, 2] {
            let output = Self.attend(attention, q: q, tokens: tokens, start: start, cache: cache, pool: ThreadPool(threads: threads))
            var worst = 0.0
            for t in 0..<tokens {
                for h in 0..<heads {
                    let kvh = h / (heads / kvHeads), visible = start + t + 1
                    var scores = (0..<visible).map { j in
                        (0..<headDim).reduce(0.0) { $0 + Double(q[t * qDim + h * headDim + $1]) * Double(k16[j * kvDim + kvh * headDim + $1]) }
                            / Double(headDim).squareRoot()
                    }
                    let top = scores.max()!
                    scores = scores.map { exp($0 - top) }
                    let total = scores.reduce(0, +)
                    for c in 0..<headDim {
                        let expected = (0..<visible).reduce(0.0) { $0 + scores[$1] / total * Double(v16[$1 * kvDim + kvh * headDim + c]) }
                        worst = max(worst, abs(Double(output[t * qDim + h * headDim + c]) - expected))
                    }
                }
            }
            #expect(worst < 2e-6, "\(precision) \(shape) threads \(threads): \(worst)")
        }
    }

    /// A prompt attended in one call gives, bit for bit, what its tokens give one call each:
    /// int8 layers downstream re-round their inputs, so a last-bit difference here would
    /// become a whole quantization step there.
    @Test(arguments: KVCachePrecision.allCases,
          [(2, 2, 16, 0, 9), (4, 2, 24, 5, 7), (2, 1, 64, 0, 11), (3, 3, 20, 7, 9), (2, 2, 72, 3, 6), (1, 1, 7, 0, 5),
           (2, 2, 32, 1, 6), (2, 1, 48, 0, 9), (1, 1, 96, 2, 5)])
    func promptEqualsItsTokensOneByOne(precision: KVCachePrecision, shape: (Int, Int, Int, Int, Int)) {
        let (heads, kvHeads, headDim, start, tokens) = shape
        let attention = CachedAttention(heads: heads, kvHeads: kvHeads, headDim: headDim, context: start + tokens + 3, precision: precision)
        let kvDim = kvHeads * headDim, qDim = heads * headDim
        let k = randomFloats((start + tokens) * kvDim, seed: 21), v = randomFloats((start + tokens) * kvDim, seed: 22)
        let q = randomFloats(tokens * qDim, seed: 23).map { $0 * 4 }
        let cache = Self.filledCache(attention, k: k, v: v, positions: start + tokens)
        let pool = ThreadPool(threads: 2)
        let prompt = Self.attend(attention, q: q, tokens: tokens, start: start, cache: cache, pool: pool)
        let single = (0..<tokens).flatMap { t in
            Self.attend(attention, q: Array(q[(t * qDim)..<((t + 1) * qDim)]), tokens: 1, start: start + t, cache: cache, pool: pool)
        }
        #expect(prompt.map(\.bitPattern) == single.map(\.bitPattern), "\(precision) \(shape)")
    }

    /// Every one of the 65,536 halves widens to the float it stands for, by the path this
    /// build compiled (x86 without -DTFQ_AVX2: the integer conversion; with it, and on
    /// ARM64: the conversion instruction), and a cache stores a float as the nearest half.
    @Test func halvesWidenExactly() {
        var mismatches: [UInt16] = []
        for high in 0..<8192 {
            let bits = SIMD8<UInt16>((0..<8).map { UInt16(high * 8 + $0) })
            let widened = HalfPrecision.widen(unsafeBitCast(bits, to: SIMD8<Float16>.self))
            for lane in 0..<8 {
                let half = Float16(bitPattern: bits[lane])
                let ok = half.isNaN ? widened[lane].isNaN : widened[lane].bitPattern == Float(half).bitPattern
                if !ok { mismatches.append(bits[lane]) }
            }
        }
        #expect(mismatches.isEmpty, "first mismatches: \(mismatches.prefix(5))")
        // Two subnormals, the largest half, and one past it (rounds to infinity).
        #expect(HalfPrecision.widen(SIMD8(repeating: Float16(bitPattern: 0x0001)))[0] == 0x1p-24)
        #expect(HalfPrecision.widen(SIMD8(repeating: Float16(bitPattern: 0x83ff)))[0] == -0x3ffp-24)
        #expect(HalfPrecision.widen(SIMD8(repeating: Float16(bitPattern: 0x7bff)))[0] == 65504)

        let attention = CachedAttention(heads: 1, kvHeads: 1, headDim: 8, context: 8, precision: .f16)
        let key: [Float] = [1.0 / 3, -2.5e-6, 65504, 70000, 0.1, -0.1, 1e-8, 1234.5678]
        let cache = Self.filledCache(attention, k: key, v: key, positions: 1)
        let stored = cache.values.withUnsafeBytes { raw in (0..<8).map { Float(raw.load(fromByteOffset: $0 * 2, as: Float16.self)) } }
        #expect(stored == key.map { Float(Float16($0)) })
        #expect(stored[0] == 0x1.554p-2 && stored[3] == .infinity && stored[6] == 0)
    }
}
