import Foundation
import Testing
import TFQFormat
@testable import TFQImport
@testable import TFQModel
import TFQRuntime
import TFQExport

/// Tiny GPT-2 (F16, tied) and Llama (BF16, sharded, grouped-query) models trained and saved
/// by `transformers` with a byte-level BPE tokenizer, a Llama (F16) with a SentencePiece BPE
/// made by `sentencepiece` (tools/hf_fixtures.py), and what `transformers` and `tokenizers`
/// computed on them.
enum HuggingFaceFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/hf")
    static let models = ["gpt2", "llama", "llama-sp"]
    static let storedDTypes = ["gpt2": "F16", "llama": "BF16", "llama-sp": "F16"]

    struct Expected: Decodable {
        struct Logits: Decodable { var positions: [Int]; var rows: [[Float]] }
        /// `decoded`: what `tokenizers` decodes the ids to after the leading BOS, where that is
        /// not `text` itself (SentencePiece-style tokenizers).
        struct Case: Decodable { var text: String; var ids: [Int32]; var decoded: String? }
        struct Config: Decodable { var bos: Int32?; var eos: Int32? }
        var prompt_text: String
        var prompt_ids: [Int32]
        var logits: Logits
        var greedy_ids: [Int32]
        var tokenizer_cases: [Case]
        var config: Config
        /// The same vocabulary in other pipelines: tokenizer-NAME.json.
        var tokenizer_variants: [String: [Case]]?
    }

    static func expected(_ model: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent("\(model)/expected.json")))
    }

    static let output: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-hf-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static func imported(_ model: String) throws -> (Model, HuggingFaceImporter.Summary) {
        let out = output.appendingPathComponent("\(model)-\(UUID().uuidString).tfq").path
        let summary = try HuggingFaceImporter.importModel(directory.appendingPathComponent(model).path, output: out)
        return (try Model(path: out, verify: true), summary)
    }
}

@Suite struct HuggingFaceImportTests {
    @Test(arguments: HuggingFaceFixtures.models)
    func logitsAndGreedyTokensMatchTransformers(name: String) throws {
        let expected = try HuggingFaceFixtures.expected(name)
        let (model, summary) = try HuggingFaceFixtures.imported(name)
        #expect(model.config.arch == (name == "gpt2" ? .gpt : .llama))
        #expect(summary.dtypes.keys.sorted() == [HuggingFaceFixtures.storedDTypes[name]!])
        if name != "gpt2" { #expect(model.config.kvHeads * 2 == model.config.heads) }
        #expect(try model.tokenizer.encode(expected.prompt_text) == expected.prompt_ids)
        for threads in [1, 2] {
            let session = try Session(model: model, threads: threads)
            let logits = Array(try session.evaluate(expected.prompt_ids, allLogits: true))
            let vocab = model.config.vocabSize
            for (position, row) in zip(expected.logits.positions, expected.logits.rows) {
                let scale = row.map(abs).max()!
                let worst = (0..<vocab).map { abs(logits[position * vocab + $0] - row[$0]) }.max()!
                #expect(worst <= 1e-4 * scale, "\(name), position \(position), \(threads) threads: max |Δlogit| \(worst) of \(scale)")
            }
            session.reset()
            var tokens: [Int32] = []
            try session.generate(prompt: expected.prompt_ids, maxTokens: expected.greedy_ids.count, ignoringEndOfText: true) { token, _ in
                tokens.append(token)
                return true
            }
            #expect(tokens == expected.greedy_ids, "\(name), \(threads) threads")
        }
    }

    @Test(arguments: HuggingFaceFixtures.models)
    func tokenizerEncodesAsTheTokenizersLibrary(name: String) throws {
        let expected = try HuggingFaceFixtures.expected(name)
        let (model, _) = try HuggingFaceFixtures.imported(name)
        #expect(expected.tokenizer_cases.count >= 30)
        #expect(model.tokenizer.kind == (name == "llama-sp" ? "sentencepiece" : "bpe"))
        try Self.check(model.tokenizer, expected.tokenizer_cases, bos: expected.config.bos, "\(name)")
        // The stored form reads back as the same tokenizer.
        let stored = try JSONParser.parse(Array(JSONEncoder().encode(model.tokenizer)))
        #expect(try Tokenizer(json: stored) == model.tokenizer)
        #expect(model.tokenizer.stopToken == expected.config.eos)
    }

    /// Encoding gives the library's ids; decoding gives its text, except after a BOS in the
    /// middle, where tfq drops the ▁ prefix's space as it does after the leading one.
    static func check(_ tokenizer: Tokenizer, _ cases: [HuggingFaceFixtures.Expected.Case], bos: Int32?, _ what: String) throws {
        for item in cases {
            #expect(try tokenizer.encode(item.text) == item.ids, "\(what): \(item.text.debugDescription)")
            guard let decoded = item.decoded else {
                #expect(tokenizer.decode(item.ids) == item.text, "\(what): \(item.text.debugDescription)")
                continue
            }
            if !item.ids.dropFirst().contains(where: { $0 == bos }) {
                #expect(tokenizer.decode(item.ids) == decoded, "\(what): \(item.text.debugDescription)")
            }
        }
    }

    /// Llama 2's own pipeline (Prepend and Replace normalizers), Metaspace "always", and
    /// Metaspace "always" with split: the same vocabulary encodes each as `tokenizers` does.
    @Test func sentencePiecePipelinesEncodeAsTheTokenizersLibrary() throws {
        let expected = try HuggingFaceFixtures.expected("llama-sp")
        let variants = try #require(expected.tokenizer_variants)
        #expect(variants.keys.sorted() == ["always", "prepend", "split"])
        let prefixes: [String: SentencePieceTokenizer.SpacePrefix] = ["always": .everyUnlessSpace, "prepend": .every, "split": .everyUnlessSpace]
        for (name, cases) in variants {
            let path = HuggingFaceFixtures.directory.appendingPathComponent("llama-sp/tokenizer-\(name).json").path
            let tokenizer = try HuggingFaceTokenizer.read(path: path, vocabularySize: 512, endOfText: 2)
            guard case .sentencePiece(let pieces) = tokenizer else { Issue.record("\(name): \(tokenizer.kind)"); continue }
            #expect(pieces.spacePrefix == prefixes[name] && pieces.splitsAtSpaces == (name == "split") && pieces.beginning == 1)
            try Self.check(tokenizer, cases, bos: 1, name)
        }
        // The cases tell the pipelines apart: Prepend and Metaspace "always" differ where a
        // stretch starts with a space, "always" and "first" after a special token. (Split
        // changes nothing here: sentencepiece's pieces never hold a ▁ after their start.)
        let ids = { (name: String) in variants[name]!.map(\.ids) }
        #expect(ids("always") != ids("prepend") && ids("always") != expected.tokenizer_cases.map(\.ids))
    }

    /// What decoding does around BOS, spelled out.
    @Test func sentencePieceDecodingDropsThePrefixSpaceOnlyAtTheStart() throws {
        let (model, _) = try HuggingFaceFixtures.imported("llama-sp")
        let tokenizer = model.tokenizer
        let a = try tokenizer.encode("a"), b = try tokenizer.encode(" b")
        #expect(a.first == 1 && b.first == 1)
        #expect(tokenizer.decode(a) == "a" && tokenizer.decode(Array(a.dropFirst())) == "a")
        #expect(tokenizer.decode(a + Array(b.dropFirst())) == "a b")
        // After a BOS in the middle, as after the first (Hugging Face keeps that space).
        #expect(tokenizer.decode(a + b) == "a<s>b")
        #expect(tokenizer.bytes(of: b[1], after: 1) == Array(tokenizer.decodeBytes(b)))
        #expect(tokenizer.bytes(of: b[1], after: a[1]) == [0x20] + tokenizer.decodeBytes(b))
        // Bytes that are not UTF-8 are byte pieces, and come back.
        let bytes: [UInt8] = [0x61, 0xFF, 0xC3, 0x28, 0xE2, 0x96]
        #expect(tokenizer.decodeBytes(try tokenizer.encode(bytes: bytes)) == bytes)
    }

    /// Rewrites a safetensors file through `change` (its header as a dictionary, its data).
    static func rewriteSafetensors(_ url: URL, _ change: (inout [String: Any], inout Data) -> Void) throws {
        let bytes = try Data(contentsOf: url)
        let headerLength = Int(bytes.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        var header = try JSONSerialization.jsonObject(with: bytes.subdata(in: 8..<(8 + headerLength))) as! [String: Any]
        var data = bytes.subdata(in: (8 + headerLength)..<bytes.count)
        change(&header, &data)
        let json = try JSONSerialization.data(withJSONObject: header)
        var file = Data()
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { file.append(contentsOf: $0) }
        file.append(json)
        file.append(data)
        try file.write(to: url)
    }

    /// OpenAI's own GPT-2 checkpoints name the body without `transformer.` and carry the
    /// causal-mask buffers `h.N.attn.bias`: the same weights import to the same model.
    @Test func theOriginalGPT2LayoutImportsTheSame() throws {
        let source = HuggingFaceFixtures.directory.appendingPathComponent("gpt2")
        let copy = HuggingFaceFixtures.output.appendingPathComponent("openai-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: source, to: copy)
        try Self.rewriteSafetensors(copy.appendingPathComponent("model.safetensors")) { header, data in
            for key in header.keys where key.hasPrefix("transformer.") {
                header[String(key.dropFirst("transformer.".count))] = header.removeValue(forKey: key)
            }
            for layer in 0..<2 {
                header["h.\(layer).attn.bias"] = ["dtype": "U8", "shape": [1, 1, 4, 4], "data_offsets": [data.count, data.count + 16]]
                data.append(Data(repeating: 1, count: 16))
            }
        }

        let out = HuggingFaceFixtures.output.appendingPathComponent("openai-\(UUID().uuidString).tfq").path
        _ = try HuggingFaceImporter.importModel(copy.path, output: out)
        let (reference, _) = try HuggingFaceFixtures.imported("gpt2")
        let a = try TFQFile(path: out), b = reference.file
        #expect(a.tensors.count == b.tensors.count)
        for info in b.tensors {
            let other = try #require(a.info(info.name))
            #expect(a.floats(other) == b.floats(info), "\(info.name)")
        }
    }

    /// An imported model has no training split: int8 export works without --eval-data
    /// (no quality report), and with text it measures as for tfq's own.
    @Test func int8ExportOfAnImportNeedsNoEvaluationText() throws {
        let (model, _) = try HuggingFaceFixtures.imported("gpt2")
        let out = HuggingFaceFixtures.output.appendingPathComponent("gpt2-int8-\(UUID().uuidString).tfq").path
        var options = ExportOptions(precision: .int8, threads: 1)
        options.embedding = .int8
        let summary = try Exporter.export(checkpoint: model.file.path, output: out, options: options)
        #expect(summary.quality == nil)
        #expect(summary.weightMethod == "round-to-nearest")
        #expect(summary.note?.description.contains("the model was not trained by tfq") == true)
        // Nothing to measure the accuracy target on: the fast settings, and a note says so.
        #expect(summary.accuracyTrials.isEmpty && summary.accuracyNote?.description.hasPrefix("the accuracy target needs text to measure on") == true)
        let exported = try Model(path: out, verify: true)
        #expect(exported.isQuantized)
        #expect(exported.file.metadata["quality"] == nil)
        #expect(exported.tokenizer == model.tokenizer)

        let text = HuggingFaceFixtures.output.appendingPathComponent("eval.txt")
        let expected = try HuggingFaceFixtures.expected("gpt2")
        try expected.tokenizer_cases.map(\.text).joined(separator: "\n").write(to: text, atomically: true, encoding: .utf8)
        options.evalData = text.path
        options.calibrationData = text.path
        let measured = try Exporter.export(checkpoint: model.file.path, output: out, options: options)
        #expect(measured.weightMethod == "gptq+rounded")
        #expect(measured.accuracyTrials.count == 5)
        #expect((measured.accuracyNote == nil) == measured.accuracyTrials.contains(where: \.met))
        let quality = try #require(measured.quality)
        #expect(quality.positions > 500)
        #expect(quality.top1AgreementPercent > 90)
    }
}

/// Broken Hugging Face model directories: each fails with a one-line message naming the file
/// and the problem, and writes nothing.
@Suite struct HostileHuggingFaceTests {
    /// A copy of fixture `model` with `change` applied to its files; returns the import's error.
    static func failure(_ model: String, _ change: (URL) throws -> Void) throws -> String {
        let copy = HuggingFaceFixtures.output.appendingPathComponent("broken-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: HuggingFaceFixtures.directory.appendingPathComponent(model), to: copy)
        try change(copy)
        let out = copy.appendingPathComponent("out.tfq").path
        do {
            _ = try HuggingFaceImporter.importModel(copy.path, output: out)
            _ = try Model(path: out, verify: true)   // what an import writes, loads
            return "imported"
        } catch {
            #expect(!FileManager.default.fileExists(atPath: out), "a failed import left \(out)")
            #expect(!"\(error)".contains("\n"))
            return "\(error)"
        }
    }

    /// Rewrites JSON file `name` in `directory` through `edit`.
    static func editJSON(_ directory: URL, _ name: String, _ edit: (inout [String: Any]) -> Void) throws {
        let url = directory.appendingPathComponent(name)
        var object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&object)
        try JSONSerialization.data(withJSONObject: object).write(to: url)
    }

    @Test func configProblemsAreNamed() throws {
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["model_type"] = "bert" } }.contains("model_type 'bert' is not supported"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["n_embd"] = nil } }.contains("config.json: no 'n_embd'"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["n_head"] = 5 } }.contains("not divisible by heads 5"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["activation_function"] = "gelu" } }.contains("activation_function 'gelu'"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["n_embd"] = 96 } }.contains("has shape [384, 64]; the config needs [384, 96]"))
        #expect(try Self.failure("llama") { try Self.editJSON($0, "config.json") { $0["rope_scaling"] = ["type": "linear", "factor": 2.0] } }.contains("rope_scaling"))
        #expect(try Self.failure("llama") { try Self.editJSON($0, "config.json") { $0["num_key_value_heads"] = 3 } }.contains("n_kv_heads 3 does not divide"))
        #expect(try Self.failure("gpt2") { try FileManager.default.removeItem(at: $0.appendingPathComponent("config.json")) }.contains("config.json"))
    }

    @Test func weightProblemsAreNamed() throws {
        #expect(try Self.failure("gpt2") { try FileManager.default.removeItem(at: $0.appendingPathComponent("model.safetensors")) }.contains("model.safetensors"))
        #expect(try Self.failure("llama") { dir in
            try Self.editJSON(dir, "model.safetensors.index.json") { index in
                var map = index["weight_map"] as! [String: String]
                map["model.norm.weight"] = "../model.safetensors"
                index["weight_map"] = map
            }
        }.contains("the shard must be a file name in the model's directory"))
        #expect(try Self.failure("llama") { dir in
            try Self.editJSON(dir, "model.safetensors.index.json") { index in
                var map = index["weight_map"] as! [String: String]
                map["model.norm.weight"] = nil
                index["weight_map"] = map
            }
        }.contains("the checkpoint has no tensor 'model.norm.weight'"))
        #expect(try Self.failure("gpt2") { dir in
            let url = dir.appendingPathComponent("model.safetensors")
            let data = try Data(contentsOf: url)
            try data.prefix(data.count - 2).write(to: url)
        }.contains("lie outside the"))
        // A weight tfq would not read (here a bias under a name GPT-2 does not have).
        #expect(try Self.failure("gpt2") { dir in
            try HuggingFaceImportTests.rewriteSafetensors(dir.appendingPathComponent("model.safetensors")) { header, data in
                header["transformer.h.0.mlp.c_gate.bias"] = ["dtype": "F16", "shape": [256], "data_offsets": [data.count, data.count + 512]]
                data.append(Data(count: 512))
            }
        }.contains("tensor 'transformer.h.0.mlp.c_gate.bias' is not part of a gpt2 model"))
    }

    /// A small mutation fuzzer over config.json and tokenizer.json (the libFuzzer target
    /// covers tokenizer.json alone, tools/fuzz): byte flips, cuts and insertions, and JSON
    /// values swapped for edge cases. Every import either succeeds, giving a file that loads,
    /// or fails with one line and no output file (`failure` checks both).
    @Test func mutatedConfigsAndTokenizersImportOrFailCleanly() throws {
        var state: UInt64 = 0x6A50_4E21
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        let edges = ["-1", "0", "1", "3", "383", "384", "65536", "2147483648", "1e308", "-0.0", "0.5", "null", "true",
                     "\"\"", "\"x\"", "[]", "{}", "[1,2]", "\"\\u0000\""]
        var imported = 0, failed = 0
        for iteration in 0..<160 {
            let name = iteration % 2 == 0 ? "config.json" : "tokenizer.json"
            let result = try Self.failure(HuggingFaceFixtures.models[(iteration / 2) % 3]) { dir in
                let url = dir.appendingPathComponent(name)
                var bytes = Array(try Data(contentsOf: url))
                switch next() % 4 {
                case 0:
                    for _ in 0..<(1 + next() % 4) { bytes[next() % bytes.count] = UInt8(truncatingIfNeeded: next()) }
                case 1:
                    bytes = Array(bytes.prefix(next() % bytes.count))
                case 2:
                    bytes.insert(contentsOf: Array(edges[next() % edges.count].utf8), at: next() % bytes.count)
                default:
                    // A value after some key (the text after a ':') becomes an edge case.
                    let colons = bytes.indices.filter { bytes[$0] == UInt8(ascii: ":") }
                    guard let colon = colons.isEmpty ? nil : colons[next() % colons.count] else { break }
                    var end = colon + 1
                    while end < bytes.count, ![UInt8(ascii: ","), UInt8(ascii: "}"), UInt8(ascii: "]")].contains(bytes[end]) { end += 1 }
                    bytes.replaceSubrange((colon + 1)..<end, with: Array(edges[next() % edges.count].utf8))
                }
                try Data(bytes).write(to: url)
            }
            if result == "imported" { imported += 1 } else { failed += 1 }
        }
        #expect(imported + failed == 160)
        #expect(failed > 80 && imported > 0, "\(imported) imported, \(failed) refused")
    }

    @Test func tokenizerProblemsAreNamed() throws {
        #expect(try Self.failure("gpt2") { try FileManager.default.removeItem(at: $0.appendingPathComponent("tokenizer.json")) }.contains("no tokenizer.json here"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "tokenizer.json") { $0["normalizer"] = ["type": "NFC"] } }.contains("normalizer 'NFC' is not supported"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "tokenizer.json") { $0["pre_tokenizer"] = ["type": "Whitespace"] } }.contains("pre_tokenizer 'Whitespace'"))
        #expect(try Self.failure("gpt2") { dir in
            try Self.editJSON(dir, "tokenizer.json") { json in
                var model = json["model"] as! [String: Any]
                model["merges"] = ["Ġ zzz"]
                json["model"] = model
            }
        }.contains("merge 0 is not two tokens of the vocabulary"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["vocab_size"] = 300 } }.contains("outside the model's vocabulary of 300"))
        #expect(try Self.failure("gpt2") { try Self.editJSON($0, "config.json") { $0["eos_token_id"] = 383_000 } }.contains("end-of-text id 383000 is not a token"))
    }

    @Test func sentencePieceTokenizerProblemsAreNamed() throws {
        func edit(_ change: @escaping (inout [String: Any]) -> Void) throws -> String {
            try Self.failure("llama-sp") { try Self.editJSON($0, "tokenizer.json", change) }
        }
        #expect(try edit { $0["normalizer"] = ["type": "NFKC"] }.contains("normalizer 'NFKC' is not supported here"))
        #expect(try edit { $0["pre_tokenizer"] = ["type": "Whitespace"] }.contains("pre_tokenizer 'Whitespace' is not supported with byte_fallback"))
        #expect(try edit { $0["pre_tokenizer"] = nil }.contains("spaces would stay spaces"))
        #expect(try edit { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "_", "prepend_scheme": "first", "split": false] }.contains("replacement other than ▁"))
        #expect(try edit { $0["pre_tokenizer"] = ["type": "Metaspace", "replacement": "\u{2581}", "prepend_scheme": "never", "split": false] }.contains("without the ▁ prefix"))
        #expect(try edit { $0["decoder"] = ["type": "Metaspace"] }.contains("decoder 'Metaspace' is not supported with byte_fallback"))
        #expect(try edit { json in
            json["post_processor"] = ["type": "TemplateProcessing", "single": [["Sequence": ["id": "A", "type_id": 0]], ["SpecialToken": ["id": "</s>", "type_id": 0]]]]
        }.contains("appends '</s>' after the text"))
        #expect(try edit { json in
            json["post_processor"] = ["type": "TemplateProcessing", "single": [["SpecialToken": ["id": "<bos>", "type_id": 0]], ["Sequence": ["id": "A", "type_id": 0]]]]
        }.contains("'<bos>' is not an added token"))
        #expect(try edit { json in
            var model = json["model"] as! [String: Any], vocab = model["vocab"] as! [String: Any]
            vocab["<0xFF>"] = nil
            model["vocab"] = vocab
            json["model"] = model
        }.contains("no piece is the byte <0xFF>"))
        #expect(try edit { json in
            var model = json["model"] as! [String: Any]
            model["merges"] = [["\u{2581}", "t"], ["\u{2581}", "t"]]
            json["model"] = model
        }.contains("repeats merge 0"))
    }
}
