import CKernels

/// An int8 weight matrix with per-group scales (f32 for `q8`, f16 for `q8f16`), in the
/// `interleaved-16x4` layout of formats/tfq.md §6.2: blocks of 16 rows, and within a block
/// 64-byte chunks holding 4 consecutive values of each of the 16 rows, so one 64-byte load
/// feeds 16 row lanes.
public struct Q8Matrix: @unchecked Sendable {
    /// The int8 values in the interleaved layout, blocks of 16 rows × `columns`.
    public let values: UnsafePointer<Int8>
    /// [rows/16 blocks][groups][16 rows] of f32, or of f16 when ``halfScales``.
    public let scales: UnsafeRawPointer
    /// Whether the scales are IEEE half precision (widened exactly where they are used).
    public let halfScales: Bool
    /// The matrix's shape, and the values along a row that share one scale.
    public let rows: Int, columns: Int, groupSize: Int
    /// Scale groups per row.
    public var groups: Int { columns / groupSize }
    /// Blocks of 16 rows, the last one padded.
    public var blocks: Int { (rows + 15) / 16 }

    /// A view of values and f32 scales in that layout (not copied: they must outlive the
    /// matrix); `columns` and `groupSize` must be multiples of 4, and `groupSize` must divide
    /// `columns`.
    public init(values: UnsafePointer<Int8>, scales: UnsafePointer<Float>, rows: Int, columns: Int, groupSize: Int) {
        self.init(values: values, scales: UnsafeRawPointer(scales), halfScales: false, rows: rows, columns: columns, groupSize: groupSize)
    }

    /// The same with f16 scales (a `q8f16` tensor).
    public init(values: UnsafePointer<Int8>, halfScales scales: UnsafePointer<Float16>, rows: Int, columns: Int, groupSize: Int) {
        self.init(values: values, scales: UnsafeRawPointer(scales), halfScales: true, rows: rows, columns: columns, groupSize: groupSize)
    }

    private init(values: UnsafePointer<Int8>, scales: UnsafeRawPointer, halfScales: Bool, rows: Int, columns: Int, groupSize: Int) {
        precondition(columns % 4 == 0 && groupSize % 4 == 0 && columns % groupSize == 0)
        self.values = values; self.scales = scales; self.halfScales = halfScales
        self.rows = rows; self.columns = columns; self.groupSize = groupSize
    }

    /// The scales of group `group` of the 16 rows of block `block`, as floats.
    @inline(__always)
    func scales(block: Int, group: Int) -> SIMD16<Float> {
        let index = (block * groups + group) * 16
        if halfScales { return HalfPrecision.widen(scales.loadUnaligned(fromByteOffset: 2 * index, as: SIMD16<Float16>.self)) }
        return scales.loadUnaligned(fromByteOffset: 4 * index, as: SIMD16<Float>.self)
    }

    /// Row `r`, dequantized into `out` (the embedding lookup of a quantized table).
    public func dequantizeRow(_ r: Int, into out: UnsafeMutablePointer<Float>) {
        let block = r / 16, lane = r % 16
        let base = values + block * 16 * columns
        for g in 0..<groups {
            let scale = scales(block: block, group: g)[lane]
            for c in (g * groupSize)..<((g + 1) * groupSize) {
                out[c] = Float(base[(c / 4) * 64 + lane * 4 + c % 4]) * scale
            }
        }
    }
}

/// Activations quantized on the fly to int8, one scale per group, to meet int8 weights in
/// integer dot products.
public enum ActivationQuantizer {
    typealias V = SIMD8<Float>

    /// q = round(x · (1/s)), s = max|x| / 127 over each group of `groupSize` values (a
    /// multiple of 4); ties round away from zero, as `Float.rounded()` and C's `roundf` do,
    /// into ±127, a NaN giving 0 (formats/tfq.md §11.4). ARM64 and AVX2 builds run the C
    /// quantizer of CKernels/tfq_quantize.h, the others the same arithmetic in Swift SIMD.
    public static func quantize(_ x: UnsafePointer<Float>, count: Int, groupSize: Int,
                                values: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        precondition(groupSize % 4 == 0)
        #if arch(arm64) || (TFQ_AVX2 && arch(x86_64))
        for g in 0..<(count / groupSize) {
            scales[g] = intrinsicGroup(x + g * groupSize, groupSize, values + g * groupSize)
        }
        #else
        let source = UnsafeRawPointer(x)
        for g in 0..<(count / groupSize) {
            scales[g] = quantizeGroup(g * groupSize, (g + 1) * groupSize, into: values,
                                      lanes: { source.loadUnaligned(fromByteOffset: $0 * 4, as: V.self) }, element: { x[$0] })
        }
        #endif
    }

    /// Two int8 passes over each group, for the layers where one pass loses too much:
    /// x ≈ s₁·q₁ + s₂·q₂, q₁ as `quantize` makes it and q₂ the same rounding of the residual
    /// x − s₁·q₁ (|residual| ≤ s₁/2, so s₂ ≤ s₁/254: about 15 bits in all). `values` holds
    /// q₁ then q₂ (2·count), `scales` s₁ then s₂ (2·count/groupSize): two rows of one token,
    /// as ``Q8MatMul/vectorTwoPass(_:x:xScales:y:pool:)`` reads them.
    public static func quantizeTwoPass(_ x: UnsafePointer<Float>, count: Int, groupSize: Int,
                                       values: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>) {
        quantize(x, count: count, groupSize: groupSize, values: values, scales: scales)
        let groups = count / groupSize
        #if arch(arm64) || (TFQ_AVX2 && arch(x86_64))
        for g in 0..<groups {
            scales[groups + g] = intrinsicResidualGroup(x + g * groupSize, groupSize, scales[g], values + count + g * groupSize)
        }
        #else
        let source = UnsafeRawPointer(x)
        // The residual is recomputed rather than stored, so nothing needs a buffer: eight
        // lanes redo the first pass's rounding (the same float q₁ it stored), the tail
        // reads q₁ back.
        for g in 0..<groups {
            let first = scales[g]
            let firstInverse: Float = first == 0 ? 0 : 1 / first
            @inline(__always) func residual(_ at: Int) -> V {
                let v = source.loadUnaligned(fromByteOffset: at * 4, as: V.self)
                return v - clampedRounded(v * V(repeating: firstInverse)) * V(repeating: first)
            }
            scales[groups + g] = quantizeGroup(g * groupSize, (g + 1) * groupSize, into: values + count, lanes: residual,
                                               element: { x[$0] - Float(values[$0]) * first })
        }
        #endif
    }

    #if arch(arm64) || (TFQ_AVX2 && arch(x86_64))
    /// The C quantizer (CKernels/tfq_quantize.h): the same values, in the ISA's instructions.
    @inline(__always)
    static func intrinsicGroup(_ x: UnsafePointer<Float>, _ n: Int, _ q: UnsafeMutablePointer<Int8>) -> Float {
        #if arch(arm64)
        return tfq_quantize_group_neon(x, n, q)
        #else
        return tfq_quantize_group_avx2(x, n, q)
        #endif
    }

    @inline(__always)
    static func intrinsicResidualGroup(_ x: UnsafePointer<Float>, _ n: Int, _ first: Float, _ q: UnsafeMutablePointer<Int8>) -> Float {
        #if arch(arm64)
        return tfq_quantize_residual_group_neon(x, n, first, q)
        #else
        return tfq_quantize_residual_group_avx2(x, n, first, q)
        #endif
    }
    #endif

    /// One group, elements start..<end: returns its scale s = max|v| / 127 and writes
    /// round(v · (1/s)) to `values[start..<end]`. `lanes(i)` gives elements i..<i+8,
    /// `element(j)` one element (the tail of a group that is not a multiple of 8).
    @inline(__always)
    static func quantizeGroup(_ start: Int, _ end: Int, into values: UnsafeMutablePointer<Int8>,
                              lanes: (Int) -> V, element: (Int) -> Float) -> Float {
        var maximum8 = V(), i = start
        while i + 8 <= end {
            let v = lanes(i)
            let magnitude = v.replacing(with: -v, where: v .< 0)
            maximum8 = maximum8.replacing(with: magnitude, where: magnitude .> maximum8)
            i += 8
        }
        var maximum: Float = 0
        for lane in 0..<8 { maximum = max(maximum, maximum8[lane]) }
        for j in i..<end { maximum = max(maximum, abs(element(j))) }
        let scale = maximum / 127
        let inverse: Float = scale == 0 ? 0 : 1 / scale
        i = start
        while i + 8 <= end {
            let q = integers(lanes(i) * V(repeating: inverse))
            for lane in 0..<8 { values[i + lane] = Int8(truncatingIfNeeded: q[lane]) }
            i += 8
        }
        for j in i..<end { values[j] = int8(element(j) * inverse) }
        return scale
    }

    /// v rounded half away from zero into ±127; NaN (from a non-finite activation) gives 0
    /// instead of a trap.
    @inline(__always)
    static func int8(_ v: Float) -> Int8 {
        let r = v.rounded()
        return r.isNaN ? 0 : Int8(max(-127, min(127, r)))
    }

    /// v rounded half away from zero into ±127, NaN giving 0, as int32: adding 1.5·2²³ to
    /// the rounded value leaves it in the low mantissa bits. Plain SIMD arithmetic: no
    /// rounding instruction, which baseline x86-64 lacks.
    @inline(__always)
    static func integers(_ v: V) -> SIMD8<Int32> {
        let magic = V(repeating: 12_582_912)
        return unsafeBitCast(clampedRounded(v) + magic, to: SIMD8<Int32>.self) &- unsafeBitCast(magic, to: SIMD8<Int32>.self)
    }

    /// v rounded half away from zero and clamped to ±127, NaN giving 0: what `int8` gives,
    /// as floats. The clamp matters only for a group whose maximum is so small (below about
    /// 3.7e−37) that 1/s overflows to infinity.
    @inline(__always)
    static func clampedRounded(_ v: V) -> V {
        let r = roundedHalfAway(v)
        let limit = V(repeating: 127)
        return r.replacing(with: limit, where: r .> limit).replacing(with: -limit, where: r .< -limit)
            .replacing(with: 0, where: r .!= r)
    }

    /// v rounded half away from zero, as floats: adding 1.5·2²³ rounds to the nearest
    /// integer (ties to even), a tie that went toward zero then takes one step away from it
    /// (exact for |v| ≤ 2²²; larger values are clamped after).
    @inline(__always)
    static func roundedHalfAway(_ v: V) -> V {
        let magic = V(repeating: 12_582_912)
        let nearestEven = (v + magic) - magic
        let difference = v - nearestEven
        let away = V(repeating: 1).replacing(with: -1, where: v .< 0)
        return nearestEven + V().replacing(with: away, where: difference * away .== V(repeating: 0.5))
    }
}

/// y = W·x with int8 weights and int8 activations: int32 sums per group, scaled once per
/// group by the weight and activation scales.
public enum Q8MatMul {
    /// One token: `y[rows]` from quantized `x[columns]`. Blocks of 16 rows are split across
    /// the pool.
    public static func vector(_ w: Q8Matrix, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        withOffsets(w, x: x, rows: 1) { offsets in
            pool.parallelFor(w.blocks, evenlyWithAtLeast: max(1, 2048 / max(1, w.columns))) { range in
                for block in range {
                    let result = blockDot(w, block: block, x: x, xScales: xScales, offsets: offsets)
                    store(result, block: block, rows: w.rows, into: y)
                }
            }
        }
    }

    /// `tokens` tokens at once (prefill): Y[tokens × rows] from quantized X[tokens × columns].
    /// Each 64-byte weight chunk is decoded once and used for up to four tokens.
    public static func matrix(_ w: Q8Matrix, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>, tokens: Int,
                              y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        withOffsets(w, x: x, rows: tokens) { offsets in
            pool.parallelFor(w.blocks) { range in
                for block in range {
                    var t = 0
                    while t + 4 <= tokens {
                        let (r0, r1, r2, r3) = blockDot4(w, block: block, x: x + t * w.columns, xScales: xScales + t * w.groups,
                                                         offsets: offsets + t * w.groups)
                        store(r0, block: block, rows: w.rows, into: y + t * w.rows)
                        store(r1, block: block, rows: w.rows, into: y + (t + 1) * w.rows)
                        store(r2, block: block, rows: w.rows, into: y + (t + 2) * w.rows)
                        store(r3, block: block, rows: w.rows, into: y + (t + 3) * w.rows)
                        t += 4
                    }
                    while t < tokens {
                        let result = blockDot(w, block: block, x: x + t * w.columns, xScales: xScales + t * w.groups,
                                              offsets: offsets + t * w.groups)
                        store(result, block: block, rows: w.rows, into: y + t * w.rows)
                        t += 1
                    }
                }
            }
        }
    }

    /// `vector` for an activation in two passes (``ActivationQuantizer/quantizeTwoPass``):
    /// y = W·(s₁q₁) + W·(s₂q₂), both passes from one load of each weight chunk.
    public static func vectorTwoPass(_ w: Q8Matrix, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>,
                                     y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        withOffsets(w, x: x, rows: 2) { offsets in
            pool.parallelFor(w.blocks, evenlyWithAtLeast: max(1, 1024 / max(1, w.columns))) { range in
                for block in range {
                    let (first, second) = blockDot2(w, block: block, x: x, xScales: xScales, offsets: offsets)
                    store(first + second, block: block, rows: w.rows, into: y)
                }
            }
        }
    }

    /// `matrix` for activations in two passes: X holds, per token, q₁ then q₂ (2·tokens rows
    /// of `columns`), and each token's result is the sum of its two rows, in the same order
    /// as `vectorTwoPass` adds them, so prefill and decode agree bit for bit.
    public static func matrixTwoPass(_ w: Q8Matrix, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>, tokens: Int,
                                     y: UnsafeMutablePointer<Float>, pool: ThreadPool) {
        withOffsets(w, x: x, rows: 2 * tokens) { offsets in
            pool.parallelFor(w.blocks) { range in
                for block in range {
                    var t = 0
                    while t + 2 <= tokens {
                        let (a1, a2, b1, b2) = blockDot4(w, block: block, x: x + 2 * t * w.columns, xScales: xScales + 2 * t * w.groups,
                                                         offsets: offsets + 2 * t * w.groups)
                        store(a1 + a2, block: block, rows: w.rows, into: y + t * w.rows)
                        store(b1 + b2, block: block, rows: w.rows, into: y + (t + 1) * w.rows)
                        t += 2
                    }
                    if t < tokens {
                        let (first, second) = blockDot2(w, block: block, x: x + 2 * t * w.columns, xScales: xScales + 2 * t * w.groups,
                                                        offsets: offsets + 2 * t * w.groups)
                        store(first + second, block: block, rows: w.rows, into: y + t * w.rows)
                    }
                }
            }
        }
    }

    /// Runs `body` with the offsets that the VNNI kernels subtract (``Int8Dot/offsets(_:groups:groupSize:into:)``)
    /// for `rows` rows of `x`, one per group, row after row; other builds compute none and
    /// their kernels never read the pointer. A decode step's few fit on the stack; a long
    /// prompt's go on the heap, so that no prompt length can exhaust a thread's stack.
    @inline(__always)
    static func withOffsets<R>(_ w: Q8Matrix, x: UnsafePointer<Int8>, rows: Int, _ body: (UnsafePointer<Int32>) -> R) -> R {
        func filled(_ buffer: UnsafeMutablePointer<Int32>) -> R {
            Int8Dot.offsets(x, groups: rows * w.groups, groupSize: w.groupSize, into: buffer)
            return body(UnsafePointer(buffer))
        }
        let count = Int8Dot.needsOffsets ? rows * w.groups : 1
        guard count > 1024 else { return withUnsafeTemporaryAllocation(of: Int32.self, capacity: count) { filled($0.baseAddress!) } }
        let buffer = UnsafeMutablePointer<Int32>.allocate(capacity: count)
        defer { buffer.deallocate() }
        return filled(buffer)
    }

    @inline(__always)
    static func store(_ result: SIMD16<Float>, block: Int, rows: Int, into y: UnsafeMutablePointer<Float>) {
        let first = block * 16
        if first + 16 <= rows {
            UnsafeMutableRawPointer(y + first).storeBytes(of: result, as: SIMD16<Float>.self)
        } else {
            for lane in 0..<(rows - first) { y[first + lane] = result[lane] }
        }
    }

    /// The 16 dot products of one block of rows with one quantized vector.
    @inline(__always)
    static func blockDot(_ w: Q8Matrix, block: Int, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>,
                         offsets: UnsafePointer<Int32>) -> SIMD16<Float> {
        let base = UnsafeRawPointer(w.values + block * 16 * w.columns)
        let quadsPerGroup = w.groupSize / 4
        var result = SIMD16<Float>()
        for g in 0..<w.groups {
            let sums = Int8Dot.group(base + g * quadsPerGroup * 64, x + g * w.groupSize, quads: quadsPerGroup, offsets: offsets + g)
            let scale = w.scales(block: block, group: g)
            result += Int8Dot.toFloat(sums) * scale * SIMD16(repeating: xScales[g])
        }
        return result
    }

    /// blockDot for two consecutive activation rows (a two-pass token's q₁ and q₂), sharing
    /// each weight load; each row's sums are added in blockDot's order.
    @inline(__always)
    static func blockDot2(_ w: Q8Matrix, block: Int, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>,
                          offsets: UnsafePointer<Int32>) -> (SIMD16<Float>, SIMD16<Float>) {
        let base = UnsafeRawPointer(w.values + block * 16 * w.columns)
        let quadsPerGroup = w.groupSize / 4
        let groups = w.groups
        var r0 = SIMD16<Float>(), r1 = SIMD16<Float>()
        for g in 0..<groups {
            let (s0, s1) = Int8Dot.group2(base + g * quadsPerGroup * 64, x + g * w.groupSize, stride: w.columns, quads: quadsPerGroup,
                                          offsets: offsets + g, offsetStride: groups)
            let scale = w.scales(block: block, group: g)
            r0 += Int8Dot.toFloat(s0) * scale * SIMD16(repeating: xScales[g])
            r1 += Int8Dot.toFloat(s1) * scale * SIMD16(repeating: xScales[groups + g])
        }
        return (r0, r1)
    }

    /// blockDot for four consecutive tokens, sharing each weight load.
    @inline(__always)
    static func blockDot4(_ w: Q8Matrix, block: Int, x: UnsafePointer<Int8>, xScales: UnsafePointer<Float>,
                          offsets: UnsafePointer<Int32>) -> (SIMD16<Float>, SIMD16<Float>, SIMD16<Float>, SIMD16<Float>) {
        let base = UnsafeRawPointer(w.values + block * 16 * w.columns)
        let quadsPerGroup = w.groupSize / 4
        let c = w.columns, groups = w.groups
        var r0 = SIMD16<Float>(), r1 = SIMD16<Float>(), r2 = SIMD16<Float>(), r3 = SIMD16<Float>()
        for g in 0..<groups {
            let (s0, s1, s2, s3) = Int8Dot.group4(base + g * quadsPerGroup * 64, x + g * w.groupSize, stride: c, quads: quadsPerGroup,
                                                      offsets: offsets + g, offsetStride: groups)
            let scale = w.scales(block: block, group: g)
            r0 += Int8Dot.toFloat(s0) * scale * SIMD16(repeating: xScales[g])
            r1 += Int8Dot.toFloat(s1) * scale * SIMD16(repeating: xScales[groups + g])
            r2 += Int8Dot.toFloat(s2) * scale * SIMD16(repeating: xScales[2 * groups + g])
            r3 += Int8Dot.toFloat(s3) * scale * SIMD16(repeating: xScales[3 * groups + g])
        }
        return (r0, r1, r2, r3)
    }
}
