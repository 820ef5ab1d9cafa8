/// Causal attention of new tokens over a KV cache: the runtime's decode and prefill step.
///
/// The cache layout is this kernel's, per layer and per key/value head:
/// - keys in blocks of 8 positions, [kvHeads][context/8][d_k][8]: the scores of a query
///   against 8 positions are one vector accumulated over d_k contiguous 32-byte rows (each
///   key value loaded once, the eight scores kept in a register, the block read in order);
/// - values as [kvHeads][context][d_k]: each 8-wide slice of a head's output is accumulated
///   in a register over consecutive positions.
/// Both stream through memory in order, which the hardware prefetcher follows; a plain
/// [context][kvDim] layout made every score a jump of a whole row. With grouped-query
/// attention, query head h reads key/value head h / (heads / kvHeads).
public struct CachedAttention {
    public let heads: Int, kvHeads: Int, headDim: Int, context: Int
    public var kvDim: Int { kvHeads * headDim }
    /// Positions per key block.
    static let block = 8
    var blocks: Int { (context + Self.block - 1) / Self.block }
    /// Floats of keys (or of values) per layer.
    public var cacheFloatsPerLayer: Int { kvHeads * blocks * Self.block * headDim }

    public init(heads: Int, kvHeads: Int, headDim: Int, context: Int) {
        precondition(heads % kvHeads == 0)
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.context = context
    }

    /// Stores the key and value of `position` (`key` and `value`: kvDim floats each, heads
    /// side by side) into one layer's cache.
    @inline(__always)
    public func store(key: UnsafePointer<Float>, value: UnsafePointer<Float>, position: Int,
                      keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        let b = Self.block
        for h in 0..<kvHeads {
            let keyBlock = keys + ((h * blocks + position / b) * headDim) * b + position % b
            for i in 0..<headDim { keyBlock[i * b] = key[h * headDim + i] }
            (values + (h * context + position) * headDim).update(from: value + h * headDim, count: headDim)
        }
    }

    /// For t in 0..<tokens, the query of position `start + t` (at `queries + t·queryStride`,
    /// heads side by side) attends to positions 0…start+t; its output goes to
    /// `output + t·outputStride`.
    public func attend(queries: UnsafePointer<Float>, queryStride: Int, tokens: Int, start: Int,
                       keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                       output: UnsafeMutablePointer<Float>, outputStride: Int, pool: ThreadPool) {
        pool.parallelFor(tokens * heads) { items in
            // The scores of one (token, head) at a time, on the stack: at most `context` floats
            // (rounded up to whole blocks).
            withUnsafeTemporaryAllocation(of: Float.self, capacity: blocks * Self.block) { scores in
                for item in items {
                    let t = item / heads, h = item % heads
                    let kv = h / (heads / kvHeads)
                    head(query: queries + t * queryStride + h * headDim, visible: start + t + 1,
                         keys: keys + kv * blocks * Self.block * headDim, values: values + kv * context * headDim,
                         output: output + t * outputStride + h * headDim, p: scores.baseAddress!)
                }
            }
        }
    }

    typealias V = SIMD8<Float>

    // Each loop keeps several independent accumulators: a single one makes every step wait
    // for the previous add (4 cycles), and the loops were latency-bound.
    @inline(__always)
    private func head(query: UnsafePointer<Float>, visible: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      output: UnsafeMutablePointer<Float>, p: UnsafeMutablePointer<Float>) {
        let scale = 1 / Float(headDim).squareRoot()
        let rk = UnsafeRawPointer(keys), rp = UnsafeMutableRawPointer(p)
        // Whole blocks, the last one partly beyond `visible` (those scores are ignored).
        for blockIndex in 0..<((visible + Self.block - 1) / Self.block) {
            let base = blockIndex * headDim * Self.block
            @inline(__always) func key(_ i: Int) -> V { rk.loadUnaligned(fromByteOffset: (base + i * Self.block) * 4, as: V.self) }
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            var i = 0
            while i + 4 <= headDim {
                a0 += V(repeating: query[i]) * key(i)
                a1 += V(repeating: query[i + 1]) * key(i + 1)
                a2 += V(repeating: query[i + 2]) * key(i + 2)
                a3 += V(repeating: query[i + 3]) * key(i + 3)
                i += 4
            }
            while i < headDim { a0 += V(repeating: query[i]) * key(i); i += 1 }
            rp.storeBytes(of: ((a0 + a1) + (a2 + a3)) * V(repeating: scale), toByteOffset: blockIndex * Self.block * 4, as: V.self)
        }
        Softmax.inPlace(p, count: visible)
        let rv = UnsafeRawPointer(values), ro = UnsafeMutableRawPointer(output)
        let stride = headDim
        @inline(__always) func value(_ j: Int, _ c: Int) -> V { rv.loadUnaligned(fromByteOffset: (j * stride + c) * 4, as: V.self) }
        var c = 0
        while c + 16 <= headDim {
            var a0 = V(), a1 = V(), b0 = V(), b1 = V()
            var j = 0
            while j + 2 <= visible {
                let w0 = V(repeating: p[j]), w1 = V(repeating: p[j + 1])
                a0 += w0 * value(j, c); a1 += w0 * value(j, c + 8)
                b0 += w1 * value(j + 1, c); b1 += w1 * value(j + 1, c + 8)
                j += 2
            }
            if j < visible { let w = V(repeating: p[j]); a0 += w * value(j, c); a1 += w * value(j, c + 8) }
            ro.storeBytes(of: a0 + b0, toByteOffset: c * 4, as: V.self)
            ro.storeBytes(of: a1 + b1, toByteOffset: (c + 8) * 4, as: V.self)
            c += 16
        }
        while c + 8 <= headDim {
            var a = V(), b = V()
            var j = 0
            while j + 2 <= visible { a += V(repeating: p[j]) * value(j, c); b += V(repeating: p[j + 1]) * value(j + 1, c); j += 2 }
            if j < visible { a += V(repeating: p[j]) * value(j, c) }
            ro.storeBytes(of: a + b, toByteOffset: c * 4, as: V.self)
            c += 8
        }
        while c < headDim {
            var a: Float = 0
            for j in 0..<visible { a += p[j] * values[j * stride + c] }
            output[c] = a
            c += 1
        }
    }
}
