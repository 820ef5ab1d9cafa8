import Foundation
import Testing
import TFQFormat
@testable import TFQModel

/// The byte-level BPE encoder and decoder (formats/tfq.md §10.1–10.2): exact chunks, the
/// fixture ids that tools/bpe.py reproduces, a naive reading of the spec on random input, and
/// exact round trips of any bytes.
@Suite struct BPETokenizerTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/bpe")

    /// The fixture tokenizer (512 tokens, learned from Fixtures/bpe/corpus.bin).
    static let fixture: BPETokenizer = {
        let data = try! Data(contentsOf: fixtures.appendingPathComponent("tokenizer.json"))
        guard case .bpe(let bpe) = try! Tokenizer(json: JSONParser.parse(Array(data))) else { fatalError("not bpe") }
        return bpe
    }()

    static func chunks(_ bytes: [UInt8]) -> [String] {
        BPEPreSplit.words.chunks(bytes).map { String(decoding: bytes[$0], as: UTF8.self) }
    }

    @Test func preSplitCutsLikeGPT2() {
        let cases: [(String, [String])] = [
            ("Hello world!", ["Hello", " world", "!"]),
            ("don't stop", ["don", "'t", " stop"]),
            ("I'LL we'Re 'D", ["I", "'LL", " we", "'Re", " '", "D"]),
            ("a   b", ["a", "  ", " b"]),
            ("x\n\ny", ["x", "\n", "\n", "y"]),
            ("a \n b", ["a", " \n", " b"]),
            ("\t\tx", ["\t", "\t", "x"]),
            ("  lead", [" ", " lead"]),
            ("trail  ", ["trail", "  "]),
            ("end ", ["end", " "]),
            ("1805, 3.14", ["1805", ",", " 3", ".", "14"]),
            ("abc123def", ["abc", "123", "def"]),
            ("--wait...?! ok", ["--", "wait", "...?!", " ok"]),
            ("café au", ["café", " au"]),
            ("日本語 text", ["日本語", " text"]),
            ("''s", ["''", "s"]),
            ("", []),
        ]
        for (text, expected) in cases {
            #expect(Self.chunks(Array(text.utf8)) == expected, "\(text.debugDescription)")
        }
        // Bytes 0x80–0xFF are letters, valid UTF-8 or not.
        #expect(BPEPreSplit.words.chunks([0xFF, 0x41, 0xC3, 0x20, 0x80, 0x21]) == [0..<3, 3..<5, 5..<6])
    }

    /// `gpt2` is the regex itself on Unicode scalars: lower-case contractions, Unicode letters,
    /// numbers and White_Space; the fixture tests check it against the tokenizers library.
    @Test func gpt2PreSplitFollowsUnicodeClasses() {
        let cases: [(String, [String])] = [
            ("Hello world!", ["Hello", " world", "!"]),
            ("it's IT'S we'll they'RE", ["it", "'s", " IT", "'", "S", " we", "'ll", " they", "'", "RE"]),
            ("a   b", ["a", "  ", " b"]),
            ("x\n\ny", ["x", "\n", "\n", "y"]),
            ("trail  ", ["trail", "  "]),
            ("café au", ["café", " au"]),
            ("Ⅻ²٣ x", ["Ⅻ²٣", " x"]),                         // Nl, No and Nd are numbers
            ("a\u{A0}b", ["a", "\u{A0}", "b"]),               // NBSP is White_Space, and no leading space
            ("a\u{A0}\u{A0}b", ["a", "\u{A0}", "\u{A0}", "b"]),
            ("\u{201C}quote\u{201D}", ["\u{201C}", "quote", "\u{201D}"]),  // curly quotes are punctuation
            ("e\u{301}t\u{E9}", ["e", "\u{301}", "t\u{E9}"]),  // a combining mark is not a letter
            ("日本語 text", ["日本語", " text"]),
            ("", []),
        ]
        for (text, expected) in cases {
            let bytes = Array(text.utf8)
            #expect(BPEPreSplit.gpt2.chunks(bytes).map { String(decoding: bytes[$0], as: UTF8.self) } == expected, "\(text.debugDescription)")
        }
        // Invalid UTF-8: each bad byte is a scalar of class other, so a run of them is one chunk.
        #expect(BPEPreSplit.gpt2.chunks([0x61, 0xFF, 0xC3, 0x62, 0xE2, 0x80]) == [0..<1, 1..<3, 3..<4, 4..<6])
        // F5–FF start no scalar (F8 A0 80 80 would decode to the letter U+20000 by the mask).
        #expect(BPEPreSplit.gpt2.chunks([0x61, 0xF8, 0xA0, 0x80, 0x80]) == [0..<1, 1..<5])
    }

    /// An imported vocabulary (formats/tfq.md §10.1): byte tokens and merge results by
    /// spelling, merges in any order of definition, special tokens cut out first (longest).
    @Test func importedVocabulariesFollowTheSpec() throws {
        // Ids 0–255: the bytes in reverse order; 256 "ab", 257 "aba", 258 "" (no token),
        // 259 and 260 special.
        var tokens = (0..<256).map { ByteLevelSymbols.spelling(of: [UInt8(255 - $0)]) }
        tokens += [ByteLevelSymbols.spelling(of: Array("ab".utf8)), ByteLevelSymbols.spelling(of: Array("aba".utf8)), "", "<s>", "<s>x"]
        let a = Int32(255 - 0x61), b = Int32(255 - 0x62)
        let vocabulary = BPEVocabulary(tokens: tokens, special: [260, 259], endOfText: 259)
        let bpe = try BPETokenizer(merges: [.init(256, a), .init(a, b)], vocabulary: vocabulary, preSplit: .gpt2)
        #expect(bpe.vocabularySize == 261 && vocabulary.special == [259, 260])
        // (ab, a) has the lower index but exists only once (a, b) has made ab.
        #expect(bpe.encode("abab") == [257, b])
        #expect(bpe.encode("x<s>xab<s>") == [Int32(255 - 0x78), 260, 256, 259])
        #expect(bpe.decode([257, b, 258, 260]) == Array("abab<s>x".utf8))
        #expect(bpe.decode([260]) == Array("<s>x".utf8) && bpe.decode([258]) == [])
        let stored = try JSONParser.parse(Array(JSONEncoder().encode(Tokenizer.bpe(bpe))))
        #expect(try Tokenizer(json: stored) == .bpe(bpe))
        #expect(Tokenizer.bpe(bpe).stopToken == 259)

        let refused: [([BPETokenizer.Merge], BPEVocabulary, String)] = [
            ([.init(258, a)], vocabulary, "refers to an id that is not a token"),
            ([.init(259, a)], vocabulary, "refers to an id that is not a token"),
            ([.init(b, a)], vocabulary, "makes a token that is not in the vocabulary"),
            ([], BPEVocabulary(tokens: tokens, special: [259, 260, 258], endOfText: nil), "special token 258 is empty"),
            ([], BPEVocabulary(tokens: tokens.enumerated().map { $0.offset == 260 ? "<s>" : $0.element }, special: [259, 260], endOfText: nil),
             "repeats another's text"),
            ([], BPEVocabulary(tokens: Array(tokens.dropFirst()), special: [], endOfText: nil), "no token is the byte 255"),
            ([], BPEVocabulary(tokens: tokens + [tokens[0]], special: [259, 260], endOfText: nil), "are the same bytes"),
            ([], BPEVocabulary(tokens: tokens + ["\u{3000}"], special: [259, 260], endOfText: nil), "not spelled in byte-level symbols"),
            ([], BPEVocabulary(tokens: tokens, special: [259, 260], userDefined: [256], endOfText: nil), "user-defined token ids must be"),
            ([], BPEVocabulary(tokens: tokens, special: [259, 260], userDefined: [260, 260], endOfText: nil), "user-defined token ids must be"),
        ]
        for (merges, vocabulary, message) in refused {
            #expect(throws: BPEError.self) { try BPETokenizer(merges: merges, vocabulary: vocabulary, preSplit: .gpt2) }
            do { _ = try BPETokenizer(merges: merges, vocabulary: vocabulary, preSplit: .gpt2) } catch {
                #expect(error.description.contains(message), "\(error)")
            }
        }
        #expect(throws: Tokenizer.FormatError.self) {
            try Tokenizer(json: JSONParser.parse(Array(#"{"type":"bpe","pre_split":"words","merges":"","eos_id":3}"#.utf8)))
        }
        // User-defined tokens (text a user added) encode as the others and survive the file.
        let user = try BPETokenizer(merges: [.init(256, a), .init(a, b)],
                                    vocabulary: BPEVocabulary(tokens: tokens, special: [259, 260], userDefined: [260], endOfText: 259), preSplit: .gpt2)
        #expect(user.encode("x<s>xab<s>") == bpe.encode("x<s>xab<s>"))
        let userJSON = try JSONParser.parse(Array(JSONEncoder().encode(Tokenizer.bpe(user))))
        #expect(userJSON["user_defined"] == .array([.integer(260)]) && stored["user_defined"] == nil)
        #expect(try Tokenizer(json: userJSON) == .bpe(user))
        #expect(throws: Tokenizer.FormatError.self) {
            try Tokenizer(json: JSONParser.parse(Array(#"{"type":"bpe","pre_split":"words","merges":"","user_defined":[3]}"#.utf8)))
        }
        // An imported vocabulary with the "words" split would be read by a 1.2 reader as tfq's own ids.
        var words = try JSONParser.parse(Array(JSONEncoder().encode(Tokenizer.bpe(bpe))))
        if case .object(var members) = words { members["pre_split"] = .string("words"); words = .object(members) }
        #expect(throws: Tokenizer.FormatError.self) { try Tokenizer(json: words) }
    }

    @Test func storedFormIsStrict() throws {
        let bpe = try BPETokenizer(storedMerges: "104 101 256 108", preSplit: "words")
        #expect(bpe.merges == [.init(104, 101), .init(256, 108)])
        #expect(bpe.vocabularySize == 258)
        #expect(bpe.bytes(of: 257) == Array("hel".utf8))
        #expect(bpe.storedMerges == "104 101 256 108")
        #expect(try BPETokenizer(storedMerges: "", preSplit: "words").vocabularySize == 256)
        #expect(try BPETokenizer(storedMerges: "0 0", preSplit: "words").bytes(of: 256) == [0, 0])
        let bad: [(String, String, String)] = [
            ("104  101", "words", "single spaces"),
            (" 104 101", "words", "single spaces"),
            ("104 101 ", "words", "single spaces"),
            ("104 0101", "words", "leading zero"),
            ("104 -1", "words", "single spaces"),
            ("104 101 256", "words", "odd number"),
            ("256 1", "words", "not defined before it"),
            ("104 101 257 1", "words", "not defined before it"),
            ("104 101 104 101", "words", "repeats merge 0"),
            ("99999999999 1", "words", "too large"),
            ("104 101", "cl100k", "unknown pre_split"),
        ]
        for (merges, split, message) in bad {
            #expect(throws: BPEError.self, "\(merges)") { try BPETokenizer(storedMerges: merges, preSplit: split) }
            do { _ = try BPETokenizer(storedMerges: merges, preSplit: split) } catch {
                #expect(error.description.contains(message), "\(merges): \(error)")
            }
        }
        // Each merge doubling the last: 2^40 bytes. Refused before anything is allocated.
        var doubling = [BPETokenizer.Merge(97, 97)]
        for i in 1..<40 { doubling.append(.init(Int32(255 + i), Int32(255 + i))) }
        #expect(throws: BPEError("the tokens total more than 67108864 bytes")) { try BPETokenizer(merges: doubling) }
    }

    @Test func tokenizerEnumStoresBPE() throws {
        let tokenizer = Tokenizer.bpe(Self.fixture)
        let json = try JSONEncoder().encode(tokenizer)
        let object = try JSONDecoder().decode([String: String].self, from: json)
        #expect(object["type"] == "bpe" && object["pre_split"] == "words")
        #expect(object["merges"]?.hasPrefix("\(Self.fixture.merges[0].left) \(Self.fixture.merges[0].right) ") == true)
        #expect(try Tokenizer(json: JSONParser.parse(Array(json))) == tokenizer)
        #expect(tokenizer.kind == "bpe" && tokenizer.vocabularySize == 512)
        // A model file keeps it, and the vocabulary must match the config.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-bpe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let config = ModelConfig(vocabSize: 512, contextLength: 4, layers: 1, heads: 1, dim: 4, ffDim: 4, activation: .relu)
        let path = directory.appendingPathComponent("m.tfq").path
        try TFQWriter(path: path).finish(metadata: ModelMetadata(kind: "model", config: config, tokenizer: tokenizer).encoded())
        #expect(try ModelMetadata(file: TFQFile(path: path)).tokenizer == tokenizer)
        var wrong = config
        wrong.vocabSize = 511
        try TFQWriter(path: path).finish(metadata: ModelMetadata(kind: "model", config: wrong, tokenizer: tokenizer).encoded())
        #expect(throws: TFQFormatError.self) { try ModelMetadata(file: TFQFile(path: path)) }
    }

    /// Fixtures/bpe/cases.json: inputs (hex) and the ids tools/bpe.py also gives.
    @Test func fixtureCasesEncodeToTheirIDs() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("cases.json"))
        let cases = try JSONDecoder().decode([FixtureCase].self, from: data)
        #expect(cases.count >= 15)
        for fixtureCase in cases {
            let bytes = try #require(fixtureCase.bytes, "\(fixtureCase.name): bad hex")
            #expect(Self.fixture.encode(bytes) == fixtureCase.ids, "\(fixtureCase.name)")
            #expect(Self.fixture.decode(fixtureCase.ids) == bytes, "\(fixtureCase.name)")
        }
    }

    /// formats/tfq.md §10.1 read literally: per chunk, find the lowest-ranked pair by a scan,
    /// merge its leftmost occurrence, repeat.
    static func naiveEncode(_ bytes: [UInt8], _ bpe: BPETokenizer) -> [Int32] {
        var rank: [BPETokenizer.Merge: Int32] = [:]
        for (i, merge) in bpe.merges.enumerated() { rank[merge] = Int32(i) }
        var ids: [Int32] = []
        for range in BPEPreSplit.words.chunks(bytes) {
            var tokens = bytes[range].map { Int32($0) }
            while tokens.count > 1 {
                var best: (rank: Int32, at: Int)? = nil
                for j in 0..<(tokens.count - 1) {
                    if let r = rank[.init(tokens[j], tokens[j + 1])], r < best?.rank ?? .max { best = (r, j) }
                }
                guard let best else { break }
                tokens[best.at] = 256 + best.rank
                tokens.remove(at: best.at + 1)
            }
            ids += tokens
        }
        return ids
    }

    static func randomBytes(_ random: inout Xoshiro256, count: Int, alphabet: [UInt8]? = nil) -> [UInt8] {
        (0..<count).map { _ in alphabet.map { $0[Int(random.next() % UInt64($0.count))] } ?? UInt8(truncatingIfNeeded: random.next()) }
    }

    /// Random valid UTF-8: scalars from every plane, spaces and punctuation between.
    static func randomText(_ random: inout Xoshiro256, scalars: Int) -> [UInt8] {
        var text = ""
        for _ in 0..<scalars {
            switch random.next() % 6 {
            case 0: text += " "
            case 1: text += String(UnicodeScalar(UInt8(0x21 + random.next() % 94)))
            case 2: text += ["\n", "\t", "  ", "'s", "'ll", "\r\n"][Int(random.next() % 6)]
            case 3: text += String(UnicodeScalar(UInt32(0xA0 + random.next() % 0x700))!)
            case 4: text += String(UnicodeScalar(UInt32(0x10000 + random.next() % 0x1000))!)
            default: text += String(UnicodeScalar(UInt8(0x61 + random.next() % 26)))
            }
        }
        return Array(text.utf8)
    }

    @Test func matchesTheSpecReadLiterallyOnRandomInput() {
        var random = Xoshiro256(seed: 10)
        let corpus = try! Data(contentsOf: Self.fixtures.appendingPathComponent("corpus.bin"))
        for trial in 0..<300 {
            let input: [UInt8]
            switch trial % 4 {
            case 0: input = Self.randomBytes(&random, count: Int(random.next() % 300))
            case 1: input = Self.randomText(&random, scalars: Int(random.next() % 200))
            case 2: input = Self.randomBytes(&random, count: Int(random.next() % 400), alphabet: Array("aeht s\n".utf8))
            default:
                let start = Int(random.next() % UInt64(corpus.count - 500))
                input = Array(corpus[start..<(start + Int(random.next() % 500))])
            }
            #expect(Self.fixture.encode(input) == Self.naiveEncode(input, Self.fixture), "trial \(trial)")
        }
    }

    /// Above ``BPETokenizer/shortChunkLength`` a chunk is merged with a heap; both paths agree.
    @Test func longChunksMergeLikeShortOnes() {
        var random = Xoshiro256(seed: 11)
        let scratch = ChunkScratch(capacity: BPETokenizer.shortChunkLength)
        defer { scratch.deallocate() }
        for trial in 0..<500 {
            let length = 2 + Int(random.next() % UInt64(BPETokenizer.shortChunkLength - 1))
            let alphabet = trial % 2 == 0 ? Array("ab".utf8) : Array("etaoinshr".utf8)
            let chunk = Self.randomBytes(&random, count: length, alphabet: alphabet)
            var short: [Int32] = []
            chunk.withUnsafeBufferPointer { Self.fixture.mergeChunk($0, scratch: scratch, into: &short) }
            let long = chunk.withUnsafeBufferPointer { Self.fixture.mergeLongChunk($0) }
            #expect(short == long, "\(String(decoding: chunk, as: UTF8.self))")
        }
        // And whole long runs against the naive reading.
        for run in ["a", "ab", " ", "\n", "=", "the", "0"] {
            let input = Array(String(repeating: run, count: 700 / run.count + 3).utf8)
            #expect(Self.fixture.encode(input) == Self.naiveEncode(input, Self.fixture), "\(run.debugDescription) × many")
        }
    }

    @Test func roundTripsEveryByteString() throws {
        var random = Xoshiro256(seed: 12)
        let tokenizers: [BPETokenizer] = [Self.fixture, try BPETokenizer(merges: []), try BPETokenizer(storedMerges: "32 32 256 256 97 98", preSplit: "words")]
        var edge: [[UInt8]] = [[], Array(0...255), Array((0...255).reversed()), [0x27], [0x20], [0xFF],
                               Array(repeating: 0x20, count: 10_000), Array(repeating: 0x0A, count: 5_000),
                               Array(String(repeating: " \n  \n\t", count: 500).utf8), Array(repeating: 0x27, count: 300),
                               Array(String(repeating: "'s", count: 300).utf8), [0xC3], [0xE2, 0x82], [0xF0, 0x9F, 0x98]]
        edge += (0..<200).map { _ in Self.randomBytes(&random, count: Int(random.next() % 2000)) }
        edge += (0..<200).map { _ in Self.randomText(&random, scalars: Int(random.next() % 500)) }
        // Valid UTF-8 with bytes flipped, cut or inserted.
        edge += (0..<200).map { _ in
            var bytes = Self.randomText(&random, scalars: 1 + Int(random.next() % 300))
            for _ in 0..<(1 + random.next() % 4) {
                let at = Int(random.next() % UInt64(bytes.count))
                switch random.next() % 3 {
                case 0: bytes[at] ^= UInt8(1 << (random.next() % 8))
                case 1: bytes.remove(at: at)
                default: bytes.insert(UInt8(0x80 + random.next() % 0x80), at: at)
                }
            }
            return bytes
        }
        // Big enough inputs to use the per-call chunk cache.
        let corpus = Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("corpus.bin")))
        edge.append(corpus)
        edge.append(Array(corpus.reversed()))
        for tokenizer in tokenizers {
            for bytes in edge {
                let ids = tokenizer.encode(bytes)
                #expect(ids.allSatisfy { $0 >= 0 && Int($0) < tokenizer.vocabularySize })
                #expect(tokenizer.decode(ids) == bytes, "\(bytes.prefix(40))")
                #expect(ids.map { tokenizer.byteCount(of: $0) }.reduce(0, +) == bytes.count)
            }
        }
        // The cached path gives what the uncached one does, chunk for chunk.
        #expect(Self.fixture.encode(corpus) == Self.naiveEncode(corpus, Self.fixture))
        // Through the Tokenizer enum, String and bytes alike.
        let text = "The king's men -- 3 of them -- said: «¿qué?» 😀\n"
        #expect(try Tokenizer.bpe(Self.fixture).encode(text) == Self.fixture.encode(Array(text.utf8)))
        #expect(try Tokenizer.bpe(Self.fixture).encode(bytes: [0xFF, 0x41]) == Self.fixture.encode([0xFF, 0x41]))
        #expect(Tokenizer.bpe(Self.fixture).decode(try Tokenizer.bpe(Self.fixture).encode(text)) == text)
    }

    @Test func charTokenizerRefusesBytesThatAreNotUTF8() throws {
        let tokenizer = Tokenizer.characters(of: "abc")
        #expect(try tokenizer.encode(bytes: Array("cab".utf8)) == [2, 0, 1])
        #expect(throws: TokenizerError.invalidUTF8(offset: 2)) { try tokenizer.encode(bytes: [0x61, 0x62, 0xFF, 0x63]) }
        #expect(throws: TokenizerError.invalidUTF8(offset: 1)) { try tokenizer.encode(bytes: [0x61, 0xE2, 0x82]) }
        #expect(try Tokenizer.byte.encode(bytes: [0xFF, 0]) == [255, 0])
    }
}

/// One case of Fixtures/bpe/cases.json.
struct FixtureCase: Codable {
    var name: String
    var hex: String
    var ids: [Int32]

    var bytes: [UInt8]? {
        guard hex.count % 2 == 0 else { return nil }
        var result: [UInt8] = []
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            result.append(byte)
            index = next
        }
        return result
    }
}
