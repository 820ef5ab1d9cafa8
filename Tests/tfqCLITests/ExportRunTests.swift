import Foundation
import Testing
import TFQFormat

/// `tfq export`, `tfq run` and `tfq unpack` end to end, on a checkpoint trained here.
@Suite(.serialized) struct ExportRunTests {
    static let directory = try! CLI.temporaryDirectory()
    static let checkpoint: String = {
        let corpus = try! TrainInspectVerifyTests.corpus(in: directory)
        let out = directory.appendingPathComponent("m.ckpt.tfq").path
        let result = try! CLI.run(["train", "--data", corpus, "--out", out, "--steps", "30", "--context", "32",
                                   "--layers", "1", "--heads", "2", "--dim", "32", "--batch", "4", "--eval-every", "0", "--eval-batches", "2"])
        precondition(result.status == 0, result.stderr)
        return out
    }()

    /// Without settings given, int8 export measures them from the fastest against the
    /// accuracy target and says what it measured; the file has the settings of the one kept.
    @Test func int8ExportChoosesItsSettingsByTheTarget() throws {
        let model = Self.directory.appendingPathComponent("m.target.tfq").path
        let export = try CLI.run(["export", Self.checkpoint, "-o", model, "--int8", "--eval-tokens", "300", "--json"])
        #expect(export.status == 0, "\(export.stderr)")
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(export.stdout.utf8))
        guard case .array(let trials)? = report["accuracy_trials"] else { Issue.record("no accuracy_trials: \(export.stdout)"); return }
        // The fast settings first, then finer groups with the norms' readers in two passes;
        // this model's 65-character table stays fp32, so there is no table step.
        let settings = trials.map { $0["settings"] }
        #expect(settings == [.string(""), .string("--group-size 32 --two-pass-norm-inputs")])
        let met = trials.map { $0["met"] == .bool(true) }
        let quantization = try TFQFile(path: model).metadata["quantization"]
        if let kept = met.firstIndex(of: true) {
            // The fastest setting that meets the target is written.
            #expect(trials.count == 2 && report["accuracy_note"] == nil)
            #expect(quantization?["group_size"] == .string(kept == 0 ? "auto" : "32"))
            #expect(report["quality"]?["mean_kl"] == trials[kept]["mean_kl"])
            #expect(report["accuracy_kept"] == .integer(Int64(kept)))
        } else {
            // None met: the closer by mean KL is written.
            func number(_ value: JSONValue?) -> Double { if case .number(let x)? = value { x } else { .nan } }
            let closer: Int64 = number(trials[1]["mean_kl"]) < number(trials[0]["mean_kl"]) ? 1 : 0
            #expect(report["accuracy_kept"] == .integer(closer) && report["quality"]?["mean_kl"] == trials[Int(closer)]["mean_kl"])
            guard case .string(let note)? = report["accuracy_note"] else { Issue.record("no accuracy_note: \(export.stdout)"); return }
            #expect(note.hasPrefix("no setting met the accuracy target; kept the closest"), "\(note)")
        }
        let text = try CLI.run(["export", Self.checkpoint, "-o", model, "--int8", "--eval-tokens", "300"])
        #expect(text.status == 0 && text.stdout.hasPrefix("settings measured against the accuracy target (top-1 >= 99.50%"), "\(text.stdout)")
        // Settings given by hand are taken as given, with nothing measured against the target.
        let given = try CLI.run(["export", Self.checkpoint, "-o", model, "--int8", "--group-size", "32", "--eval-tokens", "300", "--json"])
        let givenReport = try JSONDecoder().decode(JSONValue.self, from: Data(given.stdout.utf8))
        #expect(given.status == 0 && givenReport["accuracy_trials"] == nil && givenReport["accuracy_note"] == nil, "\(given.stdout)")
    }

    @Test func exportInt8ThenRunGreedyAndSampled() throws {
        let model = Self.directory.appendingPathComponent("m.int8.tfq").path
        let export = try CLI.run(["export", Self.checkpoint, "-o", model, "--int8", "--group-size", "32", "--zstd", "--eval-tokens", "500", "--json"])
        #expect(export.status == 0, "\(export.stderr)")
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(export.stdout.utf8))
        for key in ["reference_perplexity", "model_perplexity", "delta_perplexity_percent", "top1_agreement_percent", "mean_kl",
                    "max_abs_logit_error", "tensor_relative_error"] {
            #expect(report["quality"]?[key] != nil, "quality lacks \(key)")
        }
        #expect(report["quality"]?["positions"] == .integer(500))
        // The report names the tables' precision that --embedding auto chose, as the file has it.
        let tableType = try TFQFile(path: model).info("tok_emb")?.dtype
        #expect(report["tables"] == .string(tableType == .q8 ? "int8" : tableType == .f16 ? "fp16" : "fp32"))
        // And which layers' inputs it quantizes in two passes, as the file lists them (block 0 by default).
        let listed = try TFQFile(path: model).metadata["quantization"]?["two_pass_activations"]
        #expect(report["two_pass_activations"] == listed && listed == .array(["attn.proj", "attn.qkv", "ffn.down", "ffn.up"].map {
            JSONValue.string("blocks.0.\($0).weight") }))
        // The report was measured as `tfq run` runs the model: with its f16 cache.
        #expect(report["quality"]?["kv_cache"] == .string("f16"))
        let inspect = try CLI.run(["inspect", model])
        #expect(inspect.stdout.contains("quality") && inspect.stdout.contains("top1_agreement_percent") && inspect.stdout.contains("q8"))

        let run = try CLI.run(["run", model, "--prompt", "alpha beta", "-n", "12", "--json", "--threads", "1"])
        #expect(run.status == 0, "\(run.stderr)")
        let figures = try JSONDecoder().decode(JSONValue.self, from: Data(run.stdout.utf8))
        for key in ["prompt_tokens", "generated_tokens", "load_ms", "ttft_ms", "prefill_tokens_per_second",
                    "decode_tokens_per_second", "peak_rss_bytes", "text", "prompt_token_ids", "token_ids"] {
            #expect(figures[key] != nil, "run --json lacks \(key)")
        }
        #expect(figures["generated_tokens"] == .integer(12) && figures["prompt_tokens"] == .integer(10))
        #expect(run.stderr.contains("stopped: generated 12 tokens"))
        // An int8 model's KV cache is f16 unless --kv-cache says otherwise.
        #expect(figures["kv_cache"] == .string("f16"))
        let exactCache = try CLI.run(["run", model, "--prompt", "alpha beta", "-n", "12", "--json", "--kv-cache", "f32"])
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(exactCache.stdout.utf8))["kv_cache"] == .string("f32"))
        let badCache = try CLI.run(["run", model, "--kv-cache", "f8"])
        #expect(badCache.status != 0 && badCache.stderr.contains("--kv-cache"))
        // Streaming output equals the JSON text, and greedy is the same with any thread count.
        let streamed = try CLI.run(["run", model, "--prompt", "alpha beta", "-n", "12", "--threads", "2"])
        guard case .string(let text)? = figures["text"] else { Issue.record("no text"); return }
        #expect(streamed.stdout == text + "\n")
        // Sampling with a seed is reproducible.
        let a = try CLI.run(["run", model, "--prompt", "alpha", "-n", "20", "--temperature", "0.9", "--top-k", "5", "--seed", "4"])
        let b = try CLI.run(["run", model, "--prompt", "alpha", "-n", "20", "--temperature", "0.9", "--top-k", "5", "--seed", "4"])
        #expect(a.stdout == b.stdout && a.status == 0)
        // The context stops generation, and stderr says so.
        let long = try CLI.run(["run", model, "--prompt", "alpha", "-n", "100"])
        #expect(long.stderr.contains("context of 32 tokens is full"))
    }

    /// `--two-pass-layers all` lists every block's layers, whatever their number.
    @Test func twoPassLayersAll() throws {
        let corpus = try TrainInspectVerifyTests.corpus(in: Self.directory)
        let checkpoint = Self.directory.appendingPathComponent("three.ckpt.tfq").path
        let train = try CLI.run(["train", "--data", corpus, "--out", checkpoint, "--steps", "0", "--layers", "3", "--heads", "2",
                                 "--dim", "32", "--context", "16", "--eval-batches", "1"])
        #expect(train.status == 0, "\(train.stderr)")
        let model = Self.directory.appendingPathComponent("m.all.tfq").path
        let export = try CLI.run(["export", checkpoint, "-o", model, "--int8", "--group-size", "32", "--two-pass-layers", "all",
                                  "--eval-tokens", "200"])
        #expect(export.status == 0, "\(export.stderr)")
        let listed = try TFQFile(path: model).metadata["quantization"]?["two_pass_activations"]
        let layers = (0..<3).flatMap { i in ["attn.proj", "attn.qkv", "ffn.down", "ffn.up"].map { JSONValue.string("blocks.\(i).\($0).weight") } }
        #expect(listed == .array(layers))
        let bad = try CLI.run(["export", Self.checkpoint, "-o", model, "--int8", "--two-pass-layers", "most"])
        #expect(bad.status != 0 && bad.stderr.contains("--two-pass-layers"))
        // --two-pass-norm-inputs: every block's qkv and up, and block 0 (the default) whole.
        let norm = try CLI.run(["export", checkpoint, "-o", model, "--int8", "--group-size", "32", "--two-pass-norm-inputs",
                                "--eval-tokens", "200"])
        #expect(norm.status == 0, "\(norm.stderr)")
        #expect(norm.stdout.contains("inputs in two passes for 8 of 12 int8 layers"), "\(norm.stdout)")
        let normListed = try TFQFile(path: model).metadata["quantization"]?["two_pass_activations"]
        let normLayers = ["blocks.0.attn.proj.weight", "blocks.0.ffn.down.weight"]
            + (0..<3).flatMap { i in ["blocks.\(i).attn.qkv.weight", "blocks.\(i).ffn.up.weight"] }
        #expect(normListed == .array(normLayers.sorted().map { JSONValue.string($0) }))
        // --scales f32 writes format 1.4's q8; the default, q8f16, half the scale bytes.
        let f32Scales = Self.directory.appendingPathComponent("m.f32scales.tfq").path
        let f32Export = try CLI.run(["export", checkpoint, "-o", f32Scales, "--int8", "--group-size", "32", "--scales", "f32",
                                     "--no-zstd", "--eval-tokens", "200"])
        #expect(f32Export.status == 0, "\(f32Export.stderr)")
        let halfExport = try CLI.run(["export", checkpoint, "-o", model, "--int8", "--group-size", "32", "--no-zstd", "--eval-tokens", "200"])
        #expect(halfExport.status == 0, "\(halfExport.stderr)")
        let f32File = try TFQFile(path: f32Scales), halfFile = try TFQFile(path: model)
        let name = "blocks.1.ffn.up.weight"
        let (a, b) = (try #require(f32File.info(name)), try #require(halfFile.info(name)))
        #expect(a.dtype == .q8 && b.dtype == .q8f16)
        #expect(a.decodedLength - b.decodedLength == 2 * Q8Codec.paddedRows(a.rows) * a.columns / 32)
        let inspect = try CLI.run(["inspect", model])
        #expect(inspect.stdout.contains("q8f16") && inspect.stdout.contains("tfq 1.5"), "\(inspect.stdout)")
    }

    @Test func unpackMakesAZeroCopyFileWithTheSameTensors() throws {
        let packed = Self.directory.appendingPathComponent("p.tfq").path
        let raw = Self.directory.appendingPathComponent("r.tfq").path
        #expect(try CLI.run(["export", Self.checkpoint, "-o", packed, "--fp32", "--zstd", "19", "--eval-tokens", "100"]).status == 0)
        let unpack = try CLI.run(["unpack", packed, "-o", raw])
        #expect(unpack.status == 0, "\(unpack.stderr)")
        let a = try TFQFile(path: packed), b = try TFQFile(path: raw)
        #expect(b.isZeroCopy && b.tensors.map(\.name) == a.tensors.map(\.name))
        for info in a.tensors {
            let unpacked = try b.bytes(info.name)
            #expect(Array(a.bytes(info)) == Array(unpacked), "\(info.name)")
        }
        // The same metadata, but the compression level of a raw file is 0.
        #expect(a.metadata["quantization"]?["zstd_level"] == .integer(19))
        #expect(b.metadata["quantization"]?["zstd_level"] == .integer(0))
        var expected = a.metadata
        if case .object(var quantization) = expected["quantization"] {
            quantization["zstd_level"] = .integer(0)
            expected["quantization"] = .object(quantization)
        }
        #expect(b.metadata == expected)
        // Unpacking a raw file changes nothing.
        let again = Self.directory.appendingPathComponent("r2.tfq").path
        #expect(try CLI.run(["unpack", raw, "-o", again]).status == 0)
        #expect(try TFQFile(path: again).metadataJSON == b.metadataJSON)
    }

    @Test func badInputIsOneLine() throws {
        let model = Self.directory.appendingPathComponent("m.fp32.tfq").path
        #expect(try CLI.run(["export", Self.checkpoint, "-o", model, "--fp32", "--no-zstd", "--eval-tokens", "100"]).status == 0)
        let out = Self.directory.appendingPathComponent("never.tfq").path
        let cases: [([String], String)] = [
            (["export", Self.checkpoint, "-o", out], "choose exactly one of --int8, --fp16, --fp32"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--group-size", "24"], "does not divide"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--group-size", "6"], "multiple of 4"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--embedding", "fp16", "--two-pass-classifier"],
             "--two-pass-classifier is for int8 vocabulary tables, and --embedding fp16 keeps them fp16"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--embedding", "fp32", "--table-group-size", "16"],
             "--table-group-size is for int8 vocabulary tables"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--embedding", "int8", "--table-group-size", "24"],
             "--table-group-size 24 does not divide"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--table-group-size", "6"], "--table-group-size 6 is not supported"),
            (["export", Self.checkpoint, "-o", out, "--fp32", "--two-pass-classifier"], "--two-pass-classifier applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--fp16", "--two-pass-norm-inputs"], "--two-pass-norm-inputs applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--fp32", "--scales", "f16"], "--scales applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--gguf", "--scales", "f32"], "--scales does not apply to --gguf"),
            // ArgumentParser's own errors, cut to their first line with where the usage is.
            (["export", Self.checkpoint, "-o", out, "--int8", "--scales", "bf16"],
             "The value 'bf16' is invalid for '--scales <scales>'. Please provide one of 'f16' and 'f32'. (see 'tfq export --help')"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--bogus"], "Unknown option '--bogus'"),
            (["run"], "Missing expected argument '<model>' — The model file (.tfq). (see 'tfq run --help')"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--group-size", "6x"],
             "The value '6x' is invalid for '--group-size <group-size>' — Weights per scale group: a multiple of 4"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--gguf", "--two-pass-norm-inputs"], "--two-pass-norm-inputs does not apply to --gguf"),
            (["export", Self.checkpoint, "-o", out, "--fp16", "--table-group-size", "16"], "--table-group-size applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--gguf", "--two-pass-classifier"], "--two-pass-classifier does not apply to --gguf"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--accuracy", "target", "--group-size", "32"],
             "--accuracy target chooses the group sizes and the layers in two passes itself; give --accuracy fast to set them"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--accuracy", "target", "--two-pass-layers", "1"], "--accuracy target chooses"),
            (["export", Self.checkpoint, "-o", out, "--fp32", "--accuracy", "fast"], "--accuracy applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--gguf", "--accuracy", "fast"], "--accuracy does not apply to --gguf"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--accuracy", "best"],
             "The value 'best' is invalid for '--accuracy <accuracy>'"),
            (["export", Self.checkpoint, "-o", Self.directory.path + "/no/such/dir/x.tfq", "--int8", "--group-size", "32"], "cannot create"),
            (["export", Self.directory.path + "/corpus.txt", "-o", out, "--int8"], "not a tfq file"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--zstd", "30"], "--zstd level must be 1 to 19"),
            (["export", Self.checkpoint, "-o", out, "--fp16", "--two-pass-layers", "2"], "--two-pass-layers applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--fp32", "--embedding", "fp32"], "--embedding applies to --int8 exports only"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--two-pass-layers=-1"], "--two-pass-layers must be 0 or more"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--no-gptq", "--calibration-data", Self.directory.path + "/corpus.txt"],
             "--calibration-data is for GPTQ, which --no-gptq turns off"),
            (["export", Self.checkpoint, "-o", out, "--int8", "--calibration-data", Self.directory.path + "/missing.txt"], "cannot open"),
            (["run", model, "--prompt", "ALPHA", "-n", "3"], "not in the model's vocabulary"),
            (["run", model, "-n", "0"], "-n must be at least 1"),
            (["run", model, "--threads", "0"], "--threads"),
            (["run", model, "--prompt", String(repeating: "alpha ", count: 10)], "context is 32"),
            (["run", Self.directory.path + "/missing.tfq"], "cannot open"),
            (["run", Self.checkpoint + ".metrics.jsonl"], "not a tfq file"),
        ]
        for (arguments, expected) in cases {
            let result = try CLI.run(arguments)
            #expect(result.status != 0, "\(arguments)")
            let lines = result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains(expected), "\(arguments): \(result.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: out))
        // A truncated model is refused, not crashed on.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: model))
        let truncated = Self.directory.appendingPathComponent("t.tfq").path
        try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: truncated))
        let result = try CLI.run(["run", truncated])
        #expect(result.status == 1 && result.stderr.contains("truncated"))
    }
}

/// tools/examples/swift: an app that links the TFQRuntime library alone.
@Suite struct SwiftExampleTests {
    @Test func anAppLinkingOnlyTheRuntimePrintsWhatTfqRunPrints() throws {
        let expected = try CLI.run(["run", BenchCommandTests.golden, "--prompt", "the king", "-n", "40"])
        let example = try CLI.run([BenchCommandTests.golden, "the king", "40"], program: "tfq-swift-example")
        #expect(expected.status == 0 && example.status == 0, "\(example.stderr)")
        #expect(example.stdout == expected.stdout && expected.stdout.count > 40)
        #expect(example.stderr == "40 tokens, stopped: length\n")
        let missing = try CLI.run(["/no/such/model.tfq"], program: "tfq-swift-example")
        #expect(missing.status == 1 && missing.stdout.isEmpty && missing.stderr.contains("/no/such/model.tfq"))
    }
}

@Suite struct BenchCommandTests {
    static let golden = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TFQRuntimeTests/Fixtures/golden.int8.tfq").path

    @Test func accuracyOfAModelAgainstItselfIsPerfect() throws {
        let directory = try CLI.temporaryDirectory()
        let text = directory.appendingPathComponent("held-out.txt").path
        // "X" is outside the vocabulary: those positions are skipped and counted.
        try "the king sees the moon.\nour queen calls her crown. X a dog finds a fish.\n".write(toFile: text, atomically: true, encoding: .utf8)
        let result = try CLI.run(["bench", "accuracy", "--reference", Self.golden, "--model", Self.golden, "--data", text, "--prompts", "2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(result.stdout.utf8))
        #expect(report["top1_agreement_percent"] == .integer(100) || report["top1_agreement_percent"] == .number(100))
        #expect(report["delta_perplexity_percent"] == .integer(0) || report["delta_perplexity_percent"] == .number(0))
        #expect(report["skipped"] == .integer(2))
        #expect(report["greedy_tokens_compared"] == report["greedy_tokens_matching"])
        #expect(report["kv_cache"] == .string("f16") && report["reference_kv_cache"] == .string("f16"))
        if case .number(let bpb)? = report["model"]?["bits_per_byte"] { #expect(bpb > 0 && bpb < 8) } else { Issue.record("no bits per byte") }

        // --kv-cache applies to the measured model only: an f32 cache against the reference's
        // default f16 one is no longer the same model, but a close one.
        let exactCache = try CLI.run(["bench", "accuracy", "--reference", Self.golden, "--model", Self.golden, "--data", text,
                                      "--prompts", "0", "--kv-cache", "f32", "--json"])
        #expect(exactCache.status == 0, "\(exactCache.stderr)")
        let cached = try JSONDecoder().decode(JSONValue.self, from: Data(exactCache.stdout.utf8))
        #expect(cached["kv_cache"] == .string("f32") && cached["reference_kv_cache"] == .string("f16"))
        if case .number(let kl)? = cached["mean_kl"] { #expect(kl > 0 && kl < 1e-3, "mean KL \(kl)") } else { Issue.record("no mean KL") }
    }

    @Test func latencyReportsEveryMeasure() throws {
        let result = try CLI.run(["bench", "latency", Self.golden, "--threads", "1,2", "--prompt-lengths", "4,8", "-n", "4", "--runs", "2", "--json"])
        #expect(result.status == 0, "\(result.stderr)")
        let report = try JSONDecoder().decode(JSONValue.self, from: Data(result.stdout.utf8))
        guard case .array(let rows)? = report["rows"] else { Issue.record("no rows"); return }
        #expect(rows.count == 2)
        guard case .array(let decode)? = rows[0]["decode"], case .array(let prompts)? = rows[0]["prompts"] else { Issue.record("no decode"); return }
        #expect(decode.count == 3 && prompts.count == 2)
        #expect(rows[0]["load_ms"]?["median"] != nil)
        #expect(report["kv_cache"] == .string("f16"))
        let exactCache = try CLI.run(["bench", "latency", Self.golden, "--threads", "1", "--prompt-lengths", "4", "-n", "2", "--runs", "1",
                                      "--kv-cache", "f32", "--json"])
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(exactCache.stdout.utf8))["kv_cache"] == .string("f32"))
        let bad = try CLI.run(["bench", "latency", Self.golden, "--threads", "one"])
        #expect(bad.status != 0 && bad.stderr.contains("--threads"))
        let busy = try CLI.run(["bench", "latency", Self.golden, "--threads", "1,2", "--prompt-lengths", "4", "-n", "2", "--runs", "1",
                                "--busy", "2", "--json"])
        #expect(busy.status == 0, "\(busy.stderr)")
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(busy.stdout.utf8))["busy_threads"] == .integer(2))
        let tooBusy = try CLI.run(["bench", "latency", Self.golden, "--busy", "-1"])
        #expect(tooBusy.status != 0 && tooBusy.stderr.contains("--busy"))
    }

    /// `tfq run` plans its memory before it allocates: a limit below the plan is refused in
    /// one line that gives the figures; the same run under a sufficient limit prints the
    /// usual text.
    @Test func runRefusesWhatDoesNotFitInMemory() throws {
        let refused = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "8", "--memory-limit", "16K"])
        #expect(refused.status != 0)
        #expect(refused.stderr.contains("not enough memory: this run needs about") && refused.stderr.contains("16 KB is the limit"), "\(refused.stderr)")
        #expect(refused.stderr.contains("positions") && refused.stdout.isEmpty)
        let fits = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "8", "--memory-limit", "64M", "--json"])
        let unlimited = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "8", "--json"])
        #expect(fits.status == 0 && unlimited.status == 0, "\(fits.stderr)")
        let a = try JSONDecoder().decode(JSONValue.self, from: Data(fits.stdout.utf8)), b = try JSONDecoder().decode(JSONValue.self, from: Data(unlimited.stdout.utf8))
        #expect(a["token_ids"] == b["token_ids"] && a["token_ids"] != nil)
        // Keeping start-up's code pages changes memory and time, never the output.
        let kept = try CLI.run(["run", Self.golden, "--prompt", "the king", "-n", "8", "--keep-startup-pages", "--json"])
        let keptReport = try JSONDecoder().decode(JSONValue.self, from: Data(kept.stdout.utf8))
        #expect(kept.status == 0 && keptReport["token_ids"] == b["token_ids"])
        for size in ["0", "-5M", "12X", "99999999999G"] {
            let bad = try CLI.run(["run", Self.golden, "--memory-limit", size])
            #expect(bad.status != 0 && bad.stderr.contains("--memory-limit"), "\(size)")
        }
    }
}
