import TFQFormat
import TFQKernels
import TFQTrainKernels
import TFQModel

/// The seed's transformer, for training: a flat fp32 parameter buffer with named views,
/// a gradient buffer of the same layout, and hand-written forward and backward passes.
///
///     x = tok_emb[t] + pos_emb[p]
///     per block:  x = x + Attn(LN1(x));  x = x + FFN(LN2(x))
///     logits = L_final · LN_f(x)
///
/// The model is not thread-safe: one training loop drives it. It splits each batch into
/// one slice of whole sequences per thread (``GPTReplica``), runs the slices side by side,
/// and sums their gradients; a batch smaller than the pool splits into fewer slices, each
/// spreading its kernels over a share of the threads. When a busy core makes side by side
/// slower than one thread, the caller runs the slices one after another instead
/// (``ReplicaSchedule``): the same values either way.
public final class GPT {
    /// The model's shape (always the gpt architecture).
    public let config: ModelConfig
    /// Where each parameter tensor sits in ``parameters`` and ``gradients``.
    public let layout: ParameterLayout
    /// Every parameter, in ``layout``'s order; 64-byte aligned, owned and freed by the model.
    public let parameters: UnsafeMutableBufferPointer<Float>
    /// ∂loss/∂parameters, in the same layout as ``parameters``.
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// Probability of zeroing an element of the embeddings and of each residual branch while
    /// training (0 turns dropout off).
    public var dropout: Float = 0
    /// The threads the model's kernels and replicas share.
    public let pool: ThreadPool
    private var replicas: [GPTReplica] = []
    /// The pool that runs the replicas side by side, one thread each.
    private var replicaPool: ThreadPool?
    /// Where the pool's threads claim replicas and, when replicas have one thread each, trade
    /// GEMM tiles, so that a thread that finishes first helps the others instead of waiting
    /// (see ``TileExchange``).
    private var exchange: TileExchange?
    /// Whether replicas trade tiles; off only to test that it changes nothing.
    var sharesTiles = true { didSet { replicas = []; exchange = nil } }
    /// Side by side or one after another, from what the last jobs gained.
    private var schedule = ReplicaSchedule()
    /// For tests: every job side by side (true) or on the caller alone (false), whatever the
    /// schedule says.
    var forcesSideBySide: Bool?
    /// Each replica's time in the last job, in seconds.
    private var replicaSeconds: [Double] = []
    /// Tiles computed by a thread other than the one running their replica, for tests.
    var tilesTakenByHelpers: Int { exchange?.tilesTakenByHelpers ?? 0 }
    /// For tests: the next side-by-side pass holds this replica back at its first GEMM until
    /// another thread has taken one of its tiles (``TileExchange/holdBackOnce(_:)``).
    var holdsBackReplicaOnce: Int?
    /// Gradient buffers of the replicas after the first, which adds into ``gradients``.
    private var replicaGradients: [UnsafeMutablePointer<Float>] = []
    private var logitsBuffer: UnsafeMutablePointer<Float>?
    /// The linear weights packed for the GEMM, once per pass for every replica.
    private let weightPanels: WeightPanels
    private var dropoutStep: UInt64 = 0
    /// Mixed into every dropout mask, so that masks change with the seed; the trainer draws
    /// it from the seed's ``TrainingStream/dropout`` stream.
    public var dropoutKey: UInt64 = 0
    /// The mask of the last forward pass, so backward drops the same elements.
    private var lastDropout: DropoutMask?
    /// Positions the last forward pass counted in its mean loss.
    private var lastCounted = 0

    /// A model of `config` (a valid gpt configuration) running on `pool`, its parameters and
    /// gradients all zero until ``initialize(seed:)`` or ``readParameters(from:prefix:into:)``.
    public init(config: ModelConfig, pool: ThreadPool) {
        precondition(config.problem == nil && config.arch == .gpt, config.problem ?? "GPT builds the gpt architecture")
        self.config = config
        self.pool = pool
        layout = ParameterLayout(config: config)
        weightPanels = WeightPanels(config: config, layout: layout)
        parameters = Self.allocate(layout.count)
        gradients = Self.allocate(layout.count)
    }

    deinit {
        AlignedMemory.free(parameters.baseAddress!)
        AlignedMemory.free(gradients.baseAddress!)
        for buffer in replicaGradients { AlignedMemory.free(buffer) }
        if let logitsBuffer { AlignedMemory.free(logitsBuffer) }
    }

    private static func allocate(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: AlignedMemory.floats(count), count: count)
    }

    /// GPT-2's initialization: normal(0, 0.02) for matrices and embeddings, the residual
    /// projections scaled by 1/√(2·layers), LayerNorm gains 1, biases 0.
    /// The draws come from the seed's ``TrainingStream/initialization`` stream.
    public func initialize(seed: UInt64) {
        var random = TrainingStream.initialization.generator(seed: seed)
        let residualStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        let blocks = (0..<config.layers).map(TensorName.Block.init)
        let gains = Set(blocks.flatMap { [$0.ln1Weight, $0.ln2Weight] } + [TensorName.finalNormWeight])
        let residualProjections = Set(blocks.flatMap { [$0.projWeight, $0.downWeight] })
        for tensor in layout.tensors {
            let values = parameters.baseAddress! + tensor.offset
            if gains.contains(tensor.name) {
                values.update(repeating: 1, count: tensor.count)
            } else if !tensor.isMatrix {
                values.update(repeating: 0, count: tensor.count)
            } else {
                let std = residualProjections.contains(tensor.name) ? residualStd : 0.02
                for i in 0..<tensor.count { values[i] = Float(random.nextGaussian() * std) }
            }
        }
    }

    /// Continues dropout masks where a resumed run left off (one mask per training step).
    public func restoreDropoutStep(_ step: UInt64) {
        dropoutStep = step
    }

    /// Sets every gradient to zero, before a ``backward()`` that adds into them.
    public func zeroGradients() {
        gradients.update(repeating: 0)
    }

    // MARK: - Splitting the batch

    /// The replicas for batches of `batch × length` tokens, made on first use of that shape:
    /// as many as the pool has threads (at most one per sequence), each with an equal share
    /// of the threads and a contiguous run of sequences.
    private func replicas(batch: Int, length: Int) -> [GPTReplica] {
        if let first = replicas.first, replicas.reduce(0, { $0 + $1.batch }) == batch, first.length == length { return replicas }
        replicas = []
        if let logitsBuffer { AlignedMemory.free(logitsBuffer) }
        let logits = AlignedMemory.floats(batch * length * config.vocabSize)
        logitsBuffer = logits
        let slices = min(pool.threadCount, batch)
        while replicaGradients.count < slices - 1 { replicaGradients.append(AlignedMemory.floats(layout.count)) }
        let threadsEach = pool.threadCount / slices
        replicaPool = slices == 1 ? nil : slices == pool.threadCount ? pool : ThreadPool(threads: slices)
        let p = UnsafePointer(parameters.baseAddress!)
        replicas = (0..<slices).map { s in
            let first = batch * s / slices, end = batch * (s + 1) / slices
            return GPTReplica(config: config, layout: layout, parameters: p, panels: weightPanels,
                              gradients: s == 0 ? gradients.baseAddress! : replicaGradients[s - 1],
                              logits: logits + first * length * config.vocabSize, batch: end - first, length: length,
                              firstRow: first * length, pool: slices == 1 ? pool : ThreadPool(threads: threadsEach))
        }
        exchange = slices > 1 ? TileExchange(participants: slices) : nil
        if let exchange, threadsEach == 1 && sharesTiles {
            for (s, replica) in replicas.enumerated() { replica.share(through: exchange, as: s) }
        }
        replicaSeconds = Array(repeating: 0, count: slices)
        return replicas
    }

    /// Runs `body` on every replica: side by side, each replica on whichever thread of
    /// ``replicaPool`` claims it, or one after another on the caller, as ``schedule`` says.
    /// `recording`: the job is a training step, whose times the schedule learns from.
    private func onEachReplica(recording: Bool = false, _ body: (GPTReplica) -> Void) {
        guard let replicaPool, let exchange else { body(replicas[0]); return }
        let replicas = self.replicas
        let sideBySide = forcesSideBySide ?? schedule.nextRunsSideBySide
        // Replicas post tiles when they share them and have one thread each (`replicas(batch:length:)`).
        if sideBySide, let held = holdsBackReplicaOnce, sharesTiles && replicas[0].pool.threadCount == 1 {
            exchange.holdBackOnce(held)
            holdsBackReplicaOnce = nil
        }
        exchange.beginRound(alone: !sideBySide)
        let start = MonotonicClock.seconds()
        let fastest = replicaSeconds.withUnsafeMutableBufferPointer { seconds in
            func run(_ replica: Int) {
                let start = MonotonicClock.seconds()
                body(replicas[replica])
                seconds[replica] = MonotonicClock.seconds() - start
            }
            if sideBySide {
                replicaPool.runOfferingWorkers { thread in exchange.runParticipants(thread: thread, run) }
            } else {
                exchange.runParticipants(thread: 0, run)
            }
            return seconds.min() ?? 0
        }
        if recording {
            schedule.record(sideBySide: sideBySide, wall: MonotonicClock.seconds() - start, fastestReplica: fastest, replicas: replicas.count)
            // The step's other kernels (summing the gradients, the optimizer) follow suit.
            pool.runsAlone = !schedule.sideBySide
        }
    }

    // MARK: - Forward and backward

    /// Runs the model on `inputs` [batch × length]. With `targets`, returns the mean
    /// cross-entropy over positions whose target is ≥ 0 and keeps what ``backward()`` needs;
    /// without, leaves the logits readable through ``logits``.
    @discardableResult
    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch: Int, length: Int,
                        training: Bool = false) -> Double {
        precondition(length >= 1 && length <= config.contextLength && batch >= 1)
        let replicas = self.replicas(batch: batch, length: length)
        let mask = training ? nextDropoutMask() : nil
        lastDropout = mask
        weightPanels.pack(parameters.baseAddress!, forward: true, backward: false, pool: pool)
        onEachReplica { $0.forward(inputs: inputs, targets: targets, dropout: mask) }
        lastCounted = replicas.reduce(0) { $0 + $1.counted }
        let total = replicas.reduce(0.0) { $0 + $1.lossSum }
        return lastCounted > 0 ? total / Double(lastCounted) : 0
    }

    /// The logits of the last ``forward(inputs:targets:batch:length:training:)``:
    /// [batch·length × vocab] (after ``backward()``, its scratch instead).
    public var logits: UnsafeBufferPointer<Float> {
        guard let logitsBuffer, !replicas.isEmpty else { return UnsafeBufferPointer(start: nil, count: 0) }
        let rows = replicas.reduce(0) { $0 + $1.batch } * replicas[0].length
        return UnsafeBufferPointer(start: logitsBuffer, count: rows * config.vocabSize)
    }

    /// Adds ∂(mean loss)/∂θ of the last forward-with-targets to ``gradients``.
    public func backward() {
        precondition(!replicas.isEmpty, "backward() needs a forward pass with targets first")
        let scale = lastCounted > 0 ? 1 / Float(lastCounted) : 0
        let mask = lastDropout
        weightPanels.pack(parameters.baseAddress!, forward: false, backward: true, pool: pool)
        // The first replica adds into `gradients`; the others start their own buffers from zero.
        onEachReplica { $0.backward(lossScale: scale, dropout: mask, zeroingFirst: $0.firstRow > 0) }
        _ = sumReplicaGradients(measuringNorm: false)
    }

    /// One training step's gradients: sets ``gradients`` to ∂(mean loss)/∂θ on `inputs` and
    /// `targets` [batch × length] (targets < 0 are not counted), with dropout if it is on.
    /// Returns the mean loss and, when `measuringNorm`, the gradients' L2 norm.
    ///
    /// The same values as ``zeroGradients()``, ``forward(inputs:targets:batch:length:training:)``
    /// with `training`, then ``backward()``, bit for bit, but each replica runs its forward and
    /// backward passes in one job: one fork/join per step instead of two, and the gradients
    /// are zeroed by the threads that fill them. The norm comes out of the pass that sums
    /// the replicas' gradients.
    public func trainingStep(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>, batch: Int, length: Int,
                             measuringNorm: Bool) -> (loss: Double, gradientNorm: Double?) {
        precondition(length >= 1 && length <= config.contextLength && batch >= 1)
        let replicas = self.replicas(batch: batch, length: length)
        let mask = nextDropoutMask()
        lastDropout = mask
        lastCounted = (0..<(batch * length)).reduce(0) { $0 + (targets[$1] >= 0 ? 1 : 0) }
        let scale = lastCounted > 0 ? 1 / Float(lastCounted) : 0
        weightPanels.pack(parameters.baseAddress!, forward: true, backward: true, pool: pool)
        onEachReplica(recording: true) { replica in
            replica.forward(inputs: inputs, targets: targets, dropout: mask)
            replica.backward(lossScale: scale, dropout: mask, zeroingFirst: true)
        }
        let total = replicas.reduce(0.0) { $0 + $1.lossSum }
        let norm = sumReplicaGradients(measuringNorm: measuringNorm)
        return (lastCounted > 0 ? total / Double(lastCounted) : 0, norm)
    }

    /// Adds the other replicas' gradients into ``gradients``; when `measuringNorm`, returns
    /// the sum's L2 norm, taken in the same pass with the same chunks and partial sums as
    /// `Optimizer.norm`, so the value is the same bit for bit.
    private func sumReplicaGradients(measuringNorm: Bool) -> Double? {
        let extra = replicaGradients.prefix(replicas.count - 1)
        let g = gradients.baseAddress!, count = layout.count
        // A local function passed as a non-escaping argument: no closure context on the heap.
        func addExtra(_ range: Range<Int>) {
            for buffer in extra { VectorOps.add(buffer + range.lowerBound, into: g + range.lowerBound, count: range.count) }
        }
        if measuringNorm { return Optimizer.norm(g, count: count, pool: pool, prepare: addExtra) }
        if !extra.isEmpty { pool.parallelFor(count, grain: 4096, addExtra) }
        return nil
    }

    /// A fresh dropout mask for a training pass (one per step, so a resumed run continues the
    /// sequence), or nil when dropout is off.
    private func nextDropoutMask() -> DropoutMask? {
        guard dropout > 0 else { return nil }
        dropoutStep &+= 1
        return DropoutMask(rate: dropout, key: dropoutKey, step: dropoutStep)
    }
}

extension GPT {
    /// Writes every parameter as an f32 tensor under its formats/tfq.md name.
    public func writeParameters(to writer: TFQWriter, prefix: String = "", from buffer: UnsafeBufferPointer<Float>? = nil,
                                compression: TensorCompression = .none) throws {
        let source = buffer ?? UnsafeBufferPointer(parameters)
        for tensor in layout.tensors {
            let values = UnsafeBufferPointer(rebasing: source[tensor.offset..<(tensor.offset + tensor.count)])
            try writer.add(name: prefix + tensor.name, shape: tensor.shape, floats: values, compression: compression)
        }
    }

    /// Reads every parameter (f32, f16 or q8, dequantized) from `file` into `buffer`
    /// (the parameters by default), checking names and shapes.
    public func readParameters(from file: TFQFile, prefix: String = "", into buffer: UnsafeMutableBufferPointer<Float>? = nil) throws {
        let target = buffer ?? parameters
        for tensor in layout.tensors {
            let name = prefix + tensor.name
            guard let info = file.info(name) else { throw TFQFormatError(file: file.path, tensor: name, .missingTensor) }
            guard info.shape == tensor.shape else {
                throw TFQFormatError(file: file.path, tensor: name, .badTensor("has shape \(info.shape), the config needs \(tensor.shape)"))
            }
            (target.baseAddress! + tensor.offset).update(from: file.floats(info), count: tensor.count)
        }
    }
}
