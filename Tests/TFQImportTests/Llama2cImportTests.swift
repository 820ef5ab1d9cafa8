import Foundation
import Testing
import TFQFormat
@testable import TFQImport
@testable import TFQModel
import TFQRuntime

/// Tiny llama2.c checkpoints and a tokenizer written by tools/llama_fixtures.py (an
/// independent numpy implementation), with the logits, greedy tokens and token ids it computes.
enum LlamaFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/llama")
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    struct Expected: Decodable {
        struct Encoding: Decodable { var text: String; var ids: [Int32] }
        struct Decoding: Decodable { var ids: [Int32]; var bytes: [UInt8] }
        struct TokenizerCases: Decodable { var encode: [Encoding]; var decode: [Decoding] }
        struct Checkpoint: Decodable {
            var file: String
            var version: Int
            var shared_classifier: Bool
            var logits: [[Float]]
            var greedy_ids: [Int32]
        }
        var tokenizer: TokenizerCases
        var logits_ids: [Int32]
        var prompt: String
        var prompt_ids: [Int32]
        var checkpoints: [Checkpoint]
    }

    static let expected: Expected = try! JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json")))

    static let output: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-import-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func imported(_ file: String) throws -> Model {
        let out = output.appendingPathComponent(file + ".tfq").path
        _ = try Llama2cImporter.importCheckpoint(path(file), tokenizer: path("tokenizer.bin"), output: out)
        return try Model(path: out, verify: true)
    }
}

@Suite struct Llama2cImportTests {
    @Test(arguments: LlamaFixtures.expected.checkpoints.map(\.file))
    func logitsAndGreedyTokensMatchTheReference(file: String) throws {
        let expected = LlamaFixtures.expected.checkpoints.first { $0.file == file }!
        let model = try LlamaFixtures.imported(file)
        #expect(model.config.arch == .llama)
        #expect(model.config.tieEmbeddings == expected.shared_classifier)
        #expect(model.isQuantized == (expected.version == 2))
        for threads in [1, 2] {
            let session = try Session(model: model, threads: threads)
            let logits = Array(try session.evaluate(LlamaFixtures.expected.logits_ids, allLogits: true))
            let vocab = model.config.vocabSize
            var worst: Float = 0, scale: Float = 0
            for (t, row) in expected.logits.enumerated() {
                for v in 0..<vocab {
                    worst = max(worst, abs(logits[t * vocab + v] - row[v]))
                    scale = max(scale, abs(row[v]))
                }
            }
            // fp32 against the float64 reference: rounding only. Version 2 also quantizes the
            // activations to int8 and caches keys and values as halves (the reference keeps
            // both fp32).
            let tolerance: Float = expected.version == 2 ? 0.05 : 2e-5
            #expect(worst <= tolerance * scale, "\(file), \(threads) threads: max |Δlogit| \(worst) of \(scale)")

            session.reset()
            var tokens: [Int32] = []
            let prompt = try model.tokenizer.encode(LlamaFixtures.expected.prompt)
            #expect(prompt == LlamaFixtures.expected.prompt_ids)
            try session.generate(prompt: prompt, maxTokens: expected.greedy_ids.count) { token, _ in tokens.append(token); return true }
            #expect(tokens == expected.greedy_ids, "\(file), \(threads) threads")
        }
    }

    @Test func fp32ImportsKeepEveryWeightBitForBit() throws {
        let checkpoint = try Llama2cCheckpoint(path: LlamaFixtures.path("tiny-v0.bin"))
        let model = try LlamaFixtures.imported("tiny-v0.bin")
        func floats(_ name: String) throws -> [Float] { model.file.floats(try #require(model.file.info(name))) }
        func source(_ name: String) -> [Float] {
            guard case .f32(let values) = checkpoint.tensors[name]! else { return [] }
            return Array(values)
        }
        #expect(try floats("tok_emb") == source("token_embedding"))
        #expect(try floats("blocks.1.attn.qkv.weight") == source("wq.1") + source("wk.1") + source("wv.1"))
        #expect(try floats("blocks.0.ffn.gate.weight") == source("w1.0"))
        #expect(try floats("blocks.0.ffn.up.weight") == source("w3.0"))
        #expect(try floats("blocks.0.ffn.down.weight") == source("w2.0"))
        #expect(try floats("lm_head.weight") == source("wcls"))
        #expect(try floats("ln_f.weight") == source("rms_final"))
    }

    @Test func version2KeepsItsInt8ValuesAndScales() throws {
        let checkpoint = try Llama2cCheckpoint(path: LlamaFixtures.path("tiny-v2.bin"))
        let model = try LlamaFixtures.imported("tiny-v2.bin")
        let info = try #require(model.file.info("blocks.0.attn.proj.weight"))
        #expect(info.dtype == .q8 && info.groupSize == checkpoint.groupSize && info.layout == .interleaved16x4)
        guard case .q8(let values, let scales) = checkpoint.tensors["wo.0"]! else { Issue.record("wo.0 is not q8"); return }
        let dequantized = (0..<values.count).map { Float(values[$0]) * scales[$0 / checkpoint.groupSize] }
        #expect(model.file.floats(info) == dequantized)
    }
}

@Suite struct Llama2cTokenizerTests {
    static let tokenizer = try! Llama2cTokenizer.read(path: LlamaFixtures.path("tokenizer.bin"), vocabSize: 384)

    @Test func encodesTheReferenceCases() throws {
        for testCase in LlamaFixtures.expected.tokenizer.encode {
            #expect(Self.tokenizer.encode(Array(testCase.text.utf8)) == testCase.ids, "\(testCase.text.debugDescription)")
        }
    }

    /// As llama2.c's generate prints a sequence: every token after the first, each decoded
    /// after its predecessor.
    @Test func decodesTheReferenceCases() throws {
        for testCase in LlamaFixtures.expected.tokenizer.decode {
            var bytes: [UInt8] = []
            for i in testCase.ids.indices.dropFirst() { bytes += Self.tokenizer.bytes(of: testCase.ids[i], after: testCase.ids[i - 1]) }
            #expect(bytes == testCase.bytes, "\(testCase.ids)")
            if testCase.ids.first == Llama2cTokenizer.bos {
                #expect(Array(Tokenizer.llama2c(Self.tokenizer).decode(testCase.ids).utf8) == Array(String(decoding: testCase.bytes, as: UTF8.self).utf8))
            }
        }
    }

    /// llama2.c's merge loop written as run.c writes it (rescan every pair, merge the best):
    /// the heap must give the same tokens on any input.
    static func quadraticMerge(_ start: [Int32], _ t: Llama2cTokenizer) -> [Int32] {
        var tokens = start
        while true {
            var best: (score: Float, index: Int, id: Int32)? = nil
            for i in 0..<max(0, tokens.count - 1) {
                if let id = t.id(of: t.pieces[Int(tokens[i])] + t.pieces[Int(tokens[i + 1])]), t.scores[Int(id)] > (best?.score ?? -1e10) {
                    best = (t.scores[Int(id)], i, id)
                }
            }
            guard let best else { return tokens }
            tokens[best.index] = best.id
            tokens.remove(at: best.index + 1)
        }
    }

    @Test func heapMergesEqualTheQuadraticLoopOnRandomText() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array(" \n.,!theacdgilnorsuwyLO".utf8) + Array("é→😀ж".utf8)
        for _ in 0..<300 {
            let length = Int.random(in: 0...60, using: &rng)
            var text = (0..<length).map { _ in alphabet.randomElement(using: &rng)! }
            if Bool.random(using: &rng) { text += Array("Lily saw the cat".utf8) }
            let tokens = Self.tokenizer.encode(text)
            // The same start (BOS, dummy prefix, characters or bytes) merged the slow way.
            var start: [Int32] = [1]
            if !text.isEmpty {
                start.append(Self.tokenizer.id(of: [0x20])!)
                var i = 0
                while i < text.count {
                    var end = i + 1
                    while end < text.count && end - i < 4 && text[end] & 0xC0 == 0x80 { end += 1 }
                    if let id = Self.tokenizer.id(of: Array(text[i..<end])) { start.append(id) } else { start += text[i..<end].map { Int32($0) + 3 } }
                    i = end
                }
            }
            #expect(tokens == Self.quadraticMerge(start, Self.tokenizer), "\(String(decoding: text, as: UTF8.self).debugDescription)")
        }
    }

    /// run.c starts its search at a best score of −1e10: a piece scored at or below it is
    /// never merged into.
    @Test func piecesScoredAtOrBelowMinus1e10AreNeverMerged() {
        var pieces: [[UInt8]] = [Array("<unk>".utf8), Array("\n<s>\n".utf8), Array("\n</s>\n".utf8)]
        pieces += (0..<256).map { Array(String(format: "<0x%02X>", $0).utf8) }
        pieces += [[0x61], [0x62], [0x61, 0x62]]  // a, b, ab
        for (score, expected) in [(Float(-1e11), [Int32(1), 35, 259, 260]), (-1e10, [1, 35, 259, 260]), (-1, [1, 35, 261])] {
            let tokenizer = Llama2cTokenizer(pieces: pieces, scores: [Float](repeating: 0, count: 261) + [score])
            #expect(tokenizer.encode(Array("ab".utf8)) == expected, "score \(score)")
        }
    }

    /// The stored form is checked at load like the imported file was: a vocabulary too small
    /// for byte fallback, a score that is not a finite f32, other special ids.
    @Test func storedFormsThatCannotWorkAreRefused() throws {
        let good = try JSONParser.parse(Array(JSONEncoder().encode(Tokenizer.llama2c(Self.tokenizer))))
        #expect(try Tokenizer(json: good) == .llama2c(Self.tokenizer))
        guard case .object(let members) = good, case .array(let pieces)? = members["pieces"], case .array(let scores)? = members["scores"] else {
            Issue.record("stored form is not an object with arrays"); return
        }
        func refusal(_ change: (inout [String: JSONValue]) -> Void) -> String {
            var copy = members
            change(&copy)
            do { _ = try Tokenizer(json: .object(copy)); return "accepted" } catch { return error.description }
        }
        #expect(refusal { $0["pieces"] = .array(Array(pieces.prefix(258))); $0["scores"] = .array(Array(scores.prefix(258))) }.contains("at least 259"))
        #expect(refusal { $0["scores"] = .array([.number(1e39)] + scores.dropFirst()) }.contains("not a finite f32"))
        #expect(refusal { $0["scores"] = .array(Array(scores.dropFirst())) }.contains("384 pieces but 383 scores"))
        #expect(refusal { $0["bos_id"] = .integer(0) }.contains("bos_id 1"))
    }

    @Test func invalidUTF8FallsBackToByteTokensAndDecodesBack() {
        let text: [UInt8] = [0x41, 0xFF, 0xC3, 0x28, 0x80, 0x42]
        let tokens = Self.tokenizer.encode(text)
        var bytes: [UInt8] = []
        for i in tokens.indices.dropFirst() { bytes += Self.tokenizer.bytes(of: tokens[i], after: tokens[i - 1]) }
        // After BOS, the dummy space (dropped after BOS), then the text, byte for byte.
        #expect(bytes == text)
        #expect(tokens.contains(0xFF + 3) && tokens.contains(0x80 + 3))
    }
}
