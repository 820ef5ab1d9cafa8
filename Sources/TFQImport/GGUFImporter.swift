import TFQFormat
import TFQKernels
import TFQModel

/// A GGUF file of the `llama` or `gpt2` architecture (F32, F16, BF16 or Q8_0 tensors) → a
/// .tfq model, with its tokenizer.
///
/// Q8_0 maps onto tfq's q8f16 with groups of 32 without requantizing: the same int8 values
/// and each block's f16 scale as it is, so the model computes with llama.cpp's
/// weights (a negative scale is flipped with its values). A tensor with a −128, which
/// llama.cpp never writes, is stored f32 instead, and so is a gpt2 position table.
/// GGUF's llama tensors already have the interleaved rotary order tfq uses.
public enum GGUFImporter {
    /// What an import wrote.
    public struct Summary: Sendable {
        /// The imported model's configuration.
        public var config: ModelConfig
        /// The GGUF file's architecture: `llama` or `gpt2`.
        public var architecture: String
        /// The written file's length in bytes.
        public var fileBytes: Int
        /// How many tensors of each GGUF type were read.
        public var types: [String: Int]
        /// Q8_0 tensors kept as tfq q8f16 without requantizing (the other Q8_0 tensors were
        /// stored f32).
        public var keptQuantized: Int
    }

    /// Converts the GGUF file at `path` to a .tfq model at `output`; throws an
    /// ``ImportError`` naming what the file lacks or tfq cannot represent.
    public static func importModel(_ path: String, output: String) throws -> Summary {
        try OutputPath.check(output)
        let gguf = try GGUFFile(path: path)
        func fail(_ problem: String) -> ImportError { ImportError(path, problem) }
        let meta = gguf.metadata
        guard case .string(let architecture)? = meta["general.architecture"] else { throw fail("no general.architecture") }
        guard architecture == "llama" || architecture == "gpt2" else {
            throw fail("architecture '\(architecture)' is not supported (llama and gpt2 are)")
        }
        func int(_ key: String) throws -> Int {
            guard let value = meta["\(architecture).\(key)"]?.integer, value >= 0, value <= Int(Int32.max) else { throw fail("no \(architecture).\(key)") }
            return value
        }
        func float(_ key: String) throws -> Float? {
            guard let value = meta["\(architecture).\(key)"] else { return nil }
            guard let number = value.number, number.isFinite else { throw fail("\(architecture).\(key) is not a finite number") }
            return number
        }
        guard let tokenTable = gguf.tensors["token_embd.weight"], tokenTable.dimensions.count == 2 else { throw fail("no token_embd.weight matrix") }
        let vocab = tokenTable.dimensions[1]
        // No output, or one identical to the token table (tfq writes gpt2's that way): shared.
        let tied = gguf.tensors["output.weight"].map { output in
            output.type == tokenTable.type && output.dimensions == tokenTable.dimensions
                && gguf.bytes(output).elementsEqual(gguf.bytes(tokenTable))
        } ?? true
        var config: ModelConfig
        if architecture == "llama" {
            let heads = try int("attention.head_count"), dim = try int("embedding_length")
            if let scaling = meta["llama.rope.scaling.type"], scaling != .string("none") { throw fail("rope scaling is not supported") }
            if let ropeDims = meta["llama.rope.dimension_count"]?.integer, heads > 0, ropeDims != dim / heads {
                throw fail("rotary embeddings over \(ropeDims) of \(dim / max(heads, 1)) head dimensions are not supported")
            }
            config = .llama(vocabSize: vocab, contextLength: min(try int("context_length"), 1 << 16), layers: try int("block_count"), heads: heads,
                            kvHeads: meta["llama.attention.head_count_kv"]?.integer ?? heads, dim: dim, ffDim: try int("feed_forward_length"),
                            tieEmbeddings: tied, normEps: try float("attention.layer_norm_rms_epsilon") ?? 1e-5,
                            ropeTheta: try float("rope.freq_base") ?? 10_000)
        } else {
            config = ModelConfig(vocabSize: vocab, contextLength: try int("context_length"), layers: try int("block_count"),
                                 heads: try int("attention.head_count"), dim: try int("embedding_length"), ffDim: try int("feed_forward_length"),
                                 activation: .gelu, tieEmbeddings: tied, bias: true, normEps: try float("attention.layer_norm_epsilon") ?? 1e-5)
        }
        if let problem = config.problem { throw fail(problem) }
        let tokenizer = try readTokenizer(meta, vocabularySize: vocab, path: path)

        var metadata = ModelMetadata(kind: "model", config: config, tokenizer: tokenizer)
        metadata.sections["import"] = .object(["format": .string("gguf"), "architecture": .string(architecture),
                                               "source": .string(String(path.split(separator: "/").last ?? ""))])
        let writer = try TFQWriter(path: output)
        var types: [String: Int] = [:]
        var kept = 0

        /// Writes the row-wise concatenation of GGUF tensors `names` (of `partRows` rows each,
        /// all of the target's rows by default) as tfq's `target`.
        func write(_ target: String, _ names: [String], shape: [Int], partRows: [Int]? = nil) throws {
            let columns = shape.last!, rows = shape.count == 2 ? shape[0] : 1
            var parts: [GGUFFile.Tensor] = []
            for (i, name) in names.enumerated() {
                guard let tensor = gguf.tensors[name] else { throw fail("no tensor '\(name)'") }
                let expected = shape.count == 2 ? [columns, partRows?[i] ?? rows] : [columns]
                guard tensor.dimensions == expected else { throw fail("tensor '\(name)' has dimensions \(tensor.dimensions); the config needs \(expected)") }
                parts.append(tensor)
                types[String(describing: tensor.type), default: 0] += 1
            }
            if shape.count == 2, target != TensorName.positionEmbedding, parts.allSatisfy({ $0.type == .q8_0 }) {
                var values: [Int8] = [], scales: [Float] = []
                values.reserveCapacity(rows * columns)
                for part in parts {
                    let blocks = StoredFloats.q8_0(gguf.bytes(part), count: part.count)
                    values += blocks.values
                    scales += blocks.scales
                }
                guard scales.allSatisfy(\.isFinite) else { throw fail("\(names[0]) has a scale that is not finite") }
                guard !gguf.isDamaged else { throw fail("the file changed while it was read") }
                if !values.contains(-128) {
                    // tfq's scales are ≥ 0 (formats/tfq.md §6.2): d·q = (−d)·(−q).
                    for block in scales.indices where scales[block] < 0 {
                        scales[block] = -scales[block]
                        for j in (block * 32)..<(block * 32 + 32) { values[j] = -values[j] }
                    }
                    // Q8_0's scales are binary16: q8f16 keeps them as they are, at the same 2 bytes a block.
                    let packed = try values.withUnsafeBufferPointer { v in
                        try scales.withUnsafeBufferPointer { s in
                            try Q8Codec.pack(values: v, scales: s, rows: rows, cols: columns, groupSize: 32, layout: .interleaved16x4, dtype: .q8f16)
                        }
                    }
                    try packed.withUnsafeBytes { _ = try writer.add(name: target, dtype: .q8f16, shape: shape, layout: .interleaved16x4, groupSize: 32, bytes: $0) }
                    kept += 1
                    return
                }
                let floats = (0..<values.count).map { Float(values[$0]) * scales[$0 / 32] }
                try floats.withUnsafeBufferPointer { _ = try writer.add(name: target, shape: shape, floats: $0) }
                return
            }
            var floats: [Float] = []
            floats.reserveCapacity(rows * columns)
            for part in parts {
                let bytes = gguf.bytes(part)
                switch part.type {
                case .f32: floats += StoredFloats.f32(bytes, count: part.count)
                case .f16: floats += StoredFloats.f16(bytes, count: part.count)
                case .bf16: floats += StoredFloats.bf16(bytes, count: part.count)
                case .q8_0:
                    let blocks = StoredFloats.q8_0(bytes, count: part.count)
                    floats += blocks.values.indices.map { Float(blocks.values[$0]) * blocks.scales[$0 / 32] }
                }
            }
            guard floats.allSatisfy(\.isFinite) else { throw fail("\(names[0]) holds a NaN or an infinity") }
            guard !gguf.isDamaged else { throw fail("the file changed while it was read") }
            try floats.withUnsafeBufferPointer { _ = try writer.add(name: target, shape: shape, floats: $0) }
        }

        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        try write(TensorName.tokenEmbedding, ["token_embd.weight"], shape: [v, d])
        if architecture == "gpt2" { try write(TensorName.positionEmbedding, ["position_embd.weight"], shape: [config.contextLength, d]) }
        for i in 0..<config.layers {
            let s = "blk.\(i).", t = TensorName.Block(i)
            try write(t.ln1Weight, [s + "attn_norm.weight"], shape: [d])
            if architecture == "llama" {
                try write(t.qkvWeight, [s + "attn_q.weight", s + "attn_k.weight", s + "attn_v.weight"], shape: [config.qkvRows, d],
                          partRows: [d, config.kvDim, config.kvDim])
                try write(t.projWeight, [s + "attn_output.weight"], shape: [d, d])
                try write(t.ln2Weight, [s + "ffn_norm.weight"], shape: [d])
                try write(t.gateWeight, [s + "ffn_gate.weight"], shape: [f, d])
                try write(t.upWeight, [s + "ffn_up.weight"], shape: [f, d])
                try write(t.downWeight, [s + "ffn_down.weight"], shape: [d, f])
            } else {
                try write(t.ln1Bias, [s + "attn_norm.bias"], shape: [d])
                try write(t.qkvWeight, [s + "attn_qkv.weight"], shape: [3 * d, d])
                try write(t.qkvBias, [s + "attn_qkv.bias"], shape: [3 * d])
                try write(t.projWeight, [s + "attn_output.weight"], shape: [d, d])
                try write(t.projBias, [s + "attn_output.bias"], shape: [d])
                try write(t.ln2Weight, [s + "ffn_norm.weight"], shape: [d])
                try write(t.ln2Bias, [s + "ffn_norm.bias"], shape: [d])
                try write(t.upWeight, [s + "ffn_up.weight"], shape: [f, d])
                try write(t.upBias, [s + "ffn_up.bias"], shape: [f])
                try write(t.downWeight, [s + "ffn_down.weight"], shape: [d, f])
                try write(t.downBias, [s + "ffn_down.bias"], shape: [d])
            }
        }
        try write(TensorName.finalNormWeight, ["output_norm.weight"], shape: [d])
        if architecture == "gpt2" { try write(TensorName.finalNormBias, ["output_norm.bias"], shape: [d]) }
        if !config.tieEmbeddings { try write(TensorName.separateHead, ["output.weight"], shape: [v, d]) }
        let quantized = kept > 0
        metadata.sections["quantization"] = .object([
            "scheme": .string(quantized ? "q8_symmetric_grouped" : "f32"),
            "group_size": quantized ? .string("32") : .null,
            "layout": .string(quantized ? Q8Layout.interleaved16x4.description : "row-major"),
            "zstd_level": .integer(0),
        ])
        try writer.finish(metadata: metadata.encoded())
        return Summary(config: config, architecture: architecture, fileBytes: try TFQFile(path: output).fileLength, types: types, keptQuantized: kept)
    }

    /// GGUF's tokenizer keys → tfq's: `llama` (SentencePiece pieces with byte fallback) as
    /// llama2.c's tokenizer, `gpt2` (byte-level BPE with GPT-2's pre-tokenizer) as BPE.
    static func readTokenizer(_ meta: [String: GGUF.Value], vocabularySize: Int, path: String) throws -> Tokenizer {
        func fail(_ problem: String) -> ImportError { ImportError(path, problem) }
        func strings(_ key: String) throws -> [String] {
            guard case .array(_, let items)? = meta[key] else { throw fail("no \(key)") }
            return try items.map { item in
                guard case .string(let text) = item else { throw fail("\(key) holds a value that is not a string") }
                return text
            }
        }
        guard case .string(let model)? = meta["tokenizer.ggml.model"] else { throw fail("no tokenizer.ggml.model") }
        let tokens = try strings("tokenizer.ggml.tokens")
        guard tokens.count == vocabularySize else { throw fail("\(tokens.count) tokens for a vocabulary of \(vocabularySize)") }
        guard tokens.count <= HuggingFaceTokenizer.maxVocabulary else {
            throw fail("\(tokens.count) tokens are more than a .tfq file's metadata holds (\(HuggingFaceTokenizer.maxVocabulary))")
        }
        switch model {
        case "llama":
            guard case .array(_, let items)? = meta["tokenizer.ggml.scores"], items.count == tokens.count else { throw fail("no tokenizer.ggml.scores for every token") }
            let scores = try items.map { item -> Float in
                guard let score = item.number, score.isFinite else { throw fail("a token score is not a finite number") }
                return score
            }
            guard tokens.count >= Llama2cTokenizer.minimumVocabularySize,
                  meta["tokenizer.ggml.bos_token_id"]?.integer ?? 1 == 1, meta["tokenizer.ggml.eos_token_id"]?.integer ?? 2 == 2,
                  (0..<256).allSatisfy({ tokens[3 + $0] == "<0x" + hex($0) + ">" }) else {
                throw fail("a llama tokenizer is read as llama2.c's: BOS 1, EOS 2 and the byte pieces <0x00>…<0xFF> at ids 3–258")
            }
            let pieces = tokens.map { Array($0.unicodeScalars.map { $0 == "\u{2581}" ? " " : String($0) }.joined().utf8) }
            return .llama2c(Llama2cTokenizer(pieces: pieces, scores: scores))
        case "gpt2":
            // llama.cpp's "default" is another regex; files from before the key are GPT-2's.
            if case .string(let pre)? = meta["tokenizer.ggml.pre"], pre != "gpt-2" {
                throw fail("tokenizer.ggml.pre '\(pre)' is not supported (GPT-2's pre-tokenizer, 'gpt-2', is)")
            }
            var idOf: [String: Int32] = [:]
            for (id, token) in tokens.enumerated() where idOf[token] == nil { idOf[token] = Int32(id) }
            let merges = try strings("tokenizer.ggml.merges").enumerated().map { i, merge -> BPETokenizer.Merge in
                let parts = merge.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2, let left = idOf[String(parts[0])], let right = idOf[String(parts[1])] else {
                    throw fail("merge \(i) is not two tokens of the vocabulary")
                }
                return .init(left, right)
            }
            var special: [Int32] = [], userDefined: [Int32] = []
            var spellings = tokens
            if case .array(_, let types)? = meta["tokenizer.ggml.token_type"] {
                guard types.count == tokens.count else { throw fail("tokenizer.ggml.token_type has \(types.count) entries for \(tokens.count) tokens") }
                for (id, type) in types.enumerated() {
                    // Control (3) and user-defined (4) tokens are literal text, not byte-level
                    // symbols; unused ids (5, written [PADn]) are no token.
                    if type.integer == 3 || type.integer == 4 { special.append(Int32(id)) }
                    if type.integer == 4 { userDefined.append(Int32(id)) }
                    if type.integer == 5 { spellings[id] = "" }
                }
            }
            let eos = meta["tokenizer.ggml.eos_token_id"]?.integer
            if let eos, eos < 0 || eos >= tokens.count || spellings[eos].isEmpty { throw fail("the end-of-text id \(eos) is not a token") }
            let vocabulary = BPEVocabulary(tokens: spellings, special: special, userDefined: userDefined, endOfText: eos.map(Int32.init))
            do { return .bpe(try BPETokenizer(merges: merges, vocabulary: vocabulary, preSplit: .gpt2)) } catch { throw fail("\(error)") }
        default:
            throw fail("tokenizer.ggml.model '\(model)' is not supported (llama and gpt2 are)")
        }
    }

    static func hex(_ byte: Int) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[byte >> 4], digits[byte & 15]])
    }
}
