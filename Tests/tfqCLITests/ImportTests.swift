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

        // An imported model has no training split: without --eval-data there is no quality
        // report, and the export says so.
        let int8 = directory.appendingPathComponent("tiny.int8.tfq").path
        let noData = try CLI.run(["export", model, "--int8", "-o", int8])
        #expect(noData.status == 0 && noData.stderr.contains("quality report skipped") && noData.stderr.contains("give --eval-data FILE"))
        #expect(!noData.stdout.contains("top-1 agreement"))
        let text = directory.appendingPathComponent("eval.txt")
        try String(repeating: "Lily saw the cat. Once upon a time, a dog played with the ball.\n", count: 40).write(to: text, atomically: true, encoding: .utf8)
        let export = try CLI.run(["export", model, "--int8", "--eval-data", text.path, "-o", int8])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(export.stdout.contains("top-1 agreement"))
        // KL as people read it: one decimal and an exponent (2.9e-05), or 0.
        let kl = export.stdout.split(separator: "\n").first { $0.hasPrefix("Δppl") && $0.contains("mean KL") }.map(String.init) ?? ""
        let figure = kl.components(separatedBy: "mean KL ").last?.split(separator: " ").first.map(String.init) ?? ""
        let mantissa = figure.split(separator: "e").first ?? ""
        #expect(figure == "0" || (figure.contains("e") && Double(figure) != nil && mantissa.count <= 4), "\(kl)")
        let quantized = try CLI.run(["run", int8, "--prompt", expected.prompt, "-n", "5", "--json"])
        #expect(quantized.status == 0, "\(quantized.stderr)")
    }

    /// A Hugging Face GPT-2 (tools/hf_fixtures.py): import, then run from text and from ids
    /// gives `transformers`' greedy tokens; int8 export needs no evaluation text.
    @Test func importSafetensorsThenRunGivesTransformersTokens() throws {
        struct HFExpected: Decodable { var prompt_text: String; var prompt_ids: [Int32]; var greedy_ids: [Int32] }
        let source = Self.fixtures.appendingPathComponent("../hf/gpt2").standardized
        let expected = try JSONDecoder().decode(HFExpected.self, from: Data(contentsOf: source.appendingPathComponent("expected.json")))
        let directory = try CLI.temporaryDirectory()
        let model = directory.appendingPathComponent("gpt2.tfq").path
        let imported = try CLI.run(["import", "safetensors", source.path, "-o", model])
        #expect(imported.status == 0, "\(imported.stderr)")
        #expect(imported.stdout.contains("gpt2 2 layers") && imported.stdout.contains("F16 tensors"), "\(imported.stdout)")

        let ids = expected.prompt_ids.map(String.init).joined(separator: " ")
        let fromIDs = try CLI.run(["run", model, "--prompt-ids", ids, "-n", String(expected.greedy_ids.count), "--ignore-eos", "--json"])
        #expect(fromIDs.status == 0, "\(fromIDs.stderr)")
        let output = try JSONDecoder().decode(RunOutput.self, from: Data(fromIDs.stdout.utf8))
        #expect(output.prompt_token_ids == expected.prompt_ids)
        #expect(output.token_ids == expected.greedy_ids)
        let fromText = try CLI.run(["run", model, "--prompt", expected.prompt_text, "-n", "3", "--json"])
        #expect(try JSONDecoder().decode(RunOutput.self, from: Data(fromText.stdout.utf8)).prompt_token_ids == expected.prompt_ids)

        let int8 = directory.appendingPathComponent("gpt2.int8.tfq").path
        let export = try CLI.run(["export", model, "--int8", "-o", int8])
        #expect(export.status == 0 && export.stderr.contains("quality report skipped"), "\(export.stderr)")
        #expect(try CLI.run(["run", int8, "--prompt-ids", ids, "-n", "5"]).status == 0)

        for (arguments, message) in [
            (["run", model, "--prompt-ids", "5 x"], "--prompt-ids: 'x' (item 2) is not a token id"),
            (["run", model, "--prompt-ids", "384"], "--prompt-ids: token id 384 (item 1) is out of range"),
            (["run", model, "--prompt-ids", "1", "--prompt", "a"], "give one of --prompt, --prompt-file and --prompt-ids"),
            (["import", "safetensors", directory.path, "-o", model], "config.json"),
        ] {
            let result = try CLI.run(arguments)
            #expect(result.status != 0 && result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    /// GGUF out and back in: the F32 file gives the same greedy tokens as the model it came
    /// from; Q8_0 runs; GGUF-specific refusals are one line.
    @Test func exportGGUFThenImportItBack() throws {
        struct HFExpected: Decodable { var prompt_ids: [Int32]; var greedy_ids: [Int32] }
        let source = Self.fixtures.appendingPathComponent("../hf/llama").standardized
        let expected = try JSONDecoder().decode(HFExpected.self, from: Data(contentsOf: source.appendingPathComponent("expected.json")))
        let directory = try CLI.temporaryDirectory()
        let model = directory.appendingPathComponent("llama.tfq").path
        #expect(try CLI.run(["import", "safetensors", source.path, "-o", model]).status == 0)
        let ids = expected.prompt_ids.map(String.init).joined(separator: " ")
        for (flag, type) in [("--fp32", "F32"), ("--int8", "Q8_0")] {
            let gguf = directory.appendingPathComponent("llama.\(type).gguf").path
            let export = try CLI.run(["export", model, "--gguf", flag, "-o", gguf])
            #expect(export.status == 0 && export.stdout.contains("GGUF llama, 21 tensors \(type)"), "\(export.stdout)\(export.stderr)")
            let back = directory.appendingPathComponent("back.\(type).tfq").path
            let imported = try CLI.run(["import", "gguf", gguf, "-o", back])
            #expect(imported.status == 0 && imported.stdout.contains("llama 2 layers"), "\(imported.stderr)")
            let run = try CLI.run(["run", back, "--prompt-ids", ids, "-n", String(expected.greedy_ids.count), "--ignore-eos", "--json"])
            #expect(run.status == 0, "\(run.stderr)")
            if type == "F32" {
                #expect(try JSONDecoder().decode(RunOutput.self, from: Data(run.stdout.utf8)).token_ids == expected.greedy_ids)
            } else {
                #expect(imported.stdout.contains("10 tensors kept int8"), "\(imported.stdout)")
            }
        }
        let notGGUF = try CLI.run(["import", "gguf", model, "-o", directory.appendingPathComponent("x.tfq").path])
        #expect(notGGUF.status != 0 && notGGUF.stderr.contains("not a GGUF file"))
        let flag = try CLI.run(["export", model, "--gguf", "--int8", "--no-gptq", "-o", directory.appendingPathComponent("x.gguf").path])
        #expect(flag.status != 0 && flag.stderr.contains("--no-gptq does not apply to --gguf"))
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
            (["import", "gguf", checkpoint, "-o", out], "not a GGUF file"),
        ]
        for (arguments, message) in cases {
            let result = try CLI.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out))
        }
    }
}
