import TFQFormat

/// Turns text into token ids and back (formats/tfq.md §10). Stored as the `tokenizer`
/// section of every .tfq file.
public enum Tokenizer: Equatable, Sendable {
    /// One token per Unicode scalar seen in the training text, in sorted order.
    case char(vocabulary: [Unicode.Scalar])
    /// One token per byte value: encodes any input.
    case byte
    /// llama2.c's scored pieces with byte fallback (imported with `tfq import llama2c`).
    case llama2c(Llama2cTokenizer)
    /// Byte-level BPE, learned on the training text or imported: encodes any input.
    case bpe(BPETokenizer)
    /// SentencePiece-style BPE with byte fallback, imported from a Llama `tokenizer.json`.
    case sentencePiece(SentencePieceTokenizer)

    /// The number of token ids (0 ..< vocabularySize); a model's `vocabSize` must equal it.
    public var vocabularySize: Int {
        switch self {
        case .char(let vocabulary): return vocabulary.count
        case .byte: return 256
        case .llama2c(let pieces): return pieces.vocabularySize
        case .bpe(let bpe): return bpe.vocabularySize
        case .sentencePiece(let pieces): return pieces.vocabularySize
        }
    }

    /// The stored `type` (formats/tfq.md §10): "char", "byte", "llama2c", "bpe" or "sentencepiece".
    public var kind: String {
        switch self {
        case .char: return "char"
        case .byte: return "byte"
        case .llama2c: return "llama2c"
        case .bpe: return "bpe"
        case .sentencePiece: return "sentencepiece"
        }
    }

    /// Every stored `type` this tfq reads.
    public static let storedTypes = ["char", "byte", "llama2c", "bpe", "sentencepiece"]

    /// The token that ends a text when a model produces it: llama2.c stops at BOS, which
    /// its models emit between stories; an imported tokenizer at its end-of-text token.
    /// nil for tokenizers without one.
    public var stopToken: Int32? {
        switch self {
        case .llama2c: return Llama2cTokenizer.bos
        case .bpe(let bpe): return bpe.vocabulary?.endOfText
        case .sentencePiece(let pieces): return pieces.endOfText
        case .char, .byte: return nil
        }
    }

    /// A character tokenizer over every scalar in `text`.
    public static func characters(of text: String) -> Tokenizer {
        var seen = [Bool](repeating: false, count: 0x110000)
        for scalar in text.unicodeScalars { seen[Int(scalar.value)] = true }
        return .char(vocabulary: seen.indices.filter { seen[$0] }.map { Unicode.Scalar(UInt32($0))! })
    }

    /// The token ids of `text`; throws naming the first character outside the vocabulary.
    public func encode(_ text: String) throws(TokenizerError) -> [Int32] {
        switch self {
        case .byte, .llama2c:
            return encodeAllowingUnknown(text)
        case .bpe(let bpe):
            return bpe.encode(text)
        case .sentencePiece(let pieces):
            return pieces.encode(Array(text.utf8))
        case .char:
            let ids = encodeAllowingUnknown(text)
            if let position = ids.firstIndex(of: -1) {
                let scalar = text.unicodeScalars[text.unicodeScalars.index(text.unicodeScalars.startIndex, offsetBy: position)]
                throw TokenizerError.unknownCharacter(scalar, position: position)
            }
            return ids
        }
    }

    /// Encodes what it can; characters outside the vocabulary become -1.
    public func encodeAllowingUnknown(_ text: String) -> [Int32] {
        switch self {
        case .byte: return text.utf8.map { Int32($0) }
        case .llama2c(let pieces): return pieces.encode(text.utf8)
        case .bpe(let bpe): return bpe.encode(text)
        case .sentencePiece(let pieces): return pieces.encode(Array(text.utf8))
        case .char(let vocabulary):
            // A dense table for the Basic Multilingual Plane: one array load per character
            // instead of a hash lookup (encoding a corpus is otherwise a visible share of a run).
            var table = [Int32](repeating: -1, count: 0x10000)
            var others: [Unicode.Scalar: Int32] = [:]
            for (id, scalar) in vocabulary.enumerated() {
                if scalar.value < 0x10000 { table[Int(scalar.value)] = Int32(id) } else { others[scalar] = Int32(id) }
            }
            return text.unicodeScalars.map { $0.value < 0x10000 ? table[Int($0.value)] : others[$0] ?? -1 }
        }
    }

    /// The token ids of any bytes; a char tokenizer needs valid UTF-8 of its characters.
    public func encode(bytes: [UInt8]) throws(TokenizerError) -> [Int32] {
        switch self {
        case .byte: return bytes.map { Int32($0) }
        case .bpe(let bpe): return bpe.encode(bytes)
        case .llama2c(let pieces): return pieces.encode(bytes)
        case .sentencePiece(let pieces): return pieces.encode(bytes)
        case .char:
            guard let text = String(validating: bytes, as: UTF8.self) else {
                var parser = Unicode.UTF8.ForwardParser(), iterator = bytes.makeIterator(), offset = 0
                while case .valid(let scalar) = parser.parseScalar(from: &iterator) { offset += scalar.count }
                throw TokenizerError.invalidUTF8(offset: offset)
            }
            return try encode(text)
        }
    }

    /// The bytes a token stands for (UTF-8 of its character, the byte itself, a BPE token's
    /// bytes, or a piece) when it follows `previous` (llama2c and sentencepiece drop a piece's
    /// leading space after BOS or at the start).
    public func bytes(of token: Int32, after previous: Int32? = nil) -> [UInt8] {
        switch self {
        case .byte: return [UInt8(truncatingIfNeeded: token)]
        case .bpe(let bpe): return bpe.bytes(of: token)
        case .char(let vocabulary): return Array(String(Character(vocabulary[Int(token)])).utf8)
        case .llama2c(let pieces): return pieces.bytes(of: token, after: previous)
        case .sentencePiece(let pieces): return pieces.bytes(of: token, after: previous)
        }
    }

    /// The bytes of `tokens`, exactly. A llama2c sequence's leading BOS marks its start and
    /// is not text (llama2.c's run never prints it), so decode(encode(s)) == s.
    public func decodeBytes(_ tokens: [Int32]) -> [UInt8] {
        switch self {
        case .bpe(let bpe):
            return bpe.decode(tokens)
        case .sentencePiece(let pieces):
            return pieces.decode(tokens)
        case .llama2c:
            var bytes: [UInt8] = []
            let start = tokens.first == Llama2cTokenizer.bos ? 1 : 0
            for i in start..<tokens.count { bytes += self.bytes(of: tokens[i], after: i > 0 ? tokens[i - 1] : nil) }
            return bytes
        case .byte, .char:
            return tokens.flatMap { bytes(of: $0) }
        }
    }

    /// The text of `tokens` (invalid UTF-8 replaced by U+FFFD).
    public func decode(_ tokens: [Int32]) -> String {
        String(decoding: decodeBytes(tokens), as: UTF8.self)
    }
}

/// Why input cannot be encoded: only a char tokenizer refuses any.
public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unknownCharacter(Unicode.Scalar, position: Int)
    case invalidUTF8(offset: Int)

    /// One line naming the unknown character and its position in scalars, or where the UTF-8 is invalid.
    public var description: String {
        switch self {
        case .invalidUTF8(let offset):
            return "the input is not valid UTF-8 (at byte \(offset)); a char tokenizer encodes text only"
        case .unknownCharacter(let scalar, let position):
            let hex = String(scalar.value, radix: 16, uppercase: true)
            return "character \(scalar.escaped(asASCII: true)) (U+\(hex)) at position \(position) is not in the model's vocabulary"
        }
    }
}

// MARK: - Stored form

extension Tokenizer: Encodable {
    enum CodingKeys: String, CodingKey {
        case type, vocab, merges, preSplit = "pre_split", pieces, scores, special, userDefined = "user_defined", bosID = "bos_id", eosID = "eos_id"
        case spacePrefix = "space_prefix", split
    }

    /// Why a stored tokenizer section cannot be used.
    public struct FormatError: Error, CustomStringConvertible {
        /// What is wrong with the section, in one line.
        public let description: String
        /// True when the section names a tokenizer type this tfq does not implement (a newer
        /// writer's, perhaps), rather than being malformed.
        public let isUnknownType: Bool
        init(_ description: String, isUnknownType: Bool = false) {
            self.description = description
            self.isUnknownType = isUnknownType
        }
    }

    /// Reads the stored form straight from the parsed metadata: a llama vocabulary is
    /// 32,000 entries and a BPE one up to 65,280 merges, too many to route through Codable
    /// at every load.
    public init(json: JSONValue) throws(FormatError) {
        func strings(_ key: String) throws(FormatError) -> [String] {
            guard case .array(let items)? = json[key] else { throw FormatError("'\(key)' must be an array of strings") }
            var result: [String] = []
            result.reserveCapacity(items.count)
            for item in items {
                guard case .string(let text) = item else { throw FormatError("'\(key)' must be an array of strings") }
                result.append(text)
            }
            return result
        }
        func ids(_ key: String) throws(FormatError) -> [Int32] {
            guard let stored = json[key] else { return [] }
            guard case .array(let items) = stored else { throw FormatError("'\(key)' must be an array of token ids") }
            var result: [Int32] = []
            for item in items {
                guard case .integer(let id) = item, id >= 0, id < 1 << 20 else { throw FormatError("'\(key)' must be an array of token ids") }
                result.append(Int32(id))
            }
            return result
        }
        func id(_ key: String) throws(FormatError) -> Int32? {
            guard let stored = json[key] else { return nil }
            guard case .integer(let id) = stored, id >= 0, id < 1 << 20 else { throw FormatError("'\(key)' must be a token id") }
            return Int32(id)
        }
        guard case .string(let type)? = json["type"] else { throw FormatError("no 'type'") }
        switch type {
        case "byte":
            self = .byte
        case "bpe":
            guard case .string(let merges)? = json["merges"], case .string(let preSplit)? = json["pre_split"] else {
                throw FormatError("a bpe tokenizer needs 'merges' and 'pre_split' strings")
            }
            var vocabulary: BPEVocabulary? = nil
            if json["vocab"] == nil, json["special"] != nil || json["user_defined"] != nil || json["eos_id"] != nil {
                throw FormatError("'special', 'user_defined' and 'eos_id' belong to a bpe tokenizer with a 'vocab'")
            }
            if json["vocab"] != nil {
                // A 1.2 reader ignores 'vocab' but refuses an unknown pre_split: an imported
                // vocabulary must never be read as tfq's own ids.
                guard preSplit == BPEPreSplit.gpt2.rawValue else { throw FormatError("a bpe tokenizer with a 'vocab' has pre_split 'gpt2'") }
                let special = try ids("special"), userDefined = try ids("user_defined")
                let endOfText = try id("eos_id")
                let tokens = try strings("vocab")
                if let endOfText, Int(endOfText) >= tokens.count || tokens[Int(endOfText)].isEmpty {
                    throw FormatError("'eos_id' \(endOfText) is not a token of the vocabulary")
                }
                vocabulary = BPEVocabulary(tokens: tokens, special: special, userDefined: userDefined, endOfText: endOfText)
            }
            do { self = .bpe(try BPETokenizer(storedMerges: merges, preSplit: preSplit, vocabulary: vocabulary)) } catch { throw FormatError("\(error)") }
        case "sentencepiece":
            guard case .string(let merges)? = json["merges"] else { throw FormatError("a sentencepiece tokenizer needs a 'merges' string") }
            guard case .string(let prefix)? = json["space_prefix"], let spacePrefix = SentencePieceTokenizer.SpacePrefix(rawValue: prefix) else {
                throw FormatError("'space_prefix' must be one of \(SentencePieceTokenizer.SpacePrefix.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            var split = false
            switch json["split"] {
            case nil: break
            case .bool(let value)?: split = value
            default: throw FormatError("'split' must be true or false")
            }
            do {
                self = .sentencePiece(try SentencePieceTokenizer(
                    pieces: try strings("vocab"), merges: BPETokenizer.merges(stored: merges), special: ids("special"),
                    userDefined: ids("user_defined"), beginning: id("bos_id"), endOfText: id("eos_id"),
                    spacePrefix: spacePrefix, splitsAtSpaces: split))
            } catch let error as FormatError { throw error } catch { throw FormatError("\(error)") }
        case "char":
            var scalars: [Unicode.Scalar] = []
            for entry in try strings("vocab") {
                guard entry.unicodeScalars.count == 1, let scalar = entry.unicodeScalars.first else {
                    throw FormatError("a char vocabulary entry must be one Unicode scalar")
                }
                scalars.append(scalar)
            }
            guard Set(scalars).count == scalars.count else { throw FormatError("duplicate vocabulary entries") }
            self = .char(vocabulary: scalars)
        case "llama2c":
            let pieces = try strings("pieces")
            guard case .array(let items)? = json["scores"] else { throw FormatError("'scores' must be an array of numbers") }
            var scores: [Float] = []
            scores.reserveCapacity(items.count)
            for item in items {
                switch item {
                case .number(let value): scores.append(Float(value))
                case .integer(let value): scores.append(Float(value))
                default: throw FormatError("'scores' must be an array of numbers")
                }
            }
            guard pieces.count == scores.count else { throw FormatError("\(pieces.count) pieces but \(scores.count) scores") }
            guard pieces.count >= Llama2cTokenizer.minimumVocabularySize else {
                throw FormatError("\(pieces.count) pieces; a llama2c vocabulary has at least \(Llama2cTokenizer.minimumVocabularySize) (BOS, EOS, 256 bytes)")
            }
            guard scores.allSatisfy(\.isFinite) else { throw FormatError("a score is not a finite f32") }
            guard json["bos_id"] == .integer(Int64(Llama2cTokenizer.bos)), json["eos_id"] == .integer(Int64(Llama2cTokenizer.eos)) else {
                throw FormatError("llama2c tokenizers have bos_id 1 and eos_id 2")
            }
            self = .llama2c(Llama2cTokenizer(pieces: pieces.map { Array($0.utf8) }, scores: scores))
        default:
            throw FormatError("unknown tokenizer type '\(type)' (this tfq reads \(Tokenizer.storedTypes.joined(separator: ", ")))", isUnknownType: true)
        }
    }

    /// Writes the `tokenizer` section of formats/tfq.md §10, the form `init(json:)` reads.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .type)
        switch self {
        case .byte: break
        case .char(let vocabulary):
            try container.encode(vocabulary.map { String(Character($0)) }, forKey: .vocab)
        case .llama2c(let tokenizer):
            // Pieces are text in JSON: the importer refuses a piece that is not UTF-8.
            try container.encode(tokenizer.pieces.map { String(decoding: $0, as: UTF8.self) }, forKey: .pieces)
            try container.encode(tokenizer.scores, forKey: .scores)
            try container.encode(Llama2cTokenizer.bos, forKey: .bosID)
            try container.encode(Llama2cTokenizer.eos, forKey: .eosID)
        case .bpe(let bpe):
            try container.encode(bpe.preSplit.rawValue, forKey: .preSplit)
            try container.encode(bpe.storedMerges, forKey: .merges)
            if let vocabulary = bpe.vocabulary {
                try container.encode(vocabulary.tokens, forKey: .vocab)
                try container.encode(vocabulary.special, forKey: .special)
                if !vocabulary.userDefined.isEmpty { try container.encode(vocabulary.userDefined, forKey: .userDefined) }
                try container.encodeIfPresent(vocabulary.endOfText, forKey: .eosID)
            }
        case .sentencePiece(let tokenizer):
            try container.encode(tokenizer.pieces, forKey: .vocab)
            try container.encode(BPETokenizer.storedForm(of: tokenizer.merges), forKey: .merges)
            try container.encode(tokenizer.special, forKey: .special)
            if !tokenizer.userDefined.isEmpty { try container.encode(tokenizer.userDefined, forKey: .userDefined) }
            try container.encodeIfPresent(tokenizer.beginning, forKey: .bosID)
            try container.encodeIfPresent(tokenizer.endOfText, forKey: .eosID)
            try container.encode(tokenizer.spacePrefix.rawValue, forKey: .spacePrefix)
            try container.encode(tokenizer.splitsAtSpaces, forKey: .split)
        }
    }
}
