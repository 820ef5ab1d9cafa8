import TFQFormat
import TFQKernels
import TFQModel

/// What running a model takes in memory, computed before anything is allocated: the
/// weights as loaded, and a session's KV cache and scratch buffers for its capacity.
///
/// `tfq run` checks it against the memory the system has available and refuses to start a
/// run that would not fit, instead of letting the kernel's out-of-memory killer end it (or
/// another program) halfway.
public struct MemoryPlan: Sendable, Equatable {
    /// Positions the session holds.
    public let positions: Int
    /// How the session's KV cache stores keys and values.
    public let kvCache: KVCachePrecision
    /// The weights once loaded: raw tensors as mapped (read from the page cache as they are
    /// touched), zstd tensors decoded, fp16 tensors other than the vocabulary tables
    /// converted to fp32.
    public let weightBytes: Int
    /// The part of ``weightBytes`` that opening the model has already allocated (decoded
    /// zstd tensors, fp32 copies of fp16 ones): no longer counted as available memory.
    public let loadedWeightBytes: Int
    /// What running still needs beyond what the open model holds: mapped weights and the
    /// session.
    public var bytesStillNeeded: Int { weightBytes - loadedWeightBytes + sessionBytes }
    /// Keys and values for `positions` positions.
    public let cacheBytes: Int
    /// Everything a session allocates, the cache included.
    public let sessionBytes: Int
    /// Weights and session together.
    public var totalBytes: Int { weightBytes + sessionBytes }
    /// The bytes of each of the session's buffers, in ``SessionBuffer`` order (0: not allocated).
    let bufferBytes: [Int]

    /// The plan for a session on `model` (see ``Session/init(model:threads:kvCache:capacity:)``
    /// for the defaults of `kvCache` and `capacity`).
    public init(model: Model, kvCache: KVCachePrecision? = nil, capacity: Int? = nil) {
        let c = model.config
        let n = max(1, min(c.contextLength, capacity ?? c.contextLength))
        positions = n
        self.kvCache = kvCache ?? (model.isQuantized ? .f16 : .f32)
        let cache = CachedAttention(heads: c.heads, kvHeads: c.kvHeads, headDim: c.headDim, context: n, precision: self.kvCache)
        let (d, f, v) = (c.dim, c.ffDim, c.vocabSize)
        func floats(_ count: Int) -> Int { max(1, count) * 4 }
        let isGated = if case .gated = model.blocks[0].feedForward { true } else { false }
        let rowsPerToken = model.hasTwoPassLayers ? 2 : 1
        let perCache = floats((c.layers * cache.cacheBytesPerLayer + 3) / 4)   // keys, and again values
        bufferBytes = SessionBuffer.allCases.map { buffer in
            switch buffer {
            case .keys, .values: perCache
            case .x, .normed, .attention, .branch: floats(n * d)
            case .qkv: floats(n * c.qkvRows)
            case .hidden: floats(n * f)
            case .gated: isGated ? floats(n * f) : 0
            case .logits: floats(n * v)
            case .mean, .rstd: floats(n)
            case .int8Values: n * max(d, f) * rowsPerToken
            case .int8Scales: floats(n * max(1, model.maxGroups) * rowsPerToken)
            }
        }
        cacheBytes = 2 * perCache
        sessionBytes = bufferBytes.reduce(0, +)
        var weights = 0, loaded = 0
        for info in model.file.tensors {
            weights += info.encoding == .raw ? info.storedLength : info.decodedLength
            if info.encoding != .raw { loaded += info.decodedLength }
        }
        weights += model.convertedBytes   // the fp32 copies of fp16 tensors made at open
        loaded += model.convertedBytes
        weightBytes = weights
        loadedWeightBytes = loaded
    }
}

/// The buffers a ``Session`` allocates, each sized by ``MemoryPlan``.
enum SessionBuffer: Int, CaseIterable {
    /// The KV cache, per layer in ``CachedAttention``'s layout.
    case keys, values
    /// Per position: the residual stream, its normalized copy, Q·K·V, attention output,
    /// the feed-forward's hidden layer (and its gate, llama only), a sub-layer's output.
    case x, normed, qkv, attention, hidden, gated, branch
    /// Per position: the vocabulary's logits.
    case logits
    /// Per position: a norm's mean and reciprocal standard deviation.
    case mean, rstd
    /// Per position: a linear layer's input quantized to int8, and its group scales.
    case int8Values, int8Scales
}
