import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQTrainKernels
import TFQModel
#if canImport(Glibc)
import Glibc
#endif

/// Why training could not start or continue; the message names the file or option.
public struct TrainingError: OptionNamingError {
    /// The one-line message.
    public let message: OptionMessage
    /// An error with the message `message`, which may name options (`\(option: "lr")`).
    public init(_ message: OptionMessage) { self.message = message }
    /// An error with the message `text`.
    public init(_ text: String) { message = OptionMessage(stringLiteral: text) }
}

/// One line of progress, reported after every step.
public struct TrainingProgress: Sendable {
    /// The step just finished, counting from 1, and the step the run ends at.
    public var step: Int, steps: Int
    /// The step's training loss: mean cross-entropy over its batch, in nats per token.
    public var loss: Double
    /// The last validation loss, in nats per token; nil before the first evaluation.
    public var valLoss: Double?
    /// The last validation loss in bits per byte of text.
    public var valBitsPerByte: Double?
    /// The learning rate the step used.
    public var learningRate: Float
    /// Training tokens per second since this run started (a resumed run counts from there).
    public var tokensPerSecond: Double
    /// The time the remaining steps would take at that speed.
    public var secondsRemaining: Double
    /// Whether the validation set was evaluated after this step.
    public var evaluated: Bool
}

/// The figures of a finished (or interrupted) run.
public struct TrainingSummary: Encodable, Sendable {
    /// Optimizer steps completed, those of the runs this one resumed included.
    public var steps: Int
    /// Tokens trained on, those of resumed runs included.
    public var tokens: Int
    /// The last training loss, in nats per token; nil if no step was ever run.
    public var trainLoss: Double?
    /// The last validation loss, in nats per token; nil if none was measured.
    public var valLoss: Double?
    /// The last validation loss in bits per byte of text.
    public var valBitsPerByte: Double?
    /// Training tokens per second over this run alone (not the runs it resumed).
    public var tokensPerSecond: Double
    /// Wall-clock seconds of training, summed over resumed runs.
    public var wallSeconds: Double
    /// Parameters in the model.
    public var parameters: Int
    /// The model's arithmetic per training token (``ModelConfig/trainingFLOPsPerToken``).
    public var flopsPerToken: Double
    /// The arithmetic rate this run achieved: tokens/s × FLOPs per token, in GFLOP/s.
    public var gigaflopsPerSecond: Double { tokensPerSecond * flopsPerToken / 1e9 }
    /// The process's peak resident memory, in bytes.
    public var peakRSSBytes: Int
    /// The path of the checkpoint written at the end of the run.
    public var checkpoint: String
    /// True when `shouldStop` ended the run before its last step.
    public var interrupted: Bool

    enum CodingKeys: String, CodingKey {
        case steps, tokens, parameters, checkpoint, interrupted
        case trainLoss = "train_loss", valLoss = "val_loss", valBitsPerByte = "val_bits_per_byte", tokensPerSecond = "tokens_per_second"
        case wallSeconds = "wall_seconds", peakRSSBytes = "peak_rss_bytes"
        case flopsPerToken = "flops_per_token", gigaflopsPerSecond = "gflops_per_second"
    }

    /// Absent losses are left out; a number that is not finite is `null` (FiniteJSON.swift).
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(steps, forKey: .steps)
        try container.encode(tokens, forKey: .tokens)
        try container.encodeFinite(trainLoss, forKey: .trainLoss)
        try container.encodeFinite(valLoss, forKey: .valLoss)
        try container.encodeFinite(valBitsPerByte, forKey: .valBitsPerByte)
        try container.encodeFinite(tokensPerSecond, forKey: .tokensPerSecond)
        try container.encodeFinite(wallSeconds, forKey: .wallSeconds)
        try container.encode(parameters, forKey: .parameters)
        try container.encode(flopsPerToken, forKey: .flopsPerToken)
        try container.encodeFinite(gigaflopsPerSecond, forKey: .gigaflopsPerSecond)
        try container.encode(peakRSSBytes, forKey: .peakRSSBytes)
        try container.encode(checkpoint, forKey: .checkpoint)
        try container.encode(interrupted, forKey: .interrupted)
    }
}

/// The training loop: sample a batch, forward, backward, clip, step the optimizer; evaluate
/// and checkpoint on schedule. Deterministic for a given seed and thread count, and a run
/// resumed from a checkpoint reproduces the uninterrupted one.
public final class Trainer {
    /// The run's options.
    public let options: TrainingOptions
    /// The text trained and evaluated on.
    public let corpus: Corpus
    /// The model being trained.
    public let model: GPT
    /// Where checkpoints are written (and, beside it, the metrics log and loss curve).
    public let checkpointPath: String
    /// The run's state as it stands: what the next checkpoint saves.
    public private(set) var state: TrainingState
    private let m: UnsafeMutableBufferPointer<Float>
    private let v: UnsafeMutableBufferPointer<Float>
    /// The parameter buffer as runs of tensors that share a weight decay (matrices decay;
    /// gains, biases and embeddings that are not matrices do not), for one AdamW job a step.
    private let decaySegments: [(count: Int, weightDecay: Float)]
    private let metricsLog: MetricsLog
    /// The step of the checkpoint at `checkpointPath` written by this run or resumed from,
    /// named when a diverged run stops.
    public private(set) var savedStep: Int?

    /// A new run, or with `resume` the continuation of the run saved there.
    public init(options: TrainingOptions, corpus: Corpus, checkpointPath: String, threads: Int, resume: TFQFile? = nil) throws {
        if let problem = options.problem { throw TrainingError(problem) }
        try OutputPath.check(checkpointPath)
        let length = options.context
        guard corpus.train.count > length else {
            throw TrainingError("the training text has \(corpus.train.count) tokens, fewer than one sequence of \(option: "context") \(length) + 1")
        }
        guard corpus.validation.count > length else {
            throw TrainingError("the validation text has \(corpus.validation.count) tokens, fewer than \(option: "context") \(length) + 1; use a longer corpus or \(option: "val_data")")
        }
        let config = options.modelConfig(vocabSize: corpus.tokenizer.vocabularySize)
        if let problem = config.problem { throw TrainingError(problem) }
        self.options = options
        self.corpus = corpus
        self.checkpointPath = checkpointPath
        model = GPT(config: config, pool: ThreadPool(threads: threads))
        model.dropout = options.dropout
        var dropoutStream = TrainingStream.dropout.generator(seed: options.seed)
        model.dropoutKey = dropoutStream.next()
        m = .allocate(capacity: model.layout.count); m.initialize(repeating: 0)
        var segments: [(count: Int, weightDecay: Float)] = []
        for tensor in model.layout.tensors {
            precondition(tensor.offset == segments.reduce(0) { $0 + $1.count }, "parameter tensors are contiguous")
            let decay = tensor.isMatrix ? options.weightDecay : 0
            if let last = segments.last, last.weightDecay == decay {
                segments[segments.count - 1].count += tensor.count
            } else {
                segments.append((tensor.count, decay))
            }
        }
        decaySegments = segments
        v = .allocate(capacity: model.layout.count); v.initialize(repeating: 0)
        state = TrainingState(options: options, sampler: TrainingStream.batches.generator(seed: options.seed), dataCRC32: CRC32.hex(corpus.checksum),
                              dataPath: corpus.path, validationPath: corpus.validationPath)
        metricsLog = MetricsLog(path: checkpointPath + ".metrics.jsonl")
        if let resume {
            try restore(from: resume)
        } else {
            model.initialize(seed: options.seed)
        }
    }

    deinit {
        m.deallocate()
        v.deallocate()
    }

    /// Trains until `options.steps` or until `shouldStop` says so, then writes the checkpoint.
    /// A loss or gradient norm that is not finite stops the run with a ``TrainingError``
    /// naming the step; the checkpoint on disk is then the last one written before it.
    public func run(shouldStop: () -> Bool = { false }, progress: (TrainingProgress) -> Void = { _ in }) throws -> TrainingSummary {
        let (batch, length) = (options.batch, options.context)
        let tokensPerStep = batch * length
        var inputs = [Int32](repeating: 0, count: tokensPerStep), targets = inputs
        let started = MonotonicClock.seconds()
        let earlierWallSeconds = state.wallSeconds  // from the runs this one resumes
        let startStep = state.step
        var interrupted = false
        func speed(at step: Int) -> Double { Double((step - startStep) * tokensPerStep) / max(MonotonicClock.seconds() - started, 1e-9) }
        if state.step == 0 { metricsLog.reset() } else { metricsLog.truncate(after: state.step) }
        if state.step == 0 && options.evalEvery > 0 && options.steps > 0 {
            try evaluateOrStop(step: 0, trainLoss: nil)
        }
        while state.step < options.steps {
            if shouldStop() { interrupted = true; break }
            sampleBatch(into: &inputs, &targets)
            let (loss, norm) = inputs.withUnsafeBufferPointer { i in targets.withUnsafeBufferPointer { t in
                model.trainingStep(inputs: i.baseAddress!, targets: t.baseAddress!, batch: batch, length: length,
                                   measuringNorm: options.gradClip > 0)
            } }
            let rate = options.learningRate(at: state.step)
            // Checked before the optimizer step: the weights in memory stay the last finite
            // ones, and the log shows the step that diverged.
            guard loss.isFinite, (norm ?? 0).isFinite else {
                metricsLog.append(step: state.step + 1, loss: loss, learningRate: rate, tokensPerSecond: speed(at: state.step + 1),
                                  valLoss: nil, valBitsPerByte: nil)
                // A NaN's sign depends on the CPU (ARM64 makes -nan where x86-64 makes nan): not news.
                func named(_ x: Double) -> String { x.isNaN ? "nan" : "\(x)" }
                throw stop(at: state.step + 1, loss.isFinite ? "the gradient norm is \(named(norm!))" : "the training loss is \(named(loss))")
            }
            optimizerStep(learningRate: rate, gradientNorm: norm)
            state.step += 1
            state.tokens += tokensPerStep
            state.lastTrainLoss = loss
            let tokensPerSecond = speed(at: state.step)
            var evaluated = false
            if options.evalEvery > 0 && (state.step % options.evalEvery == 0 || state.step == options.steps) {
                try evaluateOrStop(step: state.step, trainLoss: loss, logging: (rate, tokensPerSecond))
                evaluated = true
            }
            metricsLog.append(step: state.step, loss: loss, learningRate: rate, tokensPerSecond: tokensPerSecond,
                              valLoss: evaluated ? state.lastValLoss : nil, valBitsPerByte: evaluated ? state.lastValBitsPerByte : nil)
            progress(TrainingProgress(step: state.step, steps: options.steps, loss: loss, valLoss: state.lastValLoss,
                                      valBitsPerByte: state.lastValBitsPerByte, learningRate: rate, tokensPerSecond: tokensPerSecond,
                                      secondsRemaining: Double((options.steps - state.step) * tokensPerStep) / max(tokensPerSecond, 1e-9),
                                      evaluated: evaluated))
            if options.checkpointEvery > 0 && state.step % options.checkpointEvery == 0 && state.step < options.steps {
                state.wallSeconds = earlierWallSeconds + MonotonicClock.seconds() - started
                try saveCheckpoint()
            }
        }
        // A finished run ends on an evaluation, unless its last step just made one.
        if !interrupted && (options.evalEvery == 0 || state.lastValLoss == nil) {
            try evaluateOrStop(step: state.step, trainLoss: state.lastTrainLoss)
        }
        let elapsed = MonotonicClock.seconds() - started
        state.wallSeconds = earlierWallSeconds + elapsed
        try saveCheckpoint()
        writeLossCurve()
        return TrainingSummary(steps: state.step, tokens: state.tokens, trainLoss: state.lastTrainLoss, valLoss: state.lastValLoss,
                               valBitsPerByte: state.lastValBitsPerByte,
                               tokensPerSecond: Double((state.step - startStep) * tokensPerStep) / max(elapsed, 1e-9),
                               wallSeconds: state.wallSeconds, parameters: model.layout.count,
                               flopsPerToken: model.config.trainingFLOPsPerToken,
                               peakRSSBytes: ProcessMemory.peakResidentBytes(), checkpoint: checkpointPath, interrupted: interrupted)
    }

    /// Mean loss over `evalBatches` validation batches: always the same batches, so the
    /// curve moves only with the model. Also kept in bits per byte of the predicted text,
    /// (nats per token × tokens) / (ln 2 × bytes), which compares across tokenizers.
    /// A loss that is not finite is returned but not recorded.
    @discardableResult
    public func evaluate(step: Int, trainLoss: Double?) -> Double {
        let (batch, length) = (options.batch, options.context)
        var random = TrainingStream.evaluation.generator(seed: options.seed)
        var inputs = [Int32](repeating: 0, count: batch * length), targets = inputs
        var total = 0.0, bytes = 0
        for _ in 0..<options.evalBatches {
            Self.sample(corpus.validation, random: &random, batch: batch, length: length, inputs: &inputs, targets: &targets)
            total += inputs.withUnsafeBufferPointer { i in targets.withUnsafeBufferPointer { t in
                model.forward(inputs: i.baseAddress!, targets: t.baseAddress!, batch: batch, length: length, training: false)
            } }
            for target in targets { bytes += corpus.tokenByteCounts[Int(target)] }
        }
        let loss = total / Double(options.evalBatches)
        guard loss.isFinite else { return loss }
        let bitsPerByte = loss * Double(options.evalBatches * batch * length) / (log(2) * Double(max(1, bytes)))
        state.lastValLoss = loss
        state.lastValBitsPerByte = bitsPerByte
        state.evaluations.append(.init(step: step, trainLoss: trainLoss ?? loss, valLoss: loss, valBitsPerByte: bitsPerByte))
        return loss
    }

    /// ``evaluate(step:trainLoss:)``, stopping the run if the validation loss is not finite;
    /// `logging` (the step's learning rate and speed) puts that step's line in the metrics log.
    private func evaluateOrStop(step: Int, trainLoss: Double?, logging: (rate: Float, speed: Double)? = nil) throws {
        let loss = evaluate(step: step, trainLoss: trainLoss)
        if loss.isFinite { return }
        if let logging, let trainLoss {
            metricsLog.append(step: step, loss: trainLoss, learningRate: logging.rate, tokensPerSecond: logging.speed,
                              valLoss: loss, valBitsPerByte: nil)
        }
        throw stop(at: step, "the validation loss is \(loss)")
    }

    /// The one-line error of a run that diverged at `step`, naming what went wrong and the
    /// checkpoint left for `--resume`; the loss curve is drawn up to there.
    private func stop(at step: Int, _ what: String) -> TrainingError {
        writeLossCurve()
        let kept: String
        if let savedStep {
            kept = "the checkpoint of step \(savedStep) in \(checkpointPath) is kept"
        } else {
            kept = "no checkpoint was written" + (options.checkpointEvery > 0 ? " (the first was due at step \(options.checkpointEvery))" : "")
        }
        return TrainingError("training diverged at step \(step): \(what); \(kept); try a lower learning rate")
    }

    /// The SVG is a view of the log and the evaluations: failing to write it loses nothing else.
    private func writeLossCurve() {
        try? LossCurve.write(evaluations: state.evaluations, trainLog: metricsLog.read(), to: checkpointPath + ".loss.svg")
    }

    private func sampleBatch(into inputs: inout [Int32], _ targets: inout [Int32]) {
        Self.sample(corpus.train, random: &state.sampler, batch: options.batch, length: options.context, inputs: &inputs, targets: &targets)
    }

    /// `batch` windows of `length + 1` tokens at random offsets: inputs and next-token targets.
    static func sample(_ tokens: [Int32], random: inout Xoshiro256, batch: Int, length: Int, inputs: inout [Int32], targets: inout [Int32]) {
        let span = UInt64(tokens.count - length)
        for b in 0..<batch {
            let start = Int(random.next() % span)
            for t in 0..<length {
                inputs[b * length + t] = tokens[start + t]
                targets[b * length + t] = tokens[start + t + 1]
            }
        }
    }

    /// Steps the optimizer with the gradients clipped to a global norm of `gradClip`: the clip
    /// is a factor inside the update, so ``GPT/gradients`` themselves stay unclipped.
    private func optimizerStep(learningRate: Float, gradientNorm: Double?) {
        let pool = model.pool
        let count = model.layout.count
        let gradients = model.gradients.baseAddress!
        var clipScale: Float = 1
        if options.gradClip > 0, let gradientNorm, gradientNorm > Double(options.gradClip) {
            clipScale = Float(Double(options.gradClip) / gradientNorm)
        }
        let parameters = model.parameters.baseAddress!
        switch options.optimizer {
        case .sgd:
            Optimizer.sgd(parameters: parameters, gradients: gradients, count: count, learningRate: learningRate,
                          gradientScale: clipScale, pool: pool)
        case .adamw:
            Optimizer.adamW(parameters: parameters, gradients: gradients, m: m.baseAddress!, v: v.baseAddress!,
                            segments: decaySegments, learningRate: learningRate, beta1: options.beta1, beta2: options.beta2,
                            epsilon: 1e-8, step: state.step + 1, gradientScale: clipScale, pool: pool)
        }
    }

    // MARK: - Checkpoints

    /// Writes parameters, optimizer moments and the training state, atomically. Refuses
    /// weights or moments that are not finite, so a good checkpoint is never replaced by a
    /// diverged one (with `--grad-clip 0` the gradient norm is not measured, and a step can
    /// put NaN into the weights while its own loss was still finite).
    public func saveCheckpoint() throws {
        if let bad = firstNonFinite() {
            throw stop(at: state.step, "\(bad) is not finite")
        }
        let writer = try TFQWriter(path: checkpointPath)
        try model.writeParameters(to: writer)
        if options.optimizer == .adamw {
            try model.writeParameters(to: writer, prefix: "adam.m.", from: UnsafeBufferPointer(m))
            try model.writeParameters(to: writer, prefix: "adam.v.", from: UnsafeBufferPointer(v))
        }
        var metadata = ModelMetadata(kind: "checkpoint", config: model.config, tokenizer: corpus.tokenizer)
        metadata.sections["training"] = try JSONValue(encoding: state)
        try writer.finish(metadata: metadata.encoded())
        savedStep = state.step
    }

    /// The first tensor of weights or AdamW moments holding a NaN or an infinity, by name.
    private func firstNonFinite() -> String? {
        var buffers = [("", UnsafeBufferPointer(model.parameters))]
        if options.optimizer == .adamw { buffers += [("adam.m.", UnsafeBufferPointer(m)), ("adam.v.", UnsafeBufferPointer(v))] }
        for (prefix, buffer) in buffers {
            for tensor in model.layout.tensors
            where buffer[tensor.offset..<(tensor.offset + tensor.count)].contains(where: { !$0.isFinite }) {
                return "\(prefix)\(tensor.name)"
            }
        }
        return nil
    }

    private func restore(from file: TFQFile) throws {
        let metadata = try ModelMetadata(file: file)
        guard let saved = try file.metadataSection("training", as: TrainingState.self) else {
            throw TrainingError("\(file.path): not a training checkpoint (no training state); it cannot be resumed")
        }
        guard metadata.config == model.config else {
            throw TrainingError("\(file.path): the checkpoint's model (\(Self.describe(metadata.config))) does not match the flags (\(Self.describe(model.config)))")
        }
        guard saved.dataCRC32 == state.dataCRC32 else {
            throw TrainingError("\(file.path): the checkpoint was trained on different data (CRC-32 \(saved.dataCRC32), this corpus \(state.dataCRC32))")
        }
        let changed = Self.differences(saved.options, options)
        guard changed.isEmpty else {
            throw TrainingError("\(file.path): the flags differ from the checkpoint's: \(changed.joined(separator: ", "))")
        }
        try model.readParameters(from: file)
        if options.optimizer == .adamw && saved.step > 0 {
            try model.readParameters(from: file, prefix: "adam.m.", into: m)
            try model.readParameters(from: file, prefix: "adam.v.", into: v)
        }
        state = saved
        savedStep = saved.step
        model.restoreDropoutStep(UInt64(saved.step))
    }

    /// Options that must not change across a resume (`--steps` may grow).
    static func differences(_ saved: TrainingOptions, _ now: TrainingOptions) -> [String] {
        var a = saved, b = now
        a.steps = 0; b.steps = 0
        a.evalEvery = 0; b.evalEvery = 0
        a.checkpointEvery = 0; b.checkpointEvery = 0
        guard a != b else { return [] }
        let left = Mirror(reflecting: a).children, right = Mirror(reflecting: b).children
        return zip(left, right).compactMap { l, r in
            let (was, now) = (plain(l.value), plain(r.value))
            return was == now ? nil : "\(l.label ?? "?") was \(was), now \(now)"
        }
    }

    /// A flag's value as a person writes it: `512` or `none`, not `Optional(512)`.
    static func plain(_ value: Any) -> String {
        let mirror = Mirror(reflecting: value)
        guard mirror.displayStyle == .optional else { return "\(value)" }
        return mirror.children.first.map { plain($0.value) } ?? "none"
    }

    static func describe(_ config: ModelConfig) -> String {
        "vocab \(config.vocabSize), context \(config.contextLength), \(config.layers) layers, \(config.heads) heads, dim \(config.dim), ff \(config.ffDim), \(config.activation)"
            + (config.tieEmbeddings ? ", tied" : "") + (config.bias ? "" : ", no bias")
    }
}
