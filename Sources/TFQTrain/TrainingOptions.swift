import TFQKernels
import TFQModel

/// Every knob of a training run. Stored in the checkpoint so `--resume` can check that a
/// run continues with the settings it started with.
public struct TrainingOptions: Codable, Equatable, Sendable {
    /// The optimizer: AdamW, or plain gradient descent (the seed's).
    public enum OptimizerKind: String, Codable, Sendable, CaseIterable { case adamw, sgd }
    /// The tokenizer: the text's characters, its bytes, or a byte-level BPE
    /// learned on the training split.
    public enum TokenizerKind: String, Codable, Sendable, CaseIterable { case char, byte, bpe }
    /// The vocabulary sizes a learned BPE tokenizer may have: one merge at least, and ids
    /// that fit 16 bits.
    public static let bpeVocabularySizes = 257...65536

    /// How the text is turned into tokens.
    public var tokenizer: TokenizerKind = .char
    /// Tokens of the BPE vocabulary to learn (`--tokenizer bpe` only).
    public var vocabSize: Int? = nil
    /// The model's shape: transformer blocks, attention heads, width, feed-forward width
    /// (nil: 4 × `dim`, see ``resolvedFFDim``) and context length in tokens.
    public var layers = 4, heads = 4, dim = 128, ffDim: Int? = nil, context = 64
    /// The feed-forward activation.
    public var activation: Activation = .relu
    /// Whether the output projection shares the token embedding, and whether linear layers
    /// and LayerNorms have biases.
    public var tieEmbeddings = false, bias = true
    /// Dropout probability while training, in [0, 1); 0 turns it off.
    public var dropout: Float = 0
    /// Sequences per step, and the optimizer steps of the whole run (0 writes the initialized model).
    public var batch = 12, steps = 2000
    /// The optimizer.
    public var optimizer: OptimizerKind = .adamw
    /// The peak learning rate, and the rate the cosine decay ends at (``learningRate(at:)``).
    public var learningRate: Float = 1e-3, minLearningRate: Float = 1e-4
    /// Steps of linear warmup to the peak learning rate.
    public var warmup = 100
    /// AdamW's decay rates for the first and second moments.
    public var beta1: Float = 0.9, beta2: Float = 0.99
    /// AdamW's decoupled weight decay, applied to matrices only.
    public var weightDecay: Float = 0.1
    /// The largest global L2 norm of the gradients a step uses; larger ones are scaled down
    /// to it (0 turns clipping off).
    public var gradClip: Float = 1.0
    /// Steps between evaluations (0: only at the end), and validation batches per evaluation.
    public var evalEvery = 250, evalBatches = 20
    /// Steps between checkpoints (0: only at the end).
    public var checkpointEvery = 500
    /// Seeds the initialization, the batch sampler and the evaluation batches.
    public var seed: UInt64 = 1337

    /// The defaults of `tfq train`.
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

    /// Why these options cannot train, or nil. Options are named as a checkpoint stores
    /// them (`batch`, `vocab_size`, `lr`); a front end names them its own way with
    /// ``OptionMessage/text(naming:)``.
    public var problem: OptionMessage? {
        let sizes = "\(Self.bpeVocabularySizes.lowerBound) to \(Self.bpeVocabularySizes.upperBound)"
        if tokenizer == .bpe {
            guard let vocabSize else { return OptionMessage("\(option: "tokenizer") bpe needs \(option: "vocab_size") N (\(sizes))") }
            if !Self.bpeVocabularySizes.contains(vocabSize) { return OptionMessage("\(option: "vocab_size") must be \(sizes) (got \(vocabSize))") }
        } else if vocabSize != nil {
            return OptionMessage("\(option: "vocab_size") applies only to \(option: "tokenizer") bpe (a \(tokenizer.rawValue) vocabulary comes from the text)")
        }
        if batch < 1 { return OptionMessage("\(option: "batch") must be at least 1") }
        if steps < 0 { return OptionMessage("\(option: "steps") must not be negative") }
        if context < 1 { return OptionMessage("\(option: "context") must be at least 1") }
        if !(dropout >= 0 && dropout < 1) { return OptionMessage("\(option: "dropout") must be in [0, 1)") }
        if !(learningRate >= 0 && learningRate.isFinite) || !(minLearningRate >= 0 && minLearningRate.isFinite) {
            return OptionMessage("\(option: "lr") and \(option: "min_lr") must be finite and not negative")
        }
        if warmup < 0 { return OptionMessage("\(option: "warmup") must not be negative") }
        if !(beta1 >= 0 && beta1 < 1) || !(beta2 >= 0 && beta2 < 1) { return OptionMessage("\(option: "beta1") and \(option: "beta2") must be in [0, 1)") }
        if !(weightDecay >= 0) { return OptionMessage("\(option: "weight_decay") must not be negative") }
        if !(gradClip >= 0) { return OptionMessage("\(option: "grad_clip") must not be negative (0 turns clipping off)") }
        if evalEvery < 0 || evalBatches < 1 { return OptionMessage("\(option: "eval_every") must be ≥ 0 and \(option: "eval_batches") ≥ 1") }
        if checkpointEvery < 0 { return OptionMessage("\(option: "checkpoint_every") must not be negative") }
        if seed > UInt64(Int64.max) { return OptionMessage("\(option: "seed") must be at most \(Int64.max)") }
        if layers < 1 { return OptionMessage("\(option: "layers") must be at least 1") }
        if heads < 1 || dim < 1 { return OptionMessage("\(option: "heads") and \(option: "dim") must be at least 1") }
        if dim % heads != 0 { return OptionMessage("\(option: "dim") \(dim) is not divisible by \(option: "heads") \(heads)") }
        if resolvedFFDim < 1 { return OptionMessage("\(option: "ff_dim") must be at least 1") }
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
