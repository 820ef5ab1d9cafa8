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
public enum BPEPreSplit: String, Sendable, CaseIterable {
    case words

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
    @inlinable
    static func chunkEnd(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Int {
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

    /// Calls `body` with every chunk of `bytes`, in order; the chunks tile the input.
    @inlinable
    public func forEachChunk(_ bytes: UnsafeBufferPointer<UInt8>, _ body: (Range<Int>) throws -> Void) rethrows {
        var start = 0
        while start < bytes.count {
            let end = Self.chunkEnd(bytes, from: start)
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
