/// SentencePiece-style BPE, as the `tokenizer.json` of Llama 2, Mistral and TinyLlama
/// describes it (formats/tfq.md §10.5, type `"sentencepiece"`).
///
/// Pieces are text in which U+2581 (▁) stands for a space; the 256 pieces `<0x00>`…`<0xFF>`
/// stand for bytes (byte fallback: a character that is no piece becomes its UTF-8 bytes).
/// Encoding cuts the input at special tokens, turns spaces into ▁, puts a ▁ in front where
/// ``spacePrefix`` says, starts from one piece per character and repeatedly merges the
/// leftmost adjacent pair with the lowest merge index, as Hugging Face's `tokenizers` does.
public struct SentencePieceTokenizer: Equatable, Sendable {
    /// Where a ▁ goes in front of the text (sentencepiece's dummy prefix). The text between
    /// two special tokens is a stretch; each is encoded on its own.
    public enum SpacePrefix: String, Sendable, CaseIterable {
        /// Before every stretch (Llama 2's `Prepend` normalizer).
        case every
        /// Before every stretch that does not start with a space already (`Metaspace`,
        /// prepend_scheme "always").
        case everyUnlessSpace = "every_unless_space"
        /// Before the stretch at the start of the input, unless it starts with a space
        /// (`Metaspace`, prepend_scheme "first").
        case firstUnlessSpace = "first_unless_space"
        /// Nowhere.
        case none
    }

    /// Piece `i`'s text: ▁ for a space, `<0xAB>` for a byte, a special token's literal text,
    /// or "" for an id that is no token.
    public let pieces: [String]
    /// Merge i joins two piece ids into the piece spelled by their texts joined.
    public let merges: [BPETokenizer.Merge]
    /// Ids matched as literal text before anything else (`<s>`, `</s>`, added tokens), in
    /// increasing order; ``userDefined`` are the ones that are text rather than control.
    public let special: [Int32]
    /// The ids among `special` that are text a user added rather than control tokens, in increasing order.
    public let userDefined: [Int32]
    /// The token every encoding starts with (Llama's BOS), if any.
    public let beginning: Int32?
    /// The token that ends a text when the model produces it, if any.
    public let endOfText: Int32?
    /// Where a ▁ is put in front of a stretch of text (formats/tfq.md §10.5).
    public let spacePrefix: SpacePrefix
    /// Whether each ▁ starts a new word that merges never cross (`Metaspace` with `split`).
    public let splitsAtSpaces: Bool
    let tables: BPETables
    /// Piece ids of single characters, by scalar value.
    let characterIDs: [UInt32: Int32]

    /// ▁, U+2581, in UTF-8.
    static let mark: [UInt8] = [0xE2, 0x96, 0x81]

    /// Checks the pieces, token ids and merges (formats/tfq.md §10.5) and builds the lookup tables;
    /// throws naming the first problem.
    public init(pieces: [String], merges: [BPETokenizer.Merge], special: [Int32], userDefined: [Int32] = [],
                beginning: Int32?, endOfText: Int32?, spacePrefix: SpacePrefix, splitsAtSpaces: Bool) throws(BPEError) {
        let count = pieces.count
        guard count >= 256, count <= 1 << 20 else { throw BPEError("a sentencepiece vocabulary has 256 to 1048576 pieces (got \(count))") }
        let specialSet = Set(special)
        guard specialSet.count == special.count, specialSet.allSatisfy({ $0 >= 0 && Int($0) < count }) else {
            throw BPEError("special token ids must be distinct ids of the vocabulary")
        }
        guard Set(userDefined).count == userDefined.count, userDefined.allSatisfy(specialSet.contains) else {
            throw BPEError("user-defined token ids must be distinct special token ids")
        }
        for (name, id) in [("bos_id", beginning), ("eos_id", endOfText)] {
            if let id, id < 0 || Int(id) >= count || pieces[Int(id)].isEmpty { throw BPEError("\(name) \(id) is not a token of the vocabulary") }
        }
        var bytes: [UInt8] = [], starts: [Int] = [0]
        var byteTokens = [Int32](repeating: -1, count: 256)
        var idOfPiece: [String: Int32] = [:], characters: [UInt32: Int32] = [:]
        var specials: [(id: Int32, bytes: [UInt8])] = []
        var specialTexts = Set<[UInt8]>()
        for (index, piece) in pieces.enumerated() {
            let id = Int32(index)
            if specialSet.contains(id) {
                let text = Array(piece.utf8)
                guard !text.isEmpty else { throw BPEError("special token \(id) is empty") }
                guard specialTexts.insert(text).inserted else { throw BPEError("special token \(id) repeats another's text") }
                specials.append((id, text))
                bytes += text
            } else if let byte = Self.byteValue(piece) {
                guard byteTokens[Int(byte)] < 0 else { throw BPEError("pieces \(byteTokens[Int(byte)]) and \(id) are both the byte \(piece)") }
                byteTokens[Int(byte)] = id
                bytes.append(byte)
            } else if !piece.isEmpty {
                guard idOfPiece[piece] == nil else { throw BPEError("pieces \(idOfPiece[piece]!) and \(id) are both '\(piece)'") }
                idOfPiece[piece] = id
                let scalars = piece.unicodeScalars
                if scalars.count == 1 { characters[scalars.first!.value] = id }
                for scalar in scalars { bytes += scalar == "\u{2581}" ? [0x20] : Array(String(scalar).utf8) }
            }
            starts.append(bytes.count)
            guard bytes.count <= BPETables.maxTotalBytes else { throw BPEError("the pieces total more than \(BPETables.maxTotalBytes) bytes") }
        }
        if let missing = byteTokens.firstIndex(of: -1) {
            throw BPEError("no piece is the byte <0x\(Self.hex(UInt8(missing)))>: byte fallback needs all 256")
        }
        var results: [Int32] = []
        results.reserveCapacity(merges.count)
        for (i, merge) in merges.enumerated() {
            let parts = [merge.left, merge.right]
            guard parts.allSatisfy({ $0 >= 0 && Int($0) < count && !specialSet.contains($0) && !pieces[Int($0)].isEmpty }) else {
                throw BPEError("merge \(i) (\(merge.left) \(merge.right)) refers to an id that is not a piece")
            }
            guard let result = idOfPiece[pieces[Int(merge.left)] + pieces[Int(merge.right)]] else {
                throw BPEError("merge \(i) (\(merge.left) \(merge.right)) makes a piece that is not in the vocabulary")
            }
            results.append(result)
        }
        tables = try BPETables(merges: merges, byteTokens: byteTokens, results: results, bytes: bytes, starts: starts, specials: specials)
        characterIDs = characters
        self.pieces = pieces
        self.merges = merges
        self.special = special.sorted()
        self.userDefined = userDefined.sorted()
        self.beginning = beginning
        self.endOfText = endOfText
        self.spacePrefix = spacePrefix
        self.splitsAtSpaces = splitsAtSpaces
    }

    /// Equal when every stored field is (the lookup tables follow from them).
    public static func == (a: Self, b: Self) -> Bool {
        a.pieces == b.pieces && a.merges == b.merges && a.special == b.special && a.userDefined == b.userDefined
            && a.beginning == b.beginning && a.endOfText == b.endOfText && a.spacePrefix == b.spacePrefix
            && a.splitsAtSpaces == b.splitsAtSpaces
    }

    /// The number of token ids: one per piece, empty ones included.
    public var vocabularySize: Int { pieces.count }

    /// The byte a piece `<0xAB>` (two upper-case hex digits, as sentencepiece writes them)
    /// stands for.
    public static func byteValue(_ piece: String) -> UInt8? {
        let utf8 = Array(piece.utf8)
        guard utf8.count == 6, utf8[0...2] == [0x3C, 0x30, 0x78], utf8[5] == 0x3E else { return nil }
        func digit(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c - 0x30
            case 0x41...0x46: return c - 0x41 + 10
            default: return nil
            }
        }
        guard let high = digit(utf8[3]), let low = digit(utf8[4]) else { return nil }
        return high << 4 | low
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789ABCDEF")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 15)]])
    }

    // MARK: - Encoding

    /// The token ids of any bytes (an invalid UTF-8 byte is its byte piece).
    public func encode(_ bytes: [UInt8]) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 16)
        if let beginning { output.append(beginning) }
        bytes.withUnsafeBufferPointer { bytes in
            var start = 0
            while start < bytes.count {
                let special = tables.specials.isEmpty ? nil : tables.nextSpecial(bytes, from: start)
                let end = special?.offset ?? bytes.count
                if end > start { encodeStretch(UnsafeBufferPointer(rebasing: bytes[start..<end]), atStart: start == 0, into: &output) }
                guard let special else { break }
                output.append(special.id)
                start = end + tables.specials[special.index].bytes.count
            }
        }
        return output
    }

    /// One stretch of text between special tokens: spaces become ▁, the prefix goes in
    /// front, and the characters (words, if ``splitsAtSpaces``) are merged.
    private func encodeStretch(_ text: UnsafeBufferPointer<UInt8>, atStart: Bool, into output: inout [Int32]) {
        let startsWithSpace = text[0] == 0x20 || (text.count >= 3 && Array(text[0..<3]) == Self.mark)
        let prefixed: Bool
        switch spacePrefix {
        case .every: prefixed = true
        case .everyUnlessSpace: prefixed = !startsWithSpace
        case .firstUnlessSpace: prefixed = atStart && !startsWithSpace
        case .none: prefixed = false
        }
        var word: [Int32] = []
        func flush() {
            output += tables.merge(word)
            word.removeAll(keepingCapacity: true)
        }
        func append(_ scalar: UInt32, bytes: some Collection<UInt8>) {
            if let id = characterIDs[scalar] {
                word.append(id)
            } else {
                for byte in bytes { word.append(tables.byteTokens[Int(byte)]) }
            }
        }
        if prefixed { append(0x2581, bytes: Self.mark) }
        var i = 0
        while i < text.count {
            let (scalar, length) = Self.scalar(in: text, at: i)
            let isMark = scalar == 0x20 || scalar == 0x2581
            if isMark && splitsAtSpaces && !word.isEmpty { flush() }
            if scalar == 0x20 { append(0x2581, bytes: Self.mark) } else { append(scalar ?? 0xFFFF_FFFF, bytes: text[i..<(i + length)]) }
            i += length
        }
        flush()
    }

    /// The Unicode scalar that starts at `i` and its length in bytes; nil and 1 for a byte
    /// that starts no valid scalar (overlong forms, surrogates, above U+10FFFF, cut short).
    static func scalar(in text: UnsafeBufferPointer<UInt8>, at i: Int) -> (UInt32?, Int) {
        let lead = text[i]
        if lead < 0x80 { return (UInt32(lead), 1) }
        let length: Int, minimum: UInt32
        switch lead {
        case 0xC2...0xDF: length = 2; minimum = 0x80
        case 0xE0...0xEF: length = 3; minimum = 0x800
        case 0xF0...0xF4: length = 4; minimum = 0x10000
        default: return (nil, 1)
        }
        guard i + length <= text.count else { return (nil, 1) }
        var value = UInt32(lead) & (0x7F >> UInt32(length))
        for k in 1..<length {
            let byte = text[i + k]
            guard byte & 0xC0 == 0x80 else { return (nil, 1) }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        guard value >= minimum, value <= 0x10FFFF, !(0xD800...0xDFFF).contains(value) else { return (nil, 1) }
        return (value, length)
    }

    // MARK: - Decoding

    /// The bytes of `token` when it follows `previous`: ▁ is a space, `<0xAB>` the byte, a
    /// special token its text; a token that begins the text (no previous token, or BOS)
    /// loses one leading space, the one the prefix added.
    public func bytes(of token: Int32, after previous: Int32?) -> [UInt8] {
        precondition(token >= 0 && Int(token) < vocabularySize, "token id \(token) is outside the vocabulary")
        let start = tables.starts[Int(token)], end = tables.starts[Int(token) + 1]
        var first = start
        if previous == nil || (previous == beginning && beginning != nil), first < end, tables.bytes[first] == 0x20 { first += 1 }
        return Array(UnsafeBufferPointer(start: tables.bytes + first, count: end - first))
    }

    /// The bytes of `tokens`: a leading BOS is not text.
    public func decode(_ tokens: [Int32]) -> [UInt8] {
        let start = beginning != nil && tokens.first == beginning ? 1 : 0
        var bytes: [UInt8] = []
        for i in start..<tokens.count { bytes += self.bytes(of: tokens[i], after: i > start ? tokens[i - 1] : nil) }
        return bytes
    }
}
