import Testing
import TFQKernels
import TFQModel
@testable import TFQTrain

/// `--seed` gives each kind of draw its own stream: weights, training batches, validation
/// batches and dropout masks.
@Suite struct RandomStreamTests {
    static func hex(_ generator: Xoshiro256) -> [String] { generator.state.map { String($0, radix: 16) } }

    /// The jump against an independent computation: tools/test_torch_train.py raises the
    /// generator's 256×256 transition matrix over GF(2) to the power 2¹²⁸ by squaring, and
    /// applies it to the seeded states. That checks the authors' jump polynomial as well as
    /// the loop that applies it.
    @Test func aJumpIsTwoToThe128Draws() {
        #expect(Self.hex(Xoshiro256(seed: 1337).jumped()) == ["8a58f719aed54015", "d2eb58900c38a97f", "5defb58444c84672", "70a01c1be21a5a90"])
        #expect(Self.hex(Xoshiro256(seed: 1).jumped()) == ["53d630076a137ded", "ed07f666882edfc6", "963ec9617b0bdbd3", "84b96906e4b2569a"])
        #expect(Xoshiro256(seed: 9).jumped(times: 3) == Xoshiro256(seed: 9).jumped().jumped().jumped())
        #expect(Xoshiro256(seed: 9).jumped(times: 0) == Xoshiro256(seed: 9))
    }

    @Test func theStreamsShareNoDraws() {
        let draws = TrainingStream.allCases.map { stream in
            var generator = stream.generator(seed: 1337)
            return Set((0..<4096).map { _ in generator.next() })
        }
        for a in draws.indices {
            #expect(draws[a].count == 4096)
            for b in draws.indices where b > a { #expect(draws[a].isDisjoint(with: draws[b]), "streams \(a) and \(b)") }
        }
        #expect(TrainingStream.initialization.generator(seed: 1337) == Xoshiro256(seed: 1337))
    }

    /// The trainer draws from its streams: its first batches come from the batch stream, its
    /// weights from the initialization stream, whatever the other one is asked for.
    @Test func aShapeChangeLeavesTheBatchesAlone() throws {
        let corpus = try SampleText.file()
        var small = TrainerTests.options(steps: 3), wide = small
        wide.dim = 48; wide.heads = 3  // more weights drawn
        var bigger = small
        bigger.batch = 12  // more offsets drawn
        let (a, _) = try TrainerTests.train(small, corpus: corpus, out: corpus + ".a.tfq")
        let (b, _) = try TrainerTests.train(wide, corpus: corpus, out: corpus + ".b.tfq")
        #expect(a.state.sampler == b.state.sampler)
        var expected = TrainingStream.batches.generator(seed: small.seed)
        for _ in 0..<(3 * small.batch) { _ = expected.next() }
        #expect(a.state.sampler == expected)
        // The same initial weights, whatever the batches: a checkpoint of 0 steps each.
        small.steps = 0; bigger.steps = 0
        let (c, _) = try TrainerTests.train(small, corpus: corpus, out: corpus + ".c.tfq")
        let (d, _) = try TrainerTests.train(bigger, corpus: corpus, out: corpus + ".d.tfq")
        let reference = GPT(config: c.model.config, pool: ThreadPool(threads: 1))
        reference.initialize(seed: small.seed)
        #expect(Array(c.model.parameters) == Array(reference.parameters) ? true : false)
        #expect(Array(d.model.parameters) == Array(reference.parameters) ? true : false)
    }

    /// Dropout masks follow the seed: the same key drops the same elements, another key others.
    @Test func dropoutMasksChangeWithTheSeed() {
        let config = ReferenceModelTests.configs[0]
        let (inputs, targets) = ReferenceModelTests.batch(batch: 2, length: 7, vocab: config.vocabSize, seed: 5)
        func loss(key: UInt64) -> Double {
            let model = ReferenceModelTests.tinyModel(config, seed: 3, threads: 1)
            model.dropout = 0.25
            model.dropoutKey = key
            return model.forward(inputs: inputs, targets: targets, batch: 2, length: 7, training: true)
        }
        var stream = TrainingStream.dropout.generator(seed: 1337)
        let key = stream.next()
        #expect(loss(key: key) == loss(key: key))
        #expect(loss(key: key) != loss(key: key &+ 1))
        #expect(loss(key: 0) != loss(key: key))
    }
}
