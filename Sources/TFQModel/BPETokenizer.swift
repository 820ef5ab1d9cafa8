#if canImport(Glibc)
import Glibc
#endif

/// Byte-level byte-pair encoding (formats/tfq.md §10, type `"bpe"`).
///
/// tfq's own (learned by `tfq train`): tokens 0–255 are the bytes; token 256 + i is merge i,
/// the concatenation of two earlier tokens. An imported one (from a Hugging Face
/// `tokenizer.json`) keeps the ids the model was trained with: a ``BPEVocabulary`` says which
/// id each byte and each merge's result has, and which ids are special tokens.
///
/// Encoding cuts the input at special tokens, then into chunks (``BPEPreSplit``) and, in each
/// chunk, starts from its bytes and repeatedly merges the leftmost occurrence of the adjacent
/// pair with the lowest merge index until no adjacent pair is a merge. Every byte string has
/// an encoding, and decoding concatenates the tokens' bytes, so `decode(encode(s)) == s` for
/// any bytes, valid UTF-8 or not.
public struct BPETokenizer: Equatable, Sendable {
    /// Merge i makes a token from `left` followed by `right`.
    public struct Merge: Hashable, Sendable {
        /// The ids of the two tokens joined, first then second.
        public var left: Int32, right: Int32
        /// The merge of `left` followed by `right`.
        public init(_ left: Int32, _ right: Int32) { self.left = left; self.right = right }
    }

    /// Merge i joins two token ids; a lower index merges first.
    public let merges: [Merge]
    /// How input is cut into chunks before merging.
    public let preSplit: BPEPreSplit
    /// An imported tokenizer's ids; nil for tfq's own.
    public let vocabulary: BPEVocabulary?
    let tables: BPETables

    /// tfq's own: checks the merges (each refers only to earlier tokens, none twice) and
    /// builds the lookup tables: a few milliseconds for 65,280 merges.
    public init(merges: [Merge], preSplit: BPEPreSplit = .words) throws(BPEError) {
        self.merges = merges
        self.preSplit = preSplit
        vocabulary = nil
        tables = try BPETables(merges: merges)
    }

    /// An imported tokenizer: merges of the vocabulary's ids (each pair's result is the token
    /// spelled by the two joined, and must be in the vocabulary).
    public init(merges: [Merge], vocabulary: BPEVocabulary, preSplit: BPEPreSplit) throws(BPEError) {
        self.merges = merges
        self.preSplit = preSplit
        self.vocabulary = vocabulary
        tables = try BPETables(merges: merges, vocabulary: vocabulary)
    }

    /// Equal when pre-split, merges and vocabulary are (the lookup tables follow from them).
    public static func == (a: BPETokenizer, b: BPETokenizer) -> Bool {
        a.preSplit == b.preSplit && a.merges == b.merges && a.vocabulary == b.vocabulary
    }

    /// Every token id: for tfq's own, the 256 bytes and one token per merge.
    public var vocabularySize: Int { tables.vocabularySize }

    /// The bytes token `token` (below ``vocabularySize``) stands for.
    public func bytes(of token: Int32) -> [UInt8] {
        precondition(token >= 0 && Int(token) < vocabularySize, "token id \(token) is outside the vocabulary")
        let start = tables.starts[Int(token)], end = tables.starts[Int(token) + 1]
        return Array(UnsafeBufferPointer(start: tables.bytes + start, count: end - start))
    }

    /// How many bytes token `token` (below ``vocabularySize``) stands for.
    public func byteCount(of token: Int32) -> Int {
        precondition(token >= 0 && Int(token) < vocabularySize, "token id \(token) is outside the vocabulary")
        return tables.starts[Int(token) + 1] - tables.starts[Int(token)]
    }

    /// The bytes of `tokens`, concatenated; every id must be below ``vocabularySize``.
    public func decode(_ tokens: [Int32]) -> [UInt8] {
        var total = 0
        for token in tokens { total += byteCount(of: token) }
        var result = [UInt8]()
        result.reserveCapacity(total)
        for token in tokens {
            let start = tables.starts[Int(token)], end = tables.starts[Int(token) + 1]
            result.append(contentsOf: UnsafeBufferPointer(start: tables.bytes + start, count: end - start))
        }
        return result
    }

    /// The token ids of `bytes`.
    public func encode(_ bytes: [UInt8]) -> [Int32] {
        bytes.withUnsafeBufferPointer { encode($0) }
    }

    /// The token ids of the UTF-8 of `text`.
    public func encode(_ text: String) -> [Int32] {
        var text = text
        return text.withUTF8 { encode($0) }
    }

    /// The token ids of `bytes`.
    ///
    /// Most text repeats its words, so the ids of every chunk up to ``cachedChunkLength``
    /// bytes are remembered for the rest of the call; a repeated word costs a hash and a
    /// compare. The cache belongs to the call: a tokenizer shared across threads has no
    /// mutable state.
    func encode(_ bytes: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var output: [Int32] = []
        output.reserveCapacity(bytes.count / 3 + 16)
        guard let base = bytes.baseAddress else { return output }
        let scratch = ChunkScratch(capacity: Self.shortChunkLength)
        defer { scratch.deallocate() }
        var cache = bytes.count >= 1024 ? ChunkCache() : nil
        defer { cache?.deallocate() }
        var start = 0
        while start < bytes.count {
            // Text up to the next special token (or the end) is split and merged; the special
            // token is its id.
            let special = tables.specials.isEmpty ? nil : tables.nextSpecial(bytes, from: start)
            let textEnd = special?.offset ?? bytes.count
            encodeText(UnsafeBufferPointer(rebasing: bytes[start..<textEnd]), base: base, offset: start,
                       scratch: scratch, cache: &cache, into: &output)
            guard let special else { break }
            output.append(special.id)
            start = textEnd + tables.specials[special.index].bytes.count
        }
        return output
    }

    /// Splits `text` (a stretch of the input without special tokens) and merges its chunks.
    private func encodeText(_ text: UnsafeBufferPointer<UInt8>, base: UnsafePointer<UInt8>, offset: Int,
                            scratch: ChunkScratch, cache: inout ChunkCache?, into output: inout [Int32]) {
        var start = 0
        while start < text.count {
            let end = preSplit.chunkEnd(text, from: start)
            let length = end - start
            defer { start = end }
            if length == 1 { output.append(tables.byteTokens[Int(text[start])]); continue }
            let chunk = UnsafeBufferPointer(start: base + offset + start, count: length)
            if length > Self.cachedChunkLength || cache == nil {
                mergeChunk(chunk, scratch: scratch, into: &output)
                continue
            }
            let hash = ChunkCache.hash(chunk)
            if let ids = cache!.find(chunk, hash: hash) {
                output.append(contentsOf: ids)
            } else {
                let first = output.count
                mergeChunk(chunk, scratch: scratch, into: &output)
                output.withUnsafeBufferPointer { cache!.insert(chunk, hash: hash, ids: UnsafeBufferPointer(rebasing: $0[first...])) }
            }
        }
    }

    /// Chunks up to this length are merged in place in a small array (quadratic in the
    /// length, and fastest for words); longer ones with a heap.
    static let shortChunkLength = 64
    /// Chunks up to this length are cached within one `encode` call.
    public static let cachedChunkLength = 32

    /// Appends the ids of one chunk to `output`.
    func mergeChunk(_ chunk: UnsafeBufferPointer<UInt8>, scratch: ChunkScratch, into output: inout [Int32]) {
        if chunk.count < 2 {
            output.append(contentsOf: chunk.lazy.map { tables.byteTokens[Int($0)] })
            return
        }
        if chunk.count > Self.shortChunkLength {
            output.append(contentsOf: mergeLongChunk(chunk))
            return
        }
        let ids = scratch.ids, ranks = scratch.ranks
        var count = chunk.count
        for i in 0..<count { ids[i] = tables.byteTokens[Int(chunk[i])] }
        for i in 0..<(count - 1) { ranks[i] = tables.byteRank(chunk[i], chunk[i + 1]) }
        while count > 1 {
            // The lowest rank; the first (leftmost) on ties.
            var best = 0, bestRank = ranks[0]
            var i = 1
            while i < count - 1 {
                if ranks[i] < bestRank { best = i; bestRank = ranks[i] }
                i += 1
            }
            if bestRank == BPETables.noMerge { break }
            ids[best] = tables.results[Int(bestRank)]
            // Drop ids[best + 1] and the pair rank[best] it closed; the rest shift left.
            i = best + 1
            while i < count - 1 { ids[i] = ids[i + 1]; ranks[i] = ranks[i + 1]; i += 1 }
            count -= 1
            if best > 0 { ranks[best - 1] = tables.rank(ids[best - 1], ids[best]) }
            if best < count - 1 { ranks[best] = tables.rank(ids[best], ids[best + 1]) }
        }
        output.append(contentsOf: UnsafeBufferPointer(start: ids, count: count))
    }

    /// The same merges for a long chunk (a run of spaces, a line of dashes, a huge word).
    func mergeLongChunk(_ chunk: UnsafeBufferPointer<UInt8>) -> [Int32] {
        tables.merge(chunk.map { tables.byteTokens[Int($0)] })
    }

    // MARK: - Stored form

    /// The merges as stored in a .tfq file: decimal ids separated by single spaces,
    /// `left₀ right₀ left₁ right₁ …` (formats/tfq.md §10). A string, not a JSON array: a
    /// 65,536-token tokenizer is parsed at every model load, and one string goes through
    /// the JSON decoder as a single value.
    public var storedMerges: String { Self.storedForm(of: merges) }

    /// Parses ``storedMerges``; strict: digits and single spaces only, no leading zeros.
    /// With a `vocabulary`, an imported tokenizer.
    public init(storedMerges text: String, preSplit: String, vocabulary: BPEVocabulary? = nil) throws(BPEError) {
        guard let split = BPEPreSplit(rawValue: preSplit) else { throw BPEError("unknown pre_split '\(preSplit)'") }
        let merges = try Self.merges(stored: text)
        if let vocabulary {
            try self.init(merges: merges, vocabulary: vocabulary, preSplit: split)
        } else {
            try self.init(merges: merges, preSplit: split)
        }
    }

    /// Merges as a .tfq file stores them (formats/tfq.md §10.1): `left₀ right₀ left₁ right₁ …`.
    static func storedForm(of merges: [Merge]) -> String {
        var text = [UInt8]()
        text.reserveCapacity(merges.count * 12)
        for (i, merge) in merges.enumerated() {
            if i > 0 { text.append(0x20) }
            text.append(contentsOf: String(merge.left).utf8)
            text.append(0x20)
            text.append(contentsOf: String(merge.right).utf8)
        }
        return String(decoding: text, as: UTF8.self)
    }

    /// The merges of a stored string; strict: digits and single spaces only, no leading zeros.
    static func merges(stored text: String) throws(BPEError) -> [Merge] {
        var ids: [Int32] = []
        var text = text
        let parsed: BPEError? = text.withUTF8 { utf8 -> BPEError? in
            ids.reserveCapacity(utf8.count / 5)
            var value: Int64 = 0, digits = 0, leadingZero = false
            for (offset, byte) in utf8.enumerated() {
                if byte >= 0x30 && byte <= 0x39 {
                    if leadingZero { return BPEError("merges: a number has a leading zero (at byte \(offset))") }
                    if digits == 0 && byte == 0x30 { leadingZero = true }
                    value = value * 10 + Int64(byte - 0x30)
                    digits += 1
                    if value > Int64(Int32.max) { return BPEError("merges: a token id is too large (at byte \(offset))") }
                } else if byte == 0x20 && digits > 0 && offset + 1 < utf8.count {
                    ids.append(Int32(value))
                    value = 0; digits = 0; leadingZero = false
                } else {
                    return BPEError("merges: expected decimal ids separated by single spaces (byte \(offset))")
                }
            }
            if digits > 0 { ids.append(Int32(value)) }
            return nil
        }
        if let parsed { throw parsed }
        guard ids.count % 2 == 0 else { throw BPEError("merges: an odd number of ids (\(ids.count)); they come in pairs") }
        return stride(from: 0, to: ids.count, by: 2).map { Merge(ids[$0], ids[$0 + 1]) }
    }
}

/// Why a stored BPE tokenizer is invalid.
public struct BPEError: Error, CustomStringConvertible, Equatable {
    /// What is invalid, in one line.
    public let description: String
    /// An error with this description.
    public init(_ description: String) { self.description = description }
}

/// The lookup tables of a tokenizer, built once and immutable after: merge ranks by pair,
/// what each byte and each merge makes, and every token's bytes.
final class BPETables: @unchecked Sendable {
    static let noMerge = Int32.max
    /// A token's bytes may total at most this over the vocabulary: merges can double a
    /// token's length each, so a hostile file could otherwise ask for 2^65536 bytes.
    static let maxTotalBytes = 1 << 26

    let vocabularySize: Int
    // Merge ranks: open addressing on (left << 32 | right), linear probing; load ≤ 1/2.
    let keys: UnsafeMutablePointer<UInt64>
    let ranks: UnsafeMutablePointer<Int32>
    /// The ranks of byte pairs, dense: every chunk starts as bytes, so these are the most
    /// frequent lookups.
    let byteRanks: UnsafeMutablePointer<Int32>
    let mask: Int
    let shift: UInt64
    /// The token of each byte, and the token each merge makes.
    let byteTokens: UnsafeMutablePointer<Int32>
    let results: UnsafeMutablePointer<Int32>
    // Token t is bytes[starts[t] ..< starts[t + 1]].
    let bytes: UnsafeMutablePointer<UInt8>
    let starts: UnsafeMutablePointer<Int>
    /// Tokens matched as literal text before splitting.
    let specials: [(id: Int32, bytes: [UInt8])]
    /// Whether some special token starts with each byte.
    let startsSpecial: [Bool]

    /// tfq's own: byte b is token b, merge i makes token 256 + i.
    convenience init(merges: [BPETokenizer.Merge]) throws(BPEError) {
        let vocabulary = 256 + merges.count
        var lengths = [Int](repeating: 1, count: vocabulary)
        var total = 256
        for (i, merge) in merges.enumerated() {
            let limit = Int32(256 + i)
            guard merge.left >= 0, merge.right >= 0, merge.left < limit, merge.right < limit else {
                throw BPEError("merge \(i) (\(merge.left) \(merge.right)) refers to a token not defined before it (ids below \(limit))")
            }
            lengths[256 + i] = lengths[Int(merge.left)] + lengths[Int(merge.right)]
            total += lengths[256 + i]
            guard total <= Self.maxTotalBytes else { throw BPEError("the tokens total more than \(Self.maxTotalBytes) bytes") }
        }
        var bytes = [UInt8](repeating: 0, count: total), starts = [Int](repeating: 0, count: vocabulary + 1)
        for b in 0..<256 { bytes[b] = UInt8(b); starts[b] = b }
        var end = 256
        for (i, merge) in merges.enumerated() {
            starts[256 + i] = end
            for part in [Int(merge.left), Int(merge.right)] {
                for k in starts[part]..<(starts[part] + lengths[part]) { bytes[end] = bytes[k]; end += 1 }
            }
        }
        starts[vocabulary] = end
        try self.init(merges: merges, byteTokens: (0..<256).map { Int32($0) }, results: (0..<merges.count).map { Int32(256 + $0) },
                      bytes: bytes, starts: starts, specials: [])
    }

    /// An imported vocabulary: every token's bytes come from its spelling; a merge's result
    /// is the token spelled by its two parts joined.
    convenience init(merges: [BPETokenizer.Merge], vocabulary: BPEVocabulary) throws(BPEError) {
        let count = vocabulary.tokens.count
        guard count >= 256, count <= 1 << 20 else { throw BPEError("a byte-level vocabulary has 256 to 1048576 tokens (got \(count))") }
        let special = Set(vocabulary.special)
        guard special.count == vocabulary.special.count, special.allSatisfy({ $0 >= 0 && Int($0) < count }) else {
            throw BPEError("special token ids must be distinct ids of the vocabulary")
        }
        guard Set(vocabulary.userDefined).count == vocabulary.userDefined.count, vocabulary.userDefined.allSatisfy(special.contains) else {
            throw BPEError("user-defined token ids must be distinct special token ids")
        }
        var bytes: [UInt8] = [], starts: [Int] = [0]
        var byteTokens = [Int32](repeating: -1, count: 256)
        var idOfBytes: [[UInt8]: Int32] = [:]
        var specials: [(id: Int32, bytes: [UInt8])] = []
        var specialTexts = Set<[UInt8]>()
        for (id, token) in vocabulary.tokens.enumerated() {
            let tokenBytes: [UInt8]
            if special.contains(Int32(id)) {
                tokenBytes = Array(token.utf8)
                guard !tokenBytes.isEmpty else { throw BPEError("special token \(id) is empty") }
                guard specialTexts.insert(tokenBytes).inserted else { throw BPEError("special token \(id) repeats another's text") }
                specials.append((Int32(id), tokenBytes))
            } else {
                guard let decoded = ByteLevelSymbols.bytes(of: token) else {
                    throw BPEError("token \(id) '\(token)' is not spelled in byte-level symbols")
                }
                tokenBytes = decoded
                if !decoded.isEmpty {
                    guard idOfBytes[decoded] == nil else { throw BPEError("tokens \(idOfBytes[decoded]!) and \(id) are the same bytes") }
                    idOfBytes[decoded] = Int32(id)
                }
                if decoded.count == 1 { byteTokens[Int(decoded[0])] = Int32(id) }
            }
            bytes += tokenBytes
            starts.append(bytes.count)
            guard bytes.count <= Self.maxTotalBytes else { throw BPEError("the tokens total more than \(Self.maxTotalBytes) bytes") }
        }
        if let missing = byteTokens.firstIndex(of: -1) { throw BPEError("no token is the byte \(missing): a byte-level vocabulary has all 256") }
        var results: [Int32] = []
        results.reserveCapacity(merges.count)
        for (i, merge) in merges.enumerated() {
            guard merge.left >= 0, merge.right >= 0, Int(merge.left) < count, Int(merge.right) < count,
                  !special.contains(merge.left), !special.contains(merge.right),
                  !vocabulary.tokens[Int(merge.left)].isEmpty, !vocabulary.tokens[Int(merge.right)].isEmpty else {
                throw BPEError("merge \(i) (\(merge.left) \(merge.right)) refers to an id that is not a token")
            }
            let joined = Array(bytes[starts[Int(merge.left)]..<starts[Int(merge.left) + 1]] + bytes[starts[Int(merge.right)]..<starts[Int(merge.right) + 1]])
            guard let result = idOfBytes[joined] else {
                throw BPEError("merge \(i) (\(merge.left) \(merge.right)) makes a token that is not in the vocabulary")
            }
            results.append(result)
        }
        try self.init(merges: merges, byteTokens: byteTokens, results: results, bytes: bytes, starts: starts, specials: specials)
    }

    init(merges: [BPETokenizer.Merge], byteTokens: [Int32], results: [Int32], bytes tokenBytes: [UInt8], starts tokenStarts: [Int],
                 specials: [(id: Int32, bytes: [UInt8])]) throws(BPEError) {
        vocabularySize = tokenStarts.count - 1
        self.specials = specials
        var firstBytes = [Bool](repeating: false, count: 256)
        for special in specials { firstBytes[Int(special.bytes[0])] = true }
        startsSpecial = firstBytes
        var capacity = 16
        while capacity < 2 * max(1, merges.count) { capacity *= 2 }
        mask = capacity - 1
        shift = UInt64(64 - capacity.trailingZeroBitCount)
        keys = .allocate(capacity: capacity)
        keys.initialize(repeating: Self.empty, count: capacity)
        ranks = .allocate(capacity: capacity)
        ranks.initialize(repeating: Self.noMerge, count: capacity)
        byteRanks = .allocate(capacity: 1 << 16)
        byteRanks.initialize(repeating: Self.noMerge, count: 1 << 16)
        self.byteTokens = .allocate(capacity: 256)
        self.byteTokens.initialize(from: byteTokens, count: 256)
        self.results = .allocate(capacity: max(1, results.count))
        self.results.initialize(from: results, count: results.count)
        bytes = .allocate(capacity: max(1, tokenBytes.count))
        bytes.initialize(from: tokenBytes, count: tokenBytes.count)
        starts = .allocate(capacity: tokenStarts.count)
        starts.initialize(from: tokenStarts, count: tokenStarts.count)
        var byteOf = [Int](repeating: -1, count: vocabularySize)
        for b in 0..<256 { byteOf[Int(byteTokens[b])] = b }
        for (i, merge) in merges.enumerated() {
            let key = Self.key(merge.left, merge.right)
            var slot = Int(truncatingIfNeeded: (key &* Self.multiplier) >> shift)
            while keys[slot] != Self.empty {
                if keys[slot] == key {
                    let first = ranks[slot]
                    deallocate()
                    throw BPEError("merge \(i) (\(merge.left) \(merge.right)) repeats merge \(first)")
                }
                slot = (slot + 1) & mask
            }
            keys[slot] = key
            ranks[slot] = Int32(i)
            let left = byteOf[Int(merge.left)], right = byteOf[Int(merge.right)]
            if left >= 0 && right >= 0 { byteRanks[left << 8 | right] = Int32(i) }
        }
    }

    deinit { deallocate() }

    private var released = false
    private func deallocate() {
        guard !released else { return }
        released = true
        keys.deallocate(); ranks.deallocate(); byteRanks.deallocate(); bytes.deallocate(); starts.deallocate()
        byteTokens.deallocate(); results.deallocate()
    }

    static let empty = UInt64.max
    static let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always) static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// The merge index of the pair, or ``noMerge``.
    @inline(__always) func rank(_ left: Int32, _ right: Int32) -> Int32 {
        let key = Self.key(left, right)
        var slot = Int(truncatingIfNeeded: (key &* Self.multiplier) >> shift)
        while true {
            let stored = keys[slot]
            if stored == key { return ranks[slot] }
            if stored == Self.empty { return Self.noMerge }
            slot = (slot + 1) & mask
        }
    }

    /// The merge index of two bytes, or ``noMerge``.
    @inline(__always) func byteRank(_ left: UInt8, _ right: UInt8) -> Int32 {
        byteRanks[Int(left) << 8 | Int(right)]
    }

    /// The first special token at or after `start`: the longest one where several begin at
    /// the same offset (Hugging Face matches added tokens leftmost-longest).
    func nextSpecial(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> (offset: Int, index: Int, id: Int32)? {
        var offset = start
        while offset < bytes.count {
            // Most bytes start no special token: one table load skips them.
            guard startsSpecial[Int(bytes[offset])] else { offset += 1; continue }
            var found: Int? = nil
            for (index, special) in specials.enumerated() where special.bytes.first == bytes[offset] {
                let text = special.bytes
                guard offset + text.count <= bytes.count, found.map({ text.count > specials[$0].bytes.count }) ?? true else { continue }
                if (0..<text.count).allSatisfy({ bytes[offset + $0] == text[$0] }) { found = index }
            }
            if let found { return (offset, found, specials[found].id) }
            offset += 1
        }
        return nil
    }


    /// Merges `ids` until no adjacent pair is a merge, the lowest index first and the leftmost
    /// on ties, in O(n log n): a doubly linked list of tokens and a min-heap of (rank,
    /// position). A heap entry whose pair has changed since it was pushed is skipped when popped.
    func merge(_ ids: [Int32]) -> [Int32] {
        let n = ids.count
        guard n > 1 else { return ids }
        var ids = ids
        var next = (0..<n).map { Int32($0 + 1) }, previous = (0..<n).map { Int32($0 - 1) }
        var heap = MinHeap()
        for i in 0..<(n - 1) {
            let rank = self.rank(ids[i], ids[i + 1])
            if rank != BPETables.noMerge { heap.push(rank: rank, position: Int32(i)) }
        }
        while let (rank, position) = heap.pop() {
            let left = Int(position)
            let right = Int(next[left])
            // Stale: the left token was absorbed (-1), or the pair there is no longer this merge.
            guard ids[left] >= 0, right < n, self.rank(ids[left], ids[right]) == rank else { continue }
            ids[left] = results[Int(rank)]
            ids[right] = -1
            let after = Int(next[right])
            next[left] = Int32(after)
            if after < n { previous[after] = Int32(left) }
            let before = Int(previous[left])
            if before >= 0 {
                let r = self.rank(ids[before], ids[left])
                if r != BPETables.noMerge { heap.push(rank: r, position: Int32(before)) }
            }
            if after < n {
                let r = self.rank(ids[left], ids[after])
                if r != BPETables.noMerge { heap.push(rank: r, position: Int32(left)) }
            }
        }
        return ids.filter { $0 >= 0 }
    }
}

/// Scratch arrays for merging short chunks, allocated once per `encode` call.
struct ChunkScratch {
    let ids: UnsafeMutablePointer<Int32>
    let ranks: UnsafeMutablePointer<Int32>
    init(capacity: Int) { ids = .allocate(capacity: capacity); ranks = .allocate(capacity: capacity) }
    func deallocate() { ids.deallocate(); ranks.deallocate() }
}

/// Chunk bytes → ids, for one `encode` call: open addressing keyed by the chunk's bytes
/// (which stay in the caller's input), ids in an arena. Stops growing at 2^16 slots (``maxCapacity``).
struct ChunkCache {
    struct Slot {
        var hash: UInt64
        var start: UnsafePointer<UInt8>?
        var length: Int32
        var idCount: Int32
        var idStart: Int
    }

    static let maxCapacity = 1 << 16
    private static var emptySlot: Slot { Slot(hash: 0, start: nil, length: 0, idCount: 0, idStart: 0) }
    private var slots: UnsafeMutablePointer<Slot>
    private var capacity = 1024
    private var count = 0
    private var arena: UnsafeMutablePointer<Int32>
    private var arenaCapacity = 4096
    private var arenaCount = 0

    init() {
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Self.emptySlot, count: capacity)
        arena = .allocate(capacity: arenaCapacity)
    }

    func deallocate() { slots.deallocate(); arena.deallocate() }

    /// FNV-1a over the bytes.
    @inline(__always) static func hash(_ chunk: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in chunk { h = (h ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    /// The cached ids of `chunk`: valid until the next `insert`.
    func find(_ chunk: UnsafeBufferPointer<UInt8>, hash: UInt64) -> UnsafeBufferPointer<Int32>? {
        var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
        while let start = slots[slot].start {
            let entry = slots[slot]
            if entry.hash == hash && Int(entry.length) == chunk.count && memcmp(start, chunk.baseAddress!, chunk.count) == 0 {
                return UnsafeBufferPointer(start: arena + entry.idStart, count: Int(entry.idCount))
            }
            slot = (slot + 1) & (capacity - 1)
        }
        return nil
    }

    mutating func insert(_ chunk: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: UnsafeBufferPointer<Int32>) {
        if 2 * (count + 1) > capacity {
            guard capacity < Self.maxCapacity else { return }
            growSlots()
        }
        if arenaCount + ids.count > arenaCapacity {
            let grown = UnsafeMutablePointer<Int32>.allocate(capacity: 2 * arenaCapacity)
            grown.update(from: arena, count: arenaCount)
            arena.deallocate()
            arena = grown
            arenaCapacity *= 2
        }
        var slot = Int(truncatingIfNeeded: hash) & (capacity - 1)
        while slots[slot].start != nil { slot = (slot + 1) & (capacity - 1) }
        slots[slot] = Slot(hash: hash, start: chunk.baseAddress, length: Int32(chunk.count), idCount: Int32(ids.count), idStart: arenaCount)
        (arena + arenaCount).update(from: ids.baseAddress!, count: ids.count)
        arenaCount += ids.count
        count += 1
    }

    private mutating func growSlots() {
        let old = slots, oldCapacity = capacity
        capacity *= 2
        slots = .allocate(capacity: capacity)
        slots.initialize(repeating: Self.emptySlot, count: capacity)
        for i in 0..<oldCapacity where old[i].start != nil {
            var slot = Int(truncatingIfNeeded: old[i].hash) & (capacity - 1)
            while slots[slot].start != nil { slot = (slot + 1) & (capacity - 1) }
            slots[slot] = old[i]
        }
        old.deallocate()
    }
}

/// A min-heap of (rank, position), ordered by rank and then position: both packed in one
/// UInt64, so a comparison is one integer compare.
struct MinHeap {
    private var heap = Heap<UInt64>()

    mutating func push(rank: Int32, position: Int32) {
        heap.push(UInt64(UInt32(bitPattern: rank)) << 32 | UInt64(UInt32(bitPattern: position)))
    }

    mutating func pop() -> (rank: Int32, position: Int32)? {
        guard let top = heap.pop() else { return nil }
        return (Int32(truncatingIfNeeded: top >> 32), Int32(truncatingIfNeeded: top & 0xFFFF_FFFF))
    }
}
