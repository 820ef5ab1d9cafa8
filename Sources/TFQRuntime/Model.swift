import TFQFormat
import TFQKernels
import TFQModel

/// A .tfq model opened for inference: memory-mapped, checked, and immutable.
///
/// Raw fp32 and int8 tensors, and raw fp16 vocabulary tables, are used in place from the
/// mapping; zstd tensors are decoded once at open, and other fp16 tensors converted to fp32
/// once. A model may be shared by any number of threads; each thread runs its own ``Session``.
public final class Model: @unchecked Sendable {
    /// The architecture (formats/tfq.md §9): gpt or llama.
    public let config: ModelConfig
    /// Text ⇄ token ids.
    public let tokenizer: Tokenizer
    /// Every metadata section of the file: provenance, quantization, quality report, …
    public let metadata: ModelMetadata
    /// The underlying file.
    public let file: TFQFile

    /// A normalization before a sub-layer: LayerNorm (gpt) or RMSNorm (llama).
    enum Norm {
        case layer(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?)
        case rms(weight: UnsafePointer<Float>)
    }

    /// The feed-forward block: gpt's MLP, down·R(up·x + b) + b, or llama's SwiGLU,
    /// down·(SiLU(gate·x) ⊙ up·x).
    enum FeedForward {
        case mlp(up: Linear, down: Linear)
        case gated(gate: Linear, up: Linear, down: Linear)
    }

    /// Where position enters: learned embeddings added to the input (gpt), or rotations of
    /// each query and key (llama).
    enum Positions {
        case learned(UnsafePointer<Float>)
        case rotary(RotaryEmbedding)
    }

    struct Block {
        let attentionNorm: Norm
        /// Q, K and V rows stacked: [dim + 2·kvDim, dim].
        let qkv: Linear
        let proj: Linear
        let feedForwardNorm: Norm
        let feedForward: FeedForward
    }

    enum Embedding {
        case f32(UnsafePointer<Float>)
        case f16(UnsafePointer<Float16>)
        case q8(Q8Matrix)
    }

    let tokenEmbedding: Embedding
    let positions: Positions
    let blocks: [Block]
    let finalNorm: Norm
    let head: Linear
    /// The largest q8 group count any layer needs per token (sizes the quantization scratch).
    let maxGroups: Int
    /// Some layer quantizes its input in two passes (a session's int8 scratch is doubled).
    let hasTwoPassLayers: Bool
    /// Every linear layer's weight name and shape, in the order a token meets them (a tied
    /// head appears as `tok_emb`).
    @_spi(Calibration) public let linearShapes: [(name: String, rows: Int, columns: Int)]
    private var converted: [UnsafeMutablePointer<Float>] = []
    /// Bytes of the fp32 copies made of fp16 tensors at open.
    let convertedBytes: Int

    /// Opens the model at `path`.
    ///
    /// Opening checks the file's structure, its metadata and every tensor the architecture
    /// needs, but reads no tensor byte it does not use: a flipped bit in the weights goes
    /// unnoticed. With `verify`, it first makes the checks of `tfq verify`: every tensor's
    /// checksum (before any zstd tensor is decoded) and every int8 value and scale. That
    /// reads the whole file once (README gives the cost).
    ///
    /// With `copyIntoMemory`, the file is read into private memory instead of mapped, so that
    /// truncating or rewriting it while in use cannot affect the model (a mapped file
    /// truncated in use makes every later evaluation fail: ``SessionError/modelFileDamaged(path:)``).
    public convenience init(path: String, verify: Bool = false, copyIntoMemory: Bool = false) throws {
        let file = try TFQFile(path: path, options: .init(verifyChecksums: verify, copyIntoMemory: copyIntoMemory))
        if verify { try file.verifyValues() }
        try self.init(file: file)
        // The vocabulary is kept once, as `tokenizer`: the file this model owns need not
        // keep its parsed JSON too (a caller's own file, given to init(file:), is left whole).
        file.releaseMetadataSection("tokenizer")
    }

    /// Builds the model on a file already open, checking what ``init(path:verify:copyIntoMemory:)``
    /// checks after the file's own structure: config, tokenizer, every tensor's name, dtype and shape.
    public init(file: TFQFile) throws {
        let path = file.path
        self.file = file
        metadata = try ModelMetadata(file: file)
        config = metadata.config
        tokenizer = metadata.tokenizer
        let config = metadata.config
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        var converted: [UnsafeMutablePointer<Float>] = []
        var convertedBytes = 0

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
                guard let copy = AlignedMemory.availableFloats(info.elementCount, zeroed: false) else {
                    throw TFQFormatError(file: path, tensor: name, .outOfMemory("cannot allocate \(info.elementCount * 4) bytes to convert it to f32"))
                }
                let halves = bytes.bindMemory(to: Float16.self)
                for i in 0..<info.elementCount { copy[i] = Float(halves[i]) }
                converted.append(copy)
                convertedBytes += info.elementCount * 4
                return UnsafePointer(copy)
            case .q8, .q8f16:
                throw fail(name, "is \(info.dtype); this tensor must be f32 or f16")
            }
        }
        func optionalFloats(_ name: String, _ shape: [Int]) throws -> UnsafePointer<Float>? {
            config.bias ? try floats(name, shape) : nil
        }
        func q8(_ info: TensorInfo) throws -> Q8Matrix {
            guard info.layout == .interleaved16x4 else {
                throw TFQFormatError(file: path, tensor: info.name, .unsupported("\(info.dtype) in the row-major layout, which the runtime does not run (export the model again as int8: interleaved16x4)"))
            }
            let bytes = file.bytes(info)
            let values = bytes.baseAddress!.assumingMemoryBound(to: Int8.self)
            let offset = Q8Codec.scalesOffset(rows: info.rows, cols: info.columns, layout: info.layout)
            if info.dtype == .q8f16 {
                let scales = (bytes.baseAddress! + offset).assumingMemoryBound(to: Float16.self)
                return Q8Matrix(values: values, halfScales: scales, rows: info.rows, columns: info.columns, groupSize: info.groupSize)
            }
            let scales = (bytes.baseAddress! + offset).assumingMemoryBound(to: Float.self)
            return Q8Matrix(values: values, scales: scales, rows: info.rows, columns: info.columns, groupSize: info.groupSize)
        }
        var twoPass = try Self.twoPassActivations(metadata, path: path)
        func halves(_ info: TensorInfo) -> UnsafePointer<Float16> {
            file.bytes(info).baseAddress!.assumingMemoryBound(to: Float16.self)
        }
        // fp16 vocabulary tables are read in place, widened as they are used: they can be a
        // large part of a small model, and an fp32 copy would double what they take. Block
        // matrices (an --fp16 export) are converted, for the fp32 GEMM of a prompt.
        func linear(_ name: String, rows: Int, columns: Int, bias: String?, halvesInPlace: Bool = false) throws -> Linear {
            let info = try info(name, [rows, columns])
            let weights: LinearWeights = switch info.dtype {
            case .q8, .q8f16: .q8(try q8(info))
            case .f16 where halvesInPlace: .f16(halves(info))
            default: .f32(try floats(name, [rows, columns]))
            }
            var layer = Linear(name: name, weights: weights, bias: try bias.flatMap { try optionalFloats($0, [rows]) }, rows: rows, columns: columns)
            if twoPass.remove(name) != nil {
                guard info.dtype.isInt8 else { throw fail(name, "is listed in two_pass_activations but is not int8 (q8 or q8f16)") }
                layer.twoPass = true
            }
            return layer
        }

        // A session's buffers and the rotary tables are sized by the config, which the file
        // states: refuse one that could not be allocated instead of trapping later.
        if let need = Self.workingMemory(config), need <= ProcessMemory.physicalBytes {} else {
            throw TFQFormatError(file: path, .outOfMemory("a session would need more memory than this machine has "
                                                          + "(context \(config.contextLength), vocab \(v), dim \(d), ff \(f), \(config.layers) layers)"))
        }
        let tokens = try info(TensorName.tokenEmbedding, [v, d])
        tokenEmbedding = switch tokens.dtype {
        case .q8, .q8f16: .q8(try q8(tokens))
        case .f16: .f16(halves(tokens))
        case .f32: .f32(try floats(TensorName.tokenEmbedding, [v, d]))
        }
        func norm(_ weight: String, _ bias: String) throws -> Norm {
            switch config.arch {
            case .gpt: return .layer(weight: try floats(weight, [d]), bias: try optionalFloats(bias, [d]))
            case .llama: return .rms(weight: try floats(weight, [d]))
            }
        }
        switch config.arch {
        case .gpt: positions = .learned(try floats(TensorName.positionEmbedding, [config.contextLength, d]))
        case .llama:
            guard let rotary = RotaryEmbedding(headDim: config.headDim, contextLength: config.contextLength, theta: config.ropeTheta) else {
                throw TFQFormatError(file: path, .outOfMemory("cannot allocate the rotary tables for \(config.contextLength) positions"))
            }
            positions = .rotary(rotary)
        }
        blocks = try (0..<config.layers).map { i in
            let p = TensorName.Block(i)
            let feedForward: FeedForward
            switch config.arch {
            case .gpt:
                feedForward = .mlp(up: try linear(p.upWeight, rows: f, columns: d, bias: p.upBias),
                                   down: try linear(p.downWeight, rows: d, columns: f, bias: p.downBias))
            case .llama:
                feedForward = .gated(gate: try linear(p.gateWeight, rows: f, columns: d, bias: nil),
                                     up: try linear(p.upWeight, rows: f, columns: d, bias: nil),
                                     down: try linear(p.downWeight, rows: d, columns: f, bias: nil))
            }
            return Block(attentionNorm: try norm(p.ln1Weight, p.ln1Bias),
                         qkv: try linear(p.qkvWeight, rows: config.qkvRows, columns: d, bias: p.qkvBias),
                         proj: try linear(p.projWeight, rows: d, columns: d, bias: p.projBias),
                         feedForwardNorm: try norm(p.ln2Weight, p.ln2Bias), feedForward: feedForward)
        }
        finalNorm = try norm(TensorName.finalNormWeight, TensorName.finalNormBias)
        head = try linear(TensorName.head(config), rows: v, columns: d, bias: nil, halvesInPlace: true)
        if let unknown = twoPass.sorted().first {
            throw TFQFormatError(file: path, .badMetadata("quantization.two_pass_activations names \"\(unknown)\", not a linear layer of this model"))
        }
        let linears = blocks.flatMap { block -> [Linear] in
            switch block.feedForward {
            case .mlp(let up, let down): return [block.qkv, block.proj, up, down]
            case .gated(let gate, let up, let down): return [block.qkv, block.proj, gate, up, down]
            }
        } + [head]
        maxGroups = linears.map { linear -> Int in
            if case .q8(let w) = linear.weights { return w.groups } else { return 0 }
        }.max() ?? 0
        hasTwoPassLayers = linears.contains { $0.twoPass }
        linearShapes = linears.map { ($0.name, $0.rows, $0.columns) }
        self.converted = converted
        self.convertedBytes = convertedBytes
    }

    deinit {
        for buffer in converted { AlignedMemory.free(buffer) }
    }

    /// The linear layers whose input the exporter asked to quantize in two int8 passes.
    static func twoPassActivations(_ metadata: ModelMetadata, path: String) throws -> Set<String> {
        guard let list = metadata.sections["quantization"]?["two_pass_activations"], list != .null else { return [] }
        guard case .array(let items) = list else {
            throw TFQFormatError(file: path, .badMetadata("quantization.two_pass_activations is not a list of tensor names"))
        }
        var names = Set<String>()
        for item in items {
            guard case .string(let name) = item, names.insert(name).inserted else {
                throw TFQFormatError(file: path, .badMetadata("quantization.two_pass_activations holds a non-name or a repeated name"))
            }
        }
        return names
    }

    /// Bytes of one session's buffers (Session.init, the KV cache counted as floats: an upper
    /// bound for a half cache) plus the rotary tables; nil on overflow.
    static func workingMemory(_ c: ModelConfig) -> Int? {
        let perPosition = [c.dim * 4, c.qkvRows, 2 * c.ffDim, c.vocabSize, 2 * c.layers * c.kvDim, c.headDim, max(c.dim, c.ffDim)]
        var floats = 0
        for term in perPosition {
            let (product, overflow) = c.contextLength.multipliedReportingOverflow(by: term)
            guard !overflow else { return nil }
            let (sum, overflow2) = floats.addingReportingOverflow(product)
            guard !overflow2 else { return nil }
            floats = sum
        }
        let (bytes, overflow) = floats.multipliedReportingOverflow(by: 4)
        return overflow ? nil : bytes
    }

    /// True when the blocks' matrices are int8 (a small vocabulary table may stay fp32).
    public var isQuantized: Bool {
        if case .q8 = blocks[0].qkv.weights { return true } else { return false }
    }
}
