import Foundation
import Testing
import TFQExport
import TFQFormat
import TFQKernels
import TFQModel
@testable import TFQRuntime
import TFQTrain

/// A small trained checkpoint, made once per test process.
enum Fixture {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-runtime-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static let corpus: String = {
        let subjects = ["the cat", "a dog", "my friend", "the king", "our queen"]
        let verbs = ["sees", "likes", "finds", "keeps", "calls"]
        let objects = ["the bird.", "a fish.", "the moon.", "her crown.", "his horse."]
        var random = Xoshiro256(seed: 3)
        let text = (0..<1500).map { _ in
            "\(subjects[Int(random.next() % 5)]) \(verbs[Int(random.next() % 5)]) \(objects[Int(random.next() % 5)])"
        }.joined(separator: "\n") + "\n"
        let path = directory.appendingPathComponent("corpus.txt").path
        try! text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }()

    /// 2 layers, dim 64, context 256, GELU, biases: trained 150 steps.
    static let checkpoint: String = {
        var options = TrainingOptions()
        options.layers = 2; options.heads = 4; options.dim = 64; options.context = 256; options.batch = 4
        options.steps = 150; options.warmup = 10; options.learningRate = 3e-3; options.evalEvery = 0; options.evalBatches = 2
        options.activation = .gelu
        let path = directory.appendingPathComponent("model.ckpt.tfq").path
        let data = try! Corpus(path: corpus, validationPath: nil, tokenizer: .char)
        let trainer = try! Trainer(options: options, corpus: data, checkpointPath: path, threads: 2)
        _ = try! trainer.run()
        return path
    }()

    /// Dim 128, context 32, untrained: a shape where 32, 64, 128 and whole-row groups all fit
    /// and the fp32 position table is small beside the matrices.
    static let wideCheckpoint: String = {
        var options = TrainingOptions()
        options.layers = 2; options.heads = 4; options.dim = 128; options.context = 32; options.batch = 2
        options.steps = 0; options.evalEvery = 0; options.evalBatches = 1
        let path = directory.appendingPathComponent("wide.ckpt.tfq").path
        let data = try! Corpus(path: corpus, validationPath: nil, tokenizer: .char)
        _ = try! Trainer(options: options, corpus: data, checkpointPath: path, threads: 2).run()
        return path
    }()

    static func export(_ precision: ExportOptions.Precision, group: ExportOptions.GroupSize = .size(32), zstd: Bool = false,
                       from source: String = checkpoint, embedding: ExportOptions.EmbeddingPrecision = .auto,
                       twoPassLayers: Int = 1, gptq: Bool = true,
                       scales: ExportOptions.ScalePrecision = .f16) throws -> (String, ExportSummary) {
        var options = ExportOptions(precision: precision, threads: 2)
        options.accuracy = .fast  // the settings as given
        options.scales = scales
        options.groupSize = group
        options.zstdLevel = zstd ? 3 : nil
        options.evalTokens = 4096
        options.embedding = embedding
        options.twoPassLayers = twoPassLayers
        options.gptq = gptq
        let name = URL(fileURLWithPath: source).lastPathComponent
        let path = directory.appendingPathComponent("\(name)-\(precision)-\(group)-\(zstd)-\(embedding)-\(twoPassLayers)-\(gptq)-\(scales).tfq").path
        return (path, try Exporter.export(checkpoint: source, output: path, options: options))
    }

    /// A copy of the checkpoint with one tensor's values changed by `edit`, in a new file.
    static func checkpoint(editing name: String, _ edit: (inout [Float]) -> Void) throws -> String {
        let source = try TFQFile(path: checkpoint)
        let path = directory.appendingPathComponent("edited-\(UUID().uuidString).ckpt.tfq").path
        let writer = try TFQWriter(path: path)
        for info in source.tensors {
            if info.name == name {
                var values = source.floats(info)
                edit(&values)
                try values.withUnsafeBufferPointer { _ = try writer.add(name: info.name, shape: info.shape, floats: $0) }
            } else {
                try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                               bytes: source.bytes(info), compression: .none)
            }
        }
        try writer.finish(metadata: source.metadataJSON)
        return path
    }

    /// The training model on the checkpoint's weights.
    static func reference() throws -> GPT {
        let file = try TFQFile(path: checkpoint)
        let model = GPT(config: try ModelMetadata(file: file).config, pool: ThreadPool(threads: 2))
        try model.readParameters(from: file)
        return model
    }

    static let prompt: [Int32] = {
        let file = try! TFQFile(path: checkpoint)
        return try! ModelMetadata(file: file).tokenizer.encode("the king sees")
    }()
}

@Suite(.serialized) struct RuntimeTests {
    static func relativeError(_ a: some Collection<Float>, _ b: some Collection<Float>) -> Double {
        var difference = 0.0, norm = 0.0
        for (x, y) in zip(a, b) { difference += pow(Double(x) - Double(y), 2); norm += pow(Double(y), 2) }
        return (difference / norm).squareRoot()
    }

    @Test func fp32RuntimeMatchesTheTrainingModel() throws {
        let (path, _) = try Fixture.export(.fp32)
        let model = try Model(path: path)
        let session = try Session(model: model, threads: 2)
        let reference = try Fixture.reference()
        let vocab = model.config.vocabSize
        // Logits over a whole window.
        var tokens = Fixture.prompt
        for i in 0..<40 { tokens.append(Int32(i % vocab)) }
        let runtime = Array(try session.evaluate(tokens, allLogits: true))
        tokens.withUnsafeBufferPointer { _ = reference.forward(inputs: $0.baseAddress!, targets: nil, batch: 1, length: tokens.count) }
        let error = runtime.withUnsafeBufferPointer { Self.relativeError($0, reference.logits) }
        #expect(error < 1e-4, "relative logit error \(error)")

        // Greedy decoding, 200 tokens, token for token against the training model's argmax.
        session.reset()
        var expected = Fixture.prompt
        var generated: [Int32] = []
        try session.generate(prompt: Fixture.prompt, maxTokens: 200) { token, _ in generated.append(token); return true }
        for _ in 0..<200 {
            expected.withUnsafeBufferPointer { _ = reference.forward(inputs: $0.baseAddress!, targets: nil, batch: 1, length: expected.count) }
            let last = UnsafeBufferPointer(rebasing: reference.logits[((expected.count - 1) * vocab)...])
            expected.append(Sampler.argmax(last))
        }
        #expect(generated == Array(expected[Fixture.prompt.count...]))
    }

    @Test(arguments: [ExportOptions.Precision.fp32, .int8])
    func prefillThenDecodeEqualsOneTokenAtATime(precision: ExportOptions.Precision) throws {
        let (path, _) = try Fixture.export(precision, embedding: precision == .int8 ? .int8 : .auto)
        let model = try Model(path: path)
        let batched = try Session(model: model, threads: 2), stepwise = try Session(model: model, threads: 2)
        let tokens = Fixture.prompt + [5, 9, 2, 7, 1, 0, 3]
        let all = Array(try batched.evaluate(tokens, allLogits: true))
        let vocab = model.config.vocabSize
        for (i, token) in tokens.enumerated() {
            let logits = try stepwise.evaluate([token])
            let row = all[(i * vocab)..<((i + 1) * vocab)]
            let error = Array(row).withUnsafeBufferPointer { Self.relativeError($0, logits) }
            // int8 (every matrix int8 here): the same sums in the same order, bit for bit.
            #expect(precision == .int8 ? error == 0 : error < 1e-5, "position \(i): \(error)")
        }
        // And decoding continues identically after either.
        let next = Array(all[((tokens.count - 1) * vocab)...]).withUnsafeBufferPointer { Sampler.argmax($0) }
        // Logits live in each session's buffer: both sessions must outlive the copies.
        let (a, b) = try withExtendedLifetime((batched, stepwise)) {
            (Array(try batched.evaluate([next])), Array(try stepwise.evaluate([next])))
        }
        #expect(a.withUnsafeBufferPointer { x in b.withUnsafeBufferPointer { Self.relativeError(x, $0) } } < 1e-5)
    }

    @Test func int8StaysCloseToFp32() throws {
        let (fp32Path, _) = try Fixture.export(.fp32)
        let (int8Path, summary) = try Fixture.export(.int8, group: .size(32), embedding: .int8)
        let tokens = Fixture.prompt + (0..<30).map { Int32($0 % 20) }
        let exactSession = try Session(model: try Model(path: fp32Path), threads: 2)
        let quantizedSession = try Session(model: try Model(path: int8Path), threads: 2)
        let exact = Array(try exactSession.evaluate(tokens, allLogits: true))
        let quantized = Array(try quantizedSession.evaluate(tokens, allLogits: true))
        let error = exact.withUnsafeBufferPointer { e in quantized.withUnsafeBufferPointer { Self.relativeError($0, e) } }
        #expect(error < 0.02, "int8 relative logit error \(error)")
        let q = try #require(summary.quality)
        #expect(abs(q.deltaPerplexityPercent) < 1.0, "Δppl \(q.deltaPerplexityPercent)%")
        #expect(q.top1AgreementPercent > 97)
        #expect(q.positions > 3000 && q.positions <= 4096)
        // qkv, proj, up, down per block, tok_emb and lm_head (2.7% of this model: int8 as asked).
        #expect(Set(q.tensorRelativeError.keys) == Set((0..<2).flatMap { i in
            ["attn.qkv", "attn.proj", "ffn.up", "ffn.down"].map { "blocks.\(i).\($0).weight" } } + ["tok_emb", "lm_head.weight"]))
        // GPTQ for every linear layer; the int8 token table (2.7% of this model) is rounded.
        #expect(summary.weightMethod == "gptq+rounded" && summary.note == nil)
        let calibration = try TFQFile(path: int8Path).metadata["quantization"]?["calibration"]
        #expect(calibration?["rounded"] == .array([.string("tok_emb")]))
        #expect(calibration?["tokens"] == .integer(64 * 256))
    }

    /// An int8 model caches keys and values as halves unless told otherwise, an fp32 one as
    /// floats. On the fp32 model, where nothing else rounds, the halves alone move the logits
    /// by about 1e-4 (8.7e-5 when written; int8 moves them by up to 0.02, int8StaysCloseToFp32)
    /// and leave 200 greedy tokens as they were.
    @Test func halfKVCacheIsTheInt8DefaultAndStaysClose() throws {
        let (fp32Path, _) = try Fixture.export(.fp32)
        let (int8Path, _) = try Fixture.export(.int8, group: .size(32))
        let int8Model = try Model(path: int8Path), fp32Model = try Model(path: fp32Path)
        #expect(try Session(model: int8Model, threads: 1).kvCachePrecision == .f16)
        #expect(try Session(model: int8Model, threads: 1, kvCache: .f32).kvCachePrecision == .f32)
        let full = try Session(model: fp32Model, threads: 2), half = try Session(model: fp32Model, threads: 2, kvCache: .f16)
        #expect(full.kvCachePrecision == .f32 && half.kvCachePrecision == .f16)
        let tokens = Fixture.prompt + (0..<40).map { Int32($0 % 20) }
        let (exact, rounded) = try withExtendedLifetime((full, half)) {
            (Array(try full.evaluate(tokens, allLogits: true)), Array(try half.evaluate(tokens, allLogits: true)))
        }
        let error = exact.withUnsafeBufferPointer { e in rounded.withUnsafeBufferPointer { Self.relativeError($0, e) } }
        #expect(error > 0 && error < 5e-4, "half-cache relative logit error \(error)")
        func greedy(_ session: Session) throws -> [Int32] {
            session.reset()
            var tokens: [Int32] = []
            try session.generate(prompt: Fixture.prompt, maxTokens: 200) { token, _ in tokens.append(token); return true }
            return tokens
        }
        #expect(try greedy(half) == greedy(full))
    }

    /// The choices of int8 export that buy accuracy: vocabulary tables in fp32 (here asked
    /// for; `auto` decides by size, ExportChoicesTests), the first block's inputs in two int8
    /// passes and GPTQ weights (defaults); each can be turned off.
    @Test func int8AccuracyChoicesAndTheirSwitches() throws {
        let (path, _) = try Fixture.export(.int8, embedding: .fp32)
        let model = try Model(path: path)
        let file = model.file
        #expect(file.info("tok_emb")?.dtype == .f32 && file.info("lm_head.weight")?.dtype == .f32)
        #expect(file.info("blocks.0.attn.qkv.weight")?.dtype == .q8f16 && model.isQuantized)
        let firstBlock = ["attn.proj", "attn.qkv", "ffn.down", "ffn.up"].map { JSONValue.string("blocks.0.\($0).weight") }
        #expect(file.metadata["quantization"]?["two_pass_activations"] == .array(firstBlock))
        #expect(file.metadata["quantization"]?["weights"] == .string("gptq"))
        #expect(file.metadata["quantization"]?["calibration"]?["rounded"] == .array([]))
        #expect(model.blocks[0].qkv.twoPass && model.blocks[0].proj.twoPass && !model.blocks[1].qkv.twoPass && !model.head.twoPass)
        #expect(model.hasTwoPassLayers)

        let (plainPath, plain) = try Fixture.export(.int8, embedding: .int8, twoPassLayers: 0, gptq: false)
        let plainModel = try Model(path: plainPath)
        #expect(plainModel.file.info("tok_emb")?.dtype == .q8f16 && plainModel.file.info("lm_head.weight")?.dtype == .q8f16)
        #expect(plainModel.file.metadata["quantization"]?["two_pass_activations"] == .array([]))
        #expect(plain.weightMethod == "round-to-nearest" && !plainModel.hasTwoPassLayers)
        #expect(plainModel.file.metadata["quantization"]?["calibration"] == .null)
        // GPTQ really chose other values than rounding did.
        let name = "blocks.1.ffn.down.weight"
        let chosen = Array(file.bytes(try #require(file.info(name)))), rounded = Array(plainModel.file.bytes(try #require(plainModel.file.info(name))))
        #expect(chosen.count == rounded.count && chosen != rounded)
        #expect(try #require(plain.quality).top1AgreementPercent > 97)
    }

    /// `--embedding fp16`: the vocabulary and position tables as f16 (half their fp32 bytes),
    /// which the runtime widens exactly; closer to fp32 than int8 tables.
    @Test func halfPrecisionTables() throws {
        let (path, summary) = try Fixture.export(.int8, embedding: .fp16)
        let model = try Model(path: path)
        for name in ["tok_emb", "lm_head.weight", "pos_emb"] { #expect(model.file.info(name)?.dtype == .f16, "\(name)") }
        #expect(model.file.info("blocks.1.ffn.up.weight")?.dtype == .q8f16 && model.isQuantized && !model.head.twoPass)
        let (_, int8Tables) = try Fixture.export(.int8, embedding: .int8)
        let half = try #require(summary.quality), int8 = try #require(int8Tables.quality)
        #expect(half.meanKL < int8.meanKL, "mean KL \(half.meanKL) with f16 tables, \(int8.meanKL) with int8")
        let (_, fp32Tables) = try Fixture.export(.int8, embedding: .fp32)
        #expect(summary.fileBytes < fp32Tables.fileBytes)
        // The f16 tables hold each weight to within half a unit in the last place of binary16.
        let source = try TFQFile(path: Fixture.checkpoint), exported = model.file
        let original = source.floats(try #require(source.info("tok_emb"))), halves = exported.floats(try #require(exported.info("tok_emb")))
        #expect(zip(original, halves).allSatisfy { Float(Float16($0)) == $1 })
        // Read in place: only the position table was converted to fp32 at open.
        let positions = try #require(model.file.info("pos_emb"))
        #expect(model.convertedBytes == positions.elementCount * 4)
        #expect(MemoryPlan(model: model).loadedWeightBytes >= model.convertedBytes)
        // Every position's logits (blocks of the table widened for the GEMM) agree with one
        // position at a time (MatVec), and greedy decoding runs.
        let tokens = Fixture.prompt + (0..<30).map { Int32($0 % 20) }
        let batched = try Session(model: model, threads: 2), stepwise = try Session(model: model, threads: 2)
        let all = Array(try batched.evaluate(tokens, allLogits: true))
        let vocab = model.config.vocabSize
        for (t, token) in tokens.enumerated() {
            let one = Array(try stepwise.evaluate([token]))
            let error = Array(all[(t * vocab)..<((t + 1) * vocab)]).withUnsafeBufferPointer { a in one.withUnsafeBufferPointer { Self.relativeError(a, $0) } }
            #expect(error < 1e-5, "position \(t): relative error \(error)")
        }
        var generated: [Int32] = []
        try stepwise.generate(prompt: [Fixture.prompt[0]], maxTokens: 20) { token, _ in generated.append(token); return true }
        #expect(generated.count == 20)
    }

    /// fp16 holds nothing beyond ±65504: a table that does is refused when fp16 is asked for,
    /// and `auto` quantizes it instead.
    @Test func halfTablesRefuseValuesBeyondTheirRange() throws {
        let path = try Fixture.checkpoint(editing: "tok_emb") { $0[5] = 70_000 }
        #expect(throws: ExportError.self) { try Fixture.export(.int8, from: path, embedding: .fp16) }
        do { _ = try Fixture.export(.int8, from: path, embedding: .fp16) } catch {
            #expect("\(error)".contains("tok_emb holds a value beyond fp16's range"), "\(error)")
        }
        let (auto, _) = try Fixture.export(.int8, from: path)
        #expect(try TFQFile(path: auto).info("tok_emb")?.dtype == .q8f16)
    }

    /// f16 scales hold up to 65504 (weights up to about 8.3 million): a tensor beyond that
    /// keeps f32 scales (q8), said in the summary, and the others stay q8f16; the file is valid.
    @Test func weightsBeyondHalfScalesKeepFloatScales() throws {
        let wide = "blocks.1.ffn.down.weight"
        let path = try Fixture.checkpoint(editing: wide) { $0[3] = 9e6 }
        for gptq in [true, false] {
            let (exported, summary) = try Fixture.export(.int8, from: path, embedding: .int8, gptq: gptq)
            let model = try Model(path: exported, verify: true)
            #expect(model.file.info(wide)?.dtype == .q8, "GPTQ \(gptq)")
            #expect(model.file.info("blocks.0.ffn.down.weight")?.dtype == .q8f16 && model.file.info("tok_emb")?.dtype == .q8f16)
            #expect(summary.scalesNote?.text(naming: { $0 }).hasPrefix("\(wide) kept f32 scales (q8)") == true, "\(String(describing: summary.scalesNote))")
            let w = try #require(model.file.info(wide))
            #expect(model.file.floats(w)[3] > 8.9e6)
        }
        let (_, plain) = try Fixture.export(.int8)
        #expect(plain.scalesNote == nil)
    }

    /// A two_pass_activations list the model cannot honour is refused at open, by name.
    @Test(arguments: [
        (JSONValue.array([.string("blocks.0.attn.qkv.weight"), .string("blocks.9.attn.qkv.weight")]), "blocks.9.attn.qkv.weight"),
        (.array([.string("pos_emb")]), "pos_emb"),
        (.array([.string("tok_emb")]), "tok_emb"),
        (.array([.string("lm_head.weight")]), "not int8"),
        (.array([.string("blocks.0.attn.qkv.weight"), .string("blocks.0.attn.qkv.weight")]), "repeated"),
        (.string("blocks.0.attn.qkv.weight"), "not a list"),
    ])
    func badTwoPassListsAreRefused(list: JSONValue, expected: String) throws {
        let (path, _) = try Fixture.export(.int8, embedding: .fp32)   // lm_head.weight: a linear, but f32
        let source = try TFQFile(path: path)
        var metadata = try ModelMetadata(file: source)
        guard case .object(var quantization) = metadata.sections["quantization"] else { Issue.record("no quantization section"); return }
        quantization["two_pass_activations"] = list
        metadata.sections["quantization"] = .object(quantization)
        let bad = Fixture.directory.appendingPathComponent("two-pass-\(UUID().uuidString).tfq").path
        let writer = try TFQWriter(path: bad)
        for info in source.tensors {
            try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                           bytes: source.bytes(info), compression: .none)
        }
        try writer.finish(metadata: metadata.encoded())
        #expect {
            _ = try Model(path: bad)
        } throws: { error in
            "\(error)".contains(expected) && "\(error)".contains("two_pass_activations")
        }
    }

    @Test func threadCountDoesNotChangeGreedyOutput() throws {
        let (path, _) = try Fixture.export(.int8)
        let model = try Model(path: path)
        var outputs: [[Int32]] = []
        for threads in [1, 2, 3] {
            var tokens: [Int32] = []
            try Session(model: model, threads: threads).generate(prompt: Fixture.prompt, maxTokens: 60) { t, _ in tokens.append(t); return true }
            outputs.append(tokens)
        }
        #expect(outputs[0] == outputs[1] && outputs[1] == outputs[2])
    }

    /// `--scales`: f16 scales (q8f16, the default) against f32 ones (q8) on the same weights
    /// and GPTQ calibration: every int8 tensor the same but for half the scale bytes, and
    /// the same quality to a small tolerance. (The codec's rounding is checked exactly in
    /// Q8ValueTests and the kernels' widening in Q8KernelTests.)
    @Test func halfScalesHalveTheScaleBytes() throws {
        let (halfPath, half) = try Fixture.export(.int8, group: .size(32), embedding: .int8)
        let (floatPath, float) = try Fixture.export(.int8, group: .size(32), embedding: .int8, scales: .f32)
        let h = try TFQFile(path: halfPath), f = try TFQFile(path: floatPath)
        var scaleBytes = 0
        for info in f.tensors where info.dtype == .q8 {
            let other = try #require(h.info(info.name))
            #expect(other.dtype == .q8f16 && other.groupSize == info.groupSize && other.layout == info.layout, "\(info.name)")
            let groups = Q8Codec.paddedRows(info.rows) * info.columns / info.groupSize
            #expect(info.decodedLength - other.decodedLength == 2 * groups, "\(info.name)")
            scaleBytes += 2 * groups
            #expect(h.floats(other).count == f.floats(info).count)
        }
        let model = try Model(path: halfPath)
        #expect(scaleBytes > 0 && model.isQuantized)
        let hq = try #require(half.quality), fq = try #require(float.quality)
        #expect(abs(hq.top1AgreementPercent - fq.top1AgreementPercent) < 1.5 && hq.meanKL < fq.meanKL * 1.5 + 1e-6,
                "f16 scales \(hq.top1AgreementPercent)% \(hq.meanKL), f32 \(fq.top1AgreementPercent)% \(fq.meanKL)")
    }

    @Test func int8FileIsUnderAThirdOfTheFp32Weights() throws {
        let (path, summary) = try Fixture.export(.int8, group: .size(64), from: Fixture.wideCheckpoint, embedding: .int8)
        let file = try TFQFile(path: path)
        #expect(file.isZeroCopy)
        let ratio = Double(summary.fileBytes) / Double(summary.fp32WeightBytes)
        #expect(ratio <= 0.3, "int8 file is \(ratio) × the fp32 weights")
        for name in ["tok_emb", "blocks.0.attn.qkv.weight", "blocks.1.ffn.down.weight", "lm_head.weight"] {
            #expect(file.info(name)?.dtype == .q8f16 && file.info(name)?.layout == .interleaved16x4, "\(name)")
        }
        for name in ["pos_emb", "blocks.0.ln1.weight", "blocks.0.attn.qkv.bias", "ln_f.bias"] {
            #expect(file.info(name)?.dtype == .f32, "\(name)")
        }
        #expect(file.metadata["quality"]?["top1_agreement_percent"] != nil)
        #expect(file.metadata["provenance"]?["source_steps"] == .integer(0))
        #expect(file.info("adam.m.tok_emb") == nil)
    }

    @Test(arguments: [ExportOptions.GroupSize.size(64), .size(128), .row])
    func everyGroupSizeExportsAndRuns(group: ExportOptions.GroupSize) throws {
        let (path, summary) = try Fixture.export(.int8, group: group, zstd: true, from: Fixture.wideCheckpoint)
        #expect(try #require(summary.quality).top1AgreementPercent > 90)
        let model = try Model(path: path, verify: true)
        var count = 0
        try Session(model: model, threads: 2).generate(prompt: Fixture.prompt, maxTokens: 10) { _, _ in count += 1; return true }
        #expect(count == 10)
    }

    @Test func fp16RoundTrips() throws {
        let (path, summary) = try Fixture.export(.fp16, zstd: true)
        #expect(try #require(summary.quality).top1AgreementPercent > 99)
        let model = try Model(path: path)
        #expect(try Session(model: model, threads: 2).evaluate(Fixture.prompt).count == model.config.vocabSize)
    }

    @Test func exportRejectsBadInputAndLeavesNothing() throws {
        let directory = Fixture.directory.appendingPathComponent("bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let out = directory.appendingPathComponent("never.tfq").path
        var options = ExportOptions(precision: .int8, threads: 2)
        options.accuracy = .fast
        options.groupSize = .size(48)  // does not divide 64
        #expect(throws: ExportError.self) { try Exporter.export(checkpoint: Fixture.checkpoint, output: out, options: options) }
        options.groupSize = .size(6)
        #expect(throws: ExportError.self) { try Exporter.export(checkpoint: Fixture.checkpoint, output: out, options: options) }
        options.groupSize = .size(64)
        #expect(throws: TFQFormatError.self) { try Exporter.export(checkpoint: Fixture.corpus, output: out, options: options) }
        #expect(throws: TFQFormatError.self) {
            try Exporter.export(checkpoint: Fixture.checkpoint, output: directory.path + "/missing/dir/x.tfq", options: options)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test func sessionErrorsAreTyped() throws {
        let (path, _) = try Fixture.export(.int8)
        let session = try Session(model: try Model(path: path), threads: 1)
        #expect(throws: SessionError.noTokens) { try session.evaluate([]) }
        #expect(throws: SessionError.invalidToken(9999, vocabulary: session.model.config.vocabSize)) { try session.evaluate([9999]) }
        #expect(throws: SessionError.contextFull(needed: 300, context: 256)) { try session.evaluate([Int32](repeating: 1, count: 300)) }
        #expect(session.position == 0)
    }

    /// The vectorized argmax against the scalar "first strictly greater" scan: ties, NaNs,
    /// signed zeros, lengths around the vector width and a llama-sized vocabulary.
    @Test func argmaxMatchesTheScalarScan() {
        func scalar(_ x: [Float]) -> Int32 {
            var best = 0
            for i in 1..<x.count where x[i] > x[best] { best = i }
            return Int32(best)
        }
        var state: UInt64 = 7
        func next() -> Float { state = state &* 6364136223846793005 &+ 1442695040888963407; return Float(state >> 41 % 9) - 4 }
        for count in [1, 2, 7, 8, 9, 15, 16, 17, 31, 65, 32000] {
            for trial in 0..<20 {
                var x = (0..<count).map { _ in next() }   // small integers: many ties
                if trial % 4 == 1, count > 3 { x[count / 2] = .nan; x[count - 1] = .infinity }
                if trial % 4 == 2 { for i in 0..<count { x[i] = i % 2 == 0 ? -0.0 : 0.0 } }
                if trial % 4 == 3 { x[0] = .nan }
                #expect(x.withUnsafeBufferPointer { Sampler.argmax($0) } == scalar(x), "count \(count) trial \(trial)")
            }
        }
    }

    @Test func samplingIsReproducibleAndGreedyPicksTheLowestTie() {
        let logits: [Float] = [1, 3, 3, 0.5]
        #expect(logits.withUnsafeBufferPointer { Sampler.argmax($0) } == 1)
        var a = Sampler(SamplingParameters(temperature: 1, topK: 3, seed: 42)), b = Sampler(SamplingParameters(temperature: 1, topK: 3, seed: 42))
        let first = (0..<50).map { _ in logits.withUnsafeBufferPointer { a.next($0) } }
        let second = (0..<50).map { _ in logits.withUnsafeBufferPointer { b.next($0) } }
        #expect(first == second)
        #expect(!first.contains(3))  // outside the top 3
        #expect(Set(first).count > 1)
        var nucleus = Sampler(SamplingParameters(temperature: 1, topP: 0.5, seed: 1))
        #expect((0..<20).allSatisfy { _ in [1, 2].contains(logits.withUnsafeBufferPointer { nucleus.next($0) }) })
    }

    @Test func textStreamNeverSplitsACharacter() {
        var stream = TextStream()
        let bytes = Array("né 😀!".utf8)
        var text = ""
        for byte in bytes {
            let piece = stream.append([byte])
            #expect(String(validating: Array(piece.utf8), as: UTF8.self) != nil)
            #expect(!piece.contains("\u{FFFD}"))
            text += piece
        }
        text += stream.finish()
        #expect(text == "né 😀!")
        var broken = TextStream()
        #expect(broken.append([0xF0, 0x9F]) == "")
        #expect(broken.finish() == "\u{FFFD}")
    }
}

/// A tiny int8 model committed with its exact greedy output: any change in the kernels, the
/// format or the decoding loop that changes a single token fails here, in both builds.
@Suite struct GoldenOutputTests {
    struct Golden: Decodable {
        var prompt: String
        var prompt_token_ids: [Int32]
        var token_ids: [Int32]
        var text: String
        var stop_reason: String
    }

    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    @Test(arguments: [1, 2])
    func greedyOutputIsExactlyTheCommittedOne(threads: Int) throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        let model = try Model(path: Self.fixtures.appendingPathComponent("golden.int8.tfq").path, verify: true)
        #expect(model.isQuantized)
        let prompt = try model.tokenizer.encode(golden.prompt)
        #expect(prompt == golden.prompt_token_ids)
        var tokens: [Int32] = []
        var text = ""
        let reason = try Session(model: model, threads: threads).generate(prompt: prompt, maxTokens: 100) { token, piece in
            tokens.append(token); text += piece; return true
        }
        #expect(tokens == golden.token_ids)
        #expect(text == golden.text)
        #expect(reason.rawValue == golden.stop_reason)
    }

    /// The same output when workers are held back at every job, as when other programs keep
    /// them off their cores: the caller computes their parts.
    @Test(arguments: [2, 3])
    func greedyOutputIsTheSameWithWorkersHeldBack(threads: Int) throws {
        let golden = try JSONDecoder().decode(Golden.self, from: Data(contentsOf: Self.fixtures.appendingPathComponent("golden.json")))
        let model = try Model(path: Self.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let session = try Session(model: model, threads: threads)
        session.kernels.pool.holdWorkers(threads - 1)
        var tokens: [Int32] = []
        try session.generate(prompt: golden.prompt_token_ids, maxTokens: 100) { token, _ in tokens.append(token); return true }
        #expect(tokens == golden.token_ids)
        #expect(session.kernels.pool.partsTakenByWorkers == 0)
    }
}

/// One model shared by sessions on several threads at once: each must produce exactly what a
/// lone session produces.
@Suite struct ConcurrencyTests {
    @Test func sessionsOnOneModelFromManyThreads() throws {
        let model = try Model(path: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let prompts = ["the king", "a dog", "our queen", "my friend", "the cat", "the moon"].map { try! model.tokenizer.encode($0) }
        @Sendable func generate(_ prompt: [Int32], threads: Int) throws -> [Int32] {
            var tokens: [Int32] = []
            try Session(model: model, threads: threads).generate(prompt: prompt, maxTokens: 40) { t, _ in tokens.append(t); return true }
            return tokens
        }
        let expected = try prompts.map { try generate($0, threads: 1) }
        // Each iteration writes its own element only.
        nonisolated(unsafe) let results = UnsafeMutableBufferPointer<[Int32]>.allocate(capacity: prompts.count * 3)
        results.initialize(repeating: [])
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: prompts.count * 3) { i in
            // Sessions with their own pools of 1 or 2 threads, all on the same Model.
            results[i] = (try? generate(prompts[i % prompts.count], threads: 1 + i % 2)) ?? []
        }
        for i in 0..<(prompts.count * 3) {
            #expect(results[i] == expected[i % prompts.count], "run \(i)")
        }
    }
}

@Suite struct AsyncGenerationTests {
    @Test func asyncSequenceYieldsWhatGenerateYields() async throws {
        let model = try Model(path: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let prompt = try model.tokenizer.encode("the king")
        var expected: [Int32] = []
        try Session(model: model, threads: 1).generate(prompt: prompt, maxTokens: 30) { t, _ in expected.append(t); return true }
        var streamed: [Int32] = []
        var text = ""
        for try await token in try Session(model: model, threads: 1).tokens(prompt: prompt, maxTokens: 30) {
            streamed.append(token.id)
            text += token.text
        }
        #expect(streamed == expected)
        #expect(text == model.tokenizer.decode(expected))
    }

    /// The sequence says why it ended, as generate's result does: at the token limit, at a
    /// full context, and not at all while the consumer is still iterating or left early.
    @Test func theSequenceKeepsItsStopReason() async throws {
        let model = try Model(path: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let prompt = try model.tokenizer.encode("the king")
        for (maxTokens, capacity, expected) in [(5, 64, StopReason.length), (40, prompt.count + 6, .context)] {
            let generated = try Session(model: model, threads: 1, capacity: capacity).generate(prompt: prompt, maxTokens: maxTokens)
            #expect(generated == expected)
            let tokens = try Session(model: model, threads: 1, capacity: capacity).tokens(prompt: prompt, maxTokens: maxTokens)
            // A full context ends generation after the token that fills it: 6 positions past
            // the prompt hold 6 evaluated tokens, and the 7th is produced but not evaluated.
            let last = expected == .length ? maxTokens : 7
            var count = 0
            for try await token in tokens {
                #expect(!token.isStopToken)
                count += 1
                if count < last { #expect(tokens.stopReason == nil, "token \(count)") }
            }
            #expect(tokens.stopReason == expected)
            #expect(count == last)
        }
        let early = try Session(model: model, threads: 1).tokens(prompt: prompt, maxTokens: 20)
        for try await _ in early { break }
        #expect(early.stopReason == nil)
    }
}

/// Generation that stops in the middle of a character split across byte tokens hands out
/// the held-back bytes (as U+FFFD) with its last token, in both generation APIs.
@Suite struct UnfinishedCharacterTests {
    /// An untrained model over bytes: sampled, it produces lead bytes of multi-byte characters.
    static let model: Model = {
        var options = TrainingOptions()
        options.layers = 1; options.heads = 2; options.dim = 16; options.context = 64; options.batch = 2
        options.steps = 0; options.evalEvery = 0; options.evalBatches = 1; options.tokenizer = .byte
        let checkpoint = Fixture.directory.appendingPathComponent("bytes.ckpt.tfq").path
        let data = try! Corpus(path: Fixture.corpus, validationPath: nil, tokenizer: .byte)
        _ = try! Trainer(options: options, corpus: data, checkpointPath: checkpoint, threads: 1).run()
        let (path, _) = try! Fixture.export(.fp32, from: checkpoint)
        return try! Model(path: path)
    }()
    static let sampling = SamplingParameters(temperature: 1, seed: 7)

    @Test func theLastTokenCarriesAnUnfinishedCharacter() async throws {
        let prompt: [Int32] = [116, 104, 101]  // "the"
        var all: [Int32] = []
        try Session(model: Self.model, threads: 1).generate(prompt: prompt, maxTokens: 60, sampling: Self.sampling) { t, _ in
            all.append(t); return true
        }
        // The first token that opens a multi-byte character: stop right after it.
        let cut = try #require(all.firstIndex { $0 >= 0xC2 && $0 <= 0xF4 })
        var texts: [String] = []
        let reason = try Session(model: Self.model, threads: 1).generate(prompt: prompt, maxTokens: cut + 1, sampling: Self.sampling) { _, text in
            texts.append(text); return true
        }
        #expect(reason == .length && texts.count == cut + 1)
        #expect(texts.last?.hasSuffix("\u{FFFD}") == true, "\(texts)")
        #expect(texts.joined() == String(decoding: all[...cut].map { UInt8($0) }, as: UTF8.self))
        var streamed: [String] = []
        for try await token in try Session(model: Self.model, threads: 1).tokens(prompt: prompt, maxTokens: cut + 1, sampling: Self.sampling) {
            streamed.append(token.text)
        }
        #expect(streamed == texts)
    }
}

/// The tokenizer is kept once: a model opened by path releases the file's parsed copy of
/// it (a vocabulary of 32,000 pieces parses into megabytes); a caller's own file is left whole.
@Suite struct MetadataOnceTests {
    @Test func aModelKeepsItsTokenizerOnce() throws {
        let path = GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path
        let model = try Model(path: path)
        #expect(model.file.metadata["tokenizer"] == nil)
        #expect(model.file.metadata["config"] != nil && model.file.metadata["quantization"] != nil)
        #expect(try model.tokenizer.encode("the king").count == 8)
        // The file's bytes are untouched: its JSON still holds the section.
        let json = try JSONParser.parse(model.file.metadataJSON)
        let stored = try #require(json["tokenizer"])
        #expect(try Tokenizer(json: stored) == model.tokenizer)

        let file = try TFQFile(path: path)
        _ = try Model(file: file)
        #expect(file.metadata["tokenizer"] == stored)
    }
}

/// A config the file states but no machine could run: refused at open, not a trap later.
@Suite struct WorkingMemoryTests {
    @Test func sessionSizesAreCheckedAgainstPhysicalMemory() {
        var huge = ModelConfig.llama(vocabSize: 1 << 20, contextLength: 1 << 16, layers: 1, heads: 1, kvHeads: 1, dim: 2, ffDim: 2, tieEmbeddings: true)
        #expect((Model.workingMemory(huge) ?? .max) > ProcessMemory.physicalBytes)
        huge.layers = 1024; huge.dim = 1 << 16; huge.heads = 1; huge.kvHeads = 1
        #expect((Model.workingMemory(huge) ?? .max) > ProcessMemory.physicalBytes)
        let stories15M = ModelConfig.llama(vocabSize: 32000, contextLength: 256, layers: 6, heads: 6, kvHeads: 6, dim: 288, ffDim: 768, tieEmbeddings: true)
        // logits 256×32000, KV 6×256×288×2, activations: about 40 MB.
        #expect(Model.workingMemory(stories15M)! < 48 << 20)
    }
}

/// A session with a smaller capacity than the model's context: the same logits, less memory,
/// and the plan made before allocating says exactly what the session allocates.
@Suite struct SessionCapacityTests {
    @Test func aSmallerCapacityGivesTheSameLogitsInLessMemory() throws {
        let model = try Model(path: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let full = try Session(model: model, threads: 2), small = try Session(model: model, threads: 2, capacity: 12)
        #expect(full.capacity == model.config.contextLength && small.capacity == 12)
        #expect(MemoryPlan(model: model).sessionBytes == full.allocatedBytes)
        #expect(MemoryPlan(model: model, capacity: 12).sessionBytes == small.allocatedBytes)
        #expect(small.allocatedBytes * 4 < full.allocatedBytes)
        let prompt = try model.tokenizer.encode("the king")
        let a = Array(try full.evaluate(prompt, allLogits: true)), b = Array(try small.evaluate(prompt, allLogits: true))
        #expect(a == b)
        for token in [Int32(3), 5, 7, 1] {
            let x = Array(try full.evaluate(token: token)), y = Array(try small.evaluate(token: token))
            #expect(x == y)
        }
        #expect(throws: SessionError.contextFull(needed: 13, context: 12)) { try small.evaluate(token: 2) }
        small.reset()
        var produced = 0
        let reason = try small.generate(prompt: prompt, maxTokens: 100) { _, _ in produced += 1; return true }
        #expect(reason == .context && produced == 12 - prompt.count + 1)
    }

    @Test func thePlanCountsWeightsAsLoaded() throws {
        let model = try Model(path: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path)
        let plan = MemoryPlan(model: model, kvCache: .f32, capacity: 8)
        #expect(plan.weightBytes == model.file.tensors.reduce(0) { $0 + $1.storedLength })   // all raw
        let c = model.config
        #expect(plan.cacheBytes == 2 * c.layers * c.kvHeads * 8 * c.headDim * 4)
        #expect(MemoryPlan(model: model, kvCache: .f16, capacity: 8).cacheBytes * 2 == plan.cacheBytes)
        #expect(plan.totalBytes == plan.weightBytes + plan.sessionBytes)
    }
}

/// A raw model file truncated while mapped (another process's `ftruncate`, a package upgrade
/// rewriting it in place) must fail the call, not kill the process with SIGBUS.
@Suite struct TruncatedFileTests {
    func copyOfGolden() throws -> String {
        let path = Fixture.directory.appendingPathComponent("truncated-\(UUID().uuidString).tfq").path
        try FileManager.default.copyItem(atPath: GoldenOutputTests.fixtures.appendingPathComponent("golden.int8.tfq").path, toPath: path)
        return path
    }

    @Test func evaluatingAfterTruncationThrowsInsteadOfCrashing() throws {
        let path = try copyOfGolden()
        let model = try Model(path: path)
        #expect(model.file.isZeroCopy && !model.file.isDamaged)
        let session = try Session(model: model, threads: 2)
        let prompt = try model.tokenizer.encode("the king")
        let before = Array(try session.evaluate(prompt))
        #expect(truncate(path, 4096) == 0)
        session.reset()
        #expect(throws: SessionError.modelFileDamaged(path: path)) { try session.evaluate(prompt) }
        #expect(model.file.isDamaged)
        // Every later call fails too: the pages stay zeros.
        #expect(throws: SessionError.modelFileDamaged(path: path)) { try session.evaluate(token: prompt[0]) }
        #expect(before.contains { $0 != 0 })
    }

    @Test func aCopiedModelIgnoresTruncation() throws {
        let path = try copyOfGolden()
        let copied = try Model(path: path, copyIntoMemory: true)
        let mapped = try Model(path: path)
        let prompt = try copied.tokenizer.encode("the king")
        // Logits are a view into the session's memory: copy them while it lives.
        func logits(_ model: Model) throws -> [Float] {
            let session = try Session(model: model, threads: 1)
            return try withExtendedLifetime(session) { Array(try session.evaluate(prompt)) }
        }
        let expected = try logits(mapped)
        #expect(try logits(copied) == expected)
        #expect(truncate(path, 0) == 0)
        #expect(try logits(copied) == expected)
        #expect(!copied.file.isDamaged)
    }
}
