import TFQKernels
import TFQModel

/// Every knob of a training run. Stored in the checkpoint so `--resume` can check that a
/// run continues with the settings it started with.
public struct TrainingOptions: Codable, Equatable, Sendable {
    public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case adamw, sgd }
    public enum TokenizerKind: String, Codable, Sendable, CaseIterable { case char, byte, bpe }
    /// The vocabulary sizes a learned BPE tokenizer may have: one merge at least, and ids
    /// that fit 16 bits.
    public static let bpeVocabularySizes = 257...65536

    public var tokenizer: TokenizerKind = .char
    /// Tokens of the BPE vocabulary to learn (`--tokenizer bpe` only).
    public var vocabSize: Int? = nil
    public var layers = 4, heads = 4, dim = 128, ffDim: Int? = nil, context = 64
    public var activation: Activation = .relu
    public var tieEmbeddings = false, bias = true
    public var dropout: Float = 0
    public var batch = 12, steps = 2000
    public var optimizer: OptimizerKind = .adamw
    public var learningRate: Float = 1e-3, minLearningRate: Float = 1e-4
    public var warmup = 100
    public var beta1: Float = 0.9, beta2: Float = 0.99
    public var weightDecay: Float = 0.1
    public var gradClip: Float = 1.0
    public var evalEvery = 250, evalBatches = 20
    public var checkpointEvery = 500
    public var seed: UInt64 = 1337

    public init() {}

    enum CodingKeys: String, CodingKey {
        case tokenizer, vocabSize = "vocab_size", layers, heads, dim, context, activation, bias, dropout, batch, steps, optimizer, warmup
        case beta1, beta2, seed
        case ffDim = "ff_dim", tieEmbeddings = "tie_embeddings", learningRate = "lr", minLearningRate = "min_lr"
        case weightDecay = "weight_decay", gradClip = "grad_clip", evalEvery = "eval_every", evalBatches = "eval_batches"
        case checkpointEvery = "checkpoint_every"
    }

    /// The feed-forward width: 4 × dim unless set.
    public var resolvedFFDim: Int { ffDim ?? 4 * dim }

    /// Why these options cannot train, or nil.
    public var problem: String? {
        if tokenizer == .bpe {
            guard let vocabSize else { return "--tokenizer bpe needs --vocab-size N (\(Self.bpeVocabularySizes.lowerBound) to \(Self.bpeVocabularySizes.upperBound))" }
            if !Self.bpeVocabularySizes.contains(vocabSize) {
                return "--vocab-size must be \(Self.bpeVocabularySizes.lowerBound) to \(Self.bpeVocabularySizes.upperBound) (got \(vocabSize))"
            }
        } else if vocabSize != nil {
            return "--vocab-size applies only to --tokenizer bpe (a \(tokenizer.rawValue) vocabulary comes from the text)"
        }
        if batch < 1 { return "--batch must be at least 1" }
        if steps < 0 { return "--steps must not be negative" }
        if context < 1 { return "--context must be at least 1" }
        if !(dropout >= 0 && dropout < 1) { return "--dropout must be in [0, 1)" }
        if !(learningRate >= 0 && learningRate.isFinite) || !(minLearningRate >= 0 && minLearningRate.isFinite) {
            return "--lr and --min-lr must be finite and not negative"
        }
        if warmup < 0 { return "--warmup must not be negative" }
        if !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) { return "--beta1 and --beta2 must be in [0, 1)" }
        if !(weightDecay >= 0) { return "--weight-decay must not be negative" }
        if !(gradClip >= 0) { return "--grad-clip must not be negative (0 turns clipping off)" }
        if evalEvery < 0 || evalBatches < 1 { return "--eval-every must be ≥ 0 and --eval-batches ≥ 1" }
        if checkpointEvery < 0 { return "--checkpoint-every must not be negative" }
        if seed > UInt64(Int64.max) { return "--seed must be at most \(Int64.max)" }
        if layers < 1 { return "--layers must be at least 1" }
        if heads < 1 || dim < 1 { return "--heads and --dim must be at least 1" }
        if dim % heads != 0 { return "--dim \(dim) is not divisible by --heads \(heads)" }
        if resolvedFFDim < 1 { return "--ff must be at least 1" }
        return nil
    }

    /// The model these options describe, for a vocabulary of `vocabSize` tokens.
    public func modelConfig(vocabSize: Int) -> ModelConfig {
        ModelConfig(vocabSize: vocabSize, contextLength: context, layers: layers, heads: heads, dim: dim, ffDim: resolvedFFDim,
                    activation: activation, tieEmbeddings: tieEmbeddings, bias: bias)
    }

    /// Learning rate at `step` (from 0): linear warmup, then cosine decay to the minimum.
    public func learningRate(at step: Int) -> Float {
        if step < warmup { return learningRate * Float(step + 1) / Float(warmup) }
        let span = max(1, steps - warmup)
        let progress = min(1, Double(step - warmup) / Double(span))
        let cosine = 0.5 * (1 + cos(Double.pi * progress))
        return minLearningRate + Float(cosine) * (learningRate - minLearningRate)
    }
}

#if canImport(Glibc)
import Glibc
#endif
