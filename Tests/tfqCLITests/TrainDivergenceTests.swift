import Foundation
import Testing
import TFQFormat

/// `tfq train` at a learning rate that makes the loss NaN: a one-line error naming the step,
/// the last checkpoint kept whole and resumable, and metrics that still parse.
@Suite struct TrainDivergenceTests {
    @Test func aDivergingRunStopsNamingTheStepAndKeepsItsCheckpoint() throws {
        let directory = try CLI.temporaryDirectory()
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let out = directory.appendingPathComponent("m.tfq").path
        let arguments = ["train", "--data", corpus, "--out", out, "--steps", "20", "--lr", "1e30", "--checkpoint-every", "1", "--json"]
            + TrainInspectVerifyTests.small
        let result = try CLI.run(arguments)
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        let error = try #require(result.stderr.split(separator: "\n").last.map(String.init))
        #expect(error.hasPrefix("Error: training diverged at step "), "\(result.stderr)")
        let step = try #require(Int(error.dropFirst("Error: training diverged at step ".count).prefix { $0.isNumber }), "\(error)")
        #expect(step >= 2)
        #expect(error.contains(": the training loss is nan;") || error.contains(": the training loss is inf;"), "\(error)")
        #expect(error.contains("the checkpoint of step \(step - 1) in \(out) is kept"), "\(error)")

        // The kept checkpoint is whole and is the last finite step's.
        #expect(try CLI.run(["verify", out]).status == 0)
        let file = try TFQFile(path: out)
        #expect(try file.metadataSection("training", as: JSONValue.self)?["step"] == .integer(Int64(step - 1)))
        // Every metrics line is JSON; the diverged step's loss is null.
        let lines = try String(contentsOfFile: out + ".metrics.jsonl", encoding: .utf8).split(separator: "\n")
        let entries = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]) }
        #expect(entries.count == step)
        #expect(entries.last?["step"] as? Int == step && entries.last?["loss"] is NSNull)
        #expect(try String(contentsOfFile: out + ".loss.svg", encoding: .utf8).hasSuffix("</svg>\n"))

        // --resume loads it, and the same flags diverge at the same step again.
        let resumed = try CLI.run(arguments + ["--resume"])
        #expect(resumed.status == 1)
        #expect(resumed.stderr.contains("resuming \(out) at step \(step - 1) of 20"), "\(resumed.stderr)")
        #expect(resumed.stderr.split(separator: "\n").last.map(String.init) == error)
        #expect(try TFQFile(path: out).metadataSection("training", as: JSONValue.self)?["step"] == .integer(Int64(step - 1)))

        // Its weights are finite but overflow in the forward pass: export refuses in one line
        // (it ended in 'EncodingError.invalidValue: -nan' writing the quality report).
        let exported = directory.appendingPathComponent("m.int8.tfq").path
        let export = try CLI.run(["export", out, "--int8", "-o", exported, "--eval-data", corpus])
        #expect(export.status == 1)
        #expect(export.stderr.contains("the model's own predictions are not finite") && export.stderr.contains("nothing was exported"), "\(export.stderr)")
        #expect(export.stderr.split(separator: "\n").count == 1)
        #expect(!FileManager.default.fileExists(atPath: exported))
    }
}
