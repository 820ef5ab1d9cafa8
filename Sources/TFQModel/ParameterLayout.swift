/// One named tensor inside the flat parameter buffer.
public struct ParameterTensor: Sendable, Equatable {
    /// The tensor's name in a .tfq file (``TensorName``).
    public let name: String
    /// The dimensions, outermost first; linear weights are [out, in].
    public let shape: [Int]
    /// Offset in floats from the start of the buffer.
    public let offset: Int
    /// The number of elements: floats it takes in the buffer.
    public var count: Int { shape.reduce(1, *) }
    /// Matrices (and embeddings) get weight decay; gains and biases do not.
    public var isMatrix: Bool { shape.count >= 2 }
}

/// Where each block's parameters sit in the flat buffer (offsets in floats); nil where the
/// configuration has no such tensor (biases with `bias: false`).
public struct BlockOffsets: Sendable {
    /// The LayerNorm before attention: gain and bias.
    public let ln1Weight: Int, ln1Bias: Int?
    /// The fused Q/K/V projection: weight [3·dim, dim] and bias.
    public let qkvWeight: Int, qkvBias: Int?
    /// The attention output projection: weight [dim, dim] and bias.
    public let projWeight: Int, projBias: Int?
    /// The LayerNorm before the feed-forward block: gain and bias.
    public let ln2Weight: Int, ln2Bias: Int?
    /// The feed-forward up projection: weight [ffDim, dim] and bias.
    public let upWeight: Int, upBias: Int?
    /// The feed-forward down projection: weight [dim, ffDim] and bias.
    public let downWeight: Int, downBias: Int?
}

/// The order, names and shapes of a model's parameters (formats/tfq.md §9): one flat
/// buffer with named views, and a gradient buffer of the same layout.
public struct ParameterLayout: Sendable {
    /// The configuration laid out.
    public let config: ModelConfig
    /// Every parameter tensor in buffer order, each starting where the previous one ends.
    public private(set) var tensors: [ParameterTensor] = []
    /// Each block's offsets, by block index.
    public private(set) var blocks: [BlockOffsets] = []
    /// Offsets of `tok_emb` and `pos_emb`, in floats.
    public private(set) var tokenEmbedding = 0, positionEmbedding = 0
    /// Offsets of the final LayerNorm's gain and bias (`ln_f`), in floats; the bias is nil without biases.
    public private(set) var finalNormWeight = 0, finalNormBias: Int? = nil
    /// The output projection: its own tensor, or the token embedding when tied.
    public private(set) var head = 0
    /// The length of the whole buffer, in floats: the parameter count.
    public var count: Int { tensors.last.map { $0.offset + $0.count } ?? 0 }

    /// Lays out `config`'s parameters as the gpt architecture has them, in the order of formats/tfq.md §9.1.
    public init(config: ModelConfig) {
        self.config = config
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        tokenEmbedding = add(TensorName.tokenEmbedding, [v, d])
        positionEmbedding = add(TensorName.positionEmbedding, [config.contextLength, d])
        for i in 0..<config.layers {
            let p = TensorName.Block(i)
            let ln1w = add(p.ln1Weight, [d]), ln1b = addBias(p.ln1Bias, d)
            let qkvw = add(p.qkvWeight, [3 * d, d]), qkvb = addBias(p.qkvBias, 3 * d)
            let projw = add(p.projWeight, [d, d]), projb = addBias(p.projBias, d)
            let ln2w = add(p.ln2Weight, [d]), ln2b = addBias(p.ln2Bias, d)
            let upw = add(p.upWeight, [f, d]), upb = addBias(p.upBias, f)
            let downw = add(p.downWeight, [d, f]), downb = addBias(p.downBias, d)
            blocks.append(BlockOffsets(ln1Weight: ln1w, ln1Bias: ln1b, qkvWeight: qkvw, qkvBias: qkvb, projWeight: projw, projBias: projb,
                                       ln2Weight: ln2w, ln2Bias: ln2b, upWeight: upw, upBias: upb, downWeight: downw, downBias: downb))
        }
        finalNormWeight = add(TensorName.finalNormWeight, [d])
        finalNormBias = addBias(TensorName.finalNormBias, d)
        head = config.tieEmbeddings ? tokenEmbedding : add(TensorName.separateHead, [v, d])
    }

    /// The tensor named `name`, or nil when the layout has none.
    public func tensor(named name: String) -> ParameterTensor? { tensors.first { $0.name == name } }

    private mutating func add(_ name: String, _ shape: [Int]) -> Int {
        let offset = count
        tensors.append(ParameterTensor(name: name, shape: shape, offset: offset))
        return offset
    }

    private mutating func addBias(_ name: String, _ size: Int) -> Int? {
        config.bias ? add(name, [size]) : nil
    }
}
