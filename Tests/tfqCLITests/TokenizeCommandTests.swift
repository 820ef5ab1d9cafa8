import Foundation
import Testing
import TFQFormat
import TFQModel

/// `tfq train --tokenizer bpe` and `tfq tokenize`, end to end.
@Suite(.serialized) struct TokenizeCommandTests {
    /// A BPE checkpoint trained for 2 steps on the CLI tests' corpus. It asks for 1000 tokens;
    /// the corpus's eight words are whole tokens after 32 merges, so it gets 288.
    static func bpeModel(in directory: URL, steps: Int = 2) throws -> (corpus: String, model: String, result: CLI.Result) {
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let model = directory.appendingPathComponent("bpe.tfq").path
        let result = try CLI.run(["train", "--data", corpus, "--out", model, "--tokenizer", "bpe", "--vocab-size", "1000",
                                  "--steps", String(steps)] + TrainInspectVerifyTests.small)
        #expect(result.status == 0, "\(result.stderr)")
        return (corpus, model, result)
    }

    static func ids(_ text: String) -> [Int32] { text.split(whereSeparator: \.isWhitespace).map { Int32($0)! } }

    @Test func bpeRoundTripsAnyBytesThroughTheCommandLine() throws {
        let directory = try CLI.temporaryDirectory()
        let (_, model, trained) = try Self.bpeModel(in: directory)
        #expect(trained.stderr.contains("learned 32 BPE merges on the training split") && trained.stderr.contains("(the text has no more pairs to merge)"),
                "\(trained.stderr)")
        #expect(trained.stderr.contains("bpe tokenizer, vocabulary 288"))
        let tokenizer = try ModelMetadata(file: TFQFile(path: model)).tokenizer
        guard case .bpe(let bpe) = tokenizer else { Issue.record("not a bpe model"); return }
        #expect(bpe.vocabularySize == 288)

        let inputs: [[UInt8]] = [
            Array("alpha beta gamma delta.\n".utf8), Array("zeta  eta\n\n theta — ünïcödé 😀".utf8),
            [0xFF, 0x41, 0xC3, 0x0A, 0x80], Array(0...255), [], Array(repeating: 0x20, count: 1000),
        ]
        for input in inputs {
            let encoded = try CLI.run(["tokenize", model], stdin: Data(input))
            #expect(encoded.status == 0, "\(encoded.stderr)")
            #expect(encoded.stdout.hasSuffix("\n"))
            let ids = Self.ids(encoded.stdout)
            #expect(ids == bpe.encode(input))
            let decoded = try CLI.run(["tokenize", model, "--decode"], stdin: Data(encoded.stdout.utf8))
            #expect(decoded.status == 0, "\(decoded.stderr)")
            #expect(decoded.stdoutBytes == Data(input), "\(input.prefix(20))")
        }
        // The corpus's words are single tokens by now: far fewer ids than bytes.
        let words = try CLI.run(["tokenize", model], stdin: Data("alpha beta gamma".utf8))
        #expect(Self.ids(words.stdout).count == 3)
        // Ids may be separated by any whitespace.
        let spaced = try CLI.run(["tokenize", model, "--decode"], stdin: Data("97\n\t108  112\r\n104 97".utf8))
        #expect(spaced.stdoutBytes == Data("alpha".utf8))
    }

    @Test func exportAndRunKeepTheTokenizer() throws {
        let directory = try CLI.temporaryDirectory()
        let (_, checkpoint, _) = try Self.bpeModel(in: directory)
        let model = directory.appendingPathComponent("bpe.int8.tfq").path
        let export = try CLI.run(["export", checkpoint, "-o", model, "--int8", "--group-size", "16", "--eval-tokens", "200", "--json"])
        #expect(export.status == 0, "\(export.stderr)")
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(export.stdout.utf8))
        guard case .number(let bpb)? = report["quality"]?["model_bits_per_byte"],
              case .number(let nats)? = report["quality"]?["model_cross_entropy"] else { Issue.record("no bits per byte: \(export.stdout)"); return }
        #expect(bpb > 0 && bpb < nats / log(2))  // BPE tokens here are several bytes each
        #expect(try TFQFile(path: model).metadata["tokenizer"] == TFQFile(path: checkpoint).metadata["tokenizer"])
        let text = try CLI.run(["tokenize", model], stdin: Data("gamma delta".utf8))
        #expect(Self.ids(text.stdout).count == 2)
        let run = try CLI.run(["run", model, "--prompt", "alpha beta", "-n", "6", "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let output = try JSONDecoder().decode(JSONValue.self, from: Data(run.stdout.utf8))
        let prompt = Self.ids(try CLI.run(["tokenize", model], stdin: Data("alpha beta".utf8)).stdout)
        #expect(prompt.count == 2 && output["prompt_token_ids"] == .array(prompt.map { .integer(Int64($0)) }))
        #expect(output["generated_tokens"] == .integer(6))
    }

    @Test func jsonOutput() throws {
        let directory = try CLI.temporaryDirectory()
        let (_, model, _) = try Self.bpeModel(in: directory)
        let encoded = try CLI.run(["tokenize", model, "--json"], stdin: Data("alpha beta".utf8))
        let object = try JSONDecoder().decode(JSONValue.self, from: Data(encoded.stdout.utf8))
        guard case .array(let ids)? = object["ids"] else { Issue.record("no ids: \(encoded.stdout)"); return }
        #expect(object["count"] == .integer(Int64(ids.count)) && ids.count == 2)
        #expect(object["bytes"] == .integer(10))
        let decoded = try CLI.run(["tokenize", model, "--decode", "--json"], stdin: Data("97 108 112 104 97".utf8))
        let text = try JSONDecoder().decode(JSONValue.self, from: Data(decoded.stdout.utf8))
        #expect(text["text"] == .string("alpha") && text["valid_utf8"] == .bool(true) && text["bytes"] == .integer(5) && text["count"] == .integer(5))
        let binary = try CLI.run(["tokenize", model, "--decode", "--json"], stdin: Data("255 65".utf8))
        let raw = try JSONDecoder().decode(JSONValue.self, from: Data(binary.stdout.utf8))
        #expect(raw["text"] == .null && raw["valid_utf8"] == .bool(false) && raw["bytes"] == .integer(2))
    }

    @Test func badIDsAreOneLineErrors() throws {
        let directory = try CLI.temporaryDirectory()
        let (_, model, _) = try Self.bpeModel(in: directory)
        let cases: [(String, String)] = [
            ("97 abc", "'abc' (item 2) is not a token id"),
            ("-1", "'-1' (item 1) is not a token id"),
            ("97 288", "token id 288 (item 2) is out of range: the vocabulary has 288 tokens (0 to 287)"),
            ("99999999999999999999", "out of range"),
            ("1.5", "is not a token id"),
        ]
        for (input, message) in cases {
            let result = try CLI.run(["tokenize", model, "--decode"], stdin: Data(input.utf8))
            #expect(result.status != 0, "\(input)")
            #expect(result.stderr.contains(message), "\(input): \(result.stderr)")
            #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
            #expect(result.stdout.isEmpty)
        }
        let missing = try CLI.run(["tokenize", directory.appendingPathComponent("none.tfq").path], stdin: Data())
        #expect(missing.status != 0 && missing.stderr.contains("cannot open"))
    }

    @Test func charAndByteModelsToo() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let char = directory.appendingPathComponent("char.tfq").path, byte = directory.appendingPathComponent("byte.tfq").path
        for (path, kind) in [(char, "char"), (byte, "byte")] {
            let trained = try CLI.run(["train", "--data", corpus, "--out", path, "--tokenizer", kind, "--steps", "1"] + TrainInspectVerifyTests.small)
            #expect(trained.status == 0, "\(trained.stderr)")
        }
        let text = "beta alpha.\n"
        let charIDs = try CLI.run(["tokenize", char], stdin: Data(text.utf8))
        let expectedIDs = try ModelMetadata(file: TFQFile(path: char)).tokenizer.encode(text)
        #expect(Self.ids(charIDs.stdout) == expectedIDs)
        #expect(try CLI.run(["tokenize", char, "--decode"], stdin: Data(charIDs.stdout.utf8)).stdoutBytes == Data(text.utf8))
        let unknown = try CLI.run(["tokenize", char], stdin: Data("alpha é".utf8))
        #expect(unknown.status != 0)
        #expect(unknown.stderr.contains("stdin: character") && unknown.stderr.contains("(U+E9) at position 6 is not in the model's vocabulary"), "\(unknown.stderr)")
        let binary = try CLI.run(["tokenize", char], stdin: Data([0x61, 0xFF]))
        #expect(binary.status != 0 && binary.stderr.contains("not valid UTF-8 (at byte 1)"), "\(binary.stderr)")
        let bytes = try CLI.run(["tokenize", byte], stdin: Data([0x61, 0xFF, 0x00]))
        #expect(bytes.stdout == "97 255 0\n")
        #expect(try CLI.run(["tokenize", byte, "--decode"], stdin: Data("97 255 0".utf8)).stdoutBytes == Data([0x61, 0xFF, 0x00]))
    }

    @Test func trainChecksTheVocabularySize() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let out = directory.appendingPathComponent("never.tfq").path
        let cases: [([String], String)] = [
            (["--tokenizer", "bpe"], "--tokenizer bpe needs --vocab-size N (257 to 65536)"),
            (["--tokenizer", "bpe", "--vocab-size", "256"], "--vocab-size must be 257 to 65536 (got 256)"),
            (["--tokenizer", "bpe", "--vocab-size", "65537"], "--vocab-size must be 257 to 65536 (got 65537)"),
            (["--vocab-size", "512"], "--vocab-size applies only to --tokenizer bpe"),
            (["--tokenizer", "byte", "--vocab-size", "512"], "--vocab-size applies only to --tokenizer bpe"),
            (["--tokenizer", "wordpiece"], "wordpiece"),
        ]
        for (arguments, message) in cases {
            let result = try CLI.run(["train", "--data", corpus, "--out", out] + arguments)
            #expect(result.status != 0, "\(arguments)")
            let lines = result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n")
            #expect(lines.first?.contains(message) == true, "\(arguments): \(result.stderr)")
            #expect(lines.count == 1 || lines.first?.contains("is invalid for") == true, "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func resumeKeepsTheStoredTokenizer() throws {
        let directory = try CLI.temporaryDirectory()
        let (corpus, model, _) = try Self.bpeModel(in: directory, steps: 3)
        let before = try TFQFile(path: model).metadata["tokenizer"]
        let resumed = try CLI.run(["train", "--data", corpus, "--out", model, "--tokenizer", "bpe", "--vocab-size", "1000",
                                   "--steps", "5", "--resume", "--json"] + TrainInspectVerifyTests.small)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming") && !resumed.stderr.contains("learned"))
        #expect(try TFQFile(path: model).metadata["tokenizer"] == before)
        let summary = try JSONDecoder().decode([String: JSONValue].self, from: Data(resumed.stdout.utf8))
        #expect(summary["steps"] == .integer(5))
        guard case .number(let bpb)? = summary["val_bits_per_byte"], case .number(let loss)? = summary["val_loss"] else {
            Issue.record("no bits per byte: \(resumed.stdout)"); return
        }
        #expect(bpb > 0 && bpb < loss / log(2))
        // A different vocabulary size is a different run.
        let changed = try CLI.run(["train", "--data", corpus, "--out", model, "--tokenizer", "bpe", "--vocab-size", "400",
                                   "--steps", "6", "--resume"] + TrainInspectVerifyTests.small)
        #expect(changed.status != 0 && changed.stderr.contains("vocabSize was 1000, now 400"), "\(changed.stderr)")
        // inspect summarizes the merges instead of printing them all.
        let inspect = try CLI.run(["inspect", model])
        #expect(inspect.stdout.contains("type             bpe") && inspect.stdout.contains("pre_split        words"))
        #expect(inspect.stdout.contains("merges") && inspect.stdout.contains("bytes]"))
    }
}
