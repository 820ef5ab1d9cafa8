import TFQKernels

/// The architecture of a GPT model: everything needed to lay out its parameters
/// (formats/tfq.md §9). Stored as the `config` section of every .tfq file.
public struct ModelConfig: Codable, Equatable, Sendable {
    public var arch = "gpt"
    public var vocabSize: Int
    public var contextLength: Int
    public var layers: Int
    public var heads: Int
    public var dim: Int
    public var ffDim: Int
    public var activation: Activation = .relu
    public var tieEmbeddings = false
    public var bias = true
    public var normEps: Float = 1e-5

    enum CodingKeys: String, CodingKey {
        case arch, activation, bias
        case vocabSize = "vocab_size", contextLength = "context_length", layers = "n_layers", heads = "n_heads"
        case dim, ffDim = "ff_dim", tieEmbeddings = "tie_embeddings", normEps = "norm_eps"
    }

    public init(vocabSize: Int, contextLength: Int, layers: Int, heads: Int, dim: Int, ffDim: Int,
                activation: Activation = .relu, tieEmbeddings: Bool = false, bias: Bool = true, normEps: Float = 1e-5) {
        self.vocabSize = vocabSize; self.contextLength = contextLength; self.layers = layers; self.heads = heads
        self.dim = dim; self.ffDim = ffDim; self.activation = activation; self.tieEmbeddings = tieEmbeddings
        self.bias = bias; self.normEps = normEps
    }

    public var headDim: Int { dim / heads }

    /// Why this configuration cannot be built, or nil if it can.
    public var problem: String? {
        if arch != "gpt" { return "unknown architecture '\(arch)'" }
        if vocabSize < 1 || vocabSize > 1 << 20 { return "vocabulary size \(vocabSize) is out of range (1 to 1048576)" }
        if contextLength < 1 || contextLength > 1 << 16 { return "context length \(contextLength) is out of range (1 to 65536)" }
        if layers < 1 || layers > 1024 { return "layers must be 1 to 1024 (got \(layers))" }
        if heads < 1 { return "heads must be at least 1 (got \(heads))" }
        if dim < 1 || dim > 1 << 16 { return "dim \(dim) is out of range (1 to 65536)" }
        if dim % heads != 0 { return "dim \(dim) is not divisible by heads \(heads)" }
        if ffDim < 1 || ffDim > 1 << 18 { return "ff \(ffDim) is out of range (1 to 262144)" }
        if !(normEps > 0) || !normEps.isFinite { return "norm epsilon must be positive" }
        return nil
    }
}
