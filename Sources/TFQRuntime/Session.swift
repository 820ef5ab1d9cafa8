import TFQKernels
import TFQModel

/// Why a session could not evaluate tokens.
public enum SessionError: Error, Equatable, CustomStringConvertible {
    /// The tokens would take the session past its capacity (`needed` positions of `context`).
    case contextFull(needed: Int, context: Int)
    /// A token id outside 0 ..< vocabulary.
    case invalidToken(Int32, vocabulary: Int)
    /// An evaluation was asked for with no tokens.
    case noTokens
    /// The model's file was truncated while mapped (``TFQFile/isDamaged``).
    case modelFileDamaged(path: String)
    /// The buffers of a session holding `positions` positions (`bytes` in all) could not be allocated.
    case outOfMemory(bytes: Int, positions: Int)

    /// One line naming the problem.
    public var description: String {
        switch self {
        case .modelFileDamaged(let path):
            return "\(path) was truncated while in use; the result is discarded (reopen the model)"

        case .contextFull(let needed, let context): return "\(needed) tokens do not fit in the session's context of \(context)"
        case .invalidToken(let token, let vocabulary): return "token id \(token) is outside the vocabulary (0..<\(vocabulary))"
        case .noTokens: return "no tokens to evaluate"
        case .outOfMemory(let bytes, let positions):
            return "out of memory: a session of \(positions) positions needs \(bytes) bytes (KV cache and scratch buffers)"
        }
    }
}

/// One conversation with a ``Model``: its own KV cache and scratch buffers, all allocated
/// here, once; evaluating tokens allocates nothing. A session is used by one thread at a time.
public final class Session {
    /// The model this session runs.
    public let model: Model
    /// Tokens held in the KV cache.
    public private(set) var position = 0
    /// Positions the session can hold: the model's context, or fewer if asked at creation.
    /// The KV cache and the prefill buffers are sized for this many.
    public let capacity: Int
    /// Bytes the session allocated (KV cache and scratch buffers), all of it touched once
    /// `capacity` positions have been evaluated in one batch.
    public let allocatedBytes: Int

    let kernels: Kernels
    /// The KV cache, per layer in ``CachedAttention``'s layout.
    private let keys: UnsafeMutableRawPointer
    private let values: UnsafeMutableRawPointer
    private let cache: CachedAttention
    /// How the KV cache stores keys and values.
    public var kvCachePrecision: KVCachePrecision { cache.precision }
    private let x, normed, qkv, attention, hidden, gated, branch: UnsafeMutablePointer<Float>
    private let logits: UnsafeMutablePointer<Float>  // [context][vocab]
    private let mean, rstd: UnsafeMutablePointer<Float>
    private let quantized: QuantizationScratch
    private var allocations: [UnsafeMutableRawPointer] = []

    /// The session's GEMM (on its thread pool), for an observer's own products.
    @_spi(Calibration) public var calibrationGEMM: GEMM { kernels.gemm }

    /// Called with every linear layer's input (weight name, `tokens` rows of `columns`
    /// floats) before the layer runs: how export calibrates its quantization.
    @_spi(Calibration) public var linearInputObserver: ((_ weight: String, _ input: UnsafePointer<Float>, _ tokens: Int, _ columns: Int) -> Void)?

    /// A session running its kernels on `threads` threads (default: all processors).
    ///
    /// `kvCache` is how keys and values are cached; the default is half precision for an
    /// int8 model (half the bytes a decode step reads per position, an error well inside
    /// int8's) and floats otherwise (an fp32 model's logits match the training model's).
    ///
    /// `capacity` (default: the model's context) is how many positions the session can
    /// hold: a session that will see at most prompt + N tokens needs no cache for the rest
    /// of the context, which on a small board can be most of the memory.
    ///
    /// Throws ``SessionError/outOfMemory(bytes:positions:)`` when the buffers cannot be allocated (a
    /// process memory limit, say); the sizes themselves cannot overflow, since ``Model``
    /// refuses a config whose session would not fit in this machine's memory.
    public init(model: Model, threads: Int = ThreadPool.availableProcessors, kvCache: KVCachePrecision? = nil,
                capacity: Int? = nil) throws(SessionError) {
        self.model = model
        let c = model.config
        let plan = MemoryPlan(model: model, kvCache: kvCache, capacity: capacity)
        self.capacity = plan.positions
        cache = CachedAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, context: plan.positions, precision: plan.kvCache)
        // Every buffer is written before it is read, so none is zeroed: an untouched page
        // (most of the KV cache and of the prefill buffers, early on) costs no memory.
        var buffers: [UnsafeMutableRawPointer?] = []
        for size in plan.bufferBytes {
            guard size > 0 else { buffers.append(nil); continue }
            guard let buffer = AlignedMemory.availableBytes(size) else {
                for case let allocated? in buffers { AlignedMemory.free(allocated) }
                throw .outOfMemory(bytes: plan.sessionBytes, positions: plan.positions)
            }
            buffers.append(buffer)
        }
        func floats(_ buffer: SessionBuffer) -> UnsafeMutablePointer<Float> {
            buffers[buffer.rawValue]!.bindMemory(to: Float.self, capacity: plan.bufferBytes[buffer.rawValue] / 4)
        }
        keys = buffers[SessionBuffer.keys.rawValue]!; values = buffers[SessionBuffer.values.rawValue]!
        x = floats(.x); normed = floats(.normed); qkv = floats(.qkv); attention = floats(.attention)
        hidden = floats(.hidden); branch = floats(.branch)
        gated = plan.bufferBytes[SessionBuffer.gated.rawValue] > 0 ? floats(.gated) : hidden
        logits = floats(.logits); mean = floats(.mean); rstd = floats(.rstd)
        let int8 = SessionBuffer.int8Values.rawValue
        quantized = QuantizationScratch(values: buffers[int8]!.bindMemory(to: Int8.self, capacity: plan.bufferBytes[int8]),
                                        scales: floats(.int8Scales))
        allocations = buffers.compactMap { $0 }
        allocatedBytes = plan.sessionBytes
        let pool = ThreadPool(threads: threads)
        kernels = Kernels(pool: pool, gemm: GEMM(pool: pool))
    }

    deinit {
        for buffer in allocations { AlignedMemory.free(buffer) }
    }

    /// Forgets every token: the next evaluation starts at position 0.
    public func reset() { position = 0 }

    /// Drops the tokens after `position` (the cache keeps the first `position`).
    public func rewind(to position: Int) {
        precondition(position >= 0 && position <= self.position)
        self.position = position
    }

    /// Runs `tokens` through the model after the ones already in the cache, in one batched
    /// pass, and returns the logits of the last token (or of every token, with `allLogits`),
    /// `vocab` floats each, in an array of the caller's.
    @discardableResult
    public func evaluate(_ tokens: [Int32], allLogits: Bool = false) throws -> [Float] {
        try evaluate(tokens, allLogits: allLogits, borrowingLogits: { Array($0) })
    }

    /// One token, the decode step: returns its logits.
    @discardableResult
    public func evaluate(token: Int32) throws -> [Float] {
        try evaluate(token: token, borrowingLogits: { Array($0) })
    }

    /// The zero-copy variant of ``evaluate(_:allLogits:)``, for the hot path: `body` gets the
    /// session's own logits buffer, which is valid only during the call (the next evaluation
    /// overwrites it). Allocates nothing.
    public func evaluate<Result>(_ tokens: [Int32], allLogits: Bool = false,
                                 borrowingLogits body: (UnsafeBufferPointer<Float>) throws -> Result) throws -> Result {
        try body(tokens.withUnsafeBufferPointer { try evaluateInPlace($0, allLogits: allLogits) })
    }

    /// The zero-copy variant of ``evaluate(token:)``, for the hot path: `body` gets the
    /// session's own logits buffer, valid only during the call. Allocates nothing.
    public func evaluate<Result>(token: Int32, borrowingLogits body: (UnsafeBufferPointer<Float>) throws -> Result) throws -> Result {
        try body(evaluateInPlace(token: token))
    }

    /// One token; the logits stay in the session's buffer until the next evaluation.
    func evaluateInPlace(token: Int32) throws -> UnsafeBufferPointer<Float> {
        var single = token
        return try withUnsafePointer(to: &single) { try evaluateInPlace(UnsafeBufferPointer(start: $0, count: 1), allLogits: false) }
    }

    /// The forward pass over `tokens`: the logits stay in the session's buffer until the
    /// next evaluation.
    func evaluateInPlace(_ tokens: UnsafeBufferPointer<Int32>, allLogits: Bool) throws -> UnsafeBufferPointer<Float> {
        let c = model.config
        guard !tokens.isEmpty else { throw SessionError.noTokens }
        guard position + tokens.count <= capacity else {
            throw SessionError.contextFull(needed: position + tokens.count, context: capacity)
        }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= c.vocabSize }) {
            throw SessionError.invalidToken(bad, vocabulary: c.vocabSize)
        }
        let count = tokens.count, d = c.dim, pool = kernels.pool
        // Embeddings.
        for (t, token) in tokens.enumerated() {
            let row = x + t * d
            switch model.tokenEmbedding {
            case .f32(let table): row.update(from: table + Int(token) * d, count: d)
            case .f16(let table): VectorOps.widen(table + Int(token) * d, into: row, count: d)
            case .q8(let table): table.dequantizeRow(Int(token), into: row)
            }
            if case .learned(let table) = model.positions { VectorOps.add(table + (position + t) * d, into: row, count: d) }
        }
        let kvDim = c.kvDim, rows = c.qkvRows
        for (layer, block) in model.blocks.enumerated() {
            normalize(x, block.attentionNorm, rows: count)
            apply(block.qkv, normed, tokens: count, into: qkv)
            let layerKeys = keys + layer * cache.cacheBytesPerLayer, layerValues = values + layer * cache.cacheBytesPerLayer
            for t in 0..<count {
                let q = qkv + t * rows, key = q + d
                if case .rotary(let rotary) = model.positions {
                    rotary.apply(q, heads: c.heads, position: position + t)
                    rotary.apply(key, heads: c.kvHeads, position: position + t)
                }
                cache.store(key: key, value: key + kvDim, position: position + t, keys: layerKeys, values: layerValues)
            }
            attend(tokens: count, keys: layerKeys, values: layerValues)
            apply(block.proj, attention, tokens: count, into: branch)
            VectorOps.add(branch, into: x, count: count * d)
            normalize(x, block.feedForwardNorm, rows: count)
            switch block.feedForward {
            case .mlp(let up, let down):
                apply(up, normed, tokens: count, into: hidden)
                c.activation.forward(hidden, hidden, count: count * c.ffDim, pool: pool)
                apply(down, hidden, tokens: count, into: branch)
            case .gated(let gate, let up, let down):
                apply(gate, normed, tokens: count, into: hidden)
                apply(up, normed, tokens: count, into: gated)
                c.activation.forward(gate: hidden, up: gated, into: hidden, count: count * c.ffDim, pool: pool)
                apply(down, hidden, tokens: count, into: branch)
            }
            VectorOps.add(branch, into: x, count: count * d)
        }
        // Only the rows whose logits are wanted go through the final norm and the head.
        let first = allLogits ? 0 : count - 1
        let wanted = count - first
        normalize(x + first * d, model.finalNorm, rows: wanted)
        apply(model.head, normed, tokens: wanted, into: logits)
        // A page that vanished under the mapping read as zeros: these logits are not the model's.
        if model.file.isDamaged { throw SessionError.modelFileDamaged(path: model.file.path) }
        position += count
        return UnsafeBufferPointer(start: logits, count: wanted * c.vocabSize)
    }

    /// y = layer(x) for `tokens` rows, shown first to the calibration observer if one is set.
    private func apply(_ layer: Linear, _ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>) {
        linearInputObserver?(layer.name, x, tokens, layer.columns)
        layer.apply(x, tokens: tokens, into: y, scratch: quantized, kernels: kernels)
    }

    /// normed = Norm(rows of `input`).
    private func normalize(_ input: UnsafePointer<Float>, _ norm: Model.Norm, rows: Int) {
        let c = model.config
        switch norm {
        case .layer(let weight, let bias):
            LayerNorm.forward(x: input, weight: weight, bias: bias, y: normed, mean: mean, rstd: rstd,
                              rows: rows, dim: c.dim, eps: c.normEps, pool: kernels.pool)
        case .rms(let weight):
            RMSNorm.forward(x: input, weight: weight, y: normed, rows: rows, dim: c.dim, eps: c.normEps, pool: kernels.pool)
        }
    }

    /// Causal attention of the `tokens` newest positions over the whole cache, heads split
    /// across the pool.
    private func attend(tokens: Int, keys: UnsafeRawPointer, values: UnsafeRawPointer) {
        cache.attend(queries: qkv, queryStride: model.config.qkvRows, tokens: tokens, start: position, keys: keys, values: values,
                     output: attention, outputStride: model.config.dim, pool: kernels.pool)
    }
}
