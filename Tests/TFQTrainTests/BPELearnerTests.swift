import Foundation
import Testing
import TFQFormat
import TFQModel
@testable import TFQTrain

/// The BPE learner (formats/tfq.md §10.3): hand-worked examples, a naive reading of the rule
/// on random texts, the committed fixture that tools/bpe.py also reproduces, and BPE corpora
/// in training.
@Suite struct BPELearnerTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TFQModelTests/Fixtures/bpe")

    static func merges(_ pairs: [(Int32, Int32)]) -> [BPETokenizer.Merge] { pairs.map { .init($0.0, $0.1) } }

    @Test func handWorkedExamples() {
        // Chunks "ab", " ab", " ab": (a, b) 3 times, then (space, ab) twice; then nothing.
        let ab = BPELearner.learn(Array("ab ab ab".utf8), vocabularySize: 300)
        #expect(ab.merges == Self.merges([(97, 98), (32, 256)]))
        #expect(ab.vocabularySize == 258)
        #expect(ab.encode(Array("ab ab ab".utf8)) == [256, 257, 257])
        // Every pair once: ties go to the lowest left id, then the lowest right id.
        let ties = BPELearner.learn(Array("ab cd".utf8), vocabularySize: 259)
        #expect(ties.merges == Self.merges([(32, 99), (97, 98), (256, 100)]))
        // Overlapping pairs count: "aaaa" has (a, a) three times (five with " aaa"), merged as
        // aa aa. Then ties: (space, b) before (space, aa) before (aa, aa) before (" aa", a).
        let runs = BPELearner.learn(Array("aaaa b aaa".utf8), vocabularySize: 1000)
        #expect(runs.merges == Self.merges([(97, 97), (32, 98), (32, 256), (256, 256), (258, 97)]))
        #expect(runs.encode(Array("aaaa".utf8)) == [259])
        #expect(runs.encode(Array("aaa".utf8)) == [256, 97])
        // The vocabulary size counts the 256 bytes: 257 is one merge.
        #expect(BPELearner.learn(Array("hello hello".utf8), vocabularySize: 257).merges.count == 1)
    }

    /// §10.3 read literally: recount every pair at every merge.
    static func naiveLearn(_ text: [UInt8], vocabularySize: Int) -> [BPETokenizer.Merge] {
        var counts: [[Int32]: Int] = [:]
        for range in BPEPreSplit.words.chunks(text) { counts[text[range].map { Int32($0) }, default: 0] += 1 }
        var words = counts.map { ($0.key, $0.value) }
        var merges: [BPETokenizer.Merge] = []
        while 256 + merges.count < vocabularySize {
            var pairs: [BPETokenizer.Merge: Int] = [:]
            for (tokens, count) in words where tokens.count > 1 {
                for j in 0..<(tokens.count - 1) { pairs[.init(tokens[j], tokens[j + 1]), default: 0] += count }
            }
            guard let best = pairs.min(by: { a, b in
                a.value != b.value ? a.value > b.value : a.key.left != b.key.left ? a.key.left < b.key.left : a.key.right < b.key.right
            })?.key else { break }
            let new = Int32(256 + merges.count)
            merges.append(best)
            for w in words.indices {
                var tokens = words[w].0, j = 0
                while j < tokens.count - 1 {
                    if tokens[j] == best.left && tokens[j + 1] == best.right { tokens[j] = new; tokens.remove(at: j + 1) }
                    j += 1
                }
                words[w].0 = tokens
            }
        }
        return merges
    }

    @Test func incrementalCountsGiveTheNaiveMerges() {
        var random = Xoshiro256(seed: 21)
        let alphabets = [Array("ab ".utf8), Array("aab \n".utf8), Array("etaoin shrdlu,.'\n".utf8), Array("xy  \t\n'sdl0".utf8)]
        for trial in 0..<40 {
            let alphabet = alphabets[trial % alphabets.count]
            let text = (0..<(200 + Int(random.next() % 1500))).map { _ in alphabet[Int(random.next() % UInt64(alphabet.count))] }
            let vocabulary = 256 + 1 + Int(random.next() % 120)
            let learned = BPELearner.learn(text, vocabularySize: vocabulary)
            #expect(learned.merges == Self.naiveLearn(text, vocabularySize: vocabulary), "trial \(trial)")
        }
    }

    @Test func runningOutOfPairsStopsEarly() {
        let text = Array("the cat. the hat. the cat!".utf8)
        let bpe = BPELearner.learn(text, vocabularySize: 65536)
        // Chunks: "the", " cat", ".", " the", " hat", "!" — every one becomes a single token.
        #expect(bpe.encode(text).count == BPEPreSplit.words.chunks(text).count)
        #expect(bpe.vocabularySize < 300)
        #expect(bpe.merges == Self.naiveLearn(text, vocabularySize: 65536))
    }

    /// Fixtures/bpe: the tokenizer was learned from corpus.bin at 512 tokens; tools/bpe.py
    /// learns the same merges (tools/test_bpe.py).
    @Test func learnsTheFixtureTokenizer() throws {
        let corpus = Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("corpus.bin")))
        let stored = try Tokenizer(json: JSONParser.parse(Array(Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer.json")))))
        let learned = BPELearner.learn(corpus, vocabularySize: 512)
        #expect(Tokenizer.bpe(learned) == stored)
        #expect(learned.merges == Self.naiveLearn(corpus, vocabularySize: 512))
    }

    @Test func corpusLearnsOnTheTrainingSplitOnly() throws {
        // The validation tenth is a word the training text never has.
        let train = String(repeating: "the cat sat on the mat. ", count: 90)
        let held = String(repeating: "qqqqzzzz ", count: 24)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-bpe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("corpus.txt").path
        try (train + held).write(toFile: path, atomically: true, encoding: .utf8)
        let corpus = try Corpus(path: path, validationPath: nil, tokenizer: .bpe, vocabularySize: 400)
        guard case .bpe(let bpe) = corpus.tokenizer else { Issue.record("not bpe"); return }
        #expect(corpus.tokenizerSeconds != nil)
        let tokens = (256..<bpe.vocabularySize).map { String(decoding: bpe.bytes(of: Int32($0)), as: UTF8.self) }
        #expect(tokens.contains(" the") && tokens.contains(" mat"))
        #expect(!tokens.contains { $0.contains("q") || $0.contains("z") })
        // The split is on the text: the last 10% of its scalars.
        let scalars = (train + held).unicodeScalars.count
        #expect(bpe.decode(corpus.validation).count == scalars / 10)
        #expect(bpe.decode(corpus.train) + bpe.decode(corpus.validation) == Array((train + held).utf8))
        #expect(corpus.tokenByteCounts.count == bpe.vocabularySize)
        #expect(corpus.tokenByteCounts[Int(bpe.encode(Array(" the".utf8))[0])] == 4)
        // A resumed run takes the checkpoint's tokenizer as it is, and splits the same way.
        let again = try Corpus(path: path, validationPath: nil, tokenizer: .char, existing: corpus.tokenizer)
        #expect(again.tokenizer == corpus.tokenizer && again.train == corpus.train && again.validation == corpus.validation)
        #expect(again.tokenizerSeconds == nil)
    }

    @Test func optionsCheckTheVocabularySize() {
        var o = TrainingOptions()
        o.tokenizer = .bpe
        // The library names options as checkpoints store them; `tfq` names its flags.
        #expect(o.problem?.description == "tokenizer bpe needs vocab_size N (257 to 65536)")
        #expect(o.problem?.options == ["tokenizer", "vocab_size"])
        #expect(o.problem?.text { "--" + $0.replacingOccurrences(of: "_", with: "-") } == "--tokenizer bpe needs --vocab-size N (257 to 65536)")
        for (size, ok) in [(256, false), (257, true), (4096, true), (65536, true), (65537, false), (-1, false)] {
            o.vocabSize = size
            #expect((o.problem == nil) == ok, "\(size): \(o.problem.map(String.init(describing:)) ?? "ok")")
        }
        o.tokenizer = .char
        o.vocabSize = 512
        #expect(o.problem?.description.contains("applies only to tokenizer bpe") == true)
        o.vocabSize = nil
        #expect(o.problem == nil)
    }

    @Test func bpeTrainingReportsBitsPerByte() throws {
        let path = try SampleText.file(sentences: 600)
        var options = TrainerTests.options(steps: 40)
        options.tokenizer = .bpe
        options.vocabSize = 320
        let (trainer, summary) = try TrainerTests.train(options, corpus: path, out: path + ".tfq")
        let first = try #require(trainer.state.evaluations.first), last = try #require(trainer.state.evaluations.last)
        #expect(last.valLoss < first.valLoss - 1.0, "val loss \(first.valLoss) → \(last.valLoss)")
        // Bits per byte = nats per token × tokens / (ln 2 × bytes): the evaluated windows hold
        // about the validation text's bytes per token.
        let bpb = try #require(summary.valBitsPerByte)
        let validation = trainer.corpus.validation
        let bytesPerToken = Double(validation.map { trainer.corpus.tokenByteCounts[Int($0)] }.reduce(0, +)) / Double(validation.count)
        #expect(bytesPerToken > 2)
        let expected = last.valLoss / log(2) / bytesPerToken
        #expect(abs(bpb - expected) < 0.1 * expected, "bpb \(bpb), expected about \(expected)")
        #expect(last.valBitsPerByte == bpb && trainer.state.lastValBitsPerByte == bpb)
        // The checkpoint stores the tokenizer and the figure.
        let file = try TFQFile(path: path + ".tfq")
        #expect(try ModelMetadata(file: file).tokenizer == trainer.corpus.tokenizer)
        #expect(file.metadata["training"]?["last_val_bits_per_byte"] == .number(bpb))
        #expect(file.metadata["training"]?["options"]?["vocab_size"] == .integer(320))

        // A char model on ASCII text: one byte per token, so bpb is exactly nats / ln 2.
        let (charTrainer, charSummary) = try TrainerTests.train(TrainerTests.options(steps: 5), corpus: path, out: path + ".char.tfq")
        let charLoss = try #require(charTrainer.state.lastValLoss)
        #expect(abs(try #require(charSummary.valBitsPerByte) - charLoss / log(2)) < 1e-9)
    }
}

/// Rewrites Fixtures/bpe when TFQ_WRITE_BPE_FIXTURES=1 (then check the diff, and run
/// `python3 -m pytest tools/test_bpe.py`: the Python reference must agree with the new files).
@Suite struct BPEFixtureWriter {
    /// About 7 KB of words, numbers, punctuation, contractions, whitespace of every kind,
    /// non-ASCII scripts and a few bytes that are not UTF-8.
    static func corpus() -> [UInt8] {
        let words = ["the", "king", "queen", "said", "and", "of", "to", "a", "in", "war", "peace", "Prince", "Andrew",
                     "Natasha", "Moscow", "don't", "it's", "I'LL", "we're", "they've", "café", "naïve", "Москва", "日本語",
                     "😀", "1805", "3.14", "42", "--", "...", "?!", "(yes)", "\"quoted\"", "well", "there", "is", "no"]
        let separators = [" ", " ", " ", " ", ", ", ".\n", "\n\n", "  ", "\t", "\r\n", "; ", " -- "]
        var random = Xoshiro256(seed: 2024)
        var text: [UInt8] = []
        let syllables = ["ka", "ri", "mo", "sun", "tel", "ve", "dra", "ix", "po", "lan", "e", "qu", "zh", "ö"]
        for _ in 0..<1200 {
            if random.next() % 3 == 0 {
                for _ in 0...(random.next() % 3) { text += Array(syllables[Int(random.next() % UInt64(syllables.count))].utf8) }
            } else {
                text += Array(words[Int(random.next() % UInt64(words.count))].utf8)
            }
            if random.next() % 80 == 0 { text += [[0xFF], [0xC3], [0x80, 0x80], [0xE2, 0x82]][Int(random.next() % 4)] }
            text += Array(separators[Int(random.next() % UInt64(separators.count))].utf8)
        }
        return text
    }

    static func cases(_ corpus: [UInt8]) -> [(String, [UInt8])] {
        var random = Xoshiro256(seed: 7)
        return [
            ("empty", []),
            ("sentence", Array("The king's men don't like it -- not at all!".utf8)),
            ("spaces", Array("a  b   c    d  lead and trail  ".utf8)),
            ("newlines", Array("line one\n\nline two\r\n\tindented\n \n".utf8)),
            ("numbers", Array("In 1805, 3.14159 and 42nd 000 7".utf8)),
            ("contractions", Array("I'LL WE'RE They'Ve 's 'd ''t".utf8)),
            ("unicode", Array("café naïve Москва 日本語 😀 «¿qué?»".utf8)),
            ("invalid utf-8", [0xFF, 0x41, 0xC3, 0x28, 0x80, 0x20, 0xE2, 0x82, 0x20, 0xF0, 0x9F, 0x61, 0xC0, 0xAF]),
            ("all bytes", Array(0...255)),
            ("space run", Array(repeating: 0x20, count: 200) + [0x78]),
            ("newline run", Array(repeating: 0x0A, count: 50)),
            ("long word", Array(String(repeating: "ab", count: 100).utf8)),
            ("long letters", Array(String(repeating: "the", count: 40).utf8)),
            ("digits", Array(String(repeating: "0123456789", count: 10).utf8)),
            ("corpus start", Array(corpus[..<300])),
            ("corpus middle", Array(corpus[3000..<3400])),
            ("random bytes", (0..<200).map { _ in UInt8(truncatingIfNeeded: random.next()) }),
        ]
    }

    @Test(.enabled(if: ProcessInfo.processInfo.environment["TFQ_WRITE_BPE_FIXTURES"] == "1"))
    func writeFixtures() throws {
        let directory = BPELearnerTests.fixtures
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let corpus = Self.corpus()
        try Data(corpus).write(to: directory.appendingPathComponent("corpus.bin"))
        let bpe = BPELearner.learn(corpus, vocabularySize: 512)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try (encoder.encode(Tokenizer.bpe(bpe)) + Data("\n".utf8)).write(to: directory.appendingPathComponent("tokenizer.json"))
        let lines = Self.cases(corpus).map { name, bytes in
            let hex = bytes.map { String(format: "%02x", $0) }.joined()
            return "{\"name\": \"\(name)\", \"hex\": \"\(hex)\", \"ids\": \(bpe.encode(bytes))}"
        }
        try ("[\n" + lines.joined(separator: ",\n") + "\n]\n").write(to: directory.appendingPathComponent("cases.json"), atomically: true, encoding: .utf8)
    }
}
