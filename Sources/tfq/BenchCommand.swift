import ArgumentParser
import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQModel
import TFQRuntime
#if canImport(Glibc)
import Glibc
#endif

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a model: accuracy against a reference, or latency.",
        discussion: "Training throughput: `tfq train ... --json` reports tokens_per_second (see BENCHMARKS.md).",
        subcommands: [BenchAccuracyCommand.self, BenchLatencyCommand.self]
    )
}

struct BenchAccuracyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accuracy",
        abstract: "Compare a model with a reference (e.g. int8 with its fp32 checkpoint) on the same positions of a text."
    )

    @Option(help: "The reference: a checkpoint or model file.") var reference: String
    @Option(help: "The model to measure.") var model: String
    @Option(help: "Held-out text.") var data: String
    @Option(help: "Positions to measure.") var tokens = 32_768
    @Option(help: "Prompts for greedy-continuation agreement.") var prompts = 16
    @OptionGroup var threading: ThreadOptions
    @Option(help: ArgumentHelp("The measured model's KV cache: f32 or f16 (default: f16 for an int8 model, f32 otherwise; the reference always has its default).",
                               valueName: "f32|f16")) var kvCache: KVCachePrecision?
    @Flag(help: "One JSON object instead of the table.") var json = false

    func validate() throws {
        if tokens < 1 || prompts < 0 { throw UsageError("--tokens must be at least 1 and --prompts not negative") }
        try threading.check()
    }

    func run() throws {
        let threadCount = threading.count
        let referenceModel = try Model(path: reference), candidateModel = try Model(path: model)
        guard referenceModel.tokenizer == candidateModel.tokenizer else {
            throw UsageError("\(model) and \(reference) have different tokenizers; their losses are not comparable")
        }
        let bytes: [UInt8]
        do { bytes = try FileBytes.read(data) } catch { throw UsageError("\(data): \(error)") }
        guard let text = String(validating: bytes, as: UTF8.self) else { throw UsageError("\(data): not valid UTF-8 text") }
        let ids = candidateModel.tokenizer.encodeAllowingUnknown(text)
        let a = try Session(model: referenceModel, threads: threadCount)
        let b = try Session(model: candidateModel, threads: threadCount, kvCache: kvCache)
        let c = try ModelComparison.measure(reference: a, candidate: b, tokens: ids, maxPositions: tokens)
        guard c.positions > 0 else { throw UsageError("\(data): no position the vocabulary can encode") }
        let greedy = try continuationAgreement(a, b, ids: ids)
        let report = AccuracyReport(
            positions: c.positions, skipped: c.skipped,
            reference: .init(cross_entropy: c.referenceCrossEntropy, perplexity: exp(c.referenceCrossEntropy), bits_per_byte: c.referenceBitsPerByte),
            model: .init(cross_entropy: c.candidateCrossEntropy, perplexity: exp(c.candidateCrossEntropy), bits_per_byte: c.candidateBitsPerByte),
            delta_perplexity_percent: (exp(c.candidateCrossEntropy - c.referenceCrossEntropy) - 1) * 100,
            top1_agreement_percent: c.top1AgreementPercent, mean_kl: c.meanKL, max_kl: c.maxKL,
            greedy_prompts: greedy.prompts, greedy_tokens_compared: greedy.compared, greedy_tokens_matching: greedy.matching,
            greedy_agreement_percent: greedy.compared > 0 ? Double(greedy.matching) / Double(greedy.compared) * 100 : 0,
            kv_cache: b.kvCachePrecision.rawValue, reference_kv_cache: a.kvCachePrecision.rawValue)
        if json { print(try JSONOutput.string(report)); return }
        print(Table.render(header: ["\(c.positions) positions", "cross-entropy", "perplexity", "bits/byte"], rows: [
            ["reference", format4(c.referenceCrossEntropy), format4(report.reference.perplexity), format4(c.referenceBitsPerByte)],
            ["model", format4(c.candidateCrossEntropy), format4(report.model.perplexity), format4(c.candidateBitsPerByte)],
        ], rightAligned: [1, 2, 3]))
        print("Δppl \(format4(report.delta_perplexity_percent))%  top-1 agreement \(format4(c.top1AgreementPercent))%  "
              + "KL mean \(scientific(c.meanKL)) max \(scientific(c.maxKL))  (KV cache: model \(report.kv_cache), reference \(report.reference_kv_cache))")
        print("greedy continuations: \(greedy.matching) of \(greedy.compared) tokens match over \(greedy.prompts) prompts (\(format2(report.greedy_agreement_percent))%)"
              + (c.skipped > 0 ? "\n\(c.skipped) positions skipped: characters outside the vocabulary" : ""))
    }

    /// From `prompts` prompts spread over the text, 64 greedy tokens from each model,
    /// compared position by position.
    private func continuationAgreement(_ a: Session, _ b: Session, ids: [Int32]) throws -> (prompts: Int, compared: Int, matching: Int) {
        let context = min(a.model.config.contextLength, b.model.config.contextLength)
        let promptLength = max(1, min(32, context / 4)), continuation = min(64, context - promptLength)
        guard continuation > 0, ids.count > promptLength else { return (0, 0, 0) }
        var used = 0, compared = 0, matching = 0
        for k in 0..<prompts {
            let start = (ids.count - promptLength) * k / max(1, prompts)
            let prompt = Array(ids[start..<(start + promptLength)])
            if prompt.contains(-1) { continue }
            var outputs: [[Int32]] = []
            for session in [a, b] {
                session.reset()
                var tokens: [Int32] = []
                try session.generate(prompt: prompt, maxTokens: continuation) { t, _ in tokens.append(t); return true }
                outputs.append(tokens)
            }
            used += 1
            compared += min(outputs[0].count, outputs[1].count)
            matching += zip(outputs[0], outputs[1]).filter { $0 == $1 }.count
        }
        return (used, compared, matching)
    }
}

struct AccuracyReport: Encodable {
    struct Side: Encodable { var cross_entropy, perplexity, bits_per_byte: Double }
    var positions, skipped: Int
    var reference, model: Side
    var delta_perplexity_percent, top1_agreement_percent, mean_kl, max_kl: Double
    var greedy_prompts, greedy_tokens_compared, greedy_tokens_matching: Int
    var greedy_agreement_percent: Double
    /// The measured model's KV cache, and the reference's (each its default unless --kv-cache).
    var kv_cache, reference_kv_cache: String
}

struct BenchLatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Load time, time to first token, prefill and decode speed, per thread count: medians over runs after a warm-up.",
        discussion: "Thread counts take turns run by run. --busy N keeps N spinning threads running beside the measurement, as other programs on a board would: compare --threads 1,2 with --busy 1 on a 2-core machine."
    )

    @Argument(help: "The model file.") var model: String
    @Option(help: "Thread counts, comma-separated.") var threads = "1,2"
    @Option(help: "Prompt lengths, comma-separated.") var promptLengths = "16,64,128"
    @Option(name: .customShort("n"), help: "Tokens decoded per measurement.") var count = 32
    @Option(help: "Measured runs (after one warm-up).") var runs = 5
    @Option(help: KVCacheOption.help) var kvCache: KVCachePrecision?
    @Option(help: ArgumentHelp("Spinning threads kept running during the measurement, as other programs on a busy board.",
                               valueName: "N")) var busy = 0
    @Flag(help: "One JSON object instead of the table.") var json = false

    func parseList(_ text: String, _ flag: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.filter { $0 != " " }) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) > 0 }) else { throw UsageError("\(flag) must be a comma-separated list of positive numbers") }
        return values.map { $0! }
    }

    func run() throws {
        let threadCounts = try parseList(threads, "--threads"), lengths = try parseList(promptLengths, "--prompt-lengths")
        guard runs >= 1, count >= 1 else { throw UsageError("--runs and -n must be at least 1") }
        guard threadCounts.allSatisfy({ $0 <= 256 }) else { throw UsageError("--threads must be 1 to 256") }
        guard (0...256).contains(busy) else { throw UsageError("--busy must be 0 to 256") }
        let context = try Model(path: model).config.contextLength
        let usable = lengths.filter { $0 + 1 < context }
        guard !usable.isEmpty, count < context else { throw UsageError("the prompt lengths and -n must fit in the context of \(context)") }
        let positions = [("start", 1), ("middle", context / 2), ("end", max(1, context - count - 1))]
        var rows: [LatencyRow] = []
        var cachePrecision = ""
        let load = BusyLoad(threads: busy)
        // Thread counts take turns run by run, so that a change in the machine's load (other
        // programs, frequency) falls on all of them alike.
        var loads: [Int: [Double]] = [:], ttft: [Int: [Int: [Double]]] = [:], prefill: [Int: [Int: [Double]]] = [:]
        var decode: [Int: [String: [Double]]] = [:]
        for run in 0...runs {
            for t in threadCounts {
                let start = MonotonicClock.seconds()
                let loaded = try Model(path: model)
                let session = try Session(model: loaded, threads: t, kvCache: kvCache)
                let loadTime = MonotonicClock.seconds() - start
                cachePrecision = session.kvCachePrecision.rawValue
                let vocab = Int32(loaded.config.vocabSize)
                func prompt(_ n: Int) -> [Int32] { (0..<n).map { Int32(($0 * 7 + 3) % Int(vocab)) } }
                var measured: [(Int, Double)] = []
                for length in usable {
                    session.reset()
                    let t0 = MonotonicClock.seconds()
                    _ = try session.evaluate(prompt(length), borrowingLogits: Sampler.argmax)
                    measured.append((length, MonotonicClock.seconds() - t0))
                }
                var speeds: [(String, Double)] = []
                for (label, position) in positions {
                    session.reset()
                    var token = try session.evaluate(prompt(position), borrowingLogits: Sampler.argmax)
                    let steps = min(count, context - position)
                    let t0 = MonotonicClock.seconds()
                    for _ in 0..<steps { token = try session.evaluate(token: token, borrowingLogits: Sampler.argmax) }
                    speeds.append((label, Double(steps) / (MonotonicClock.seconds() - t0)))
                }
                guard run > 0 else { continue }  // the warm-up
                loads[t, default: []].append(loadTime * 1000)
                for (length, seconds) in measured {
                    ttft[t, default: [:]][length, default: []].append((loadTime + seconds) * 1000)
                    prefill[t, default: [:]][length, default: []].append(Double(length) / seconds)
                }
                for (label, speed) in speeds { decode[t, default: [:]][label, default: []].append(speed) }
            }
        }
        for t in threadCounts {
            rows.append(LatencyRow(threads: t, load_ms: Stat(loads[t]!),
                                   prompts: usable.map { PromptStat(prompt_tokens: $0, ttft_ms: Stat(ttft[t]![$0]!), prefill_tokens_per_second: Stat(prefill[t]![$0]!)) },
                                   decode: positions.map { DecodeStat(position: $0.0, start_token: $0.1, tokens_per_second: Stat(decode[t]![$0.0]!)) }))
        }
        load.stop()
        let file = try TFQFile(path: model)
        let report = LatencyReport(model: model, file_bytes: file.fileLength, zero_copy: file.isZeroCopy, kv_cache: cachePrecision,
                                   runs: runs, busy_threads: busy, peak_rss_bytes: ProcessMemory.peakResidentBytes(), rows: rows)
        if json { print(try JSONOutput.string(report)); return }
        print("\(model): \(file.fileLength) bytes, \(file.isZeroCopy ? "raw (zero-copy)" : "zstd (decoded at load)"), \(cachePrecision) KV cache; "
              + "median [min–max] of \(runs) runs after a warm-up" + (busy > 0 ? "; \(busy) busy thread\(busy == 1 ? "" : "s") beside it" : ""))
        var table: [[String]] = []
        for row in rows {
            table.append(["\(row.threads)", "load", row.load_ms.text(" ms")])
            for p in row.prompts {
                table.append(["\(row.threads)", "prompt \(p.prompt_tokens): time to first token", p.ttft_ms.text(" ms")])
                table.append(["\(row.threads)", "prompt \(p.prompt_tokens): prefill", p.prefill_tokens_per_second.text(" tok/s")])
            }
            for d in row.decode { table.append(["\(row.threads)", "decode from position \(d.start_token) (\(d.position))", d.tokens_per_second.text(" tok/s")]) }
        }
        print(Table.render(header: ["threads", "measure", "median [min–max]"], rows: table))
        print("peak RSS \(report.peak_rss_bytes >> 20) MB")
    }
}

struct Stat: Encodable {
    var median, min, max: Double
    init(_ values: [Double]) {
        let sorted = values.sorted()
        median = sorted[sorted.count / 2]; min = sorted.first!; max = sorted.last!
    }
    func text(_ unit: String) -> String {
        func f(_ v: Double) -> String { v >= 100 ? String(Int(v.rounded())) : format2(v) }
        return "\(f(median))\(unit) [\(f(min))–\(f(max))]"
    }
}

struct PromptStat: Encodable { var prompt_tokens: Int; var ttft_ms: Stat; var prefill_tokens_per_second: Stat }
struct DecodeStat: Encodable { var position: String; var start_token: Int; var tokens_per_second: Stat }
struct LatencyRow: Encodable { var threads: Int; var load_ms: Stat; var prompts: [PromptStat]; var decode: [DecodeStat] }
struct LatencyReport: Encodable {
    var model: String; var file_bytes: Int; var zero_copy: Bool; var kv_cache: String; var runs: Int; var busy_threads: Int; var peak_rss_bytes: Int
    var rows: [LatencyRow]
}
