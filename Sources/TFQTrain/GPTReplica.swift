import TFQKernels
import TFQTrainKernels
import TFQModel

/// One slice of a training batch, run forward and backward on a thread group of its own.
///
/// Replicas read the model's shared parameters and add into their own gradient buffer, so
/// two of them never touch the same memory until ``GPT`` sums their gradients. Splitting a
/// batch this way keeps each thread on whole sequences: one fork/join per replica per pass
/// instead of one per kernel, and every GEMM runs at its single-thread rate.
final class GPTReplica {
    let config: ModelConfig
    let layout: ParameterLayout
    /// The sequences of the batch this replica runs, and where its rows start in the batch.
    let batch: Int, length: Int, firstRow: Int
    let pool: ThreadPool
    private let parameters: UnsafePointer<Float>
    private let gradients: UnsafeMutablePointer<Float>
    private let gemm: GEMM
    /// The linear weights, packed for this pass by ``GPT`` and shared by every replica.
    private let panels: WeightPanels
    private let buffers: TrainingActivations
    /// The last forward pass's summed loss and the number of positions it counted.
    private(set) var lossSum = 0.0
    private(set) var counted = 0
    /// Whether the last forward pass had targets, and so left R'(up) in each block's `up`
    /// for ``backward(lossScale:dropout:zeroingFirst:)``.
    private var derivativesKept = false
    /// The gradients that backward adds into rather than writes: gains, biases, the position
    /// embedding, and the token embedding unless the head's GEMM (which runs first) writes
    /// it. Only these are zeroed before a backward that starts from zero; the linear
    /// weights' GEMMs overwrite theirs, which saves a pass over most of the buffer.
    private let gradientsAddedInto: [Range<Int>]

    init(config: ModelConfig, layout: ParameterLayout, parameters: UnsafePointer<Float>, panels: WeightPanels,
         gradients: UnsafeMutablePointer<Float>, logits: UnsafeMutablePointer<Float>, batch: Int, length: Int, firstRow: Int,
         pool: ThreadPool) {
        self.config = config
        self.layout = layout
        self.parameters = parameters
        self.panels = panels
        self.gradients = gradients
        self.batch = batch
        self.length = length
        self.firstRow = firstRow
        self.pool = pool
        gemm = GEMM(pool: pool)
        buffers = TrainingActivations(config: config, batch: batch, length: length, threads: pool.threadCount, logits: logits)
        // The linear weights (the ones `panels` packs) have their gradients written by a GEMM.
        let overwritten = Set(panels.offsets)
        var ranges: [Range<Int>] = []
        for tensor in layout.tensors where !overwritten.contains(tensor.offset) {
            let range = tensor.offset..<(tensor.offset + tensor.count)
            if let last = ranges.last, last.upperBound == range.lowerBound { ranges[ranges.count - 1] = last.lowerBound..<range.upperBound } else { ranges.append(range) }
        }
        gradientsAddedInto = ranges
    }

    /// Posts this replica's linear-layer GEMM tiles on `exchange`, where threads that are
    /// done help the others (see ``TileExchange``).
    func share(through exchange: TileExchange, as participant: Int) {
        gemm.share(through: exchange, as: participant)
    }

    // MARK: - Forward

    /// Runs this replica's rows of `inputs`; with `targets`, sums their cross-entropy into
    /// ``lossSum`` (positions whose target is ≥ 0, counted in ``counted``).
    func forward(inputs: UnsafePointer<Int32>, targets: UnsafePointer<Int32>?, dropout: DropoutMask?) {
        let a = buffers
        let n = a.rows, d = config.dim, f = config.ffDim
        a.inputs.update(from: inputs + firstRow, count: n)
        if let targets { a.targets.update(from: targets + firstRow, count: n) } else { a.targets.update(repeating: -1, count: n) }
        let p = parameters
        let attention = CausalAttention(batch: batch, length: length, heads: config.heads, dim: d)

        Embedding.forward(ids: a.inputs, tokenTable: p + layout.tokenEmbedding, positionTable: p + layout.positionEmbedding,
                          x: a.layers[0].input, rows: n, length: length, dim: d, pool: pool)
        if let dropout { apply(dropout, to: a.layers[0].input, site: 0) }
        for (l, block) in layout.blocks.enumerated() {
            let s = a.layers[l]
            let next = l + 1 < config.layers ? a.layers[l + 1].input : a.output
            LayerNorm.forward(x: s.input, weight: p + block.ln1Weight, bias: block.ln1Bias.map { p + $0 }, y: s.ln1,
                              mean: s.ln1Mean, rstd: s.ln1Rstd, rows: n, dim: d, eps: config.normEps, pool: pool)
            linear(s.ln1, inFeatures: d, weight: block.qkvWeight, bias: block.qkvBias.map { p + $0 },
                   output: s.qkv, outFeatures: 3 * d, accumulate: false)
            attention.forward(qkv: s.qkv, y: s.attention, probabilities: s.probabilities, gemms: a.attentionGEMMs, pool: pool)
            residualBranch(s.attention, inFeatures: d, weight: block.projWeight, bias: block.projBias.map { p + $0 },
                           stream: s.input, output: s.middle, dropout: dropout, site: 1 + 2 * l)
            LayerNorm.forward(x: s.middle, weight: p + block.ln2Weight, bias: block.ln2Bias.map { p + $0 }, y: s.ln2,
                              mean: s.ln2Mean, rstd: s.ln2Rstd, rows: n, dim: d, eps: config.normEps, pool: pool)
            linear(s.ln2, inFeatures: d, weight: block.upWeight, bias: block.upBias.map { p + $0 },
                   output: s.up, outFeatures: f, accumulate: false)
            if targets != nil {
                config.activation.forwardKeepingDerivative(s.up, s.activated, count: n * f, pool: pool)
            } else {
                config.activation.forward(s.up, s.activated, count: n * f, pool: pool)
            }
            residualBranch(s.activated, inFeatures: f, weight: block.downWeight, bias: block.downBias.map { p + $0 },
                           stream: s.middle, output: next, dropout: dropout, site: 2 + 2 * l)
        }
        LayerNorm.forward(x: a.output, weight: p + layout.finalNormWeight, bias: layout.finalNormBias.map { p + $0 }, y: a.lnf,
                          mean: a.lnfMean, rstd: a.lnfRstd, rows: n, dim: d, eps: config.normEps, pool: pool)
        linear(a.lnf, inFeatures: d, weight: layout.head, bias: nil, output: a.logits, outFeatures: config.vocabSize, accumulate: false)
        lossSum = 0
        counted = 0
        derivativesKept = targets != nil
        guard targets != nil else { return }
        lossSum = CrossEntropy.forward(logits: a.logits, targets: a.targets, rows: n, vocab: config.vocabSize, losses: a.losses, pool: pool)
        counted = (0..<n).reduce(0) { $0 + (a.targets[$1] >= 0 ? 1 : 0) }
    }

    // MARK: - Backward

    /// Adds `lossScale` × ∂(summed loss of the last forward)/∂θ to this replica's gradients,
    /// or writes it there when `zeroingFirst` (the values of adding it to zeros: x + 0 is x,
    /// but for the sign of a zero, which no update of a parameter sees).
    func backward(lossScale: Float, dropout: DropoutMask?, zeroingFirst: Bool) {
        let a = buffers
        let n = a.rows, d = config.dim, f = config.ffDim, v = config.vocabSize
        let p = parameters, g = gradients
        precondition(derivativesKept, "backward() needs a forward pass with targets first")
        if zeroingFirst { for range in gradientsAddedInto { (g + range.lowerBound).update(repeating: 0, count: range.count) } }
        let attention = CausalAttention(batch: batch, length: length, heads: config.heads, dim: d)

        CrossEntropy.backward(probabilities: a.logits, targets: a.targets, rows: n, vocab: v, scale: lossScale, pool: pool)
        linearBackward(dOutput: a.logits, input: a.lnf, inFeatures: d, outFeatures: v, weight: layout.head,
                       dWeight: g + layout.head, dBias: nil, dInput: a.dNormed, overwriting: zeroingFirst)
        a.dResidual.update(repeating: 0, count: n * d)
        LayerNorm.backward(dy: a.dNormed, x: a.output, weight: p + layout.finalNormWeight, mean: a.lnfMean, rstd: a.lnfRstd,
                           dx: a.dResidual, dWeight: g + layout.finalNormWeight, dBias: layout.finalNormBias.map { g + $0 },
                           rows: n, dim: d, scratch: a.normScratch, pool: pool)
        for (l, block) in layout.blocks.enumerated().reversed() {
            let s = a.layers[l]
            // x_out = middle + down(act(up(LN2(middle))))
            let dDown = branchGradient(a.dResidual, dropout: dropout, site: 2 + 2 * l)
            linearBackward(dOutput: dDown, input: s.activated, inFeatures: f, outFeatures: d, weight: block.downWeight,
                           dWeight: g + block.downWeight, dBias: block.downBias.map { g + $0 }, dInput: a.dHidden, overwriting: zeroingFirst)
            config.activation.backward(a.dHidden, derivative: s.up, dx: a.dHidden, count: n * f, pool: pool)
            linearBackward(dOutput: a.dHidden, input: s.ln2, inFeatures: d, outFeatures: f, weight: block.upWeight,
                           dWeight: g + block.upWeight, dBias: block.upBias.map { g + $0 }, dInput: a.dNormed, overwriting: zeroingFirst)
            LayerNorm.backward(dy: a.dNormed, x: s.middle, weight: p + block.ln2Weight, mean: s.ln2Mean, rstd: s.ln2Rstd,
                               dx: a.dResidual, dWeight: g + block.ln2Weight, dBias: block.ln2Bias.map { g + $0 },
                               rows: n, dim: d, scratch: a.normScratch, pool: pool)
            // middle = input + proj(attention(qkv(LN1(input))))
            let dProj = branchGradient(a.dResidual, dropout: dropout, site: 1 + 2 * l)
            linearBackward(dOutput: dProj, input: s.attention, inFeatures: d, outFeatures: d, weight: block.projWeight,
                           dWeight: g + block.projWeight, dBias: block.projBias.map { g + $0 }, dInput: a.dAttention, overwriting: zeroingFirst)
            attention.backward(dy: a.dAttention, qkv: s.qkv, probabilities: s.probabilities, dqkv: a.dQKV,
                               scratch: a.attentionScratch, gemms: a.attentionGEMMs, pool: pool)
            linearBackward(dOutput: a.dQKV, input: s.ln1, inFeatures: d, outFeatures: 3 * d, weight: block.qkvWeight,
                           dWeight: g + block.qkvWeight, dBias: block.qkvBias.map { g + $0 }, dInput: a.dNormed, overwriting: zeroingFirst)
            LayerNorm.backward(dy: a.dNormed, x: s.input, weight: p + block.ln1Weight, mean: s.ln1Mean, rstd: s.ln1Rstd,
                               dx: a.dResidual, dWeight: g + block.ln1Weight, dBias: block.ln1Bias.map { g + $0 },
                               rows: n, dim: d, scratch: a.normScratch, pool: pool)
        }
        if let dropout { apply(dropout, to: a.dResidual, site: 0) }
        Embedding.backward(dx: a.dResidual, ids: a.inputs, dTokens: g + layout.tokenEmbedding, dPositions: g + layout.positionEmbedding,
                           rows: n, length: length, dim: d, pool: pool)
    }

    // MARK: - Layers

    /// output [rows × out] = input [rows × in] · weightᵀ (+ bias); weight is the [out × in]
    /// parameter at that offset, read from its packed panels.
    private func linear(_ input: UnsafePointer<Float>, inFeatures: Int, weight: Int,
                        bias: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, outFeatures: Int, accumulate: Bool) {
        let rows = buffers.rows
        gemm.multiply(m: rows, a: MatrixView(input, columns: inFeatures), b: panels[weight].forward, c: output, ldc: outFeatures,
                      accumulate: accumulate)
        if let bias { VectorOps.addBias(bias, to: output, rows: rows, columns: outFeatures, pool: pool) }
    }

    /// dInput = dOutput · weight (overwritten); dWeight += dOutputᵀ · input (= when
    /// `overwriting`); dBias += column sums. `weight` is the parameter's offset, read from its
    /// packed panels.
    private func linearBackward(dOutput: UnsafePointer<Float>, input: UnsafePointer<Float>, inFeatures: Int,
                                outFeatures: Int, weight: Int, dWeight: UnsafeMutablePointer<Float>,
                                dBias: UnsafeMutablePointer<Float>?, dInput: UnsafeMutablePointer<Float>, overwriting: Bool) {
        let rows = buffers.rows
        gemm.multiply(m: rows, a: MatrixView(dOutput, columns: outFeatures), b: panels[weight].backward, c: dInput, ldc: inFeatures,
                      accumulate: false)
        gemm.multiply(m: outFeatures, n: inFeatures, k: rows, a: .transposed(dOutput, columns: outFeatures),
                      b: MatrixView(input, columns: inFeatures), c: dWeight, ldc: inFeatures, accumulate: !overwriting)
        if let dBias { VectorOps.accumulateBiasGradient(dOutput, rows: rows, columns: outFeatures, into: dBias, pool: pool) }
    }

    /// output = stream + dropout(input · weightᵀ + bias).
    private func residualBranch(_ input: UnsafePointer<Float>, inFeatures: Int, weight: Int, bias: UnsafePointer<Float>?,
                                stream: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, dropout: DropoutMask?, site: Int) {
        let a = buffers
        let count = a.rows * config.dim
        if let dropout {
            linear(input, inFeatures: inFeatures, weight: weight, bias: bias, output: a.residualScratch, outFeatures: config.dim, accumulate: false)
            apply(dropout, to: a.residualScratch, site: site)
            output.update(from: stream, count: count)
            VectorOps.add(a.residualScratch, into: output, count: count)
        } else {
            // The branch accumulates straight onto a copy of the stream: no extra pass.
            output.update(from: stream, count: count)
            linear(input, inFeatures: inFeatures, weight: weight, bias: bias, output: output, outFeatures: config.dim, accumulate: true)
        }
    }

    /// The gradient reaching a residual branch: the stream's, masked like the forward pass.
    private func branchGradient(_ dStream: UnsafeMutablePointer<Float>, dropout: DropoutMask?, site: Int) -> UnsafePointer<Float> {
        guard let dropout else { return UnsafePointer(dStream) }
        let a = buffers
        a.residualScratch.update(from: dStream, count: a.rows * config.dim)
        apply(dropout, to: a.residualScratch, site: site)
        return UnsafePointer(a.residualScratch)
    }

    /// Masks this replica's rows of a [batch·length × dim] activation, indexed as in the whole
    /// batch: the mask does not depend on how the batch was split.
    private func apply(_ mask: DropoutMask, to values: UnsafeMutablePointer<Float>, site: Int) {
        mask.apply(to: values, count: buffers.rows * config.dim, site: site, firstIndex: firstRow * config.dim, pool: pool)
    }
}

/// Dropout for one training step: zeroes each element with probability `rate` and scales
/// survivors by 1/(1 − rate). The mask is a hash of (step, site, index), so the backward pass
/// recomputes it exactly instead of storing it.
struct DropoutMask {
    let rate: Float
    /// ``GPT/dropoutKey``: the seed's part.
    let key: UInt64
    let step: UInt64

    func apply(to values: UnsafeMutablePointer<Float>, count: Int, site: Int, firstIndex: Int, pool: ThreadPool) {
        let keep = 1 - rate, scale = 1 / keep
        let key = self.key &+ step &* 1_000_003 &+ UInt64(site)
        pool.parallelFor(count, grain: 4096) { range in
            for i in range { values[i] = hashUniform(key, UInt64(firstIndex + i)) < keep ? values[i] * scale : 0 }
        }
    }
}

/// A uniform value in [0, 1) from a counter: the same on every thread and in every run,
/// so dropout masks need no stored state and no shared generator.
@inline(__always)
func hashUniform(_ a: UInt64, _ b: UInt64) -> Float {
    var z = a &* 0x9E37_79B9_7F4A_7C15 ^ b &+ 0x632B_E59B_D9B4_E019
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    z ^= z >> 31
    return Float(z >> 40) / Float(1 << 24)
}
