/// Causal attention of new tokens over a KV cache: the runtime's decode and prefill step.
///
/// The cache layout is this kernel's, per layer and per key/value head:
/// - keys in blocks of 8 positions, [kvHeads][context/8][d_k][8]: the scores of a query
///   against 8 positions are one vector accumulated over d_k contiguous 8-value rows (each
///   key value loaded once, the eight scores kept in a register, the block read in order);
/// - values as [kvHeads][context][d_k]: each 8-wide slice of a head's output is accumulated
///   in a register over consecutive positions.
/// Both stream through memory in order, which the hardware prefetcher follows; a plain
/// [context][kvDim] layout made every score a jump of a whole row. With grouped-query
/// attention, query head h reads key/value head h / (heads / kvHeads).
///
/// The cache holds floats or halves (``KVCachePrecision``); the arithmetic is in floats
/// either way, and halves widen as they load.
public struct CachedAttention {
    /// Query heads, key/value heads, values per head (d_k), and positions the cache holds.
    public let heads: Int, kvHeads: Int, headDim: Int, context: Int
    /// How the cache stores keys and values.
    public let precision: KVCachePrecision
    /// Floats of one position's key (or value), all key/value heads side by side.
    public var kvDim: Int { kvHeads * headDim }
    /// Positions per key block.
    static let block = 8
    var blocks: Int { (context + Self.block - 1) / Self.block }
    /// Values of keys (or of values) per layer.
    public var cacheValuesPerLayer: Int { kvHeads * blocks * Self.block * headDim }
    /// Bytes of keys (or of values) per layer.
    public var cacheBytesPerLayer: Int { cacheValuesPerLayer * precision.bytesPerValue }

    /// Attention for `heads` query heads over `kvHeads` key/value heads, which must divide it.
    public init(heads: Int, kvHeads: Int, headDim: Int, context: Int, precision: KVCachePrecision = .f32) {
        precondition(heads % kvHeads == 0)
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.context = context
        self.precision = precision
    }

    /// Stores the key and value of `position` (`key` and `value`: kvDim floats each, heads
    /// side by side) into one layer's cache, `cacheBytesPerLayer` bytes each.
    @inline(__always)
    public func store(key: UnsafePointer<Float>, value: UnsafePointer<Float>, position: Int,
                      keys: UnsafeMutableRawPointer, values: UnsafeMutableRawPointer) {
        switch precision {
        case .f32: store(Float.self, key: key, value: value, position: position, keys: keys, values: values)
        case .f16: store(Float16.self, key: key, value: value, position: position, keys: keys, values: values)
        }
    }

    @inline(__always)
    private func store<S: CacheScalar>(_: S.Type, key: UnsafePointer<Float>, value: UnsafePointer<Float>, position: Int,
                                       keys: UnsafeMutableRawPointer, values: UnsafeMutableRawPointer) {
        let b = Self.block
        for h in 0..<kvHeads {
            let keyBlock = ((h * blocks + position / b) * headDim) * b + position % b
            for i in 0..<headDim { S.store(key[h * headDim + i], keys, keyBlock + i * b) }
            let valueRow = (h * context + position) * headDim
            for i in 0..<headDim { S.store(value[h * headDim + i], values, valueRow + i) }
        }
    }

    /// For t in 0..<tokens, the query of position `start + t` (at `queries + t·queryStride`,
    /// heads side by side) attends to positions 0…start+t; its output goes to
    /// `output + t·outputStride`. A prompt's queries go four at a time, sharing each key
    /// and value load.
    public func attend(queries: UnsafePointer<Float>, queryStride: Int, tokens: Int, start: Int,
                       keys: UnsafeRawPointer, values: UnsafeRawPointer,
                       output: UnsafeMutablePointer<Float>, outputStride: Int, pool: ThreadPool) {
        switch precision {
        case .f32:
            attend(Float.self, queries: queries, queryStride: queryStride, tokens: tokens, start: start, keys: keys, values: values,
                   output: output, outputStride: outputStride, pool: pool)
        case .f16:
            attend(Float16.self, queries: queries, queryStride: queryStride, tokens: tokens, start: start, keys: keys, values: values,
                   output: output, outputStride: outputStride, pool: pool)
        }
    }

    private func attend<S: CacheScalar>(_ scalar: S.Type, queries: UnsafePointer<Float>, queryStride: Int, tokens: Int, start: Int,
                                        keys: UnsafeRawPointer, values: UnsafeRawPointer,
                                        output: UnsafeMutablePointer<Float>, outputStride: Int, pool: ThreadPool) {
        let quads = tokens / 4, singles = tokens % 4
        pool.parallelFor((quads + singles) * heads) { items in
            // The scores of up to four queries of one head at a time, on the stack: at most
            // `context` floats each (rounded up to whole blocks).
            let row = blocks * Self.block
            withUnsafeTemporaryAllocation(of: Float.self, capacity: 4 * row) { scores in
                for item in items {
                    let unit = item / heads, h = item % heads
                    let kv = h / (heads / kvHeads)
                    let bytes = MemoryLayout<S>.size
                    let headKeys = keys + kv * blocks * Self.block * headDim * bytes, headValues = values + kv * context * headDim * bytes
                    if unit < quads {
                        let t = unit * 4
                        fourQueries(scalar, query: queries + t * queryStride + h * headDim, queryStride: queryStride, visible: start + t + 1,
                                  keys: headKeys, values: headValues,
                                  output: output + t * outputStride + h * headDim, outputStride: outputStride,
                                  p: scores.baseAddress!, row: row)
                    } else {
                        let t = quads * 4 + (unit - quads)
                        head(scalar, query: queries + t * queryStride + h * headDim, visible: start + t + 1,
                             keys: headKeys, values: headValues, output: output + t * outputStride + h * headDim,
                             p: scores.baseAddress!)
                    }
                }
            }
        }
    }

    typealias V = SIMD8<Float>

    // Loops keep independent accumulators where the order of the sum allows: a single one
    // makes every step wait for the previous add (4 cycles).
    @inline(__always)
    private func head<S: CacheScalar>(_ scalar: S.Type, query: UnsafePointer<Float>, visible: Int, keys: UnsafeRawPointer,
                                      values: UnsafeRawPointer, output: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(headDim).squareRoot()
        let rp = UnsafeMutableRawPointer(p)
        // Whole blocks, the last one partly beyond `visible` (those scores are ignored). In
        // each block, even and odd dimensions go to two accumulators added at the end: the
        // order fourQueries uses, so a prompt's scores equal its tokens' decoded one by one.
        // Two blocks at a time, so four independent chains hide the FMA latency.
        let blockCount = (visible + Self.block - 1) / Self.block
        let blockFloats = headDim * Self.block
        var blockIndex = 0
        while blockIndex + 2 <= blockCount {
            let base = blockIndex * blockFloats
            @inline(__always) func key(_ i: Int, _ other: Int) -> V { S.load8(keys, base + other * blockFloats + i * Self.block) }
            var a0 = V(), b0 = V(), a1 = V(), b1 = V()
            var i = 0
            while i + 2 <= headDim {
                let q0 = V(repeating: query[i]), q1 = V(repeating: query[i + 1])
                multiplyAdd(&a0, q0, key(i, 0)); multiplyAdd(&b0, q1, key(i + 1, 0))
                multiplyAdd(&a1, q0, key(i, 1)); multiplyAdd(&b1, q1, key(i + 1, 1))
                i += 2
            }
            if i < headDim {
                let q = V(repeating: query[i])
                multiplyAdd(&a0, q, key(i, 0)); multiplyAdd(&a1, q, key(i, 1))
            }
            rp.storeBytes(of: (a0 + b0) * V(repeating: scale), toByteOffset: blockIndex * Self.block * 4, as: V.self)
            rp.storeBytes(of: (a1 + b1) * V(repeating: scale), toByteOffset: (blockIndex + 1) * Self.block * 4, as: V.self)
            blockIndex += 2
        }
        if blockIndex < blockCount {
            let base = blockIndex * blockFloats
            @inline(__always) func key(_ i: Int) -> V { S.load8(keys, base + i * Self.block) }
            var a = V(), b = V()
            var i = 0
            while i + 2 <= headDim {
                multiplyAdd(&a, V(repeating: query[i]), key(i))
                multiplyAdd(&b, V(repeating: query[i + 1]), key(i + 1))
                i += 2
            }
            if i < headDim { multiplyAdd(&a, V(repeating: query[i]), key(i)) }
            rp.storeBytes(of: (a + b) * V(repeating: scale), toByteOffset: blockIndex * Self.block * 4, as: V.self)
        }
        Softmax.inPlace(p, count: visible)
        let ro = UnsafeMutableRawPointer(output)
        let stride = headDim
        @inline(__always) func value(_ j: Int, _ c: Int) -> V { S.load8(values, j * stride + c) }
        var c = 0
        // 64 columns at a time: each position's values are read once, in order, into eight
        // accumulators (narrower passes re-read every position's row once per pass).
        while c + 64 <= headDim {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), a4 = V(), a5 = V(), a6 = V(), a7 = V()
            for j in 0..<visible {
                let w = V(repeating: p[j])
                multiplyAdd(&a0, w, value(j, c)); multiplyAdd(&a1, w, value(j, c + 8))
                multiplyAdd(&a2, w, value(j, c + 16)); multiplyAdd(&a3, w, value(j, c + 24))
                multiplyAdd(&a4, w, value(j, c + 32)); multiplyAdd(&a5, w, value(j, c + 40))
                multiplyAdd(&a6, w, value(j, c + 48)); multiplyAdd(&a7, w, value(j, c + 56))
            }
            ro.storeBytes(of: a0, toByteOffset: c * 4, as: V.self); ro.storeBytes(of: a1, toByteOffset: (c + 8) * 4, as: V.self)
            ro.storeBytes(of: a2, toByteOffset: (c + 16) * 4, as: V.self); ro.storeBytes(of: a3, toByteOffset: (c + 24) * 4, as: V.self)
            ro.storeBytes(of: a4, toByteOffset: (c + 32) * 4, as: V.self); ro.storeBytes(of: a5, toByteOffset: (c + 40) * 4, as: V.self)
            ro.storeBytes(of: a6, toByteOffset: (c + 48) * 4, as: V.self); ro.storeBytes(of: a7, toByteOffset: (c + 56) * 4, as: V.self)
            c += 64
        }
        // Every output column is one sum over the positions in order, in every path here and
        // in fourQueries: prefill and decode agree bit for bit.
        while c + 32 <= headDim {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for j in 0..<visible {
                let w = V(repeating: p[j])
                multiplyAdd(&a0, w, value(j, c)); multiplyAdd(&a1, w, value(j, c + 8))
                multiplyAdd(&a2, w, value(j, c + 16)); multiplyAdd(&a3, w, value(j, c + 24))
            }
            ro.storeBytes(of: a0, toByteOffset: c * 4, as: V.self); ro.storeBytes(of: a1, toByteOffset: (c + 8) * 4, as: V.self)
            ro.storeBytes(of: a2, toByteOffset: (c + 16) * 4, as: V.self); ro.storeBytes(of: a3, toByteOffset: (c + 24) * 4, as: V.self)
            c += 32
        }
        while c + 16 <= headDim {
            var a0 = V(), a1 = V()
            for j in 0..<visible {
                let w = V(repeating: p[j])
                multiplyAdd(&a0, w, value(j, c)); multiplyAdd(&a1, w, value(j, c + 8))
            }
            ro.storeBytes(of: a0, toByteOffset: c * 4, as: V.self)
            ro.storeBytes(of: a1, toByteOffset: (c + 8) * 4, as: V.self)
            c += 16
        }
        valueTail(scalar, from: c, visible: visible, p: p, pStride: 0, queries: 1, values: values, output: output, outputStride: 0)
    }

    /// Four consecutive queries of one head; the first sees `visible` positions, the next
    /// ones one more each. Scores of a query beyond what it sees are zeroed after its softmax,
    /// so all four share one pass over the values.
    @inline(__always)
    private func fourQueries<S: CacheScalar>(_ scalar: S.Type, query: UnsafePointer<Float>, queryStride: Int, visible: Int,
                                             keys: UnsafeRawPointer, values: UnsafeRawPointer, output: UnsafeMutablePointer<Float>,
                                             outputStride: Int, p: UnsafeMutablePointer<Float>, row: Int) {
        let scale = V(repeating: 1 / Float(headDim).squareRoot())
        let rp = UnsafeMutableRawPointer(p)
        let q0 = query, q1 = query + queryStride, q2 = query + 2 * queryStride, q3 = query + 3 * queryStride
        let widest = visible + 3
        for blockIndex in 0..<((widest + Self.block - 1) / Self.block) {
            let base = blockIndex * headDim * Self.block
            @inline(__always) func key(_ i: Int) -> V { S.load8(keys, base + i * Self.block) }
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), b0 = V(), b1 = V(), b2 = V(), b3 = V()
            var i = 0
            while i + 2 <= headDim {
                let k = key(i), l = key(i + 1)
                multiplyAdd(&a0, V(repeating: q0[i]), k); multiplyAdd(&b0, V(repeating: q0[i + 1]), l)
                multiplyAdd(&a1, V(repeating: q1[i]), k); multiplyAdd(&b1, V(repeating: q1[i + 1]), l)
                multiplyAdd(&a2, V(repeating: q2[i]), k); multiplyAdd(&b2, V(repeating: q2[i + 1]), l)
                multiplyAdd(&a3, V(repeating: q3[i]), k); multiplyAdd(&b3, V(repeating: q3[i + 1]), l)
                i += 2
            }
            if i < headDim {
                let k = key(i)
                multiplyAdd(&a0, V(repeating: q0[i]), k); multiplyAdd(&a1, V(repeating: q1[i]), k)
                multiplyAdd(&a2, V(repeating: q2[i]), k); multiplyAdd(&a3, V(repeating: q3[i]), k)
            }
            let offset = blockIndex * Self.block * 4
            rp.storeBytes(of: (a0 + b0) * scale, toByteOffset: offset, as: V.self)
            rp.storeBytes(of: (a1 + b1) * scale, toByteOffset: offset + row * 4, as: V.self)
            rp.storeBytes(of: (a2 + b2) * scale, toByteOffset: offset + 2 * row * 4, as: V.self)
            rp.storeBytes(of: (a3 + b3) * scale, toByteOffset: offset + 3 * row * 4, as: V.self)
        }
        for q in 0..<4 {
            Softmax.inPlace(p + q * row, count: visible + q)
            for j in (visible + q)..<widest { p[q * row + j] = 0 }
        }
        let ro = UnsafeMutableRawPointer(output)
        let stride = headDim
        @inline(__always) func value(_ j: Int, _ c: Int) -> V { S.load8(values, j * stride + c) }
        var c = 0
        while c + 16 <= headDim {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V(), b0 = V(), b1 = V(), b2 = V(), b3 = V()
            for j in 0..<widest {
                let low = value(j, c), high = value(j, c + 8)
                let w0 = V(repeating: p[j]), w1 = V(repeating: p[row + j])
                let w2 = V(repeating: p[2 * row + j]), w3 = V(repeating: p[3 * row + j])
                multiplyAdd(&a0, w0, low); multiplyAdd(&b0, w0, high)
                multiplyAdd(&a1, w1, low); multiplyAdd(&b1, w1, high)
                multiplyAdd(&a2, w2, low); multiplyAdd(&b2, w2, high)
                multiplyAdd(&a3, w3, low); multiplyAdd(&b3, w3, high)
            }
            ro.storeBytes(of: a0, toByteOffset: c * 4, as: V.self); ro.storeBytes(of: b0, toByteOffset: (c + 8) * 4, as: V.self)
            ro.storeBytes(of: a1, toByteOffset: (outputStride + c) * 4, as: V.self)
            ro.storeBytes(of: b1, toByteOffset: (outputStride + c + 8) * 4, as: V.self)
            ro.storeBytes(of: a2, toByteOffset: (2 * outputStride + c) * 4, as: V.self)
            ro.storeBytes(of: b2, toByteOffset: (2 * outputStride + c + 8) * 4, as: V.self)
            ro.storeBytes(of: a3, toByteOffset: (3 * outputStride + c) * 4, as: V.self)
            ro.storeBytes(of: b3, toByteOffset: (3 * outputStride + c + 8) * 4, as: V.self)
            c += 16
        }
        valueTail(scalar, from: c, visible: widest, p: p, pStride: row, queries: 4, values: values, output: output, outputStride: outputStride)
    }

    /// The output columns from `c` on when the head size is not a multiple of 16: weighted
    /// sums of the values for `queries` score rows `pStride` apart.
    @inline(__always)
    private func valueTail<S: CacheScalar>(_: S.Type, from start: Int, visible: Int, p: UnsafePointer<Float>, pStride: Int,
                                           queries: Int, values: UnsafeRawPointer, output: UnsafeMutablePointer<Float>,
                                           outputStride: Int) {
        guard start < headDim else { return }
        for q in 0..<queries {
            let scores = p + q * pStride, out = output + q * outputStride
            var c = start
            while c + 8 <= headDim {
                var a = V()
                for j in 0..<visible {
                    multiplyAdd(&a, V(repeating: scores[j]), S.load8(values, j * headDim + c))
                }
                UnsafeMutableRawPointer(out + c).storeBytes(of: a, as: V.self)
                c += 8
            }
            while c < headDim {
                var a: Float = 0
                for j in 0..<visible { multiplyAdd(&a, scores[j], S.load(values, j * headDim + c)) }
                out[c] = a
                c += 1
            }
        }
    }
}
