import ArgumentParser
import FoundationEssentials
import TFQFormat
import TFQImport
import TFQModel
#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr are mutable C globals
#endif

/// `tfq import FORMAT …`: other tools' checkpoints → .tfq.
struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert another tool's checkpoint to a .tfq model.",
        subcommands: [Llama2cImport.self, SafetensorsImport.self, GGUFImport.self]
    )
}

struct Llama2cImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llama2c",
        abstract: "Import a llama2.c checkpoint (version 0, 1 or 2) and its tokenizer.bin.",
        discussion: """
        Versions 0 (run.c's legacy format) and 1 give an fp32 model: quantize it with
        `tfq export --int8 --eval-data FILE`. Version 2 (int8, per-group scales) keeps its int8
        values and scales. Without --tokenizer, tokenizer.bin is looked for next to the
        checkpoint, then in the current directory (llama2.c's run looks there only).
        """
    )

    @Argument(help: "The llama2.c checkpoint (.bin).") var checkpoint: String
    @Option(help: "llama2.c's tokenizer.bin for this model.") var tokenizer: String?
    @Option(name: .shortAndLong, help: "The .tfq model to write.") var output: String

    func run() throws {
        let tokenizerPath = try tokenizer ?? Self.defaultTokenizer(near: checkpoint)
        let summary: ImportSummary
        do {
            summary = try Llama2cImporter.importCheckpoint(checkpoint, tokenizer: tokenizerPath, output: output)
        } catch let error as ImportError {
            throw UsageError(error.description)
        }
        let c = summary.config
        var line = "wrote \(output): llama \(c.layers) layers, dim \(c.dim), \(c.heads) heads (\(c.kvHeads) kv), ff \(c.ffDim), "
            + "vocab \(c.vocabSize), context \(c.contextLength), \(c.tieEmbeddings ? "shared" : "separate") classifier; "
            + "\(summary.fileBytes) bytes, from llama2.c version \(summary.version)"
        if summary.version == 2 { line += "; \(summary.keptQuantized.count) tensors kept int8" }
        print(line)
        for (name, reason) in summary.dequantized.sorted(by: { $0.key < $1.key }) {
            fputs("note: \(name) stored as f32: \(reason)\n", stderr)
        }
    }

    static func defaultTokenizer(near checkpoint: String) throws -> String {
        let directory = checkpoint.lastIndex(of: "/").map { String(checkpoint[...$0]) } ?? ""
        for candidate in [directory + "tokenizer.bin", "tokenizer.bin"] where access(candidate, R_OK) == 0 {
            return candidate
        }
        throw UsageError("no tokenizer.bin next to \(checkpoint) or in the current directory: give --tokenizer FILE")
    }
}

struct SafetensorsImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safetensors",
        abstract: "Import a Hugging Face GPT-2 or Llama model (safetensors) and its tokenizer.json.",
        discussion: """
        PATH is the model's directory as save_pretrained writes it (config.json, then
        model.safetensors or the shards of model.safetensors.index.json, and tokenizer.json),
        or one of those files. GPT2LMHeadModel and LlamaForCausalLM are read, with F32, F16 or
        BF16 weights, converted exactly to an fp32 model; quantize it with `tfq export --int8`.
        The tokenizer must be byte-level BPE as GPT-2's (the tokenizers library's ByteLevel) or
        SentencePiece-style BPE with byte fallback as Llama 2's (Metaspace or Llama's
        normalizer, BOS first); its token ids are kept, so `tfq run --prompt-ids` and `--json`
        speak the model's ids.
        """
    )

    @Argument(help: "The model directory, or its config.json, model.safetensors or model.safetensors.index.json.") var path: String
    @Option(help: "The tokenizer.json to use (default: the one in the model's directory).") var tokenizer: String?
    @Option(name: .shortAndLong, help: "The .tfq model to write.") var output: String

    func run() throws {
        let summary: HuggingFaceImporter.Summary
        do {
            summary = try HuggingFaceImporter.importModel(path, tokenizer: tokenizer, output: output)
        } catch let error as ImportError {
            throw UsageError(error.description)
        }
        let c = summary.config
        let kv = c.arch == .llama ? " (\(c.kvHeads) kv)" : ""
        let dtypes = summary.dtypes.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("wrote \(output): \(summary.modelType) \(c.layers) layers, dim \(c.dim), \(c.heads) heads\(kv), ff \(c.ffDim), "
              + "vocab \(c.vocabSize), context \(c.contextLength), \(c.tieEmbeddings ? "shared" : "separate") classifier; "
              + "\(summary.fileBytes) bytes fp32, from \(dtypes) tensors")
        if let original = summary.contextClampedFrom {
            fputs("note: the model's context of \(original) positions is cut to tfq's limit of \(c.contextLength)\n", stderr)
        }
    }
}

struct GGUFImport: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gguf",
        abstract: "Import a llama.cpp GGUF file (llama or gpt2 architecture; F32, F16, BF16 or Q8_0).",
        discussion: """
        Q8_0 tensors keep their int8 values and f16 scales as tfq's q8f16 with groups of 32, so the
        model runs with the weights llama.cpp runs; float tensors are stored fp32. The
        tokenizer comes along: llama (SentencePiece) as llama2.c's, gpt2 as byte-level BPE
        with GPT-2's pre-tokenizer (other pre-tokenizers are refused).
        """
    )

    @Argument(help: "The GGUF file.") var file: String
    @Option(name: .shortAndLong, help: "The .tfq model to write.") var output: String

    func run() throws {
        let summary: GGUFImporter.Summary
        do {
            summary = try GGUFImporter.importModel(file, output: output)
        } catch let error as ImportError {
            throw UsageError(error.description)
        }
        let c = summary.config
        let types = summary.types.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        print("wrote \(output): \(summary.architecture) \(c.layers) layers, dim \(c.dim), \(c.heads) heads, ff \(c.ffDim), "
              + "vocab \(c.vocabSize), context \(c.contextLength); \(summary.fileBytes) bytes, from \(types) tensors"
              + (summary.keptQuantized > 0 ? "; \(summary.keptQuantized) tensors kept int8" : ""))
    }
}
