/// One named tensor inside the flat parameter buffer.
public struct ParameterTensor: Sendable, Equatable {
    public let name: String
    public let shape: [Int]
    /// Offset in floats from the start of the buffer.
    public let offset: Int
    public var count: Int { shape.reduce(1, *) }
    /// Matrices (and embeddings) get weight decay; gains and biases do not.
    public var isMatrix: Bool { shape.count >= 2 }
}

/// Where each block's parameters sit in the flat buffer (offsets in floats); nil where the
/// configuration has no such tensor (biases with `bias: false`).
public struct BlockOffsets: Sendable {
    public let ln1Weight: Int, ln1Bias: Int?
    public let qkvWeight: Int, qkvBias: Int?
    public let projWeight: Int, projBias: Int?
    public let ln2Weight: Int, ln2Bias: Int?
    public let upWeight: Int, upBias: Int?
    public let downWeight: Int, downBias: Int?
}

/// The order, names and shapes of a model's parameters (formats/tfq.md §9): one flat
/// buffer with named views, and a gradient buffer of the same layout.
public struct ParameterLayout: Sendable {
    public let config: ModelConfig
    public private(set) var tensors: [ParameterTensor] = []
    public private(set) var blocks: [BlockOffsets] = []
    public private(set) var tokenEmbedding = 0, positionEmbedding = 0
    public private(set) var finalNormWeight = 0, finalNormBias: Int? = nil
    /// The output projection: its own tensor, or the token embedding when tied.
    public private(set) var head = 0
    public var count: Int { tensors.last.map { $0.offset + $0.count } ?? 0 }

    public init(config: ModelConfig) {
        self.config = config
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        tokenEmbedding = add("tok_emb", [v, d])
        positionEmbedding = add("pos_emb", [config.contextLength, d])
        for i in 0..<config.layers {
            let p = "blocks.\(i)."
            let ln1w = add(p + "ln1.weight", [d]), ln1b = addBias(p + "ln1.bias", d)
            let qkvw = add(p + "attn.qkv.weight", [3 * d, d]), qkvb = addBias(p + "attn.qkv.bias", 3 * d)
            let projw = add(p + "attn.proj.weight", [d, d]), projb = addBias(p + "attn.proj.bias", d)
            let ln2w = add(p + "ln2.weight", [d]), ln2b = addBias(p + "ln2.bias", d)
            let upw = add(p + "ffn.up.weight", [f, d]), upb = addBias(p + "ffn.up.bias", f)
            let downw = add(p + "ffn.down.weight", [d, f]), downb = addBias(p + "ffn.down.bias", d)
            blocks.append(BlockOffsets(ln1Weight: ln1w, ln1Bias: ln1b, qkvWeight: qkvw, qkvBias: qkvb, projWeight: projw, projBias: projb,
                                       ln2Weight: ln2w, ln2Bias: ln2b, upWeight: upw, upBias: upb, downWeight: downw, downBias: downb))
        }
        finalNormWeight = add("ln_f.weight", [d])
        finalNormBias = addBias("ln_f.bias", d)
        head = config.tieEmbeddings ? tokenEmbedding : add("lm_head.weight", [v, d])
    }

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
