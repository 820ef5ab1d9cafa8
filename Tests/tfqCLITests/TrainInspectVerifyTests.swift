import Foundation
import Testing
import TFQFormat

/// The CLI end to end: the built `tfq` run with real arguments.
@Suite(.serialized) struct TrainInspectVerifyTests {
    static func corpus(in directory: URL) throws -> String {
        let words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta"]
        var state: UInt64 = 12345
        var text = ""
        for i in 0..<3000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            text += words[Int(state >> 61)] + (i % 9 == 8 ? ".\n" : " ")
        }
        let path = directory.appendingPathComponent("corpus.txt").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static let small = ["--layers", "1", "--heads", "2", "--dim", "16", "--context", "16", "--batch", "4",
                        "--eval-every", "5", "--eval-batches", "2", "--threads", "2"]

    @Test func trainThenInspectThenVerify() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try Self.corpus(in: directory)
        let out = directory.appendingPathComponent("m.tfq").path
        let result = try CLI.run(["train", "--data", corpus, "--out", out, "--steps", "12", "--json"] + Self.small)
        #expect(result.status == 0, "\(result.stderr)")
        let summary = try JSONDecoder().decode([String: JSONValue].self, from: Data(result.stdout.utf8))
        for key in ["steps", "tokens", "train_loss", "val_loss", "tokens_per_second", "wall_seconds", "parameters", "peak_rss_bytes"] {
            #expect(summary[key] != nil, "missing \(key)")
        }
        #expect(summary["steps"] == .integer(12))
        #expect(summary["tokens"] == .integer(Int64(12 * 4 * 16)))
        #expect(result.stderr.contains("step 12/12"))

        let inspect = try CLI.run(["inspect", out])
        #expect(inspect.status == 0)
        #expect(inspect.stdout.contains("blocks.0.attn.qkv.weight") && inspect.stdout.contains("[48, 16]"))
        #expect(inspect.stdout.contains("checkpoint") && inspect.stdout.contains("n_layers"))
        let json = try CLI.run(["inspect", out, "--json"])
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(json.stdout.utf8))
        #expect(report["metadata"]?["config"]?["dim"] == .integer(16))
        #expect(report["format_version"] == .string("1.5"))

        let verify = try CLI.run(["verify", out])
        #expect(verify.status == 0)
        #expect(verify.stdout.hasPrefix("OK "))

        // One flipped bit in tensor data: verify names the tensor and fails.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        bytes[200] ^= 0x04
        let damaged = directory.appendingPathComponent("damaged.tfq").path
        try bytes.write(to: URL(fileURLWithPath: damaged))
        let bad = try CLI.run(["verify", damaged])
        #expect(bad.status == 1)
        #expect(bad.stderr.contains("checksum mismatch") && bad.stderr.contains("tensor 'tok_emb'"))
        #expect(bad.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1)
    }

    @Test func badInputIsOneLineAndWritesNothing() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try Self.corpus(in: directory)
        let out = directory.appendingPathComponent("never.tfq").path
        let empty = directory.appendingPathComponent("empty.txt").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        let cases: [([String], String)] = [
            (["train", "--data", directory.path + "/missing.txt", "--out", out], "cannot open"),
            (["train", "--data", empty, "--out", out], "empty"),
            (["train", "--data", corpus, "--out", out, "--dim", "30", "--heads", "4"], "not divisible"),
            (["train", "--data", corpus, "--out", out, "--layers", "0"], "--layers"),
            (["train", "--data", corpus, "--out", out, "--threads", "100000"], "--threads"),
            (["train", "--data", corpus, "--out", out, "--activation", "swish"], "swish"),
            (["train", "--data", corpus, "--out", out, "--resume"], "no checkpoint to resume"),
            (["inspect", corpus], "not a tfq file"),
            (["verify", directory.path + "/missing.tfq"], "cannot open"),
        ]
        for (arguments, expected) in cases {
            let result = try CLI.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            let lines = result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n")
            #expect(lines.first?.contains(expected) == true, "\(arguments): \(result.stderr)")
            // A malformed flag gets ArgumentParser's usage reminder after the error line;
            // every other problem is exactly one line.
            #expect(lines.count == 1 || lines.first?.contains("is invalid for") == true, "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == ["corpus.txt", "empty.txt"])
    }

    @Test func interruptSavesACheckpointThatResumes() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try Self.corpus(in: directory)
        let out = directory.appendingPathComponent("run.tfq").path
        let process = Process()
        process.executableURL = CLI.executable()
        process.arguments = ["train", "--data", corpus, "--out", out, "--steps", "1000000", "--checkpoint-every", "0"] + Self.small
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until training is under way (the metrics log grows), then interrupt.
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, ((try? Data(contentsOf: URL(fileURLWithPath: out + ".metrics.jsonl")))?.count ?? 0) < 500 {
            Thread.sleep(forTimeInterval: 0.05)
        }
        process.interrupt()
        process.waitUntilExit()
        #expect(process.terminationStatus == 130)
        let file = try TFQFile(path: out, options: .init(verifyChecksums: true))
        guard case .integer(let step)? = file.metadata["training"]?["step"] else { Issue.record("no step"); return }
        #expect(step > 0 && step < 1_000_000)
        let resumed = try CLI.run(["train", "--data", corpus, "--out", out, "--steps", String(step + 3), "--resume", "--json"] + Self.small)
        #expect(resumed.status == 0, "\(resumed.stderr)")
        #expect(resumed.stderr.contains("resuming"))
        let summary = try JSONDecoder().decode([String: JSONValue].self, from: Data(resumed.stdout.utf8))
        #expect(summary["steps"] == .integer(step + 3))
    }
}
