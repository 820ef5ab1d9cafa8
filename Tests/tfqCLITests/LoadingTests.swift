import Foundation
import Testing
import TFQFormat
import TFQModel

/// How tfq opens and checks what it is given: inputs that are not regular files, `verify`
/// against the loads of `run` and `train --resume`, `run --verify`, and prompt files' bytes.
@Suite(.serialized) struct LoadingTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TFQRuntimeTests/Fixtures/golden.int8.tfq").path
    static let directory = try! CLI.temporaryDirectory()
    static let small = ["--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", "--batch", "4",
                        "--eval-every", "0", "--eval-batches", "2", "--threads", "1"]

    /// A checkpoint trained here for 3 steps with `tokenizer` (so it has AdamW moments).
    static func checkpoint(_ tokenizer: String, _ extra: [String] = []) throws -> (path: String, corpus: String) {
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let out = directory.appendingPathComponent("\(tokenizer).ckpt.tfq").path
        let result = try CLI.run(["train", "--data", corpus, "--out", out, "--steps", "3", "--tokenizer", tokenizer] + extra + small)
        #expect(result.status == 0, "\(result.stderr)")
        return (out, corpus)
    }

    /// Writes `source`'s tensors (less `dropping`) with its metadata edited: a file whose
    /// checksums all match, so only the checks of loading can refuse it.
    static func rewrite(_ source: String, to name: String, dropping: Set<String> = [],
                        edit: (inout [String: JSONValue]) -> Void = { _ in }) throws -> String {
        let file = try TFQFile(path: source)
        var metadata = file.metadata
        edit(&metadata)
        let path = directory.appendingPathComponent(name).path
        let writer = try TFQWriter(path: path)
        for info in file.tensors where !dropping.contains(info.name) {
            try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                           bytes: file.bytes(info), compression: .none)
        }
        try writer.finish(metadata: Array(JSONEncoder().encode(JSONValue.object(metadata))))
        return path
    }

    // MARK: - Inputs that are not regular files

    /// Every input tfq opens, given a FIFO, a directory or a character device: a one-line
    /// error at once. Without the check a FIFO's open waits for a writer forever: the bound
    /// kills such a child and the test fails. The device is /dev/null, not /dev/zero, which
    /// a reader without the check would read until memory runs out (the check is on the
    /// file type, the same for both).
    @Test func everyInputRefusesWhatIsNotARegularFile() throws {
        let (checkpoint, corpus) = try Self.checkpoint("char")
        let fifo = Self.directory.appendingPathComponent("fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let tokenizer = ImportTests.fixtures.appendingPathComponent("tokenizer.bin").path
        let out = Self.directory.appendingPathComponent("never.tfq").path
        let uses: [(String) -> [String]] = [
            { ["verify", $0] }, { ["inspect", $0] }, { ["run", $0] }, { ["tokenize", $0] }, { ["unpack", $0, "-o", out] },
            { ["run", Self.golden, "--prompt-file", $0] },
            { ["train", "--data", $0, "--out", out] },
            { ["train", "--data", corpus, "--val-data", $0, "--out", out] },
            { ["export", $0, "-o", out, "--int8"] },
            { ["export", checkpoint, "-o", out, "--int8", "--eval-data", $0] },
            { ["export", checkpoint, "-o", out, "--int8", "--calibration-data", $0] },
            { ["import", "llama2c", $0, "--tokenizer", tokenizer, "-o", out] },
            { ["import", "llama2c", ImportTests.fixtures.appendingPathComponent("tiny-v0.bin").path, "--tokenizer", $0, "-o", out] },
            { ["bench", "accuracy", "--reference", Self.golden, "--model", Self.golden, "--data", $0] },
        ]
        for (path, kind) in [(fifo, "a FIFO"), (Self.directory.path, "a directory"), ("/dev/null", "a character device")] {
            for use in uses {
                let arguments = use(path)
                let result = try CLI.run(arguments, timeout: 30)
                #expect(!result.timedOut, "\(arguments) did not return")
                #expect(result.status == 1, "\(arguments)")
                let lines = result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n")
                #expect(lines.count == 1 && lines[0].hasSuffix("\(path): is not a regular file (\(kind))"), "\(arguments): \(result.stderr)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    // MARK: - verify makes the checks of loading

    /// Files whose every checksum matches but that `run` refuses: `verify` refuses them too,
    /// with the same message.
    @Test func verifyRefusesWhatRunRefusesWithTheSameMessage() throws {
        let files = [
            // A char vocabulary entry of two characters: a tokenizer no model can have.
            try Self.rewrite(Self.golden, to: "tokenizer.tfq") { metadata in
                guard case .object(var tokenizer)? = metadata["tokenizer"], case .array(var vocab)? = tokenizer["vocab"] else { return }
                vocab[3] = .string("ab")
                tokenizer["vocab"] = .array(vocab)
                metadata["tokenizer"] = .object(tokenizer)
            },
            try Self.rewrite(Self.golden, to: "missing.tfq", dropping: ["blocks.1.ffn.up.bias"]),
            try Self.rewrite(Self.golden, to: "config.tfq") { metadata in
                guard case .object(var config)? = metadata["config"] else { return }
                config["n_heads"] = .integer(3)
                metadata["config"] = .object(config)
            },
            try Self.rewrite(Self.golden, to: "no-config.tfq") { $0["config"] = nil },
        ]
        let expected = ["'tokenizer' is malformed", "tensor 'blocks.1.ffn.up.bias': not found in the file",
                        "config: dim 32 is not divisible by heads 3", "no 'config' section"]
        for (path, message) in zip(files, expected) {
            // The rewritten file is sound as a file: only the load can find the problem.
            #expect(try TFQFile(path: path, options: .init(verifyChecksums: true)).tensors.count > 0)
            let run = try CLI.run(["run", path, "-n", "1"]), verify = try CLI.run(["verify", path])
            #expect(run.status == 1 && run.stderr.contains(message), "\(run.stderr)")
            #expect(verify.status == 1 && verify.stdout.isEmpty, "\(verify.stdout)")
            #expect(verify.stderr == run.stderr)
        }
        let good = try CLI.run(["verify", Self.golden])
        #expect(good.status == 0 && good.stdout.hasSuffix("checksums match, loads as a model\n"), "\(good.stdout)")
    }

    /// A checkpoint is also checked as `train --resume` reads it: training state and moments.
    @Test func verifyChecksACheckpointAsResumeReadsIt() throws {
        let (checkpoint, corpus) = try Self.checkpoint("byte")
        let good = try CLI.run(["verify", checkpoint])
        #expect(good.status == 0 && good.stdout.hasSuffix("loads as a model and as a training checkpoint\n"), "\(good.stdout)")

        let noMoment = try Self.rewrite(checkpoint, to: "no-moment.ckpt.tfq", dropping: ["adam.v.blocks.0.ln2.bias"])
        let verify = try CLI.run(["verify", noMoment])
        let resume = try CLI.run(["train", "--data", corpus, "--out", noMoment, "--resume", "--steps", "4", "--tokenizer", "byte"] + Self.small)
        #expect(verify.status == 1 && verify.stderr.contains("tensor 'adam.v.blocks.0.ln2.bias': not found in the file"), "\(verify.stderr)")
        #expect(resume.status == 1 && resume.stderr == verify.stderr, "\(resume.stderr)")
        // It still runs and exports as a model: only resuming needs the moments.
        #expect(try CLI.run(["run", noMoment, "-n", "2"]).status == 0)

        let noState = try Self.rewrite(checkpoint, to: "no-state.ckpt.tfq") { $0["training"] = nil }
        let stateless = try CLI.run(["verify", noState])
        #expect(stateless.status == 1 && stateless.stderr.contains("not a training checkpoint (no training state)"), "\(stateless.stderr)")

        let otherModel = try Self.rewrite(checkpoint, to: "other.ckpt.tfq") { metadata in
            guard case .object(var training)? = metadata["training"], case .object(var options)? = training["options"] else { return }
            options["dim"] = .integer(32)
            training["options"] = .object(options)
            metadata["training"] = .object(training)
        }
        let mismatch = try CLI.run(["verify", otherModel])
        #expect(mismatch.status == 1 && mismatch.stderr.contains("training.options describe another model than config"), "\(mismatch.stderr)")
    }

    // MARK: - run --verify

    /// A bit flipped in an int8 weight: `run` loads the file (it reads no checksum) and
    /// `run --verify` refuses it by name. A -128 written with a valid checksum likewise.
    @Test func runVerifyRefusesDamagedWeights() throws {
        let file = try TFQFile(path: Self.golden)
        let info = try #require(file.info("blocks.0.ffn.up.weight"))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: Self.golden))
        bytes[info.offset + 5] ^= 0x02
        let flipped = Self.directory.appendingPathComponent("flipped.tfq").path
        try bytes.write(to: URL(fileURLWithPath: flipped))
        let plain = try CLI.run(["run", flipped, "--prompt", "the king", "-n", "4"])
        #expect(plain.status == 0, "\(plain.stderr)")
        let checked = try CLI.run(["run", flipped, "--prompt", "the king", "-n", "4", "--verify"])
        #expect(checked.status == 1 && checked.stdout.isEmpty)
        #expect(checked.stderr == "Error: \(flipped): tensor 'blocks.0.ffn.up.weight': checksum mismatch (corrupt data)\n", "\(checked.stderr)")

        // The same byte set to -128 in a file whose checksums match.
        let source = try TFQFile(path: Self.golden)
        let minus = Self.directory.appendingPathComponent("minus128.tfq").path
        let writer = try TFQWriter(path: minus)
        for tensor in source.tensors {
            var data = Array(source.bytes(tensor))
            if tensor.name == info.name { data[5] = 0x80 }
            try data.withUnsafeBytes {
                _ = try writer.add(name: tensor.name, dtype: tensor.dtype, shape: tensor.shape, layout: tensor.layout,
                                   groupSize: tensor.groupSize, bytes: $0, compression: .none)
            }
        }
        try writer.finish(metadata: source.metadataJSON)
        #expect(try CLI.run(["run", minus, "-n", "2"]).status == 0)
        let refused = try CLI.run(["run", minus, "-n", "2", "--verify"])
        #expect(refused.status == 1 && refused.stderr.hasSuffix("tensor 'blocks.0.ffn.up.weight': holds the invalid int8 value -128\n"), "\(refused.stderr)")
        // And a sound file runs the same with and without it.
        let a = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "20"])
        let b = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "20", "--verify"])
        #expect(a.status == 0 && a.stdout == b.stdout && b.status == 0)
    }

    // MARK: - Prompt files are bytes

    /// Byte-level tokenizers take any bytes from --prompt-file, as `tokenize` takes them from
    /// stdin; a char tokenizer still needs UTF-8.
    @Test func promptFilesOfAnyBytesForByteLevelTokenizers() throws {
        let prompt = Self.directory.appendingPathComponent("prompt.bin").path
        let bytes: [UInt8] = [0xFF, 0x61, 0x80, 0x20, 0xC3, 0x28, 0x0A]   // not UTF-8
        try Data(bytes).write(to: URL(fileURLWithPath: prompt))
        for tokenizer in ["byte", "bpe"] {
            let (model, _) = try Self.checkpoint(tokenizer, tokenizer == "bpe" ? ["--vocab-size", "270"] : [])
            let run = try CLI.run(["run", model, "--prompt-file", prompt, "-n", "2", "--json"])
            #expect(run.status == 0, "\(tokenizer): \(run.stderr)")
            let ids = try JSONDecoder().decode(JSONValue.self, from: Data(run.stdout.utf8))["prompt_token_ids"]
            let tokenized = try CLI.run(["tokenize", model, "--json"], stdin: Data(bytes))
            let expected = try JSONDecoder().decode(JSONValue.self, from: Data(tokenized.stdout.utf8))["ids"]
            #expect(ids != nil && ids == expected, "\(tokenizer)")
            if tokenizer == "byte" { #expect(ids == .array(bytes.map { .integer(Int64($0)) })) }
        }
        let char = try CLI.run(["run", Self.golden, "--prompt-file", prompt, "-n", "2"])
        #expect(char.status == 1 && char.stderr == "Error: \(prompt): the input is not valid UTF-8 (at byte 0); a char tokenizer encodes text only\n",
                "\(char.stderr)")
    }
}
