import Foundation
import Testing
import TFQFormat
import TFQModel
@testable import TFQTrain

/// Text with structure a tiny model learns in a few dozen steps, made here so the tests
/// need nothing from outside the repository.
enum SampleText {
    static func make(sentences: Int, seed: UInt64 = 1) -> String {
        let subjects = ["the cat", "a dog", "my friend", "the king", "our queen"]
        let verbs = ["sees", "likes", "finds", "keeps", "calls"]
        let objects = ["the bird.", "a fish.", "the moon.", "her crown.", "his horse."]
        var random = Xoshiro256(seed: seed)
        return (0..<sentences).map { _ in
            "\(subjects[Int(random.next() % 5)]) \(verbs[Int(random.next() % 5)]) \(objects[Int(random.next() % 5)])"
        }.joined(separator: "\n") + "\n"
    }

    static func file(sentences: Int = 400) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-train-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("corpus.txt").path
        try make(sentences: sentences).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}

@Suite struct TrainerTests {
    static func options(steps: Int) -> TrainingOptions {
        var o = TrainingOptions()
        o.layers = 2; o.heads = 2; o.dim = 32; o.context = 16; o.batch = 8; o.steps = steps
        o.warmup = 5; o.learningRate = 3e-3; o.evalEvery = 10; o.evalBatches = 4; o.checkpointEvery = 0
        return o
    }

    static func train(_ options: TrainingOptions, corpus path: String, out: String, threads: Int = 2,
                      stopAfter: Int? = nil, resume: Bool = false) throws -> (Trainer, TrainingSummary) {
        let file = resume ? try TFQFile(path: out) : nil
        let tokenizer = try file.map { try ModelMetadata(file: $0).tokenizer }
        let corpus = try Corpus(path: path, validationPath: nil, tokenizer: options.tokenizer, vocabularySize: options.vocabSize,
                                existing: tokenizer)
        let trainer = try Trainer(options: options, corpus: corpus, checkpointPath: out, threads: threads, resume: file)
        let summary = try trainer.run(shouldStop: { stopAfter.map { trainer.state.step >= $0 } ?? false })
        return (trainer, summary)
    }

    @Test func lossFallsAndTheCheckpointHoldsEverything() throws {
        let corpus = try SampleText.file()
        let out = corpus + ".tfq"
        let (trainer, summary) = try Self.train(Self.options(steps: 60), corpus: corpus, out: out)
        let first = try #require(trainer.state.evaluations.first?.valLoss)
        let last = try #require(summary.valLoss)
        #expect(first > 2.5)  // about log(vocabulary) at initialization
        #expect(last < first - 1.0, "val loss \(first) → \(last)")
        #expect(summary.steps == 60 && summary.tokens == 60 * 8 * 16)
        let file = try TFQFile(path: out, options: .init(verifyChecksums: true))
        let metadata = try ModelMetadata(file: file)
        #expect(metadata.kind == "checkpoint")
        #expect(metadata.config == trainer.model.config)
        let state = try #require(try file.metadataSection("training", as: TrainingState.self))
        #expect(state.step == 60)
        #expect(file.info("adam.m.tok_emb") != nil && file.info("adam.v.lm_head.weight") != nil)
        #expect(FileManager.default.fileExists(atPath: out + ".loss.svg"))
        let log = try String(contentsOfFile: out + ".metrics.jsonl", encoding: .utf8)
        #expect(log.split(separator: "\n").count == 60)
    }

    @Test func sameSeedAndThreadsGiveTheSameLosses() throws {
        let corpus = try SampleText.file()
        let (a, _) = try Self.train(Self.options(steps: 15), corpus: corpus, out: corpus + ".a.tfq")
        let (b, _) = try Self.train(Self.options(steps: 15), corpus: corpus, out: corpus + ".b.tfq")
        #expect(a.state.evaluations == b.state.evaluations)
        #expect(Array(a.model.parameters) == Array(b.model.parameters) ? true : false)
        var other = Self.options(steps: 15)
        other.seed = 7
        let (c, _) = try Self.train(other, corpus: corpus, out: corpus + ".c.tfq")
        #expect(Array(a.model.parameters) != Array(c.model.parameters) ? true : false)
    }

    @Test(arguments: [0, 0.1] as [Float])
    func anInterruptedRunResumesToTheSameResult(dropout: Float) throws {
        let corpus = try SampleText.file()
        var options = Self.options(steps: 24)
        options.dropout = dropout
        let (whole, _) = try Self.train(options, corpus: corpus, out: corpus + ".whole.tfq")
        let out = corpus + ".parts.tfq"
        let (first, summary) = try Self.train(options, corpus: corpus, out: out, stopAfter: 11)
        #expect(summary.interrupted && first.state.step == 11)
        let (resumed, finished) = try Self.train(options, corpus: corpus, out: out, resume: true)
        #expect(!finished.interrupted && finished.steps == 24)
        #expect(Array(resumed.model.parameters) == Array(whole.model.parameters) ? true : false)
        #expect(resumed.state.lastTrainLoss == whole.state.lastTrainLoss)
        let wholeLog = try String(contentsOfFile: corpus + ".whole.tfq.metrics.jsonl", encoding: .utf8)
        let partsLog = try String(contentsOfFile: out + ".metrics.jsonl", encoding: .utf8)
        struct Line: Decodable, Equatable { var step: Int; var loss: Double }
        func losses(_ log: String) throws -> [Line] {
            try log.split(separator: "\n").map { try JSONDecoder().decode(Line.self, from: Data($0.utf8)) }
        }
        #expect(try losses(wholeLog).count == 24)
        #expect(try losses(partsLog) == losses(wholeLog))
    }

    @Test func resumeRefusesChangedFlagsOrData() throws {
        let corpus = try SampleText.file()
        let out = corpus + ".tfq"
        _ = try Self.train(Self.options(steps: 5), corpus: corpus, out: out)
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        var wider = Self.options(steps: 10)
        wider.dim = 64
        #expect(throws: TrainingError.self) { try Self.train(wider, corpus: corpus, out: out, resume: true) }
        var faster = Self.options(steps: 10)
        faster.learningRate = 1e-2
        #expect(throws: TrainingError.self) { try Self.train(faster, corpus: corpus, out: out, resume: true) }
        let otherCorpus = try SampleText.file(sentences: 300)
        #expect(throws: TrainingError.self) { try Self.train(Self.options(steps: 10), corpus: otherCorpus, out: out, resume: true) }
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
    }

    @Test func badCorporaAndShapesAreOneLineErrors() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let empty = directory.appendingPathComponent("empty.txt").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        let binary = directory.appendingPathComponent("binary.bin").path
        FileManager.default.createFile(atPath: binary, contents: Data([0x7F, 0x45, 0x4C, 0x46, 0, 1, 2, 0xFF, 0xFE]))
        let short = directory.appendingPathComponent("short.txt").path
        try "to be or not to be".write(toFile: short, atomically: true, encoding: .utf8)
        for (path, expected) in [(empty, "empty"), (binary, "not a text file"), (directory.path + "/missing.txt", "cannot open")] {
            do {
                _ = try Corpus(path: path, validationPath: nil, tokenizer: .char)
                Issue.record("accepted \(path)")
            } catch let error as CorpusError {
                #expect(error.description.contains(expected) && error.description.contains(path) && !error.description.contains("\n"))
            }
        }
        let out = directory.appendingPathComponent("never.tfq").path
        #expect(throws: TrainingError.self) { try Self.train(Self.options(steps: 5), corpus: short, out: out) }
        var odd = Self.options(steps: 5)
        odd.dim = 30; odd.heads = 4
        #expect(odd.problem?.description == "dim 30 is not divisible by heads 4")
        #expect(odd.problem?.text { "--" + $0 } == "--dim 30 is not divisible by --heads 4")
        odd = Self.options(steps: 5)
        odd.layers = 0
        #expect(odd.problem != nil)
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func learningRateWarmsUpThenDecaysToTheMinimum() {
        var o = TrainingOptions()
        o.steps = 1000; o.warmup = 100; o.learningRate = 1e-3; o.minLearningRate = 1e-4
        #expect(abs(o.learningRate(at: 0) - 1e-5) < 1e-9)
        #expect(abs(o.learningRate(at: 99) - 1e-3) < 1e-9)
        #expect(abs(o.learningRate(at: 550) - 5.5e-4) < 1e-7)
        #expect(abs(o.learningRate(at: 1000) - 1e-4) < 1e-9)
    }
}

/// The FLOP count behind `gflops_per_second`, against the parameter layout: 6 per weight of
/// every matrix a token is multiplied by, whatever the config names it.
@Suite struct TrainingCostTests {
    @Test(arguments: [true, false])
    func flopsPerTokenCountEveryMultipliedMatrix(tied: Bool) {
        let config = ModelConfig(vocabSize: 65, contextLength: 64, layers: 4, heads: 4, dim: 128, ffDim: 512,
                                 activation: .gelu, tieEmbeddings: tied, bias: true)
        let layout = ParameterLayout(config: config)
        // Lookups are not products: the position table never is, the token table only when tied.
        let lookups: Set<String> = tied ? [TensorName.positionEmbedding] : [TensorName.positionEmbedding, TensorName.tokenEmbedding]
        let multiplied = layout.tensors.filter { $0.isMatrix && !lookups.contains($0.name) }.reduce(0) { $0 + $1.count }
        let attention = 12 * 4 * 128 * 64
        #expect(config.trainingFLOPsPerToken == Double(6 * multiplied + attention))
        // nanoGPT's baby config, counted by hand: 4 × (3·128² + 128² + 2·128·512) + 65·128.
        #expect(multiplied == 794_752)
    }
}
