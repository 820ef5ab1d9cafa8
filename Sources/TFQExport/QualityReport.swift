/// How much the exported model differs from the fp32 checkpoint on the same token positions:
/// computed at export and stored as the file's `quality` metadata.
public struct QualityReport: Codable, Equatable, Sendable {
    /// Next-token predictions compared.
    public var positions: Int
    /// Positions left out because the text has characters the vocabulary lacks.
    public var skipped: Int
    /// The fp32 checkpoint's mean cross-entropy over the positions, in nats per token.
    public var referenceCrossEntropy: Double
    /// The exported model's mean cross-entropy over the same positions, in nats per token.
    public var modelCrossEntropy: Double
    /// e^``referenceCrossEntropy``.
    public var referencePerplexity: Double { Self.exp(referenceCrossEntropy) }
    /// e^``modelCrossEntropy``.
    public var modelPerplexity: Double { Self.exp(modelCrossEntropy) }
    /// How much higher the exported model's perplexity is than the checkpoint's, in percent
    /// (negative when it is lower).
    public var deltaPerplexityPercent: Double { (modelPerplexity / referencePerplexity - 1) * 100 }
    /// The cross-entropies in bits per byte of the predicted text, comparable across
    /// tokenizers (absent in reports written before tfq 1.1).
    public var referenceBitsPerByte: Double?
    /// The exported model's cross-entropy in bits per byte (absent before tfq 1.1).
    public var modelBitsPerByte: Double?
    /// Positions where both models rank the same token first, in percent.
    public var top1AgreementPercent: Double
    /// Mean KL(checkpoint ‖ exported) over the positions, in nats.
    public var meanKL: Double
    /// The largest absolute difference between the two models' logits at any position.
    public var maxAbsLogitError: Double
    /// ‖W − dequantize(quantize(W))‖ / ‖W‖ per exported tensor.
    public var tensorRelativeError: [String: Double]
    /// The KV cache the exported model ran with: the runtime's default for it (`f16` for an
    /// int8 model), so the figures are what `tfq run` gives. Absent before tfq 1.3.
    public var kvCache: String?

    enum CodingKeys: String, CodingKey {
        case positions, skipped
        case referenceCrossEntropy = "reference_cross_entropy", modelCrossEntropy = "model_cross_entropy"
        case referencePerplexity = "reference_perplexity", modelPerplexity = "model_perplexity"
        case deltaPerplexityPercent = "delta_perplexity_percent", top1AgreementPercent = "top1_agreement_percent"
        case meanKL = "mean_kl", maxAbsLogitError = "max_abs_logit_error", tensorRelativeError = "tensor_relative_error"
        case referenceBitsPerByte = "reference_bits_per_byte", modelBitsPerByte = "model_bits_per_byte"
        case kvCache = "kv_cache"
    }

    /// A report of the given figures; the perplexities are derived from the cross-entropies.
    public init(positions: Int, skipped: Int, referenceCrossEntropy: Double, modelCrossEntropy: Double,
                top1AgreementPercent: Double, meanKL: Double, maxAbsLogitError: Double, tensorRelativeError: [String: Double],
                referenceBitsPerByte: Double? = nil, modelBitsPerByte: Double? = nil, kvCache: String? = nil) {
        self.positions = positions; self.skipped = skipped
        self.referenceCrossEntropy = referenceCrossEntropy; self.modelCrossEntropy = modelCrossEntropy
        self.top1AgreementPercent = top1AgreementPercent; self.meanKL = meanKL; self.maxAbsLogitError = maxAbsLogitError
        self.tensorRelativeError = tensorRelativeError
        self.referenceBitsPerByte = referenceBitsPerByte; self.modelBitsPerByte = modelBitsPerByte
        self.kvCache = kvCache
    }

    /// Reads the `quality` metadata; the perplexities stored there are ignored (they follow
    /// from the cross-entropies), and fields added after tfq 1.0 may be absent.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        positions = try c.decode(Int.self, forKey: .positions)
        skipped = try c.decode(Int.self, forKey: .skipped)
        referenceCrossEntropy = try c.decode(Double.self, forKey: .referenceCrossEntropy)
        modelCrossEntropy = try c.decode(Double.self, forKey: .modelCrossEntropy)
        top1AgreementPercent = try c.decode(Double.self, forKey: .top1AgreementPercent)
        meanKL = try c.decode(Double.self, forKey: .meanKL)
        maxAbsLogitError = try c.decode(Double.self, forKey: .maxAbsLogitError)
        tensorRelativeError = try c.decode([String: Double].self, forKey: .tensorRelativeError)
        referenceBitsPerByte = try c.decodeIfPresent(Double.self, forKey: .referenceBitsPerByte)
        modelBitsPerByte = try c.decodeIfPresent(Double.self, forKey: .modelBitsPerByte)
        kvCache = try c.decodeIfPresent(String.self, forKey: .kvCache)
    }

    /// Writes the `quality` metadata: every stored figure, the derived perplexities, and
    /// the optional fields only when present.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(positions, forKey: .positions)
        try c.encode(skipped, forKey: .skipped)
        try c.encode(referenceCrossEntropy, forKey: .referenceCrossEntropy)
        try c.encode(modelCrossEntropy, forKey: .modelCrossEntropy)
        try c.encode(referencePerplexity, forKey: .referencePerplexity)
        try c.encode(modelPerplexity, forKey: .modelPerplexity)
        try c.encode(deltaPerplexityPercent, forKey: .deltaPerplexityPercent)
        try c.encode(top1AgreementPercent, forKey: .top1AgreementPercent)
        try c.encode(meanKL, forKey: .meanKL)
        try c.encode(maxAbsLogitError, forKey: .maxAbsLogitError)
        try c.encode(tensorRelativeError, forKey: .tensorRelativeError)
        try c.encodeIfPresent(referenceBitsPerByte, forKey: .referenceBitsPerByte)
        try c.encodeIfPresent(modelBitsPerByte, forKey: .modelBitsPerByte)
        try c.encodeIfPresent(kvCache, forKey: .kvCache)
    }

    static func exp(_ x: Double) -> Double {
        #if canImport(Glibc)
        return Glibc.exp(x)
        #endif
    }
}

#if canImport(Glibc)
import Glibc
#endif
