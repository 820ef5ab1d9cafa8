import TFQKernels

/// A model's architecture: everything needed to lay out its parameters (formats/tfq.md §9).
/// Stored as the `config` section of every .tfq file.
///
/// Two architectures share it: `gpt` (the seed's: learned positions, LayerNorm, an MLP with
/// ReLU, GELU or SiLU, optional biases; trainable) and `llama` (RMSNorm, rotary positions, SwiGLU,
/// grouped-query attention, no biases; imported, inference only).
public struct ModelConfig: Codable, Equatable, Sendable {
    /// The value of `arch`: which of formats/tfq.md §9.1 (gpt) and §9.2 (llama) the model follows.
    public enum Architecture: String, Codable, Sendable, CaseIterable {
        case gpt, llama
    }

    /// The architecture (`arch`, formats/tfq.md §9).
    public var arch = Architecture.gpt
    /// Tokens in the vocabulary (`vocab_size`); token ids are 0 ..< vocabSize.
    public var vocabSize: Int
    /// The most positions a sequence may have (`context_length`; the rows of gpt's `pos_emb`).
    public var contextLength: Int
    /// Transformer blocks (`n_layers`).
    public var layers: Int
    /// Attention (query) heads (`n_heads`); divides `dim`.
    public var heads: Int
    /// Key/value heads (llama's grouped-query attention); equal to `heads` for gpt.
    public var kvHeads: Int
    /// The model width (`dim`): the length of each position's residual vector, in floats.
    public var dim: Int
    /// The feed-forward block's hidden width (`ff_dim`).
    public var ffDim: Int
    /// The feed-forward nonlinearity (`activation`); silu for llama.
    public var activation: Activation = .relu
    /// Whether `tok_emb` is also the classifier, with no `lm_head.weight` (`tie_embeddings`).
    public var tieEmbeddings = false
    /// Whether linear layers and LayerNorms have bias tensors (`bias`); false for llama.
    public var bias = true
    /// The norms' epsilon (`norm_eps`), added to the variance (LayerNorm) or mean square (RMSNorm).
    public var normEps: Float = 1e-5
    /// The base of the rotary position frequencies (llama).
    public var ropeTheta: Float = 10_000

    enum CodingKeys: String, CodingKey {
        case arch, activation, bias
        case vocabSize = "vocab_size", contextLength = "context_length", layers = "n_layers", heads = "n_heads"
        case kvHeads = "n_kv_heads", dim, ffDim = "ff_dim", tieEmbeddings = "tie_embeddings", normEps = "norm_eps"
        case ropeTheta = "rope_theta"
    }

    /// A gpt-architecture configuration, with `kvHeads` equal to `heads`.
    public init(vocabSize: Int, contextLength: Int, layers: Int, heads: Int, dim: Int, ffDim: Int,
                activation: Activation = .relu, tieEmbeddings: Bool = false, bias: Bool = true, normEps: Float = 1e-5) {
        self.vocabSize = vocabSize; self.contextLength = contextLength; self.layers = layers; self.heads = heads
        self.kvHeads = heads; self.dim = dim; self.ffDim = ffDim; self.activation = activation
        self.tieEmbeddings = tieEmbeddings; self.bias = bias; self.normEps = normEps
    }

    /// A llama-architecture configuration (llama2.c's `Config`).
    public static func llama(vocabSize: Int, contextLength: Int, layers: Int, heads: Int, kvHeads: Int, dim: Int, ffDim: Int,
                             tieEmbeddings: Bool, normEps: Float = 1e-5, ropeTheta: Float = 10_000) -> ModelConfig {
        var config = ModelConfig(vocabSize: vocabSize, contextLength: contextLength, layers: layers, heads: heads, dim: dim, ffDim: ffDim,
                                 activation: .silu, tieEmbeddings: tieEmbeddings, bias: false, normEps: normEps)
        config.arch = .llama
        config.kvHeads = kvHeads
        config.ropeTheta = ropeTheta
        return config
    }

    /// Reads the `config` object of formats/tfq.md §9: `n_kv_heads` defaults to `n_heads`, `rope_theta` to
    /// 10000, and an unknown `arch` is refused.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let name = try c.decode(String.self, forKey: .arch)
        guard let arch = Architecture(rawValue: name) else {
            throw DecodingError.dataCorruptedError(forKey: .arch, in: c, debugDescription: "unknown architecture '\(name)'")
        }
        self.arch = arch
        vocabSize = try c.decode(Int.self, forKey: .vocabSize)
        contextLength = try c.decode(Int.self, forKey: .contextLength)
        layers = try c.decode(Int.self, forKey: .layers)
        heads = try c.decode(Int.self, forKey: .heads)
        kvHeads = try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? heads
        dim = try c.decode(Int.self, forKey: .dim)
        ffDim = try c.decode(Int.self, forKey: .ffDim)
        activation = try c.decode(Activation.self, forKey: .activation)
        tieEmbeddings = try c.decode(Bool.self, forKey: .tieEmbeddings)
        bias = try c.decode(Bool.self, forKey: .bias)
        guard let normEps = try Self.float(c, .normEps) else {
            throw DecodingError.keyNotFound(CodingKeys.normEps, .init(codingPath: c.codingPath, debugDescription: "no norm_eps"))
        }
        self.normEps = normEps
        ropeTheta = try Self.float(c, .ropeTheta) ?? 10_000
    }

    /// A 32-bit float field, read as the JSON number it is: a number beyond Float's range
    /// (1e308) is valid JSON, and the error says that the value is out of range.
    private static func float(_ c: KeyedDecodingContainer<CodingKeys>, _ key: CodingKeys) throws -> Float? {
        guard let value = try c.decodeIfPresent(Double.self, forKey: key) else { return nil }
        let float = Float(value)
        guard float.isFinite || !value.isFinite else {
            throw DecodingError.dataCorruptedError(forKey: key, in: c,
                                                   debugDescription: "\(value) is out of range for a 32-bit float (at most \(Float.greatestFiniteMagnitude))")
        }
        return float
    }

    /// Writes the `config` object of formats/tfq.md §9, with `n_kv_heads` and `rope_theta` for llama only.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(arch, forKey: .arch)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(contextLength, forKey: .contextLength)
        try c.encode(layers, forKey: .layers)
        try c.encode(heads, forKey: .heads)
        try c.encode(dim, forKey: .dim)
        try c.encode(ffDim, forKey: .ffDim)
        try c.encode(activation, forKey: .activation)
        try c.encode(tieEmbeddings, forKey: .tieEmbeddings)
        try c.encode(bias, forKey: .bias)
        try c.encode(normEps, forKey: .normEps)
        // Keys of the llama architecture only: gpt files stay as version 1.0 wrote them.
        if arch == .llama {
            try c.encode(kvHeads, forKey: .kvHeads)
            try c.encode(ropeTheta, forKey: .ropeTheta)
        }
    }

    /// Width of one attention head, `dim / heads` (d_k in formats/tfq.md §9).
    public var headDim: Int { dim / heads }
    /// Width of the keys (and values) of one position: `kvHeads · headDim`.
    public var kvDim: Int { kvHeads * headDim }
    /// Rows of the fused Q/K/V projection.
    public var qkvRows: Int { dim + 2 * kvDim }

    /// Why this configuration cannot be built, or nil if it can.
    public var problem: String? {
        if vocabSize < 1 || vocabSize > 1 << 20 { return "vocabulary size \(vocabSize) is out of range (1 to 1048576)" }
        if contextLength < 1 || contextLength > 1 << 16 { return "context length \(contextLength) is out of range (1 to 65536)" }
        if layers < 1 || layers > 1024 { return "layers must be 1 to 1024 (got \(layers))" }
        if heads < 1 || heads > 1 << 12 { return "heads must be 1 to 4096 (got \(heads))" }
        if dim < 1 || dim > 1 << 16 { return "dim \(dim) is out of range (1 to 65536)" }
        if dim % heads != 0 { return "dim \(dim) is not divisible by heads \(heads)" }
        if ffDim < 1 || ffDim > 1 << 18 { return "ff \(ffDim) is out of range (1 to 262144)" }
        if !(normEps > 0) || !normEps.isFinite { return "norm epsilon must be positive" }
        switch arch {
        case .gpt:
            if kvHeads != heads { return "the gpt architecture has no grouped-query attention (n_kv_heads \(kvHeads) ≠ n_heads \(heads))" }
        case .llama:
            if kvHeads < 1 || heads % kvHeads != 0 { return "n_kv_heads \(kvHeads) does not divide n_heads \(heads)" }
            if headDim % 2 != 0 { return "rotary embeddings need an even head size (got \(headDim))" }
            if activation != .silu { return "the llama architecture's feed-forward is SwiGLU (activation silu)" }
            if bias { return "the llama architecture has no biases" }
            if !(ropeTheta > 1) || !ropeTheta.isFinite { return "rope_theta must be above 1" }
        }
        return nil
    }
}
