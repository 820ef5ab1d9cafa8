/// How byte-level BPE cuts its input into chunks before merging (formats/tfq.md §10.1).
/// Merges never cross a chunk boundary, so a word is tokenized the same wherever it stands
/// and the learner can count words instead of scanning the whole text.
///
/// `words` is GPT-2's pre-tokenization regex written out by hand on bytes:
///
///     '(s|t|m|d|re|ve|ll)   (ASCII, case-insensitive, as cl100k's)
///     ␠?letter+   ␠?digit+   ␠?other+
///     whitespace+ that leaves its last character to a following chunk
///
/// with byte classes instead of Unicode ones: every byte ≥ 0x80 counts as a letter. So
/// non-ASCII text of any script stays in words, and the rule is defined for every byte
/// string, valid UTF-8 or not, with no Unicode tables and one pass of byte comparisons.
/// The price: non-ASCII punctuation and spaces (“ ” — U+00A0) join the letters next to them.
///
/// `gpt2` is that regex exactly, on Unicode scalars, as Hugging Face's byte-level
/// pre-tokenizer applies it: for tokenizers imported from GPT-2-style `tokenizer.json` files.
public enum BPEPreSplit: String, Sendable, CaseIterable {
    case words
    case gpt2

    /// The byte classes of the splitter.
    @usableFromInline enum ByteClass: UInt8 { case whitespace, letter, digit, other }

    @inlinable @inline(__always)
    static func byteClass(_ byte: UInt8) -> ByteClass {
        if byte >= 0x80 { return .letter }
        let lower = byte | 0x20
        if lower >= 0x61 && lower <= 0x7A { return .letter }      // A–Z, a–z
        if byte >= 0x30 && byte <= 0x39 { return .digit }
        if byte == 0x20 || (byte >= 0x09 && byte <= 0x0D) { return .whitespace }  // space, \t \n \v \f \r
        return .other
    }

    /// The chunk starting at `start` (< `bytes.count`): its end offset.
    @inlinable @inline(__always)
    func chunkEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        switch self {
        case .words: return Self.wordsChunkEnd(bytes, from: start)
        case .gpt2: return Self.gpt2ChunkEnd(bytes, from: start)
        }
    }

    /// `words`: the chunk starting at `start` (< `bytes.count`): its end offset.
    @inlinable
    static func wordsChunkEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let n = bytes.count
        let first = bytes[start]
        // A contraction: 's 't 'm 'd 're 've 'll, any case.
        if first == 0x27 && start + 1 < n {
            let c1 = bytes[start + 1] | 0x20
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return start + 2 }  // s t m d
            if start + 2 < n {
                let c2 = bytes[start + 2] | 0x20
                // (Only the two cases of a letter fold to it with | 0x20.)
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return start + 3 }  // re ve ll
            }
        }
        // A run of one class, with an optional leading space.
        var head = start
        if first == 0x20 && start + 1 < n && byteClass(bytes[start + 1]) != .whitespace { head = start + 1 }
        let kind = byteClass(bytes[head])
        if kind != .whitespace {
            var end = head + 1
            while end < n && byteClass(bytes[end]) == kind { end += 1 }
            return end
        }
        // Whitespace: the whole run at the end of the input or when it is one character;
        // otherwise all but its last character, which starts the next chunk (a space there
        // becomes the leading space of the word after it, as in GPT-2).
        var end = start + 1
        while end < n && byteClass(bytes[end]) == .whitespace { end += 1 }
        return end == n || end - start == 1 ? end : end - 1
    }

    // MARK: - gpt2: the regex itself, on Unicode scalars

    /// GPT-2's class of a scalar: `\s` is Unicode's White_Space, `\p{L}` the letter
    /// categories, `\p{N}` the number categories (Nd, Nl, No).
    @usableFromInline
    static func unicodeClass(_ scalar: Unicode.Scalar) -> ByteClass {
        if scalar.value < 0x80 { return byteClass(UInt8(scalar.value)) }
        let properties = scalar.properties
        if properties.isWhitespace { return .whitespace }
        switch properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .digit
        default: return .other
        }
    }

    /// The scalar at `offset` and its length in bytes; an invalid byte is a scalar of its
    /// own, of class other (the regex runs on text, so such bytes never reach it in GPT-2).
    @inline(__always) @usableFromInline
    static func scalarClass(_ bytes: UnsafeBufferPointer<UInt8>, at offset: Int) -> (ByteClass, length: Int) {
        let lead = bytes[offset]
        if lead < 0x80 { return (byteClass(lead), 1) }
        let length = lead >= 0xF5 ? 0 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC2 ? 2 : 0
        guard length > 0, offset + length <= bytes.count else { return (.other, 1) }
        var value = UInt32(lead) & (0x7F >> length)
        for i in 1..<length {
            let byte = bytes[offset + i]
            guard byte & 0xC0 == 0x80 else { return (.other, 1) }
            value = value << 6 | UInt32(byte & 0x3F)
        }
        // Overlong forms, surrogates and values past U+10FFFF are not scalars.
        let minimum: UInt32 = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000
        guard value >= minimum, let scalar = Unicode.Scalar(value) else { return (.other, 1) }
        return (unicodeClass(scalar), length)
    }

    /// The end of the chunk at `start` by GPT-2's regex
    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`.
    @usableFromInline
    static func gpt2ChunkEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
        let n = bytes.count
        // Contractions: lower case only, unlike `words`.
        if bytes[start] == 0x27 && start + 1 < n {
            let c1 = bytes[start + 1]
            if c1 == 0x73 || c1 == 0x74 || c1 == 0x6D || c1 == 0x64 { return start + 2 }  // s t m d
            if start + 2 < n {
                let c2 = bytes[start + 2]
                if (c1 == 0x72 && c2 == 0x65) || (c1 == 0x76 && c2 == 0x65) || (c1 == 0x6C && c2 == 0x6C) { return start + 3 }  // re ve ll
            }
        }
        var head = start
        if bytes[start] == 0x20 && start + 1 < n && scalarClass(bytes, at: start + 1).0 != .whitespace { head = start + 1 }
        let (kind, length) = scalarClass(bytes, at: head)
        if kind != .whitespace {
            var end = head + length
            while end < n {
                let (next, count) = scalarClass(bytes, at: end)
                guard next == kind else { break }
                end += count
            }
            return end
        }
        // A whitespace run: all of it at the end of the input or when it is one scalar;
        // otherwise all but its last scalar.
        var end = start, last = start
        while end < n {
            let (next, count) = scalarClass(bytes, at: end)
            guard next == .whitespace else { break }
            last = end
            end += count
        }
        return end == n || last == start ? end : last
    }

    /// Calls `body` with every chunk of `bytes`, in order; the chunks tile the input.
    @inlinable
    public func forEachChunk(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) throws -> Void) rethrows {
        var start = 0
        while start < bytes.count {
            let end = chunkEnd(bytes, from: start)
            try body(start..<end)
            start = end
        }
    }

    /// The chunks of `bytes` as ranges (for tests and tools).
    public func chunks(_ bytes: [UInt8]) -> [Range<Int>] {
        var result: [Range<Int>] = []
        bytes.withUnsafeBufferPointer { buffer in forEachChunk(buffer) { result.append($0) } }
        return result
    }
}
