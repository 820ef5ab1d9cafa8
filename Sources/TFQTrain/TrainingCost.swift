import TFQModel

extension ModelConfig {
    /// The arithmetic of training on one token, in FLOPs, by the convention of PaLM's and
    /// nanoGPT's model-FLOPs utilization: 6 per weight of every matrix the token passes
    /// through (2 forward, 4 backward), and 12 · layers · dim · context for the attention
    /// scores and their weighted sum, with no credit for the causal mask. Embedding lookups,
    /// normalization, softmax and the optimizer are left out: they are a small and
    /// memory-bound share. Divided into a machine's FMA peak, it says how much of the step's
    /// time is spent at full arithmetic speed. Counted for the gpt architecture `tfq train`
    /// builds (fused Q/K/V of 3 · dim rows, one up and one down projection).
    public var trainingFLOPsPerToken: Double {
        let perLayer = 4 * dim * dim + 2 * dim * ffDim  // qkv, proj, up, down
        let matrixWeights = layers * perLayer + vocabSize * dim  // and the classifier, tied or not
        return 6 * Double(matrixWeights) + 12 * Double(layers * dim * contextLength)
    }
}
