import TFQFormat
import TFQKernels
import TFQModel
#if canImport(Glibc)
import Glibc
#endif

/// A Hugging Face `GPT2LMHeadModel` or `LlamaForCausalLM` (safetensors) → an fp32 .tfq model
/// with the model's own tokenizer (formats/tfq.md §9 and §10.1).
///
/// The weights are converted exactly: F16 and BF16 widen to f32 without rounding, GPT-2's
/// Conv1D matrices (stored input × output) are transposed, the fused `c_attn` is already
/// tfq's Q/K/V order, and Llama's q/k rows go back from Hugging Face's rotate-half order to
/// the interleaved pairs tfq's rotary embedding uses (llama2.c's and Meta's).
public enum HuggingFaceImporter {
    /// What an import wrote.
    public struct Summary: Sendable {
        /// The imported model's configuration.
        public var config: ModelConfig
        /// `config.json`'s `model_type`: `gpt2` or `llama`.
        public var modelType: String
        /// The written file's length in bytes.
        public var fileBytes: Int
        /// Source dtypes and how many tensors had each.
        public var dtypes: [String: Int]
        /// Set when the source's context was longer than tfq's limit.
        public var contextClampedFrom: Int?
    }

    /// Converts the checkpoint at `path` (see ``HuggingFaceCheckpoint``) to a .tfq model at
    /// `output`, with the tokenizer at `tokenizerPath` (default: the directory's
    /// `tokenizer.json`). Refuses a checkpoint with a weight the model would not use.
    public static func importModel(_ path: String, tokenizer tokenizerPath: String? = nil, output: String) throws -> Summary {
        try OutputPath.check(output)
        let checkpoint = try HuggingFaceCheckpoint(path: path)
        let configPath = checkpoint.directory + "config.json"
        let json = checkpoint.config
        guard case .string(let modelType)? = json["model_type"] else { throw ImportError(configPath, "no model_type") }
        var clampedFrom: Int? = nil
        var config: ModelConfig
        switch modelType {
        case "gpt2": config = try gpt2Config(json, path: configPath)
        case "llama": (config, clampedFrom) = try llamaConfig(json, path: configPath)
        default: throw ImportError(configPath, "model_type '\(modelType)' is not supported (gpt2 and llama are)")
        }
        if let problem = config.problem { throw ImportError(configPath, problem) }

        let tokenizerFile = tokenizerPath ?? checkpoint.directory + "tokenizer.json"
        guard access(tokenizerFile, R_OK) == 0 else {
            if tokenizerPath != nil { throw ImportError(tokenizerFile, "cannot read it") }
            throw ImportError(checkpoint.directory, "no tokenizer.json here: give \(option: "tokenizer") FILE" as OptionMessage)
        }
        // A list of ids in some configs: the first is the one a text ends with.
        var endOfText: Int? = nil
        if case .array(let ids)? = json["eos_token_id"] {
            if let first = ids.first { endOfText = try optionalInt(.object(["eos_token_id": first]), "eos_token_id", path: configPath) }
        } else {
            endOfText = try optionalInt(json, "eos_token_id", path: configPath)
        }
        let tokenizer = try HuggingFaceTokenizer.read(path: tokenizerFile, vocabularySize: config.vocabSize, endOfText: endOfText)

        var metadata = ModelMetadata(kind: "model", config: config, tokenizer: tokenizer)
        let source = checkpoint.directory.split(separator: "/").last.map(String.init) ?? ""
        metadata.sections["import"] = .object([
            "format": .string("safetensors"),
            "model_type": .string(modelType),
            "source": .string(source),
        ])
        metadata.sections["quantization"] = .object(["scheme": .string("f32"), "layout": .string("row-major"), "zstd_level": .integer(0)])

        let writer = try TFQWriter(path: output)
        var dtypes: [String: Int] = [:]
        var used = Set<String>()
        func read(_ name: String, _ shape: [Int]) throws -> [Float] {
            if let dtype = checkpoint.dtype(name) { dtypes[dtype, default: 0] += 1 }
            used.insert(name)
            return try checkpoint.floats(name, shape: shape)
        }
        func write(_ name: String, _ shape: [Int], _ values: [Float]) throws {
            try values.withUnsafeBufferPointer { _ = try writer.add(name: name, shape: shape, floats: $0) }
        }
        switch config.arch {
        case .gpt: try writeGPT2(config, checkpoint: checkpoint, read: read, write: write)
        case .llama: try writeLlama(config, read: read, write: write)
        }
        // A weight tfq does not read (a bias the config does not declare, a layer it does not
        // know) would change what the model computes: refuse rather than drop it. Buffers
        // transformers recomputes, and a tied head's copy, are not weights.
        let buffers = ["attn.bias", "attn.masked_bias", "rotary_emb.inv_freq"]
        if let unused = checkpoint.tensorNames.first(where: { name in
            !used.contains(name) && !buffers.contains(where: { name.hasSuffix($0) }) && !(name == "lm_head.weight" && config.tieEmbeddings)
        }) {
            throw ImportError(checkpoint.directory, "tensor '\(unused)' is not part of a \(modelType) model as its config describes it")
        }
        try writer.finish(metadata: metadata.encoded())
        return Summary(config: config, modelType: modelType, fileBytes: try TFQFile(path: output).fileLength, dtypes: dtypes,
                       contextClampedFrom: clampedFrom)
    }

    // MARK: - GPT-2

    static func gpt2Config(_ json: JSONValue, path: String) throws -> ModelConfig {
        let dim = try int(json, "n_embd", path: path)
        let activation: Activation
        switch try string(json, "activation_function", path: path) ?? "gelu_new" {
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": activation = .gelu
        case "relu": activation = .relu
        case "silu", "swish": activation = .silu
        case let other: throw ImportError(path, "activation_function '\(other)' is not supported (gelu_new, relu and silu are)")
        }
        for (key, expected) in [("scale_attn_weights", true), ("scale_attn_by_inverse_layer_idx", false), ("add_cross_attention", false)] {
            if let value = try bool(json, key, path: path), value != expected { throw ImportError(path, "\(key) \(value) is not supported") }
        }
        return ModelConfig(vocabSize: try int(json, "vocab_size", path: path),
                           contextLength: try int(json, "n_positions", path: path),
                           layers: try int(json, "n_layer", path: path), heads: try int(json, "n_head", path: path), dim: dim,
                           ffDim: try optionalInt(json, "n_inner", path: path) ?? 4 * dim, activation: activation,
                           tieEmbeddings: try bool(json, "tie_word_embeddings", path: path) ?? true, bias: true,
                           normEps: try float(json, "layer_norm_epsilon", path: path) ?? 1e-5)
    }

    static func writeGPT2(_ config: ModelConfig, checkpoint: HuggingFaceCheckpoint,
                          read: (String, [Int]) throws -> [Float], write: (String, [Int], [Float]) throws -> Void) throws {
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        // Checkpoints saved from GPT2LMHeadModel name the body "transformer."; OpenAI's own do not.
        let body = checkpoint.shape("transformer.wte.weight") != nil ? "transformer." : ""
        try write(TensorName.tokenEmbedding, [v, d], read(body + "wte.weight", [v, d]))
        try write(TensorName.positionEmbedding, [config.contextLength, d], read(body + "wpe.weight", [config.contextLength, d]))
        for i in 0..<config.layers {
            let source = "\(body)h.\(i).", target = TensorName.Block(i)
            try write(target.ln1Weight, [d], read(source + "ln_1.weight", [d]))
            try write(target.ln1Bias, [d], read(source + "ln_1.bias", [d]))
            try write(target.qkvWeight, [3 * d, d], transposed(read(source + "attn.c_attn.weight", [d, 3 * d]), rows: d, columns: 3 * d))
            try write(target.qkvBias, [3 * d], read(source + "attn.c_attn.bias", [3 * d]))
            try write(target.projWeight, [d, d], transposed(read(source + "attn.c_proj.weight", [d, d]), rows: d, columns: d))
            try write(target.projBias, [d], read(source + "attn.c_proj.bias", [d]))
            try write(target.ln2Weight, [d], read(source + "ln_2.weight", [d]))
            try write(target.ln2Bias, [d], read(source + "ln_2.bias", [d]))
            try write(target.upWeight, [f, d], transposed(read(source + "mlp.c_fc.weight", [d, f]), rows: d, columns: f))
            try write(target.upBias, [f], read(source + "mlp.c_fc.bias", [f]))
            try write(target.downWeight, [d, f], transposed(read(source + "mlp.c_proj.weight", [f, d]), rows: f, columns: d))
            try write(target.downBias, [d], read(source + "mlp.c_proj.bias", [d]))
        }
        try write(TensorName.finalNormWeight, [d], read(body + "ln_f.weight", [d]))
        try write(TensorName.finalNormBias, [d], read(body + "ln_f.bias", [d]))
        if !config.tieEmbeddings { try write(TensorName.separateHead, [v, d], read("lm_head.weight", [v, d])) }
    }

    // MARK: - Llama

    /// tfq's context limit (formats/tfq.md §9).
    static let maxContext = 1 << 16

    static func llamaConfig(_ json: JSONValue, path: String) throws -> (ModelConfig, clampedFrom: Int?) {
        if let act = try string(json, "hidden_act", path: path), act != "silu" { throw ImportError(path, "hidden_act '\(act)' is not supported (silu is)") }
        for key in ["attention_bias", "mlp_bias"] where try bool(json, key, path: path) == true {
            throw ImportError(path, "\(key) is not supported (the llama architecture has no biases)")
        }
        if let scaling = json["rope_scaling"], scaling != .null { throw ImportError(path, "rope_scaling is not supported") }
        let dim = try int(json, "hidden_size", path: path), heads = try int(json, "num_attention_heads", path: path)
        if let headDim = try optionalInt(json, "head_dim", path: path), headDim * heads != dim {
            throw ImportError(path, "head_dim \(headDim) × \(heads) heads is not hidden_size \(dim)")
        }
        let positions = try int(json, "max_position_embeddings", path: path)
        let config = ModelConfig.llama(vocabSize: try int(json, "vocab_size", path: path), contextLength: min(positions, maxContext),
                                       layers: try int(json, "num_hidden_layers", path: path), heads: heads,
                                       kvHeads: try optionalInt(json, "num_key_value_heads", path: path) ?? heads, dim: dim,
                                       ffDim: try int(json, "intermediate_size", path: path),
                                       tieEmbeddings: try bool(json, "tie_word_embeddings", path: path) ?? false,
                                       normEps: try float(json, "rms_norm_eps", path: path) ?? 1e-6,
                                       ropeTheta: try float(json, "rope_theta", path: path) ?? 10_000)
        return (config, positions > maxContext ? positions : nil)
    }

    static func writeLlama(_ config: ModelConfig, read: (String, [Int]) throws -> [Float], write: (String, [Int], [Float]) throws -> Void) throws {
        let (d, f, v, kv, hd) = (config.dim, config.ffDim, config.vocabSize, config.kvDim, config.headDim)
        try write(TensorName.tokenEmbedding, [v, d], read("model.embed_tokens.weight", [v, d]))
        for i in 0..<config.layers {
            let source = "model.layers.\(i).", target = TensorName.Block(i)
            try write(target.ln1Weight, [d], read(source + "input_layernorm.weight", [d]))
            let q = interleavedRotaryRows(try read(source + "self_attn.q_proj.weight", [d, d]), heads: config.heads, headDim: hd, columns: d)
            let k = interleavedRotaryRows(try read(source + "self_attn.k_proj.weight", [kv, d]), heads: config.kvHeads, headDim: hd, columns: d)
            let vProj = try read(source + "self_attn.v_proj.weight", [kv, d])
            try write(target.qkvWeight, [config.qkvRows, d], q + k + vProj)
            try write(target.projWeight, [d, d], read(source + "self_attn.o_proj.weight", [d, d]))
            try write(target.ln2Weight, [d], read(source + "post_attention_layernorm.weight", [d]))
            try write(target.gateWeight, [f, d], read(source + "mlp.gate_proj.weight", [f, d]))
            try write(target.upWeight, [f, d], read(source + "mlp.up_proj.weight", [f, d]))
            try write(target.downWeight, [d, f], read(source + "mlp.down_proj.weight", [d, f]))
        }
        try write(TensorName.finalNormWeight, [d], read("model.norm.weight", [d]))
        if !config.tieEmbeddings { try write(TensorName.separateHead, [v, d], read("lm_head.weight", [v, d])) }
    }

    /// Hugging Face rotates the pairs (j, j + headDim/2) of each head; tfq, like llama2.c,
    /// the pairs (2j, 2j + 1). Row 2j + t of a head here is its row t·headDim/2 + j there.
    static func interleavedRotaryRows(_ weights: [Float], heads: Int, headDim: Int, columns: Int) -> [Float] {
        var result = [Float](repeating: 0, count: weights.count)
        let half = headDim / 2
        for head in 0..<heads {
            for j in 0..<half {
                for t in 0..<2 {
                    let from = (head * headDim + t * half + j) * columns, to = (head * headDim + 2 * j + t) * columns
                    result.replaceSubrange(to..<(to + columns), with: weights[from..<(from + columns)])
                }
            }
        }
        return result
    }

    /// A `rows × columns` row-major matrix transposed.
    static func transposed(_ values: [Float], rows: Int, columns: Int) -> [Float] {
        var result = [Float](repeating: 0, count: values.count)
        for r in 0..<rows {
            for c in 0..<columns { result[c * rows + r] = values[r * columns + c] }
        }
        return result
    }

    // MARK: - config.json fields

    static func int(_ json: JSONValue, _ key: String, path: String) throws -> Int {
        guard let value = try optionalInt(json, key, path: path) else { throw ImportError(path, "no '\(key)'") }
        return value
    }

    static func optionalInt(_ json: JSONValue, _ key: String, path: String) throws -> Int? {
        switch json[key] {
        case nil, .null?: return nil
        case .integer(let value)? where value >= 0 && value <= Int64(Int32.max): return Int(value)
        default: throw ImportError(path, "'\(key)' is not a whole number 0 to \(Int32.max)")
        }
    }

    static func float(_ json: JSONValue, _ key: String, path: String) throws -> Float? {
        switch json[key] {
        case nil, .null?: return nil
        case .integer(let value)?: return Float(value)
        case .number(let value)? where Float(value).isFinite: return Float(value)
        default: throw ImportError(path, "'\(key)' is not a finite number")
        }
    }

    static func bool(_ json: JSONValue, _ key: String, path: String) throws -> Bool? {
        switch json[key] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default: throw ImportError(path, "'\(key)' is not true or false")
        }
    }

    static func string(_ json: JSONValue, _ key: String, path: String) throws -> String? {
        switch json[key] {
        case nil, .null?: return nil
        case .string(let value)?: return value
        default: throw ImportError(path, "'\(key)' is not a string")
        }
    }
}
