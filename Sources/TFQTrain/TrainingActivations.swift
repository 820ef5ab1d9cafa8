import TFQKernels
import TFQTrainKernels
import TFQModel

/// Every buffer one training step needs for a batch of `batch × length` tokens, allocated
/// once: the forward pass keeps what the backward pass reads, and nothing is allocated per step.
final class TrainingActivations {
    let batch: Int, length: Int
    var rows: Int { batch * length }

    struct Layer {
        let input: UnsafeMutablePointer<Float>        // [N, D] residual stream entering the block
        let ln1: UnsafeMutablePointer<Float>          // [N, D]
        let ln1Mean: UnsafeMutablePointer<Float>, ln1Rstd: UnsafeMutablePointer<Float>  // [N]
        let qkv: UnsafeMutablePointer<Float>          // [N, 3D]
        let probabilities: UnsafeMutablePointer<Float>  // [B, H, T, T]
        let attention: UnsafeMutablePointer<Float>    // [N, D] heads side by side
        let middle: UnsafeMutablePointer<Float>       // [N, D] residual stream after attention
        let ln2: UnsafeMutablePointer<Float>          // [N, D]
        let ln2Mean: UnsafeMutablePointer<Float>, ln2Rstd: UnsafeMutablePointer<Float>
        let up: UnsafeMutablePointer<Float>           // [N, F] before the activation; R'(up) after a forward with targets
        let activated: UnsafeMutablePointer<Float>    // [N, F]
    }

    let layers: [Layer]
    let output: UnsafeMutablePointer<Float>           // [N, D] residual stream after the last block
    let lnf: UnsafeMutablePointer<Float>, lnfMean: UnsafeMutablePointer<Float>, lnfRstd: UnsafeMutablePointer<Float>
    let logits: UnsafeMutablePointer<Float>           // [N, V]; probabilities, then ∂L/∂logits (the caller's)
    let losses: UnsafeMutablePointer<Float>           // [N]
    let inputs: UnsafeMutablePointer<Int32>, targets: UnsafeMutablePointer<Int32>

    // Backward scratch.
    let dResidual: UnsafeMutablePointer<Float>        // [N, D]
    let dNormed: UnsafeMutablePointer<Float>          // [N, D]
    let dAttention: UnsafeMutablePointer<Float>       // [N, D]
    let dQKV: UnsafeMutablePointer<Float>             // [N, 3D]
    let dHidden: UnsafeMutablePointer<Float>          // [N, F]
    let normScratch: UnsafeMutablePointer<Float>      // [threads, 2D]
    let attentionScratch: UnsafeMutablePointer<Float> // [threads, rowBlock·T]
    let attentionGEMMs: [GEMM]                        // one single-threaded GEMM per thread
    let residualScratch: UnsafeMutablePointer<Float>  // [N, D] a branch's output before it joins the stream

    private var allocations: [UnsafeMutableRawPointer] = []

    /// `logits` is [batch·length × vocab], owned by the caller: ``GPT`` keeps the logits of
    /// all its replicas side by side in one buffer.
    init(config: ModelConfig, batch: Int, length: Int, threads: Int, logits: UnsafeMutablePointer<Float>) {
        self.batch = batch
        self.length = length
        let n = batch * length, d = config.dim, f = config.ffDim
        var allocations: [UnsafeMutableRawPointer] = []
        func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
            let buffer = AlignedMemory.floats(count)
            allocations.append(UnsafeMutableRawPointer(buffer))
            return buffer
        }
        layers = (0..<config.layers).map { _ in
            Layer(input: floats(n * d), ln1: floats(n * d), ln1Mean: floats(n), ln1Rstd: floats(n), qkv: floats(n * 3 * d),
                  probabilities: floats(batch * config.heads * length * length), attention: floats(n * d), middle: floats(n * d),
                  ln2: floats(n * d), ln2Mean: floats(n), ln2Rstd: floats(n), up: floats(n * f), activated: floats(n * f))
        }
        output = floats(n * d)
        lnf = floats(n * d); lnfMean = floats(n); lnfRstd = floats(n)
        self.logits = logits
        losses = floats(n)
        let ids = UnsafeMutableRawPointer(AlignedMemory.floats(2 * n))
        allocations.append(ids)
        inputs = ids.initializeMemory(as: Int32.self, repeating: 0, count: 2 * n)
        targets = inputs + n
        dResidual = floats(n * d); dNormed = floats(n * d); dAttention = floats(n * d)
        dQKV = floats(n * 3 * d); dHidden = floats(n * f)
        normScratch = floats(threads * 2 * d)
        attentionScratch = floats(threads * CausalAttention(batch: batch, length: length, heads: config.heads, dim: d).scratchPerThread)
        attentionGEMMs = CausalAttention.gemms(threads: threads)
        residualScratch = floats(n * d)
        self.allocations = allocations
    }

    deinit {
        for raw in allocations { AlignedMemory.free(raw) }
    }
}
