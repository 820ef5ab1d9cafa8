/// The token ids of a byte-level BPE tokenizer trained elsewhere (a Hugging Face
/// `tokenizer.json`), kept as the model was trained with them (formats/tfq.md §10.1).
public struct BPEVocabulary: Equatable, Sendable {
    /// Token `i`'s spelling: its bytes in byte-level symbols (``ByteLevelSymbols``), a
    /// special token's literal text, or "" for an id that is no token.
    public let tokens: [String]
    /// Ids matched as literal text before the input is split (Hugging Face's added tokens,
    /// `<|endoftext|>` for GPT-2), in increasing order.
    public let special: [Int32]
    /// The ids among `special` that are ordinary text a user added (`"special": false` in
    /// tokenizer.json), in increasing order: encoded and decoded like the others, but written
    /// to GGUF as user-defined (4) rather than control (3) tokens, which llama.cpp shows in
    /// its output.
    public let userDefined: [Int32]
    /// The token that ends a text when the model produces it, if any.
    public let endOfText: Int32?

    /// A vocabulary as given, with `special` and `userDefined` sorted into increasing order.
    public init(tokens: [String], special: [Int32], userDefined: [Int32] = [], endOfText: Int32?) {
        self.tokens = tokens
        self.special = special.sorted()
        self.userDefined = userDefined.sorted()
        self.endOfText = endOfText
    }
}

/// GPT-2's spelling of bytes as printable characters (`bytes_to_unicode` in its encoder,
/// used by every byte-level BPE `tokenizer.json`): the bytes `!`–`~`, `¡`–`¬` and `®`–`ÿ`
/// are the characters of the same code; the other 68 bytes, in increasing order, are
/// U+0100, U+0101, … U+0143.
public enum ByteLevelSymbols {
    /// The character of each byte.
    public static let characters: [Unicode.Scalar] = {
        var result = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 0x100
        for byte in 0..<256 {
            if (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte) {
                result[byte] = Unicode.Scalar(UInt32(byte))!
            } else {
                result[byte] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return result
    }()

    /// Byte of each character code below U+0144, or -1.
    static let byteOfCode: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (byte, character) in characters.enumerated() { table[Int(character.value)] = Int16(byte) }
        return table
    }()

    /// The bytes `spelling` stands for, or nil if a character in it is not a byte's symbol.
    public static func bytes(of spelling: String) -> [UInt8]? {
        var result: [UInt8] = []
        for scalar in spelling.unicodeScalars {
            guard scalar.value < 0x144, case let byte = byteOfCode[Int(scalar.value)], byte >= 0 else { return nil }
            result.append(UInt8(byte))
        }
        return result
    }

    /// `bytes` spelled in symbols.
    public static func spelling(of bytes: [UInt8]) -> String {
        var text = ""
        text.unicodeScalars.append(contentsOf: bytes.map { characters[Int($0)] })
        return text
    }
}
