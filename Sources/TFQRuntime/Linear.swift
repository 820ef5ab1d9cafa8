import TFQKernels

/// One linear layer's weights as the file holds them: fp32 (a view into the mapping, or a
/// converted copy of an fp16 block matrix), fp16 kept as stored (a vocabulary table:
/// the classifier), or int8 with per-group scales.
enum LinearWeights {
    case f32(UnsafePointer<Float>)
    case f16(UnsafePointer<Float16>)
    case q8(Q8Matrix)
}

/// y = W·x + b for W [rows × columns].
struct Linear {
    /// The weight tensor's name in the file.
    let name: String
    let weights: LinearWeights
    let bias: UnsafePointer<Float>?
    let rows: Int
    let columns: Int
    /// Quantize the input in two int8 passes (formats/tfq.md §8, `two_pass_activations`):
    /// the layers whose activation error costs most accuracy, at twice the integer work.
    var twoPass = false

    /// Y[tokens × rows] = X[tokens × columns]·Wᵀ + b. `scratch` supplies the int8 copy of X.
    func apply(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>, scratch: QuantizationScratch, kernels: Kernels) {
        switch weights {
        case .f32(let w):
            if tokens == 1 {
                MatVec.multiply(w, rows: rows, columns: columns, x: x, y: y, pool: kernels.pool)
            } else {
                kernels.gemm.multiply(m: tokens, n: rows, k: columns, a: MatrixView(x, columns: columns),
                                      b: .transposed(w, columns: columns), c: y, ldc: rows, accumulate: false)
            }
        case .f16(let w) where tokens == 1:
            MatVec.multiply(w, rows: rows, columns: columns, x: x, y: y, pool: kernels.pool)
        case .f16(let w):
            // Every position's logits (an evaluation): blocks of up to 1 MB of rows widened
            // to fp32 and multiplied like fp32 weights, so the table is read once per call,
            // not once per token.
            let block = min(rows, max(16, (1 << 18) / max(1, columns)))
            let widened = AlignedMemory.uninitializedFloats(block * columns)
            defer { AlignedMemory.free(widened) }
            for first in stride(from: 0, to: rows, by: block) {
                let count = min(block, rows - first)
                kernels.pool.parallelFor(count, grain: max(1, 4096 / max(1, columns))) { range in
                    for r in range { VectorOps.widen(w + (first + r) * columns, into: widened + r * columns, count: columns) }
                }
                kernels.gemm.multiply(m: tokens, n: count, k: columns, a: MatrixView(x, columns: columns),
                                      b: .transposed(widened, columns: columns), c: y + first, ldc: rows, accumulate: false)
            }
        case .q8(let w) where twoPass:
            kernels.pool.parallelFor(tokens, grain: max(1, 2048 / columns)) { range in
                for t in range {
                    ActivationQuantizer.quantizeTwoPass(x + t * columns, count: columns, groupSize: w.groupSize,
                                                        values: scratch.values + 2 * t * columns, scales: scratch.scales + 2 * t * w.groups)
                }
            }
            if tokens == 1 {
                Q8MatMul.vectorTwoPass(w, x: scratch.values, xScales: scratch.scales, y: y, pool: kernels.pool)
            } else {
                Q8MatMul.matrixTwoPass(w, x: scratch.values, xScales: scratch.scales, tokens: tokens, y: y, pool: kernels.pool)
            }
        case .q8(let w):
            // One token is too little work to share; a prompt's tokens are split across the pool.
            kernels.pool.parallelFor(tokens, grain: max(1, 4096 / columns)) { range in
                for t in range {
                    ActivationQuantizer.quantize(x + t * columns, count: columns, groupSize: w.groupSize,
                                                 values: scratch.values + t * columns, scales: scratch.scales + t * w.groups)
                }
            }
            if tokens == 1 {
                Q8MatMul.vector(w, x: scratch.values, xScales: scratch.scales, y: y, pool: kernels.pool)
            } else {
                Q8MatMul.matrix(w, x: scratch.values, xScales: scratch.scales, tokens: tokens, y: y, pool: kernels.pool)
            }
        }
        if let bias {
            for t in 0..<tokens { VectorOps.add(bias, into: y + t * rows, count: rows) }
        }
    }
}

/// Room for a block of activations quantized to int8 (values and per-group scales), twice
/// over when a layer quantizes in two passes.
struct QuantizationScratch {
    let values: UnsafeMutablePointer<Int8>
    let scales: UnsafeMutablePointer<Float>
}

/// The thread pool and GEMM a session's kernels share.
struct Kernels {
    let pool: ThreadPool
    let gemm: GEMM
}
