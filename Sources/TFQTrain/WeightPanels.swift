import TFQKernels
import TFQModel

/// The linear layers' weights packed as the GEMM reads them, once per pass for all
/// replicas: Wᵀ for the forward products and W for backward's input gradients. Without
/// it, every replica packs every weight itself in each of those products, so two replicas
/// pack each weight twice per pass, and a thread that runs both (a busy core) packs it
/// twice itself. Products from packed weights are the same bit for bit.
///
/// The packs hold the parameters as they were at the last ``pack(_:forward:backward:pool:)``:
/// ``GPT`` packs at the start of every pass, after anything may have changed them.
final class WeightPanels {
    /// One linear weight [outFeatures × inFeatures] at `offset` in the parameter buffer.
    struct Weight {
        let offset: Int, outFeatures: Int, inFeatures: Int
        /// Wᵀ, as `input · Wᵀ` reads it: k = inFeatures, n = outFeatures.
        let forward: PackedMatrix
        /// W, as `dOutput · W` reads it: k = outFeatures, n = inFeatures.
        let backward: PackedMatrix
    }

    private var weights: [Int: Weight] = [:]
    /// (weight, panel) pairs: one parallel job covers every panel of every weight.
    private let forwardJobs: [(offset: Int, panel: Int)]
    private let backwardJobs: [(offset: Int, panel: Int)]

    /// Room for the packs of every linear weight of `layout`'s model: Q/K/V, projection, up
    /// and down in each block, and the classifier (the token table when tied).
    init(config: ModelConfig, layout: ParameterLayout) {
        let d = config.dim, f = config.ffDim
        var shapes = layout.blocks.flatMap { block in
            [(block.qkvWeight, 3 * d, d), (block.projWeight, d, d), (block.upWeight, f, d), (block.downWeight, d, f)]
        }
        shapes.append((layout.head, config.vocabSize, d))
        var forwardJobs: [(Int, Int)] = [], backwardJobs: [(Int, Int)] = []
        for (offset, out, input) in shapes {
            let weight = Weight(offset: offset, outFeatures: out, inFeatures: input,
                                forward: PackedMatrix(k: input, n: out), backward: PackedMatrix(k: out, n: input))
            weights[offset] = weight
            forwardJobs += (0..<weight.forward.packingJobs).map { (offset, $0) }
            backwardJobs += (0..<weight.backward.packingJobs).map { (offset, $0) }
        }
        self.forwardJobs = forwardJobs
        self.backwardJobs = backwardJobs
    }

    /// Packs every weight from `parameters` for the products of a forward pass, a backward
    /// pass, or both: one job on `pool`, its panels split between the threads.
    func pack(_ parameters: UnsafePointer<Float>, forward: Bool, backward: Bool, pool: ThreadPool) {
        let forwardCount = forward ? forwardJobs.count : 0
        pool.parallelFor(forwardCount + (backward ? backwardJobs.count : 0)) { range in
            for job in range {
                if job < forwardCount {
                    let (offset, panel) = self.forwardJobs[job]
                    let weight = self.weights[offset]!
                    weight.forward.pack(panel: panel, of: .transposed(parameters + offset, columns: weight.inFeatures))
                } else {
                    let (offset, panel) = self.backwardJobs[job - forwardCount]
                    let weight = self.weights[offset]!
                    weight.backward.pack(panel: panel, of: MatrixView(parameters + offset, columns: weight.inFeatures))
                }
            }
        }
    }

    /// The weight at `offset` in the parameter buffer.
    subscript(offset: Int) -> Weight { weights[offset]! }

    /// Where every linear weight starts in the parameter buffer.
    var offsets: Dictionary<Int, Weight>.Keys { weights.keys }
}
