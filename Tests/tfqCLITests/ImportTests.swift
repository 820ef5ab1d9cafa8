import Foundation
import Testing

/// `tfq import llama2c` → `tfq run` / `tfq export --int8`, as a user runs them, on the tiny
/// llama2.c checkpoints of TFQImportTests (their greedy tokens come from tools/reference.py).
@Suite struct ImportTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("../TFQImportTests/Fixtures/llama").standardized

    struct Expected: Decodable {
        struct Checkpoint: Decodable { var file: String; var greedy_ids: [Int32] }
        var prompt: String
        var checkpoints: [Checkpoint]
    }

    struct RunOutput: Decodable { var token_ids: [Int32]; var prompt_token_ids: [Int32]; var stop_reason: String }

    @Test func importThenRunGivesTheReferenceTokensThenExportInt8() throws {
        let expected = try JSONDecoder().decode(Expected.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("expected.json")))
        let directory = try CLI.temporaryDirectory()
        let model = directory.appendingPathComponent("tiny.tfq").path
        let checkpoint = expected.checkpoints.first { $0.file == "tiny-v0.bin" }!
        let imported = try CLI.run(["import", "llama2c", Self.fixtures.appendingPathComponent("tiny-v0.bin").path,
                                    "--tokenizer", Self.fixtures.appendingPathComponent("tokenizer.bin").path, "-o", model])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("llama 2 layers") && imported.stdout.contains("from llama2.c version 0"))

        let run = try CLI.run(["run", model, "--prompt", expected.prompt, "-n", String(checkpoint.greedy_ids.count), "--json"])
        #expect(run.status == 0, "\(run.stderr)")
        let output = try JSONDecoder().decode(RunOutput.self, from: Data(run.stdout.utf8))
        #expect(output.prompt_token_ids.first == 1)
        #expect(output.token_ids == checkpoint.greedy_ids)

        let inspect = try CLI.run(["inspect", model])
        #expect(inspect.stdout.contains("arch             llama") && inspect.stdout.contains("n_kv_heads       2"))

        // An imported model has no training split: the quality report needs --eval-data.
        let int8 = directory.appendingPathComponent("tiny.int8.tfq").path
        let noData = try CLI.run(["export", model, "--int8", "-o", int8])
        #expect(noData.status != 0 && noData.stderr.contains("--eval-data"))
        let text = directory.appendingPathComponent("eval.txt")
        try String(repeating: "Lily saw the cat. Once upon a time, a dog played with the ball.\n", count: 40).write(to: text, atomically: true, encoding: .utf8)
        let export = try CLI.run(["export", model, "--int8", "--eval-data", text.path, "-o", int8])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stdout.contains("top-1 agreement"))
        let quantized = try CLI.run(["run", int8, "--prompt", expected.prompt, "-n", "5", "--json"])
        #expect(quantized.status == 0, "\(quantized.stderr)")
    }

    @Test func badInputIsAOneLineError() throws {
        let directory = try CLI.temporaryDirectory()
        let out = directory.appendingPathComponent("x.tfq").path
        // A checkpoint with no tokenizer.bin beside it (nor in the current directory).
        let checkpoint = directory.appendingPathComponent("alone.bin").path
        try FileManager.default.copyItem(atPath: Self.fixtures.appendingPathComponent("tiny-v0.bin").path, toPath: checkpoint)
        let cases: [([String], String)] = [
            (["import", "llama2c", directory.appendingPathComponent("missing.bin").path, "--tokenizer", checkpoint, "-o", out], "cannot open"),
            (["import", "llama2c", checkpoint, "-o", out], "give --tokenizer FILE"),
            (["import", "llama2c", checkpoint, "--tokenizer", checkpoint, "-o", out], "outside 0…max_token_length"),
            (["import", "gguf", checkpoint, "-o", out], "Error"),
        ]
        for (arguments, message) in cases {
            let result = try CLI.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }
}
