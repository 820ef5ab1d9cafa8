import TFQKernels

/// The seed's transformer, for training: a flat fp32 parameter buffer with named views,
/// a gradient buffer of the same layout, and hand-written forward and backward passes.
///
///     x = tok_emb[t] + pos_emb[p]
///     per block:  x = x + Attn(LN1(x));  x = x + FFN(LN2(x))
///     logits = L_final · LN_f(x)
///
/// The model is not thread-safe: one training loop drives it, and it spreads each kernel
/// over its thread pool.
public final class GPT {
    public let config: ModelConfig
    public let layout: ParameterLayout
    public let parameters: UnsafeMutableBufferPointer<Float>
    public let gradients: UnsafeMutableBufferPointer<Float>
    /// Probability of zeroing an element of the embeddings and of each residual branch while
    /// training (0 turns dropout off).
    public var dropout: Float = 0
    public let pool: ThreadPool
    private let gemm: GEMM
    private var activations: TrainingActivations?
    private var dropoutStep: UInt64 = 0

    public init(config: ModelConfig, pool: ThreadPool) {
        precondition(config.problem == nil && config.arch == .gpt, config.problem ?? "GPT builds the gpt architecture")
        self.config = config
        self.pool = pool
        layout = ParameterLayout(config: config)
        gemm = GEMM(pool: pool)
        parameters = Self.allocate(layout.count)
        gradients = Self.allocate(layout.count)
    }

    deinit {
        AlignedMemory.free(parameters.baseAddress!)
        AlignedMemory.free(gradients.baseAddress!)
    }

    private static func allocate(_ count: Int) -> UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: AlignedMemory.floats(count), count: count)
    }

    /// GPT-2's initialization: normal(0, 0.02) for matrices and embeddings, the residual
    /// projections scaled by 1/√(2·layers), LayerNorm gains 1, biases 0.
    public func initialize(seed: UInt64) {
        var random = Xoshiro256(seed: seed)
        let residualStd = 0.02 / (2 * Double(config.layers)).squareRoot()
        for tensor in layout.tensors {
            let values = parameters.baseAddress! + tensor.offset
            if tensor.name.hasSuffix("ln1.weight") || tensor.name.hasSuffix("ln2.weight") || tensor.name == "ln_f.weight" {
                values.update(repeating: 1, count: tensor.count)
            } else if !tensor.isMatrix {
                values.update(repeating: 0, count: tensor.count)
            } else {
                let residual = tensor.name.hasSuffix("attn.proj.weight") || tensor.name.hasSuffix("ffn.down.weight")
                let std = residual ? residualStd : 0.02
                for i in 0..<tensor.count { values[i] = Float(random.nextGaussian() * std) }
            }
        }
    }

    /// Continues dropout masks where a resumed run left off (one mask per training step).
    public func restoreDropoutStep(_ step: UInt64) {
        dropoutStep = step
    }

    public func zeroGradients() {
        gradients.update(repeating: 0)
    }

    /// Buffers for batches of `batch × length` tokens, made on first use of that shape.
    private func buffers(batch: Int, length: Int) -> TrainingActivations {
        if let activations, activations.batch == batch, activations.length == length { return activations }
        activations = nil
        let made = TrainingActivations(config: config, batch: batch, length: length, threads: pool.threadCount)
        activations = made
        return made
    }

    // MARK: - Forward

    /// Runs the model on `inputs` [batch × length]. With `targets`, returns the mean
    /// cross-entropy over positions whose target is ≥ 0 and keeps what ``backward()`` needs;
    /// without, leaves the logits readable through ``logits``.
    @discardableResult
    public func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, batch: Int, length: Int,
                        training: Bool = false) -> Double {
        precondition(length >= 1 && length <= config.contextLength && batch >= 1)
        let a = buffers(batch: batch, length: length)
        let n = a.rows, d = config.dim, f = config.ffDim
        a.inputs.update(from: inputs, count: n)
        if let targets { a.targets.update(from: targets, count: n) } else { a.targets.update(repeating: -1, count: n) }
        let dropping = training && dropout > 0
        if dropping { dropoutStep &+= 1 }
        lastForwardDropped = dropping
        let p = UnsafePointer(parameters.baseAddress!)
        let attention = CausalAttention(batch: batch, length: length, heads: config.heads, dim: d)

        Embedding.forward(ids: a.inputs, tokenTable: p + layout.tokenEmbedding, positionTable: p + layout.positionEmbedding,
                          x: a.layers[0].input, rows: n, length: length, dim: d, pool: pool)
        if dropping { applyDropout(a.layers[0].input, count: n * d, site: 0) }
        for (l, block) in layout.blocks.enumerated() {
            let s = a.layers[l]
            let next = l + 1 < config.layers ? a.layers[l + 1].input : a.output
            LayerNorm.forward(x: s.input, weight: p + block.ln1Weight, bias: block.ln1Bias.map { p + $0 }, y: s.ln1,
                              mean: s.ln1Mean, rstd: s.ln1Rstd, rows: n, dim: d, eps: config.normEps, pool: pool)
            linear(s.ln1, rows: n, inFeatures: d, weight: p + block.qkvWeight, bias: block.qkvBias.map { p + $0 },
                   output: s.qkv, outFeatures: 3 * d, accumulate: false)
            attention.forward(qkv: s.qkv, y: s.attention, probabilities: s.probabilities, gemms: a.attentionGEMMs, pool: pool)
            residualBranch(s.attention, inFeatures: d, weight: p + block.projWeight, bias: block.projBias.map { p + $0 },
                           stream: s.input, output: s.middle, site: dropping ? 1 + 2 * l : nil, buffers: a)
            LayerNorm.forward(x: s.middle, weight: p + block.ln2Weight, bias: block.ln2Bias.map { p + $0 }, y: s.ln2,
                              mean: s.ln2Mean, rstd: s.ln2Rstd, rows: n, dim: d, eps: config.normEps, pool: pool)
            linear(s.ln2, rows: n, inFeatures: d, weight: p + block.upWeight, bias: block.upBias.map { p + $0 },
                   output: s.up, outFeatures: f, accumulate: false)
            config.activation.forward(s.up, s.activated, count: n * f, pool: pool)
            residualBranch(s.activated, inFeatures: f, weight: p + block.downWeight, bias: block.downBias.map { p + $0 },
                           stream: s.middle, output: next, site: dropping ? 2 + 2 * l : nil, buffers: a)
        }
        LayerNorm.forward(x: a.output, weight: p + layout.finalNormWeight, bias: layout.finalNormBias.map { p + $0 }, y: a.lnf,
                          mean: a.lnfMean, rstd: a.lnfRstd, rows: n, dim: d, eps: config.normEps, pool: pool)
        linear(a.lnf, rows: n, inFeatures: d, weight: p + layout.head, bias: nil, output: a.logits,
               outFeatures: config.vocabSize, accumulate: false)
        guard targets != nil else { return 0 }
        let total = CrossEntropy.forward(logits: a.logits, targets: a.targets, rows: n, vocab: config.vocabSize,
                                         losses: a.losses, pool: pool)
        let counted = (0..<n).reduce(0) { $0 + (a.targets[$1] >= 0 ? 1 : 0) }
        return counted > 0 ? total / Double(counted) : 0
    }

    /// The logits of the last ``forward(inputs:targets:batch:length:training:)`` without targets:
    /// [batch·length × vocab].
    public var logits: UnsafeBufferPointer<Float> {
        guard let a = activations else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: a.logits, count: a.rows * config.vocabSize)
    }

    /// Per-position losses of the last forward with targets.
    public var positionLosses: UnsafeBufferPointer<Float> {
        guard let a = activations else { return UnsafeBufferPointer(start: nil, count: 0) }
        return UnsafeBufferPointer(start: a.losses, count: a.rows)
    }

    // MARK: - Backward

    /// Adds ∂(mean loss)/∂θ of the last forward-with-targets to ``gradients``.
    public func backward() {
        guard let a = activations else { preconditionFailure("backward() needs a forward pass with targets first") }
        let n = a.rows, d = config.dim, f = config.ffDim, v = config.vocabSize
        let counted = (0..<n).reduce(0) { $0 + (a.targets[$1] >= 0 ? 1 : 0) }
        let dropping = lastForwardDropped
        let p = UnsafePointer(parameters.baseAddress!)
        let g = gradients.baseAddress!
        let attention = CausalAttention(batch: a.batch, length: a.length, heads: config.heads, dim: d)

        CrossEntropy.backward(probabilities: a.logits, targets: a.targets, rows: n, vocab: v,
                              scale: counted > 0 ? 1 / Float(counted) : 0, pool: pool)
        linearBackward(dOutput: a.logits, input: a.lnf, rows: n, inFeatures: d, outFeatures: v, weight: p + layout.head,
                       dWeight: g + layout.head, dBias: nil, dInput: a.dNormed)
        a.dResidual.update(repeating: 0, count: n * d)
        LayerNorm.backward(dy: a.dNormed, x: a.output, weight: p + layout.finalNormWeight, mean: a.lnfMean, rstd: a.lnfRstd,
                           dx: a.dResidual, dWeight: g + layout.finalNormWeight, dBias: layout.finalNormBias.map { g + $0 },
                           rows: n, dim: d, scratch: a.normScratch, pool: pool)
        for (l, block) in layout.blocks.enumerated().reversed() {
            let s = a.layers[l]
            // x_out = middle + down(act(up(LN2(middle))))
            let dDown = branchGradient(a.dResidual, count: n * d, site: dropping ? 2 + 2 * l : nil, buffers: a)
            linearBackward(dOutput: dDown, input: s.activated, rows: n, inFeatures: f, outFeatures: d, weight: p + block.downWeight,
                           dWeight: g + block.downWeight, dBias: block.downBias.map { g + $0 }, dInput: a.dHidden)
            config.activation.backward(a.dHidden, x: s.up, dx: a.dHidden, count: n * f, pool: pool)
            linearBackward(dOutput: a.dHidden, input: s.ln2, rows: n, inFeatures: d, outFeatures: f, weight: p + block.upWeight,
                           dWeight: g + block.upWeight, dBias: block.upBias.map { g + $0 }, dInput: a.dNormed)
            LayerNorm.backward(dy: a.dNormed, x: s.middle, weight: p + block.ln2Weight, mean: s.ln2Mean, rstd: s.ln2Rstd,
                               dx: a.dResidual, dWeight: g + block.ln2Weight, dBias: block.ln2Bias.map { g + $0 },
                               rows: n, dim: d, scratch: a.normScratch, pool: pool)
            // middle = input + proj(attention(qkv(LN1(input))))
            let dProj = branchGradient(a.dResidual, count: n * d, site: dropping ? 1 + 2 * l : nil, buffers: a)
            linearBackward(dOutput: dProj, input: s.attention, rows: n, inFeatures: d, outFeatures: d, weight: p + block.projWeight,
                           dWeight: g + block.projWeight, dBias: block.projBias.map { g + $0 }, dInput: a.dAttention)
            attention.backward(dy: a.dAttention, qkv: s.qkv, probabilities: s.probabilities, dqkv: a.dQKV,
                               scratch: a.attentionScratch, gemms: a.attentionGEMMs, pool: pool)
            linearBackward(dOutput: a.dQKV, input: s.ln1, rows: n, inFeatures: d, outFeatures: 3 * d, weight: p + block.qkvWeight,
                           dWeight: g + block.qkvWeight, dBias: block.qkvBias.map { g + $0 }, dInput: a.dNormed)
            LayerNorm.backward(dy: a.dNormed, x: s.input, weight: p + block.ln1Weight, mean: s.ln1Mean, rstd: s.ln1Rstd,
                               dx: a.dResidual, dWeight: g + block.ln1Weight, dBias: block.ln1Bias.map { g + $0 },
                               rows: n, dim: d, scratch: a.normScratch, pool: pool)
        }
        if dropping { applyDropout(a.dResidual, count: n * d, site: 0) }
        Embedding.backward(dx: a.dResidual, ids: a.inputs, dTokens: g + layout.tokenEmbedding, dPositions: g + layout.positionEmbedding,
                           rows: n, length: a.length, dim: d, pool: pool)
    }

    // MARK: - Layers

    /// output [rows × out] = input [rows × in] · weightᵀ (+ bias); weight is [out × in].
    private func linear(_ input: UnsafePointer<Float>, rows: Int, inFeatures: Int, weight: UnsafePointer<Float>,
                        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, outFeatures: Int, accumulate: Bool) {
        gemm.multiply(m: rows, n: outFeatures, k: inFeatures, a: MatrixView(input, columns: inFeatures),
                      b: .transposed(weight, columns: inFeatures), c: output, ldc: outFeatures, accumulate: accumulate)
        if let bias { VectorOps.addBias(bias, to: output, rows: rows, columns: outFeatures, pool: pool) }
    }

    /// dInput = dOutput · weight (overwritten); dWeight += dOutputᵀ · input; dBias += column sums.
    private func linearBackward(dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, rows: Int, inFeatures: Int,
                                outFeatures: Int, weight: UnsafePointer<Float>, dWeight: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>?, dInput: UnsafeMutablePointer<Float>) {
        gemm.multiply(m: rows, n: inFeatures, k: outFeatures, a: MatrixView(dOutput, columns: outFeatures),
                      b: MatrixView(weight, columns: inFeatures), c: dInput, ldc: inFeatures, accumulate: false)
        gemm.multiply(m: outFeatures, n: inFeatures, k: rows, a: .transposed(dOutput, columns: outFeatures),
                      b: MatrixView(input, columns: inFeatures), c: dWeight, ldc: inFeatures, accumulate: true)
        if let dBias { VectorOps.accumulateBiasGradient(dOutput, rows: rows, columns: outFeatures, into: dBias, pool: pool) }
    }

    /// output = stream + dropout(input · weightᵀ + bias).
    private func residualBranch(_ input: UnsafePointer<Float>, inFeatures: Int, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                stream: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, site: Int?, buffers a: TrainingActivations) {
        let n = a.rows, d = config.dim
        if let site {
            linear(input, rows: n, inFeatures: inFeatures, weight: weight, bias: bias, output: a.residualScratch, outFeatures: d, accumulate: false)
            applyDropout(a.residualScratch, count: n * d, site: site)
            output.update(from: stream, count: n * d)
            VectorOps.add(a.residualScratch, into: output, count: n * d)
        } else {
            // The branch accumulates straight onto a copy of the stream: no extra pass.
            output.update(from: stream, count: n * d)
            linear(input, rows: n, inFeatures: inFeatures, weight: weight, bias: bias, output: output, outFeatures: d, accumulate: true)
        }
    }

    /// Whether the last forward pass applied dropout, so backward masks the same elements.
    private var lastForwardDropped = false

    /// The gradient reaching a residual branch: the stream's, masked like the forward pass.
    private func branchGradient(_ dStream: UnsafeMutablePointer<Float>, count: Int, site: Int?, buffers a: TrainingActivations) -> UnsafePointer<Float> {
        guard let site else { return UnsafePointer(dStream) }
        a.residualScratch.update(from: dStream, count: count)
        applyDropout(a.residualScratch, count: count, site: site)
        return UnsafePointer(a.residualScratch)
    }

    /// Zeroes each element with probability `dropout` and scales survivors by 1/(1 − dropout).
    /// The mask is a hash of (step, site, index), so the backward pass recomputes it exactly.
    private func applyDropout(_ values: UnsafeMutablePointer<Float>, count: Int, site: Int) {
        let keep = 1 - dropout, scale = 1 / keep
        let key = dropoutStep &* 1_000_003 &+ UInt64(site)
        pool.parallelFor(count, grain: 4096) { range in
            for i in range { values[i] = hashUniform(key, UInt64(i)) < keep ? values[i] * scale : 0 }
        }
    }
}
