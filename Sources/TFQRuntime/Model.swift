import TFQFormat
import TFQKernels
import TFQModel

/// A .tfq model opened for inference: memory-mapped, checked, and immutable.
///
/// Raw fp32 and int8 tensors are used in place from the mapping; zstd tensors are decoded
/// once at open and fp16 ones converted to fp32 once. A model may be shared by any number of
/// threads; each thread runs its own ``Session``.
public final class Model: @unchecked Sendable {
    /// The architecture (formats/tfq.md §9).
    public let config: ModelConfig
    /// Text ⇄ token ids.
    public let tokenizer: Tokenizer
    /// Every metadata section of the file: provenance, quantization, quality report, …
    public let metadata: ModelMetadata
    /// The underlying file.
    public let file: TFQFile

    struct Block {
        let ln1Weight: UnsafePointer<Float>, ln1Bias: UnsafePointer<Float>?
        let qkv: Linear, proj: Linear
        let ln2Weight: UnsafePointer<Float>, ln2Bias: UnsafePointer<Float>?
        let up: Linear, down: Linear
    }

    enum Embedding {
        case f32(UnsafePointer<Float>)
        case q8(Q8Matrix)
    }

    let tokenEmbedding: Embedding
    let positionEmbedding: UnsafePointer<Float>
    let blocks: [Block]
    let finalNormWeight: UnsafePointer<Float>, finalNormBias: UnsafePointer<Float>?
    let head: Linear
    /// The largest q8 group count any layer needs per token (sizes the quantization scratch).
    let maxGroups: Int
    private var converted: [UnsafeMutablePointer<Float>] = []

    /// Opens the model at `path`. With `verify`, checks every tensor checksum first.
    public init(path: String, verify: Bool = false) throws {
        file = try TFQFile(path: path, options: .init(verifyChecksums: verify))
        metadata = try ModelMetadata(file: file)
        config = metadata.config
        tokenizer = metadata.tokenizer
        let config = metadata.config
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        var converted: [UnsafeMutablePointer<Float>] = []
        let file = self.file

        func fail(_ name: String, _ why: String) -> TFQFormatError { TFQFormatError(file: path, tensor: name, .badTensor(why)) }
        func info(_ name: String, _ shape: [Int]) throws -> TensorInfo {
            guard let info = file.info(name) else { throw TFQFormatError(file: path, tensor: name, .missingTensor) }
            guard info.shape == shape else { throw fail(name, "has shape \(info.shape), the config needs \(shape)") }
            return info
        }
        func floats(_ name: String, _ shape: [Int]) throws -> UnsafePointer<Float> {
            let info = try info(name, shape)
            let bytes = file.bytes(info)
            switch info.dtype {
            case .f32:
                return bytes.baseAddress!.assumingMemoryBound(to: Float.self)
            case .f16:
                let copy = AlignedMemory.floats(info.elementCount)
                let halves = bytes.bindMemory(to: Float16.self)
                for i in 0..<info.elementCount { copy[i] = Float(halves[i]) }
                converted.append(copy)
                return UnsafePointer(copy)
            case .q8:
                throw fail(name, "is q8; this tensor must be f32 or f16")
            }
        }
        func optionalFloats(_ name: String, _ shape: [Int]) throws -> UnsafePointer<Float>? {
            config.bias ? try floats(name, shape) : nil
        }
        func q8(_ info: TensorInfo) throws -> Q8Matrix {
            guard info.layout == .interleaved16x4 else {
                throw fail(info.name, "is q8 in the row-major layout; re-export it with tfq export --int8")
            }
            let bytes = file.bytes(info)
            let values = bytes.baseAddress!.assumingMemoryBound(to: Int8.self)
            let offset = Q8Codec.scalesOffset(rows: info.rows, cols: info.columns, layout: info.layout)
            let scales = (bytes.baseAddress! + offset).assumingMemoryBound(to: Float.self)
            return Q8Matrix(values: values, scales: scales, rows: info.rows, columns: info.columns, groupSize: info.groupSize)
        }
        func linear(_ name: String, rows: Int, columns: Int, bias: String?) throws -> Linear {
            let info = try info(name, [rows, columns])
            let weights: LinearWeights = info.dtype == .q8 ? .q8(try q8(info)) : .f32(try floats(name, [rows, columns]))
            return Linear(weights: weights, bias: try bias.flatMap { try optionalFloats($0, [rows]) }, rows: rows, columns: columns)
        }

        let tokens = try info("tok_emb", [v, d])
        tokenEmbedding = tokens.dtype == .q8 ? .q8(try q8(tokens)) : .f32(try floats("tok_emb", [v, d]))
        positionEmbedding = try floats("pos_emb", [config.contextLength, d])
        blocks = try (0..<config.layers).map { i in
            let p = "blocks.\(i)."
            return Block(ln1Weight: try floats(p + "ln1.weight", [d]), ln1Bias: try optionalFloats(p + "ln1.bias", [d]),
                         qkv: try linear(p + "attn.qkv.weight", rows: 3 * d, columns: d, bias: p + "attn.qkv.bias"),
                         proj: try linear(p + "attn.proj.weight", rows: d, columns: d, bias: p + "attn.proj.bias"),
                         ln2Weight: try floats(p + "ln2.weight", [d]), ln2Bias: try optionalFloats(p + "ln2.bias", [d]),
                         up: try linear(p + "ffn.up.weight", rows: f, columns: d, bias: p + "ffn.up.bias"),
                         down: try linear(p + "ffn.down.weight", rows: d, columns: f, bias: p + "ffn.down.bias"))
        }
        finalNormWeight = try floats("ln_f.weight", [d])
        finalNormBias = try optionalFloats("ln_f.bias", [d])
        head = try linear(config.tieEmbeddings ? "tok_emb" : "lm_head.weight", rows: v, columns: d, bias: nil)
        let linears = blocks.flatMap { [$0.qkv, $0.proj, $0.up, $0.down] } + [head]
        maxGroups = linears.map { linear -> Int in
            if case .q8(let w) = linear.weights { return w.groups } else { return 0 }
        }.max() ?? 0
        self.converted = converted
    }

    deinit {
        for buffer in converted { AlignedMemory.free(buffer) }
    }

    /// True when every matrix is int8.
    public var isQuantized: Bool {
        if case .q8 = head.weights { return true } else { return false }
    }
}
