import ArgumentParser
import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQModel
import TFQTrain
#if canImport(Glibc)
import Glibc
#endif

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a GPT model on a text file, in fp32, and write a .tfq checkpoint.",
        discussion: """
        Without --val-data the last 10% of --data is the validation split. The checkpoint is
        written every --checkpoint-every steps, at the end, and on Ctrl-C or SIGTERM; --resume
        continues from it and gives the same losses as an uninterrupted run. Metrics go to
        CKPT.metrics.jsonl (a number that is not finite as null) and the loss curves to
        CKPT.loss.svg. A loss that is not finite stops the run at that step (exit 1) and keeps
        the last checkpoint written; none is written with such weights. --tokenizer bpe learns a
        byte-level BPE of --vocab-size tokens on the training split first (then the split is
        made on the text: the last 10% of its characters) and stores it in the checkpoint.
        Validation losses are also given in bits per byte, which compare across tokenizers.
        """
    )

    @Option(help: "The training text (UTF-8).") var data: String
    @Option(help: "The checkpoint to write (.tfq).") var out: String
    @Option(help: "Validation text (default: the last 10% of --data).") var valData: String?
    @Option(help: "char, byte, or bpe (byte-level BPE learned on the training split).") var tokenizer: TrainingOptions.TokenizerKind = .char
    @Option(help: "BPE vocabulary: 257 to 65536 tokens (--tokenizer bpe).") var vocabSize: Int?
    @Option(help: "Transformer blocks.") var layers = 4
    @Option(help: "Attention heads.") var heads = 4
    @Option(help: "Model width.") var dim = 128
    @Option(help: "Feed-forward width (default 4 × dim).") var ff: Int?
    @Option(help: "Context length in tokens.") var context = 64
    @Option(help: "relu (the seed's R), gelu or silu.") var activation: Activation = .relu
    @Flag(help: "Share the output projection with the token embedding.") var tieEmbeddings = false
    @Flag(help: "No biases in linear layers and LayerNorms.") var noBias = false
    @Option(help: "Dropout probability while training.") var dropout: Float = 0
    @Option(help: "Sequences per step.") var batch = 12
    @Option(help: "Optimizer steps (0 writes the initialized model).") var steps = 2000
    @Option(help: "adamw, or sgd (the seed's plain gradient descent).") var optimizer: TrainingOptions.OptimizerKind = .adamw
    @Option(help: "Peak learning rate.") var lr: Float = 1e-3
    @Option(help: "Learning rate at the end of the cosine decay.") var minLr: Float = 1e-4
    @Option(help: "Linear warmup steps.") var warmup = 100
    @Option(help: "AdamW β1.") var beta1: Float = 0.9
    @Option(help: "AdamW β2.") var beta2: Float = 0.99
    @Option(help: "AdamW weight decay (matrices only).") var weightDecay: Float = 0.1
    @Option(help: "Global gradient-norm clip (0: off).") var gradClip: Float = 1.0
    @Option(help: "Evaluate every N steps (0: only at the end).") var evalEvery = 250
    @Option(help: "Validation batches per evaluation.") var evalBatches = 20
    @Option(help: "Checkpoint every N steps (0: only at the end).") var checkpointEvery = 500
    @OptionGroup var threading: ThreadOptions
    @Option(help: "Random seed.") var seed: UInt64 = 1337
    @Flag(help: "Continue the run saved in --out.") var resume = false
    @Flag(help: "Print one JSON object with the run's figures on stdout.") var json = false

    var options: TrainingOptions {
        var o = TrainingOptions()
        o.tokenizer = tokenizer; o.vocabSize = vocabSize; o.layers = layers; o.heads = heads; o.dim = dim; o.ffDim = ff; o.context = context
        o.activation = activation; o.tieEmbeddings = tieEmbeddings; o.bias = !noBias; o.dropout = dropout
        o.batch = batch; o.steps = steps; o.optimizer = optimizer; o.learningRate = lr; o.minLearningRate = minLr
        o.warmup = warmup; o.beta1 = beta1; o.beta2 = beta2; o.weightDecay = weightDecay; o.gradClip = gradClip
        o.evalEvery = evalEvery; o.evalBatches = evalBatches; o.checkpointEvery = checkpointEvery; o.seed = seed
        return o
    }

    func validate() throws {
        if let problem = options.problem { throw UsageError(problem.text(naming: TFQCommand.flag)) }
        try threading.check()
    }

    func run() throws {
        try OutputPath.check(out)  // now, not after the run it would waste
        let threadCount = threading.count
        var checkpoint: TFQFile? = nil
        if resume {
            guard access(out, F_OK) == 0 else { throw TrainingError("\(out): no checkpoint to resume") }
            checkpoint = try TFQFile(path: out)
        }
        let existingTokenizer = try checkpoint.map { try ModelMetadata(file: $0).tokenizer }
        let corpus = try Corpus(path: data, validationPath: valData, tokenizer: tokenizer, vocabularySize: vocabSize,
                                existing: existingTokenizer)
        let trainer = try Trainer(options: options, corpus: corpus, checkpointPath: out, threads: threadCount, resume: checkpoint)
        checkpoint = nil
        let display = ProgressDisplay(quiet: false)
        if let seconds = corpus.tokenizerSeconds {
            display.note("learned \(corpus.tokenizer.vocabularySize - 256) BPE merges on the training split in \(format2(seconds)) s"
                         + (corpus.tokenizer.vocabularySize < (vocabSize ?? 0) ? " (the text has no more pairs to merge)" : ""))
        }
        if trainer.state.step > 0 {
            display.note("resuming \(out) at step \(trainer.state.step) of \(steps)")
        }
        display.note("training \(trainer.model.layout.count) parameters on \(corpus.train.count) tokens "
                     + "(\(corpus.tokenizer.kind) tokenizer, vocabulary \(corpus.tokenizer.vocabularySize), "
                     + "validation \(corpus.validation.count) tokens), \(threadCount) threads")
        Interruption.install()
        let summary: TrainingSummary
        do {
            summary = try trainer.run(shouldStop: { Interruption.signalNumber != 0 }) { display.show($0) }
        } catch {
            display.finish()  // the error goes on a line of its own, not after the progress line
            throw error
        }
        display.finish()
        if json {
            print(try JSONOutput.string(summary))
        } else {
            let val = (summary.valLoss.map { String(format4($0)) } ?? "-") + (summary.valBitsPerByte.map { " (\(format4($0)) bits/byte)" } ?? "")
            print("steps \(summary.steps)  train loss \(summary.trainLoss.map(format4) ?? "-")  val loss \(val)  "
                  + "\(Int(summary.tokensPerSecond)) tokens/s (\(format1(summary.gigaflopsPerSecond)) GFLOP/s)  \(format2(summary.wallSeconds)) s  peak RSS \(summary.peakRSSBytes >> 20) MB")
            print("checkpoint \(out)  (metrics \(out).metrics.jsonl, loss curve \(out).loss.svg)")
        }
        if summary.interrupted {
            display.note("interrupted at step \(summary.steps); checkpoint saved; continue with --resume")
            throw ExitCode(128 + Interruption.signalNumber)
        }
    }
}

/// A flag whose value cannot work: one line, no usage dump (the problem is the value, not the syntax).
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Activation: ExpressibleByArgument {}
extension TrainingOptions.TokenizerKind: ExpressibleByArgument {}
extension TrainingOptions.OptimizerKind: ExpressibleByArgument {}
