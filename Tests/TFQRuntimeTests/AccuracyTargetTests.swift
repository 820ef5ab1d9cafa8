import Foundation
import Testing
@testable import TFQExport
import TFQFormat
import TFQModel
import TFQRuntime

/// int8 export's default: settings measured from the fastest against a quality target, the
/// first that meets it written. Targets set here force each outcome on the fixture model.
@Suite(.serialized) struct AccuracyTargetTests {
    /// The fixture exported with int8 tables (so every step applies) against `target`.
    static func export(_ name: String, target: QualityTarget, accuracy: ExportOptions.Accuracy = .target) throws -> (String, ExportSummary) {
        var options = ExportOptions(precision: .int8, threads: 2)
        options.embedding = .int8
        options.evalTokens = 2048
        options.accuracy = accuracy
        options.target = target
        let path = Fixture.directory.appendingPathComponent("accuracy-\(name).tfq").path
        return (path, try Exporter.export(checkpoint: Fixture.checkpoint, output: path, options: options))
    }

    static func target(top1: Double = 0, meanKL: Double = .infinity, sizeRatio: Double = .infinity) -> QualityTarget {
        var target = QualityTarget()
        target.top1AgreementPercent = top1
        target.deltaPerplexityPercent = .infinity
        target.meanKL = meanKL
        target.sizeRatio = sizeRatio
        return target
    }

    static func twoPass(_ path: String) throws -> JSONValue? {
        try TFQFile(path: path).metadata["quantization"]?["two_pass_activations"]
    }

    /// The staging files an export leaves in the fixture's directory (none, when it is done).
    static func stagingFiles() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: Fixture.directory.path).filter { $0.hasPrefix(".accuracy-") }
    }

    @Test func theFirstSettingThatMeetsTheTargetIsWritten() throws {
        // A target nothing meets: every step is measured, fastest first, and the closest by
        // mean KL is written, with its report.
        let (neverPath, never) = try Self.export("never", target: Self.target(top1: 101))
        #expect(never.accuracyTrials.map(\.settings.description) == [
            "", "group_size 32 two_pass_norm_inputs",
            "group_size 32 two_pass_norm_inputs two_pass_classifier table_group_size 16",
            "group_size 32 two_pass_norm_inputs two_pass_classifier table_group_size 8",
            "group_size 32 two_pass_norm_inputs two_pass_classifier table_group_size 4",
        ])
        #expect(never.accuracyTrials.allSatisfy { !$0.met })
        let closest = try #require(never.accuracyTrials.indices.min { never.accuracyTrials[$0].quality.meanKL < never.accuracyTrials[$1].quality.meanKL })
        #expect(never.accuracyNote?.description == "no setting met the accuracy target; kept the closest (by mean KL within the size): "
                + never.accuracyTrials[closest].settings.description)
        #expect(never.accuracyKept == closest && never.quality == never.accuracyTrials[closest].quality)
        #expect(try TFQFile(path: neverPath).metadataSection("quality", as: QualityReport.self) == never.quality)
        // Each setting's size is its output file's, to the byte.
        #expect(never.fileBytes == never.accuracyTrials[closest].fileBytes)
        #expect(try Self.stagingFiles().isEmpty)
        // Finer groups and more inputs in two passes bring the model closer than the fast settings.
        let kl = never.accuracyTrials.map(\.quality.meanKL)
        #expect(kl[1] < kl[0] && kl[4] < kl[1], "\(kl)")

        // A target every setting meets: the file is the fast export's.
        let (firstPath, first) = try Self.export("always", target: Self.target())
        #expect(first.accuracyTrials.map(\.met) == [true, true, true, true, true] && first.accuracyNote == nil)
        #expect(first.accuracyTrials.map(\.quality) == never.accuracyTrials.map(\.quality))  // export is deterministic
        let (fastPath, fast) = try Self.export("fast", target: Self.target(top1: 101), accuracy: .fast)
        #expect(fast.accuracyTrials.isEmpty && fast.accuracyNote == nil && first.quality == fast.quality)
        let firstFile = try TFQFile(path: firstPath), fastFile = try TFQFile(path: fastPath)
        #expect(firstFile.tensors.map(\.name) == fastFile.tensors.map(\.name))
        for info in firstFile.tensors {
            let same = try #require(fastFile.info(info.name))
            #expect(Array(firstFile.bytes(info)) == Array(fastFile.bytes(same)), "\(info.name)")
        }
        #expect(try Self.twoPass(firstPath) == .array(["attn.proj", "attn.qkv", "ffn.down", "ffn.up"].map { .string("blocks.0.\($0).weight") }))

        // A mean-KL bar between the first two steps': the second is written.
        let (secondPath, second) = try Self.export("second", target: Self.target(meanKL: (kl[0] + kl[1]) / 2))
        #expect(second.accuracyTrials.map(\.met) == kl.map { $0 <= (kl[0] + kl[1]) / 2 } && second.accuracyNote == nil)
        #expect(second.accuracyKept == 1 && second.quality == never.accuracyTrials[1].quality)
        #expect(second.fileBytes == second.accuracyTrials[1].fileBytes)
        let file = try TFQFile(path: secondPath)
        #expect(file.metadata["quantization"]?["group_size"] == .string("32"))
        #expect(file.info("blocks.1.ffn.up.weight")?.groupSize == 32 && file.info("tok_emb")?.groupSize == 32)
        // Block 0 whole, and block 1's norm readers; not the classifier (the tied table).
        let secondBlock = ["attn.qkv", "ffn.up"].map { JSONValue.string("blocks.1.\($0).weight") }
        let firstBlock = ["attn.proj", "attn.qkv", "ffn.down", "ffn.up"].map { JSONValue.string("blocks.0.\($0).weight") }
        #expect(try Self.twoPass(secondPath) == .array(firstBlock + secondBlock))

        // The size is part of the target: with every step over it, the closest of all is kept;
        // with only the largest over it, the closest of the others.
        let (_, small) = try Self.export("small", target: Self.target(top1: 101, sizeRatio: 0.01))
        #expect(small.accuracyNote?.description.hasPrefix("no setting met the accuracy target; kept the closest (by mean KL): ") == true)
        #expect(small.accuracyKept == closest)
        let sizes = never.accuracyTrials.map(\.fileBytes)
        let largest = try #require(sizes.indices.max { sizes[$0] < sizes[$1] })
        let bar = Double(sizes.filter { $0 < sizes[largest] }.max()! + sizes[largest]) / 2 / Double(never.fp32WeightBytes)
        let (_, bounded) = try Self.export("bounded", target: Self.target(top1: 101, sizeRatio: bar))
        let within = sizes.indices.filter { $0 != largest && sizes[$0] < sizes[largest] }
        #expect(bounded.accuracyKept == within.min { kl[$0] < kl[$1] })
        #expect(bounded.accuracyNote?.description.hasPrefix("no setting met the accuracy target; kept the closest (by mean KL within the size): ") == true)

        // A later step's file is the file those settings give by hand.
        var options = ExportOptions(precision: .int8, threads: 2)
        options.embedding = .int8
        options.evalTokens = 2048
        options.accuracy = .fast
        options.groupSize = .size(32)
        options.twoPassNormInputs = true
        options.twoPassClassifier = true
        options.tableGroupSize = .size(8)
        let byHandPath = Fixture.directory.appendingPathComponent("accuracy-by-hand.tfq").path
        let byHand = try Exporter.export(checkpoint: Fixture.checkpoint, output: byHandPath, options: options)
        #expect(byHand.quality == never.accuracyTrials[3].quality)
        #expect(try Self.stagingFiles().isEmpty)
    }

    @Test func theTargetRefusesSettingsGivenByHand() throws {
        var options = ExportOptions(precision: .int8, threads: 1)
        options.twoPassNormInputs = true
        // Refused before anything is opened or written.
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("refused-\(UUID().uuidString).tfq").path
        do {
            _ = try Exporter.export(checkpoint: "/nonexistent.tfq", output: out, options: options)
            Issue.record("the export was not refused")
        } catch let error as ExportError {
            #expect(error.message.options == ["accuracy", "accuracy"])
        }
        #expect(!FileManager.default.fileExists(atPath: out))
    }

    @Test func targetChecksEveryBar() {
        let target = QualityTarget()
        let report = QualityReport(positions: 100, skipped: 0, referenceCrossEntropy: 1, modelCrossEntropy: 1 + 4e-4,
                                   top1AgreementPercent: 99.5, meanKL: 5e-5, maxAbsLogitError: 0, tensorRelativeError: [:])
        #expect(target.isMet(by: report, fileBytes: 30, fp32Bytes: 100))  // every bar met exactly (Δppl 0.04%)
        #expect(!target.isMet(by: report, fileBytes: 31, fp32Bytes: 100))
        var worse = report
        worse.top1AgreementPercent = 99.49
        #expect(!target.isMet(by: worse, fileBytes: 30, fp32Bytes: 100))
        worse = report
        worse.meanKL = 5.1e-5
        #expect(!target.isMet(by: worse, fileBytes: 30, fp32Bytes: 100))
        worse = report
        worse.modelCrossEntropy = 1 + 6e-4  // Δppl 0.06%
        #expect(!target.isMet(by: worse, fileBytes: 30, fp32Bytes: 100))
    }
}
