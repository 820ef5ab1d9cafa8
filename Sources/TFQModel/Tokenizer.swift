/// Turns text into token ids and back (formats/tfq.md §10). Stored as the `tokenizer`
/// section of every .tfq file.
public enum Tokenizer: Equatable, Sendable {
    /// One token per Unicode scalar seen in the training text, in sorted order.
    case char(vocabulary: [Unicode.Scalar])
    /// One token per byte value: encodes any input.
    case byte
    /// Byte-level BPE learned on the training text: encodes any input.
    case bpe(BPETokenizer)

    public var vocabularySize: Int {
        switch self {
        case .char(let vocabulary): return vocabulary.count
        case .byte: return 256
        case .bpe(let bpe): return bpe.vocabularySize
        }
    }

    public var kind: String {
        switch self {
        case .char: return "char"
        case .byte: return "byte"
        case .bpe: return "bpe"
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
        case .byte:
            return text.utf8.map { Int32($0) }
        case .bpe(let bpe):
            return bpe.encode(text)
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
        case .bpe(let bpe): return bpe.encode(text)
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
        case .char:
            guard let text = String(validating: bytes, as: UTF8.self) else {
                var parser = Unicode.UTF8.ForwardParser(), iterator = bytes.makeIterator(), offset = 0
                while case .valid(let scalar) = parser.parseScalar(from: &iterator) { offset += scalar.count }
                throw TokenizerError.invalidUTF8(offset: offset)
            }
            return try encode(text)
        }
    }

    /// The bytes a token stands for (UTF-8 of its character, the byte itself, or a BPE
    /// token's bytes).
    public func bytes(of token: Int32) -> [UInt8] {
        switch self {
        case .byte: return [UInt8(truncatingIfNeeded: token)]
        case .bpe(let bpe): return bpe.bytes(of: token)
        case .char(let vocabulary): return Array(String(Character(vocabulary[Int(token)])).utf8)
        }
    }

    public func decode(_ tokens: [Int32]) -> String {
        String(decoding: tokens.flatMap { bytes(of: $0) }, as: UTF8.self)
    }
}

public enum TokenizerError: Error, Equatable, CustomStringConvertible {
    case unknownCharacter(Unicode.Scalar, position: Int)
    case invalidUTF8(offset: Int)

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

extension Tokenizer: Codable {
    enum CodingKeys: String, CodingKey { case type, vocab, merges, preSplit = "pre_split" }

    public init(from decoder: Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        switch try container.decode(String.self, forKey: .type) {
        case "byte":
            self = .byte
        case "bpe":
            do {
                self = .bpe(try BPETokenizer(storedMerges: try container.decode(String.self, forKey: .merges),
                                             preSplit: try container.decode(String.self, forKey: .preSplit)))
            } catch let error as BPEError {
                throw DecodingError.dataCorruptedError(forKey: .merges, in: container, debugDescription: error.description)
            }
        case "char":
            let entries = try container.decode([String].self, forKey: .vocab)
            var scalars: [Unicode.Scalar] = []
            for entry in entries {
                guard entry.unicodeScalars.count == 1, let scalar = entry.unicodeScalars.first else {
                    throw DecodingError.dataCorruptedError(forKey: .vocab, in: container,
                                                           debugDescription: "a char vocabulary entry must be one Unicode scalar")
                }
                scalars.append(scalar)
            }
            guard Set(scalars).count == scalars.count else {
                throw DecodingError.dataCorruptedError(forKey: .vocab, in: container, debugDescription: "duplicate vocabulary entries")
            }
            self = .char(vocabulary: scalars)
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: container, debugDescription: "unknown tokenizer type '\(other)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(kind, forKey: .type)
        if case .char(let vocabulary) = self {
            try container.encode(vocabulary.map { String(Character($0)) }, forKey: .vocab)
        }
        if case .bpe(let bpe) = self {
            try container.encode(bpe.preSplit.rawValue, forKey: .preSplit)
            try container.encode(bpe.storedMerges, forKey: .merges)
        }
    }
}
