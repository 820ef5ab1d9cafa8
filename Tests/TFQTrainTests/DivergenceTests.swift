import Foundation
import Testing
import TFQFormat
import TFQModel
@testable import TFQTrain

/// A run whose loss stops being a number stops at that step, keeps the last checkpoint it
/// wrote, and leaves metrics that every JSON reader parses (non-finite numbers as null).
@Suite struct DivergenceTests {
    /// The step in "training diverged at step N: …".
    static func divergedStep(_ message: String) -> Int? {
        guard let range = message.range(of: "training diverged at step ") else { return nil }
        return Int(message[range.upperBound...].prefix { $0.isNumber })
    }

    @Test func metricsWriteNumbersThatAreNotFiniteAsNull() throws {
        let entry = MetricsLog.Entry(step: 3, loss: .nan, lr: .infinity, tokensPerSecond: 10, valLoss: -.infinity, valBitsPerByte: nil)
        let data = try JSONEncoder().encode(entry)
        let object = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(object["loss"] is NSNull && object["lr"] is NSNull && object["val_loss"] is NSNull)
        #expect(object["val_bits_per_byte"] == nil, "no value is no key, as on a step without an evaluation")
        #expect(object["step"] as? Int == 3 && object["tokens_per_second"] as? Double == 10)
        let back = try JSONDecoder().decode(MetricsLog.Entry.self, from: data)
        #expect(back.step == 3 && back.loss.isNaN && back.lr.isNaN && back.valLoss?.isNaN == true && back.valBitsPerByte == nil)

        // The log keeps such a line, and reads it back with the others.
        let path = try SampleText.file() + ".metrics.jsonl"
        let log = MetricsLog(path: path)
        log.reset()
        log.append(step: 1, loss: 2.5, learningRate: 1e-3, tokensPerSecond: 100, valLoss: 2.6, valBitsPerByte: 3.1)
        log.append(step: 2, loss: .infinity, learningRate: 1e-3, tokensPerSecond: 100, valLoss: nil, valBitsPerByte: nil)
        #expect(log.read().map(\.step) == [1, 2])
        #expect(log.read().last?.loss.isNaN == true)

        let summary = TrainingSummary(steps: 2, tokens: 8, trainLoss: .nan, valLoss: .infinity, valBitsPerByte: nil, tokensPerSecond: 5,
                                      wallSeconds: .nan, parameters: 1, flopsPerToken: 2e6, peakRSSBytes: 1, checkpoint: "c.tfq", interrupted: false)
        let json = try #require(try JSONSerialization.jsonObject(with: JSONEncoder().encode(summary)) as? [String: Any])
        #expect(json["train_loss"] is NSNull && json["val_loss"] is NSNull && json["wall_seconds"] is NSNull)
        #expect(json["val_bits_per_byte"] == nil && json["tokens_per_second"] as? Double == 5 && json["steps"] as? Int == 2)
        #expect(json["flops_per_token"] as? Double == 2e6 && json["gflops_per_second"] as? Double == 0.01)
    }

    @Test func aDivergedRunStopsAtTheStepAndKeepsTheCheckpointBeforeIt() throws {
        let corpus = try SampleText.file()
        let out = corpus + ".tfq"
        var options = TrainerTests.options(steps: 20)
        options.learningRate = 1e30
        options.checkpointEvery = 1
        var message = ""
        do {
            _ = try TrainerTests.train(options, corpus: corpus, out: out)
            Issue.record("a run at lr 1e30 finished")
        } catch let error as TrainingError {
            message = error.description
        }
        let step = try #require(Self.divergedStep(message), "\(message)")
        #expect(step >= 2 && (message.contains("the training loss is nan") || message.contains("the training loss is inf")), "\(message)")
        #expect(message.contains("the checkpoint of step \(step - 1) in \(out) is kept") && !message.contains("\n"), "\(message)")

        // The checkpoint is the last finite step's, whole, and a resume from it starts there.
        let file = try TFQFile(path: out, options: .init(verifyChecksums: true))
        #expect(try file.metadataSection("training", as: TrainingState.self)?.step == step - 1)
        for info in file.tensors { #expect(file.floats(info).allSatisfy { $0.isFinite }, "\(info.name)") }
        do {
            let (resumed, _) = try TrainerTests.train(options, corpus: corpus, out: out, resume: true)
            Issue.record("the resumed run finished at step \(resumed.state.step)")
        } catch let error as TrainingError {
            #expect(error.description == message, "same flags, same divergence: \(error.description)")
        }
        let lines = try String(contentsOfFile: out + ".metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let entries = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(entries.count == step && entries.last?["step"] as? Int == step && entries.last?["loss"] is NSNull)
    }

    @Test func aCheckpointIsNeverWrittenWithWeightsThatAreNotFinite() throws {
        let corpus = try SampleText.file()
        let out = corpus + ".tfq"
        let (trainer, _) = try TrainerTests.train(TrainerTests.options(steps: 3), corpus: corpus, out: out)
        let before = try Data(contentsOf: URL(fileURLWithPath: out))
        // As a step with --grad-clip 0 can leave them: the loss was finite, a weight is not.
        let offset = try #require(trainer.model.layout.tensor(named: "blocks.1.ffn.up.weight")).offset
        trainer.model.parameters[offset + 5] = .nan
        do {
            try trainer.saveCheckpoint()
            Issue.record("saved NaN weights")
        } catch let error as TrainingError {
            #expect(error.description.contains("blocks.1.ffn.up.weight is not finite"), "\(error.description)")
            #expect(error.description.contains("the checkpoint of step 3 in \(out) is kept"), "\(error.description)")
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: out)) == before)
    }
}
