import ArgumentParser
import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQModel
import TFQRuntime
#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr are mutable C globals
#endif

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Generate text with a model: mmap load, batched prompt, KV-cache decoding.",
        discussion: """
        Greedy (argmax, ties to the lowest id) unless --temperature > 0. Text streams to stdout
        as it is produced. Without a prompt (or with an empty one), generation starts from a
        newline if the vocabulary has one, else from token 0 (llama2.c models: from BOS).
        Generation stops after -n tokens, when the context is full, or when the model ends the
        text (llama2.c models: BOS, as llama2.c's run does; imported Hugging Face models: their
        end-of-text token) unless --ignore-eos; stderr says which.
        """
    )

    @Argument(help: "The model file (.tfq).") var model: String
    @Option(help: "The prompt text.") var prompt: String?
    @Option(help: "Read the prompt from a file.") var promptFile: String?
    @Option(help: ArgumentHelp("The prompt as token ids, e.g. \"5 17 42\" (to compare with another tool id for id).", valueName: "IDS"))
    var promptIds: String?
    @Flag(help: "Do not stop at the model's end-of-text token.") var ignoreEos = false
    @Option(name: .customShort("n"), help: "Tokens to generate.") var count = 256
    @Option(help: "0: greedy; above 0: sample from softmax(logits / T).") var temperature: Float = 0
    @Option(help: "Sample among the k most likely tokens (0: all).") var topK = 0
    @Option(help: "Sample among the most likely tokens up to probability p.") var topP: Float = 1
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @OptionGroup var threading: ThreadOptions
    @Option(help: KVCacheOption.help) var kvCache: KVCachePrecision?
    @Option(help: ArgumentHelp("Refuse to run if the model and its session would need more than this (bytes, or with a K, M or G suffix; default: the memory the system has available).",
                               valueName: "SIZE")) var memoryLimit: String?
    @Flag(help: "Check every tensor checksum and every int8 value before running (reads the whole file; see README).")
    var verify = false
    @Flag(help: "Keep the code pages start-up used resident: the first token comes ~3 ms sooner, peak RSS is ~8 MB higher (README).")
    var keepStartupPages = false
    @Flag(help: "Timing and memory figures on stderr.") var stats = false
    @Flag(help: "One JSON object with the text, the token ids and the figures.") var json = false

    func validate() throws {
        if [prompt != nil, promptFile != nil, promptIds != nil].filter({ $0 }).count > 1 {
            throw UsageError("give one of --prompt, --prompt-file and --prompt-ids")
        }
        if count < 1 { throw UsageError("-n must be at least 1 (got \(count))") }
        if !(temperature >= 0) || !temperature.isFinite { throw UsageError("--temperature must be 0 or more") }
        if topK < 0 { throw UsageError("--top-k must not be negative") }
        if !(topP > 0 && topP <= 1) { throw UsageError("--top-p must be in (0, 1]") }
        try threading.check()
        if let memoryLimit, ByteSize.parse(memoryLimit) == nil {
            throw UsageError("--memory-limit must be a positive size such as 512M or 2G (got '\(memoryLimit)')")
        }
    }

    func run() throws {
        let start = MonotonicClock.seconds()
        let loaded = try Model(path: model, verify: verify)
        let openSeconds = MonotonicClock.seconds() - start

        var promptTokens: [Int32]
        if let promptIds {
            promptTokens = try TokenizeCommand.parseIDs(Array(promptIds.utf8), vocabularySize: loaded.config.vocabSize, source: "--prompt-ids")
        } else if let promptFile {
            // The file's bytes as they are, as `tfq tokenize` reads stdin: byte-level
            // tokenizers (byte, bpe, llama2c's byte fallback) encode any bytes; char needs UTF-8.
            let bytes: [UInt8]
            do { bytes = try FileBytes.read(promptFile) } catch { throw UsageError("\(promptFile): \(error)") }
            do { promptTokens = try loaded.tokenizer.encode(bytes: bytes) } catch { throw UsageError("\(promptFile): \(error)") }
        } else {
            do { promptTokens = try loaded.tokenizer.encode(prompt ?? "") } catch { throw UsageError("the prompt: \(error)") }
        }
        if promptTokens.isEmpty {
            promptTokens = [(try? loaded.tokenizer.encode("\n").first) ?? 0]
        }
        let context = loaded.config.contextLength
        guard promptTokens.count < context else {
            throw UsageError("the prompt is \(promptTokens.count) tokens; the model's context is \(context), leaving no room to generate")
        }
        // The session holds only the positions this run can reach, and must fit in memory.
        let plan = MemoryPlan(model: loaded, kvCache: kvCache, capacity: promptTokens.count + min(count, context))
        let limit = memoryLimit.flatMap(ByteSize.parse)
        // Against a limit, everything counts; against what the system has available, what the
        // open model already holds does not (it is no longer available).
        let budget: (needed: Int, available: Int)? = limit.map { (plan.totalBytes, $0) }
            ?? ProcessMemory.systemAvailableBytes().map { (plan.bytesStillNeeded, $0) }
        if let (needed, available) = budget, needed > available {
            let size = ByteSize.describe
            throw UsageError("not enough memory: this run needs about \(size(needed)) (weights \(size(plan.weightBytes)), "
                             + "\(plan.kvCache.rawValue) KV cache \(size(plan.cacheBytes)) for \(plan.positions) positions, buffers "
                             + "\(size(plan.sessionBytes - plan.cacheBytes))) and \(size(available)) \(limit == nil ? "is available" : "is the limit"); "
                             + "generate fewer tokens (-n)" + (plan.kvCache == .f32 ? ", use --kv-cache f16" : "") + " or free memory")
        }
        // Everything start-up needed is done: give its code pages back (the weights stay).
        // Before the session starts its worker threads, so no other thread is running code
        // whose pages go; what decoding needs faults back in from the page cache.
        if !keepStartupPages { ProcessMemory.releaseCleanFilePages(keeping: [model]) }
        let sessionStart = MonotonicClock.seconds()
        let session = try Session(model: loaded, threads: threading.count, kvCache: kvCache, capacity: plan.positions)
        let loadSeconds = openSeconds + (MonotonicClock.seconds() - sessionStart)

        var generated: [Int32] = []
        var output = ""
        var firstTokenAt = 0.0, prefillSeconds = 0.0
        let parameters = SamplingParameters(temperature: temperature, topK: topK, topP: topP, seed: seed)
        let generationStart = MonotonicClock.seconds()
        let reason = try session.generate(prompt: promptTokens, maxTokens: count, sampling: parameters, ignoringEndOfText: ignoreEos) { token, piece in
            if generated.isEmpty {
                firstTokenAt = MonotonicClock.seconds()
                prefillSeconds = firstTokenAt - generationStart
            }
            // The stop token comes only to carry an unfinished character's U+FFFD: text, not an id.
            if ignoreEos || token != loaded.tokenizer.stopToken { generated.append(token) }
            output += piece
            if !json && !piece.isEmpty {
                fputs(piece, stdout)
                fflush(stdout)
            }
            return true
        }
        let end = MonotonicClock.seconds()
        if !json { print(""); fflush(stdout) }
        let decodeTokens = max(0, generated.count - 1)
        let decodeSeconds = end - firstTokenAt
        let figures = RunFigures(
            prompt_tokens: promptTokens.count, generated_tokens: generated.count,
            load_ms: loadSeconds * 1000, ttft_ms: (firstTokenAt - start) * 1000,
            prefill_tokens_per_second: Double(promptTokens.count) / max(prefillSeconds, 1e-9),
            decode_tokens_per_second: decodeTokens > 0 ? Double(decodeTokens) / max(decodeSeconds, 1e-9) : 0,
            peak_rss_bytes: ProcessMemory.peakResidentBytes(), text: output,
            prompt_token_ids: promptTokens, token_ids: generated,
            stop_reason: reason.rawValue, kv_cache: session.kvCachePrecision.rawValue,
            fused_multiply_add: Arithmetic.fusedMultiplyAdd)
        if json {
            print(try JSONOutput.string(figures))
        }
        let why: String
        switch reason {
        case .context: why = "stopped: the context of \(context) tokens is full"
        case .endOfText: why = "stopped: the model ended the text (token \(loaded.tokenizer.stopToken ?? 0))"
        case .length, .cancelled: why = "stopped: generated \(generated.count) tokens (-n)"
        }
        fputs(why + "\n", stderr)
        if stats {
            fputs("load \(format2(figures.load_ms)) ms | prompt \(figures.prompt_tokens) tokens | time to first token \(format2(figures.ttft_ms)) ms"
                  + " | prefill \(Int(figures.prefill_tokens_per_second)) tok/s | decode \(Int(figures.decode_tokens_per_second)) tok/s"
                  + " | peak RSS \(figures.peak_rss_bytes >> 20) MB\n", stderr)
        }
    }
}

struct RunFigures: Encodable {
    var prompt_tokens: Int
    var generated_tokens: Int
    var load_ms: Double
    var ttft_ms: Double
    var prefill_tokens_per_second: Double
    var decode_tokens_per_second: Double
    var peak_rss_bytes: Int
    var text: String
    var prompt_token_ids: [Int32]
    var token_ids: [Int32]
    var stop_reason: String
    var kv_cache: String
    /// Whether this build's multiply-adds round once (formats/tfq.md §11): with kv_cache,
    /// what an implementation of the spec needs to reproduce the tokens bit for bit.
    var fused_multiply_add: Bool
}

/// `--kv-cache f32|f16`: how a session caches keys and values.
enum KVCacheOption {
    static let help = ArgumentHelp("How the KV cache stores keys and values: f32 or f16 (default: f16 for an int8 model, f32 otherwise).",
                                   valueName: "f32|f16")
}

extension KVCachePrecision: ExpressibleByArgument {}

/// Sizes as people write them: `4096`, `64K`, `512M`, `2G` (binary multiples).
enum ByteSize {
    static func parse(_ text: String) -> Int? {
        let shifts: [Character: Int] = ["K": 10, "k": 10, "M": 20, "m": 20, "G": 30, "g": 30]
        var digits = Substring(text), shift = 0
        if let last = text.last, let s = shifts[last] { digits = digits.dropLast(); shift = s }
        guard let value = Int(digits), value > 0, value <= Int.max >> shift else { return nil }
        return value << shift
    }

    /// `123 KB`, `45.6 MB`, `1.2 GB`.
    static func describe(_ bytes: Int) -> String {
        if bytes < 1 << 20 { return "\((bytes + 1023) >> 10) KB" }
        let mb = Double(bytes) / Double(1 << 20)
        return mb < 1024 ? "\(format1(mb)) MB" : "\(format1(mb / 1024)) GB"
    }
}
