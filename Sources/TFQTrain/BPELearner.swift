import TFQModel

/// Learns byte-level BPE merges from a text (the result is specified in formats/tfq.md §10.2).
///
/// The rule: cut the text into chunks (``BPEPreSplit``), start every chunk as its bytes, and
/// repeat: count every adjacent pair of tokens inside the chunks, take the most frequent pair
/// (ties: the lowest left id, then the lowest right id), make it the next token, and replace
/// its occurrences left to right in every chunk. Stop at the vocabulary size, or earlier when
/// no chunk has two tokens left.
///
/// Done naively that is a pass over the whole text per merge. Instead:
/// - each distinct chunk ("word") is kept once, with its count: War and Peace (3.2 MB)
///   has 724,347 chunks but 26,181 distinct ones;
/// - pair counts are updated incrementally: merging a pair changes only the pairs next to its
///   occurrences, in the words that hold it;
/// - an index from each pair to the words holding it says which words to visit (entries go
///   stale when a word loses the pair; visiting such a word merely finds nothing);
/// - a max-heap of (count, pair) gives the best pair; an entry is pushed whenever a count
///   changes, and one whose count is no longer current is dropped when popped.
public enum BPELearner {
    /// A tokenizer of `vocabularySize` tokens (256 bytes and `vocabularySize − 256` merges),
    /// or fewer when the text runs out of pairs.
    public static func learn(_ text: [UInt8], vocabularySize: Int, preSplit: BPEPreSplit = .words) -> BPETokenizer {
        var words = Words(text, preSplit: preSplit)
        let merges = words.learn(count: max(0, vocabularySize - 256))
        // The merges refer only to earlier tokens and never repeat: they are valid by construction.
        return try! BPETokenizer(merges: merges, preSplit: preSplit)
    }
}

/// The distinct chunks of the text with their counts, as token sequences merged in place,
/// and the pair statistics over them.
private struct Words {
    var symbols: [Int32] = []      // every word's tokens, back to back
    var start: [Int] = []          // word w is symbols[start[w] ..< start[w] + length[w]]
    var length: [Int] = []
    var count: [Int] = []          // occurrences of the word in the text

    var pairs = PairTable()
    var pairCount: [Int] = []      // by pair id
    var pairKey: [UInt64] = []
    var pairWords: [[Int32]] = []  // words that hold (or held) the pair
    var heap = MaxHeap()
    var stamp: [Int] = []          // pair id → last merge that changed its count
    var changed: [Int32] = []

    init(_ text: [UInt8], preSplit: BPEPreSplit) {
        var index: [ArraySlice<UInt8>: Int] = [:]
        text.withUnsafeBufferPointer { buffer in
            preSplit.forEachChunk(buffer) { range in
                let chunk = text[range]
                if let w = index[chunk] { count[w] += 1; return }
                index[chunk] = start.count
                start.append(symbols.count)
                length.append(chunk.count)
                count.append(1)
                symbols.append(contentsOf: chunk.lazy.map { Int32($0) })
            }
        }
        for w in start.indices {
            let s = start[w]
            for i in 0..<max(0, length[w] - 1) {
                let id = pairID(symbols[s + i], symbols[s + i + 1])
                pairCount[id] += count[w]
                if pairWords[id].last != Int32(w) { pairWords[id].append(Int32(w)) }
            }
        }
        for id in pairCount.indices { heap.push(count: pairCount[id], key: pairKey[id]) }
    }

    mutating func pairID(_ left: Int32, _ right: Int32) -> Int {
        let key = UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
        let (id, inserted) = pairs.findOrInsert(key, nextID: Int32(pairKey.count))
        if inserted {
            pairCount.append(0); pairKey.append(key); pairWords.append([]); stamp.append(-1)
        }
        return Int(id)
    }

    /// Adds `delta` occurrences of the pair; a new occurrence also indexes word `w`.
    mutating func add(_ left: Int32, _ right: Int32, _ delta: Int, word w: Int, merge: Int) {
        let id = pairID(left, right)
        pairCount[id] += delta
        if delta > 0 && pairWords[id].last != Int32(w) { pairWords[id].append(Int32(w)) }
        if stamp[id] != merge { stamp[id] = merge; changed.append(Int32(id)) }
    }

    mutating func learn(count target: Int) -> [BPETokenizer.Merge] {
        var merges: [BPETokenizer.Merge] = []
        merges.reserveCapacity(target)
        while merges.count < target {
            guard let best = popBest() else { break }
            let a = Int32(truncatingIfNeeded: pairKey[best] >> 32), b = Int32(truncatingIfNeeded: pairKey[best])
            let merge = merges.count
            let c = Int32(256 + merge)
            merges.append(.init(a, b))
            let holders = pairWords[best]
            pairWords[best] = []
            changed.removeAll(keepingCapacity: true)
            for w in holders { replace(a, b, with: c, inWord: Int(w), merge: merge) }
            for id in changed where pairCount[Int(id)] > 0 {
                heap.push(count: pairCount[Int(id)], key: pairKey[Int(id)])
            }
        }
        return merges
    }

    /// The pair with the highest current count (ties: the lowest key, i.e. left id then right id).
    mutating func popBest() -> Int? {
        while let (count, key) = heap.pop() {
            guard let id = pairs.find(key) else { continue }
            if pairCount[Int(id)] == count && count > 0 { return Int(id) }
        }
        return nil
    }

    /// Replaces every (a, b) in word `w`, left to right, with `c`, and updates the pair
    /// counts by exactly the pairs that disappear and appear.
    mutating func replace(_ a: Int32, _ b: Int32, with c: Int32, inWord w: Int, merge: Int) {
        let s = start[w], n = length[w], f = count[w]
        var read = 0, write = 0
        while read < n {
            if read + 1 < n && symbols[s + read] == a && symbols[s + read + 1] == b {
                add(a, b, -f, word: w, merge: merge)
                if write > 0 {
                    // The token before, possibly a c just made: (x, a) becomes (x, c).
                    let x = symbols[s + write - 1]
                    add(x, a, -f, word: w, merge: merge)
                    add(x, c, f, word: w, merge: merge)
                }
                if read + 2 < n {
                    let y = symbols[s + read + 2]
                    add(b, y, -f, word: w, merge: merge)
                    add(c, y, f, word: w, merge: merge)
                }
                symbols[s + write] = c
                read += 2
            } else {
                symbols[s + write] = symbols[s + read]
                read += 1
            }
            write += 1
        }
        length[w] = write
    }
}

/// Pair key (left << 32 | right) → dense pair id: open addressing, linear probing.
private struct PairTable {
    private var keys = [UInt64](repeating: .max, count: 1 << 16)
    private var ids = [Int32](repeating: -1, count: 1 << 16)
    private var used = 0

    private func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> UInt64(64 - keys.count.trailingZeroBitCount))
    }

    func find(_ key: UInt64) -> Int32? {
        var i = slot(key)
        while keys[i] != .max {
            if keys[i] == key { return ids[i] }
            i = (i + 1) & (keys.count - 1)
        }
        return nil
    }

    mutating func findOrInsert(_ key: UInt64, nextID: Int32) -> (Int32, inserted: Bool) {
        var i = slot(key)
        while keys[i] != .max {
            if keys[i] == key { return (ids[i], false) }
            i = (i + 1) & (keys.count - 1)
        }
        keys[i] = key
        ids[i] = nextID
        used += 1
        if 2 * used > keys.count { grow() }
        return (nextID, true)
    }

    private mutating func grow() {
        let oldKeys = keys, oldIDs = ids
        keys = [UInt64](repeating: .max, count: 2 * oldKeys.count)
        ids = [Int32](repeating: -1, count: 2 * oldKeys.count)
        for j in oldKeys.indices where oldKeys[j] != .max {
            var i = slot(oldKeys[j])
            while keys[i] != .max { i = (i + 1) & (keys.count - 1) }
            keys[i] = oldKeys[j]
            ids[i] = oldIDs[j]
        }
    }
}

/// A binary max-heap of (count, pair key): the highest count first, then the lowest key.
private struct MaxHeap {
    private var counts: [Int] = []
    private var keys: [UInt64] = []

    private func above(_ i: Int, _ j: Int) -> Bool {
        counts[i] > counts[j] || (counts[i] == counts[j] && keys[i] < keys[j])
    }

    private mutating func swap(_ i: Int, _ j: Int) {
        counts.swapAt(i, j)
        keys.swapAt(i, j)
    }

    mutating func push(count: Int, key: UInt64) {
        counts.append(count)
        keys.append(key)
        var i = counts.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard above(i, parent) else { break }
            swap(i, parent)
            i = parent
        }
    }

    mutating func pop() -> (count: Int, key: UInt64)? {
        guard !counts.isEmpty else { return nil }
        let top = (counts[0], keys[0])
        let lastCount = counts.removeLast(), lastKey = keys.removeLast()
        if !counts.isEmpty {
            counts[0] = lastCount
            keys[0] = lastKey
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var best = i
                if l < counts.count && above(l, best) { best = l }
                if r < counts.count && above(r, best) { best = r }
                if best == i { break }
                swap(i, best)
                i = best
            }
        }
        return top
    }
}
