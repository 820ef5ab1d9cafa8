/// The names of a model's tensors in a .tfq file (formats/tfq.md §9), spelled here once for
/// the trainer's layout, the runtime's loader, the exporters and every importer.
public enum TensorName {
    /// The token table [vocab × dim]; also the classifier when the config ties them.
    public static let tokenEmbedding = "tok_emb"
    /// GPT's learned positions [context × dim].
    public static let positionEmbedding = "pos_emb"
    /// The gain [dim] of the final norm, whose output the classifier takes.
    public static let finalNormWeight = "ln_f.weight"
    /// The final LayerNorm's bias [dim] (gpt with biases only).
    public static let finalNormBias = "ln_f.bias"
    /// The classifier [vocab × dim] when it is not tied to the token table.
    public static let separateHead = "lm_head.weight"

    /// The classifier's tensor under `config`: the token table when tied.
    public static func head(_ config: ModelConfig) -> String {
        config.tieEmbeddings ? tokenEmbedding : separateHead
    }

    /// The tensors of block `index`. Biases exist only in GPT models with `bias: true`; the
    /// gate only in llama's gated feed-forward.
    public struct Block: Sendable {
        /// The norm before attention: gain and bias [dim].
        public let ln1Weight, ln1Bias: String
        /// The fused Q/K/V projection: weight [dim + 2·kvDim, dim] (rows Q, then K, then V) and bias.
        public let qkvWeight, qkvBias: String
        /// The attention output projection: weight [dim, dim] and bias [dim].
        public let projWeight, projBias: String
        /// The norm before the feed-forward block: gain and bias [dim].
        public let ln2Weight, ln2Bias: String
        /// Llama's feed-forward gate [ffDim, dim] (llama2.c's `w1`).
        public let gateWeight: String
        /// The feed-forward up projection: weight [ffDim, dim] and bias [ffDim].
        public let upWeight, upBias: String
        /// The feed-forward down projection: weight [dim, ffDim] and bias [dim].
        public let downWeight, downBias: String

        /// The names of block `index` (from 0), all starting `blocks.INDEX.`.
        public init(_ index: Int) {
            let p = "blocks.\(index)."
            ln1Weight = p + "ln1.weight"; ln1Bias = p + "ln1.bias"
            qkvWeight = p + "attn.qkv.weight"; qkvBias = p + "attn.qkv.bias"
            projWeight = p + "attn.proj.weight"; projBias = p + "attn.proj.bias"
            ln2Weight = p + "ln2.weight"; ln2Bias = p + "ln2.bias"
            gateWeight = p + "ffn.gate.weight"
            upWeight = p + "ffn.up.weight"; upBias = p + "ffn.up.bias"
            downWeight = p + "ffn.down.weight"; downBias = p + "ffn.down.bias"
        }
    }
}
