import TFQFormat
import TFQKernels
import TFQModel

/// A tfq model → a GGUF file that llama.cpp runs: the `llama` architecture for tfq's llama
/// models, `gpt2` for its GPT models (GELU only: llama.cpp's gpt2 graph has no other
/// activation), with the tokenizer.
///
/// Q8_0 quantizes each row in blocks of 32 exactly as llama.cpp's reference does
/// (`quantize_row_q8_0_ref`: d = max|x|/127 stored as f16, q = round(x/d) half away from
/// zero, with 1/d in f32); norms, biases and gpt2's position table stay F32.
public enum GGUFExporter {
    /// How the matrices are stored: F32, F16 or Q8_0; other tensors stay F32.
    public enum Precision: String, Sendable { case f32, f16, q8_0 }

    /// What an export wrote.
    public struct Summary: Sendable {
        /// The GGUF architecture written: `llama` or `gpt2`.
        public var architecture: String
        /// Tensors in the file.
        public var tensors: Int
        /// The written file's length in bytes.
        public var fileBytes: Int
        /// Matrices kept F32 in a Q8_0 file because their rows are not whole blocks of 32.
        public var keptF32: [String]
        /// Where llama.cpp may behave differently from tfq on the file (zero biases in place
        /// of none, text it may tokenize differently), one sentence each, for the user.
        public var notes: [String]
    }

    /// Writes the tfq model at `path` as a GGUF file at `output`, its matrices in `precision`;
    /// throws an ``ImportError`` for a model GGUF cannot hold (a gpt model without GELU, say).
    public static func export(_ path: String, output: String, precision: Precision) throws -> Summary {
        try OutputPath.check(output)
        let file = try TFQFile(path: path)
        let model = try ModelMetadata(file: file)
        let config = model.config
        var notes: [String] = []
        var metadata: [(String, GGUF.Value)] = []
        let architecture = config.arch == .llama ? "llama" : "gpt2"
        let base = path.split(separator: "/").last.map(String.init) ?? "model"
        let name = base.hasSuffix(".tfq") ? String(base.dropLast(4)) : base
        metadata.append(("general.architecture", .string(architecture)))
        metadata.append(("general.name", .string(name)))
        metadata.append(("general.file_type", .uint32(precision == .f32 ? 0 : precision == .f16 ? 1 : 7)))
        if precision == .q8_0 { metadata.append(("general.quantization_version", .uint32(2))) }
        let a = architecture
        metadata.append(("\(a).context_length", .uint32(UInt32(config.contextLength))))
        metadata.append(("\(a).embedding_length", .uint32(UInt32(config.dim))))
        metadata.append(("\(a).block_count", .uint32(UInt32(config.layers))))
        metadata.append(("\(a).feed_forward_length", .uint32(UInt32(config.ffDim))))
        metadata.append(("\(a).attention.head_count", .uint32(UInt32(config.heads))))
        switch config.arch {
        case .llama:
            metadata.append(("llama.attention.head_count_kv", .uint32(UInt32(config.kvHeads))))
            metadata.append(("llama.attention.layer_norm_rms_epsilon", .float32(config.normEps)))
            metadata.append(("llama.rope.freq_base", .float32(config.ropeTheta)))
            metadata.append(("llama.rope.dimension_count", .uint32(UInt32(config.headDim))))
            metadata.append(("llama.vocab_size", .uint32(UInt32(config.vocabSize))))
        case .gpt:
            guard config.activation == .gelu else {
                throw ImportError(path, "GGUF's gpt2 architecture has GELU; this model's feed-forward uses \(config.activation.rawValue)")
            }
            metadata.append(("gpt2.attention.layer_norm_epsilon", .float32(config.normEps)))
        }
        metadata += try tokenizerMetadata(model.tokenizer, path: path, notes: &notes)

        // (GGUF name, tfq source, rows of the source to take) for every tensor, in order.
        var plan: [(name: String, source: String?, rows: Range<Int>?, shape: [Int], matrix: Bool)] = []
        func add(_ target: String, _ source: String?, shape: [Int], rows: Range<Int>? = nil) {
            plan.append((target, source, rows, shape, shape.count == 2 && target != "position_embd.weight"))
        }
        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        add("token_embd.weight", TensorName.tokenEmbedding, shape: [v, d])
        if config.arch == .gpt { add("position_embd.weight", TensorName.positionEmbedding, shape: [config.contextLength, d]) }
        for i in 0..<config.layers {
            let s = TensorName.Block(i), t = "blk.\(i)."
            let bias = config.arch == .gpt
            func biasSource(_ name: String) -> String? { config.bias ? name : nil }
            add(t + "attn_norm.weight", s.ln1Weight, shape: [d])
            if bias { add(t + "attn_norm.bias", biasSource(s.ln1Bias), shape: [d]) }
            if config.arch == .llama {
                add(t + "attn_q.weight", s.qkvWeight, shape: [d, d], rows: 0..<d)
                add(t + "attn_k.weight", s.qkvWeight, shape: [config.kvDim, d], rows: d..<(d + config.kvDim))
                add(t + "attn_v.weight", s.qkvWeight, shape: [config.kvDim, d], rows: (d + config.kvDim)..<config.qkvRows)
            } else {
                add(t + "attn_qkv.weight", s.qkvWeight, shape: [3 * d, d])
                add(t + "attn_qkv.bias", biasSource(s.qkvBias), shape: [3 * d])
            }
            add(t + "attn_output.weight", s.projWeight, shape: [d, d])
            if bias { add(t + "attn_output.bias", biasSource(s.projBias), shape: [d]) }
            add(t + "ffn_norm.weight", s.ln2Weight, shape: [d])
            if bias { add(t + "ffn_norm.bias", biasSource(s.ln2Bias), shape: [d]) }
            if config.arch == .llama { add(t + "ffn_gate.weight", s.gateWeight, shape: [f, d]) }
            add(t + "ffn_up.weight", s.upWeight, shape: [f, d])
            if bias { add(t + "ffn_up.bias", biasSource(s.upBias), shape: [f]) }
            add(t + "ffn_down.weight", s.downWeight, shape: [d, f])
            if bias { add(t + "ffn_down.bias", biasSource(s.downBias), shape: [d]) }
        }
        add("output_norm.weight", TensorName.finalNormWeight, shape: [d])
        if config.arch == .gpt { add("output_norm.bias", config.bias ? TensorName.finalNormBias : nil, shape: [d]) }
        // llama.cpp's llama reads a missing output as the shared table; its gpt2 is given one.
        if !config.tieEmbeddings || config.arch == .gpt {
            add("output.weight", TensorName.head(config), shape: [v, d])
        }
        if !config.bias && config.arch == .gpt { notes.append("the model has no biases: GGUF's gpt2 gets zeros in their place") }

        var keptF32: [String] = []
        let tensors = plan.map { item -> GGUF.TensorPlan in
            var type = GGUF.TensorType.f32
            if item.matrix && precision == .f16 { type = .f16 }
            if item.matrix && precision == .q8_0 {
                if item.shape[1] % 32 == 0 { type = .q8_0 } else { keptF32.append(item.name) }
            }
            return GGUF.TensorPlan(name: item.name, type: type, dimensions: item.shape.reversed())
        }
        var lastSource: (name: String, values: [Float])? = nil
        try GGUF.write(path: output, metadata: metadata, tensors: tensors) { index in
            let item = plan[index]
            var values: [Float]
            if let source = item.source {
                // The shape the config gives the source (the fused qkv for llama's q, k, v).
                let expected = item.rows == nil ? item.shape : [config.qkvRows, d]
                guard let info = file.info(source) else { throw ImportError(path, "no tensor '\(source)'") }
                guard info.shape == expected else { throw ImportError(path, "tensor '\(source)' has shape \(info.shape); the config needs \(expected)") }
                // llama's q, k and v come one after another from one fused tensor: read it once.
                if lastSource?.name != source { lastSource = (source, file.floats(info)) }
                values = lastSource!.values
                if let rows = item.rows { values = Array(values[(rows.lowerBound * d)..<(rows.upperBound * d)]) }
            } else {
                values = [Float](repeating: 0, count: item.shape.reduce(1, *))
            }
            guard values.allSatisfy(\.isFinite) else { throw ImportError(path, "tensor '\(item.source ?? "")' holds a NaN or an infinity") }
            // f16 holds magnitudes up to 65504, as values (F16) or as Q8_0 block scales (127×).
            let limit: Float = tensors[index].type == .f16 ? 65504 : tensors[index].type == .q8_0 ? 65504 * 127 : .infinity
            guard values.allSatisfy({ abs($0) <= limit }) else {
                throw ImportError(path, "tensor '\(item.source ?? "")' has values beyond what \(tensors[index].type) holds (|x| ≤ \(limit.isFinite ? String(Int(limit)) : "any")): write the model as F32")
            }
            switch tensors[index].type {
            case .f32: return values.withUnsafeBytes { Array($0) }
            case .f16: return values.map { Float16($0) }.withUnsafeBytes { Array($0) }
            case .q8_0: return quantizeQ8_0(values)
            case .bf16: fatalError("never written")
            }
        }
        return Summary(architecture: architecture, tensors: tensors.count, fileBytes: try InputFile(path: output).length,
                       keptF32: keptF32, notes: notes)
    }

    /// llama.cpp's `quantize_row_q8_0_ref`, block by block (`values.count` a multiple of 32).
    public static func quantizeQ8_0(_ values: [Float]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(values.count / 32 * GGUF.q8BlockBytes)
        for block in stride(from: 0, to: values.count, by: 32) {
            var amax: Float = 0
            for j in 0..<32 { amax = max(amax, abs(values[block + j])) }
            let scale = amax / 127
            // llama.cpp's 1/d, except where d is so small that 1/d is infinite: the f16 scale
            // is 0 there, so the values are too.
            let inverse: Float = scale != 0 && (1 / scale).isFinite ? 1 / scale : 0
            withUnsafeBytes(of: Float16(scale).bitPattern.littleEndian) { out += $0 }
            for j in 0..<32 { out.append(UInt8(bitPattern: Int8((values[block + j] * inverse).rounded()))) }
        }
        return out
    }

    /// GGUF's tokenizer keys: `llama` (SentencePiece pieces) for llama2.c's tokenizer and
    /// imported SentencePiece-style ones, `gpt2` (byte-level BPE) for tfq's and imported BPE.
    static func tokenizerMetadata(_ tokenizer: Tokenizer, path: String, notes: inout [String]) throws -> [(String, GGUF.Value)] {
        switch tokenizer {
        case .llama2c(let pieces):
            // llama2.c's tokenizer.bin has sentencepiece's ▁ turned into spaces: turned back.
            let tokens = pieces.pieces.map { piece in
                String(decoding: piece, as: UTF8.self).unicodeScalars.map { $0 == " " ? "\u{2581}" : String($0) }.joined()
            }
            let types: [Int32] = tokens.enumerated().map { id, piece in
                if id == 0 { return 2 }
                if id == 1 || id == 2 { return 3 }
                return piece.hasPrefix("<0x") && piece.hasSuffix(">") && piece.count == 6 ? 6 : 1
            }
            return [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.tokens", .strings(tokens)),
                    ("tokenizer.ggml.scores", .float32s(pieces.scores)), ("tokenizer.ggml.token_type", .int32s(types)),
                    ("tokenizer.ggml.bos_token_id", .uint32(UInt32(Llama2cTokenizer.bos))),
                    ("tokenizer.ggml.eos_token_id", .uint32(UInt32(Llama2cTokenizer.eos))),
                    ("tokenizer.ggml.unknown_token_id", .uint32(0)), ("tokenizer.ggml.add_bos_token", .bool(true))]
        case .bpe(let bpe):
            let special = Set(bpe.vocabulary?.special ?? []), userDefined = Set(bpe.vocabulary?.userDefined ?? [])
            // An id that is no token is written as convert_hf_to_gguf writes padding: [PADn],
            // type unused (5).
            let tokens: [String] = (0..<bpe.vocabularySize).map { id in
                if let vocabulary = bpe.vocabulary { return vocabulary.tokens[id].isEmpty ? "[PAD\(id)]" : vocabulary.tokens[id] }
                return ByteLevelSymbols.spelling(of: bpe.bytes(of: Int32(id)))
            }
            // llama.cpp refuses a vocabulary with a text twice (tfq's learner can make two
            // merges of the same bytes).
            var seen = Set<String>()
            if let repeated = tokens.first(where: { !seen.insert($0).inserted }) {
                throw ImportError(path, "the token '\(repeated)' appears twice in the vocabulary, which GGUF does not allow")
            }
            let merges = bpe.merges.map { tokens[Int($0.left)] + " " + tokens[Int($0.right)] }
            let types: [Int32] = (0..<tokens.count).map { id in
                // Added tokens as convert_hf_to_gguf types them: user-defined (4) when
                // tokenizer.json marked them "special": false, control (3) otherwise.
                userDefined.contains(Int32(id)) ? 4 : special.contains(Int32(id)) ? 3 : bpe.vocabulary?.tokens[id].isEmpty == true ? 5 : 1
            }
            if bpe.preSplit != .gpt2 {
                notes.append("tfq's 'words' pre-split differs from GPT-2's on non-ASCII text and upper-case contractions: llama.cpp may tokenize those differently")
            }
            var keys: [(String, GGUF.Value)] = [("tokenizer.ggml.model", .string("gpt2")), ("tokenizer.ggml.pre", .string("gpt-2")),
                                                ("tokenizer.ggml.tokens", .strings(tokens)), ("tokenizer.ggml.token_type", .int32s(types)),
                                                ("tokenizer.ggml.merges", .strings(merges)), ("tokenizer.ggml.add_bos_token", .bool(false))]
            if let eos = bpe.vocabulary?.endOfText {
                keys += [("tokenizer.ggml.bos_token_id", .uint32(UInt32(eos))), ("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))]
            }
            return keys
        case .sentencePiece(let tokenizer):
            return try sentencePieceMetadata(tokenizer, path: path, notes: &notes)
        case .char, .byte:
            throw ImportError(path, "GGUF has no tokenizer for tfq's \(tokenizer.kind) vocabulary (byte-level BPE and llama2.c's are written)")
        }
    }

    /// An imported SentencePiece-style tokenizer as llama.cpp's `llama` vocabulary, which
    /// merges by score rather than by merge index: each merge's result scores minus the
    /// index of the first merge that makes it, so the lowest index still merges first; the
    /// other pieces score below every result. (convert_hf_to_gguf gives every piece −1000
    /// when it has only a tokenizer.json.)
    static func sentencePieceMetadata(_ tokenizer: SentencePieceTokenizer, path: String, notes: inout [String]) throws -> [(String, GGUF.Value)] {
        let count = tokenizer.vocabularySize
        var scores = [Float](repeating: -Float(tokenizer.merges.count), count: count)
        var idOfPiece: [String: Int] = [:]
        for (id, piece) in tokenizer.pieces.enumerated() where !piece.isEmpty { idOfPiece[piece] = idOfPiece[piece] ?? id }
        for (i, merge) in tokenizer.merges.enumerated().reversed() {
            if let result = idOfPiece[tokenizer.pieces[Int(merge.left)] + tokenizer.pieces[Int(merge.right)]] { scores[result] = -Float(i) }
        }
        let special = Set(tokenizer.special), userDefined = Set(tokenizer.userDefined)
        let tokens = tokenizer.pieces.enumerated().map { id, piece in piece.isEmpty ? "[PAD\(id)]" : piece }
        var unknown: Int? = nil
        let types: [Int32] = tokens.enumerated().map { id, piece in
            if userDefined.contains(Int32(id)) { return 4 }
            if special.contains(Int32(id)) {
                if piece == "<unk>" { unknown = unknown ?? id; return 2 }
                return 3
            }
            if tokenizer.pieces[id].isEmpty { return 5 }
            return SentencePieceTokenizer.byteValue(piece) != nil ? 6 : 1
        }
        switch tokenizer.spacePrefix {
        case .every: break
        case .everyUnlessSpace, .firstUnlessSpace:
            notes.append("llama.cpp puts ▁ before every stretch of text, even one that starts with a space; this tokenizer does not (Metaspace '\(tokenizer.spacePrefix == .firstUnlessSpace ? "first" : "always")'), so such text may tokenize differently")
        case .none: break
        }
        if tokenizer.splitsAtSpaces {
            notes.append("this tokenizer keeps merges within words (Metaspace split); llama.cpp's may merge across a ▁")
        }
        var keys: [(String, GGUF.Value)] = [("tokenizer.ggml.model", .string("llama")), ("tokenizer.ggml.tokens", .strings(tokens)),
                                            ("tokenizer.ggml.scores", .float32s(scores)), ("tokenizer.ggml.token_type", .int32s(types)),
                                            ("tokenizer.ggml.add_bos_token", .bool(tokenizer.beginning != nil)),
                                            ("tokenizer.ggml.add_space_prefix", .bool(tokenizer.spacePrefix != .none))]
        if let bos = tokenizer.beginning { keys.append(("tokenizer.ggml.bos_token_id", .uint32(UInt32(bos)))) }
        if let eos = tokenizer.endOfText { keys.append(("tokenizer.ggml.eos_token_id", .uint32(UInt32(eos)))) }
        if let unknown { keys.append(("tokenizer.ggml.unknown_token_id", .uint32(UInt32(unknown)))) }
        return keys
    }
}
