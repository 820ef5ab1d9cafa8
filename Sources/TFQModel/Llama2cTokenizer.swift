/// llama2.c's tokenizer: a vocabulary of scored pieces (sentencepiece's, exported to
/// `tokenizer.bin`) and its encoding rule, reproduced exactly (formats/tfq.md §10):
///
/// 1. BOS (id 1) first; then, unless the text is empty, the piece " " (the dummy prefix).
/// 2. Each UTF-8 character (a lead byte and up to three continuation bytes) becomes its
///    piece, or, when the vocabulary lacks it, one token per byte: id = byte + 3 (the
///    `<0xNN>` pieces).
/// 3. Repeatedly, the adjacent pair whose concatenation is a piece with the highest score
///    (the leftmost among equal scores; only scores above −1e10, run.c's starting best) is
///    merged, until no pair is such a piece.
///
/// llama2.c rescans every pair after each merge (quadratic); here a heap of candidate pairs
/// gives the same merges in O(n log n), so whole evaluation texts encode quickly.
public struct Llama2cTokenizer: Equatable, Sendable {
    /// The beginning-of-sequence token (BOS): first in an encoding by default, and the stop token.
    public static let bos: Int32 = 1
    /// The end-of-sequence token (EOS), appended by ``encode(_:bos:eos:)`` when `eos` is true.
    public static let eos: Int32 = 2
    /// The byte-fallback token of byte b is b + 3, as in llama2.c.
    public static let byteOffset: Int32 = 3
    /// BOS, EOS and the 256 byte tokens at least: every id the encoder can produce.
    public static let minimumVocabularySize = 259
    /// run.c only merges a pair whose piece scores above this (its starting best score).
    public static let mergeScoreFloor: Float = -1e10

    /// Piece `i`'s bytes: what token `i` stands for.
    public let pieces: [[UInt8]]
    /// Piece `i`'s score: of the pairs that make a piece, the highest-scoring merges first.
    public let scores: [Float]
    /// Piece bytes → id; with duplicate pieces the lowest id (llama2.c's bsearch leaves it open).
    private let ids: [[UInt8]: Int32]

    /// A tokenizer over `pieces` and their `scores`: equally many, and at least ``minimumVocabularySize``.
    public init(pieces: [[UInt8]], scores: [Float]) {
        precondition(pieces.count == scores.count && pieces.count >= Self.minimumVocabularySize)
        self.pieces = pieces
        self.scores = scores
        var ids: [[UInt8]: Int32] = [:]
        ids.reserveCapacity(pieces.count)
        for (id, piece) in pieces.enumerated().reversed() { ids[piece] = Int32(id) }
        self.ids = ids
    }

    /// Equal when pieces and scores are (the id lookup follows from the pieces).
    public static func == (a: Self, b: Self) -> Bool { a.pieces == b.pieces && a.scores == b.scores }

    /// The number of token ids: one per piece.
    public var vocabularySize: Int { pieces.count }

    /// The id of `piece`, if the vocabulary has it.
    public func id(of piece: [UInt8]) -> Int32? { ids[piece] }

    /// Token ids of `bytes`, with BOS first (and EOS last with `eos`).
    public func encode(_ bytes: some Collection<UInt8>, bos: Bool = true, eos: Bool = false) -> [Int32] {
        var tokens: [Int32] = []
        tokens.reserveCapacity(bytes.count + 3)
        if bos { tokens.append(Self.bos) }
        if !bytes.isEmpty {
            // llama2.c pushes the id of " " whatever it is (-1 when the vocabulary lacks it);
            // here a missing " " falls back to its byte token.
            tokens.append(ids[[0x20]] ?? (0x20 + Self.byteOffset))
        }
        let characters = Array(bytes)
        var i = 0
        while i < characters.count {
            // A character: this byte and the continuation bytes after it, four bytes at most.
            var end = i + 1
            while end < characters.count && end - i < 4 && characters[end] & 0xC0 == 0x80 { end += 1 }
            let character = Array(characters[i..<end])
            if let id = ids[character] {
                tokens.append(id)
            } else {
                for byte in character { tokens.append(Int32(byte) + Self.byteOffset) }
            }
            i = end
        }
        // llama2.c merges over everything so far, BOS and the dummy prefix included.
        merge(&tokens)
        if eos { tokens.append(Self.eos) }
        return tokens
    }

    /// The bytes token `token` stands for when it follows `previous`, as llama2.c's decode
    /// gives them: a piece's leading space is dropped right after BOS, then a `<0xNN>` piece
    /// is its byte (`<0x00>` gives nothing: llama2.c's byte strings are C strings).
    public func bytes(of token: Int32, after previous: Int32?) -> [UInt8] {
        let id = Int(token)
        guard id >= 0 && id < pieces.count else { return [] }
        var piece = pieces[id][...]
        if previous == Self.bos, piece.first == 0x20 { piece = piece.dropFirst() }
        if let byte = Self.byteValue(of: piece) { return byte == 0 ? [] : [byte] }
        return Array(piece)
    }

    // MARK: - Merging

    /// A candidate merge: the pair starting at node `left`, as it was when queued.
    private struct Candidate: Comparable {
        let score: Float
        let left: Int32
        let right: Int32
        let merged: Int32
        /// The nodes' versions when queued: a node's version grows whenever its token changes.
        let leftVersion: Int32
        let rightVersion: Int32
        /// Higher score first; among equal scores, the leftmost pair.
        static func < (a: Self, b: Self) -> Bool { a.score != b.score ? a.score > b.score : a.left < b.left }
    }

    /// Applies llama2.c's merge rule to `tokens` in place.
    private func merge(_ tokens: inout [Int32]) {
        let n = tokens.count
        guard n > 1 else { return }
        // A doubly linked list over the positions; a node keeps its first position, so the
        // left-to-right order of nodes is the order of their indices.
        var token = tokens
        var next = (0..<n).map { Int32($0 + 1) }, previous = (0..<n).map { Int32($0 - 1) }
        var alive = [Bool](repeating: true, count: n)
        var version = [Int32](repeating: 0, count: n)
        var heap = Heap<Candidate>()
        var buffer: [UInt8] = []
        func consider(_ left: Int32) {
            guard left >= 0 else { return }
            let right = next[Int(left)]
            guard right < n else { return }
            buffer.removeAll(keepingCapacity: true)
            buffer += pieces[Int(token[Int(left)])]
            buffer += pieces[Int(token[Int(right)])]
            if let merged = ids[buffer], scores[Int(merged)] > Self.mergeScoreFloor {
                heap.push(Candidate(score: scores[Int(merged)], left: left, right: right, merged: merged,
                                    leftVersion: version[Int(left)], rightVersion: version[Int(right)]))
            }
        }
        for i in 0..<(n - 1) { consider(Int32(i)) }
        while let best = heap.pop() {
            let l = Int(best.left), r = Int(best.right)
            // Stale: a side was merged away or changed since this pair was queued.
            guard alive[l], alive[r], version[l] == best.leftVersion, version[r] == best.rightVersion else { continue }
            token[l] = best.merged
            version[l] += 1
            alive[r] = false
            next[l] = next[r]
            if next[r] < n { previous[Int(next[r])] = best.left }
            consider(previous[l])
            consider(best.left)
        }
        tokens.removeAll(keepingCapacity: true)
        var i: Int32 = 0
        while i < n { tokens.append(token[Int(i)]); i = next[Int(i)] }
    }

    /// The byte of a `<0xNN>` piece, or nil: "<0x" and one or two hex digits, either case
    /// (the closing ">" is not checked). llama2.c's sscanf "<0x%02hhX>" would also skip
    /// white space and take a sign there; sentencepiece vocabularies have no such pieces.
    static func byteValue(of piece: ArraySlice<UInt8>) -> UInt8? {
        let at = piece.startIndex
        guard piece.count >= 4, piece[at] == UInt8(ascii: "<"), piece[at + 1] == UInt8(ascii: "0"), piece[at + 2] == UInt8(ascii: "x") else { return nil }
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
            default: return nil
            }
        }
        guard let high = hex(piece[at + 3]) else { return nil }
        if piece.count > 4, let low = hex(piece[at + 4]) { return high * 16 + low }
        return high
    }
}
