import Foundation
import Testing
import TFQTestSupport
import TFQFormat
import TFQKernels
import TFQTrainKernels
import TFQModel
@testable import TFQTrain

/// The Swift model against tools/reference.py (numpy, float64) on the same weights: loss,
/// logits and every gradient within 1e-4 relative error.
@Suite struct ReferenceModelTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// A tiny model whose gains and biases are random too, so their gradients are exercised.
    static func tinyModel(_ config: ModelConfig, seed: UInt64, threads: Int = 2) -> GPT {
        let model = GPT(config: config, pool: ThreadPool(threads: threads))
        model.initialize(seed: seed)
        var random = Xoshiro256(seed: seed + 1)
        for tensor in model.layout.tensors where !tensor.isMatrix {
            for i in 0..<tensor.count { model.parameters[tensor.offset + i] += Float(random.nextGaussian() * 0.3) }
        }
        // Larger weights than GPT-2's init, so attention is far from uniform.
        for i in 0..<model.parameters.count { model.parameters[i] *= 8 }
        return model
    }

    static func batch(batch: Int, length: Int, vocab: Int, seed: UInt64) -> (inputs: [Int32], targets: [Int32]) {
        var random = Xoshiro256(seed: seed)
        let inputs = (0..<(batch * length)).map { _ in Int32(random.next() % UInt64(vocab)) }
        let targets = (0..<(batch * length)).map { _ in Int32(random.next() % UInt64(vocab)) }
        return (inputs, targets)
    }

    static let configs: [ModelConfig] = [
        ModelConfig(vocabSize: 11, contextLength: 8, layers: 2, heads: 2, dim: 16, ffDim: 24, activation: .relu),
        ModelConfig(vocabSize: 9, contextLength: 6, layers: 2, heads: 4, dim: 16, ffDim: 32, activation: .gelu, tieEmbeddings: true, bias: false),
    ]

    @Test(.enabled(if: Python.hasNumpy, "python3 with numpy is needed to run tools/reference.py"), arguments: configs)
    func matchesTheNumpyReference(config: ModelConfig) throws {
        let model = Self.tinyModel(config, seed: 3)
        let (batch, length) = (3, config.contextLength - 1)
        let (inputs, targets) = Self.batch(batch: batch, length: length, vocab: config.vocabSize, seed: 4)
        model.forward(inputs: inputs, targets: nil, batch: batch, length: length)
        let logits = Array(model.logits)
        model.zeroGradients()
        let loss = model.forward(inputs: inputs, targets: targets, batch: batch, length: length)
        model.backward()

        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-ref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let path = directory.appendingPathComponent("case.tfq").path
        let writer = try TFQWriter(path: path)
        try model.writeParameters(to: writer)
        try model.writeParameters(to: writer, prefix: "grad.", from: UnsafeBufferPointer(model.gradients))
        for (name, ids) in [("batch.inputs", inputs), ("batch.targets", targets)] {
            try ids.map(Float.init).withUnsafeBufferPointer { try writer.add(name: name, shape: [batch, length], floats: $0) }
        }
        try [Float(loss)].withUnsafeBufferPointer { try writer.add(name: "out.loss", shape: [], floats: $0) }
        try logits.withUnsafeBufferPointer { try writer.add(name: "out.logits", shape: [batch, length, config.vocabSize], floats: $0) }
        try writer.finish(metadata: ModelMetadata(kind: "checkpoint", config: config, tokenizer: .char(vocabulary: (0..<config.vocabSize).map { Unicode.Scalar(UInt8(65 + $0)) })).encoded())

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", Self.root.appendingPathComponent("tools/reference.py").path, path, "--json"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let report = try JSONDecoder().decode(JSONValue.self, from: output)
        guard case .number(let worst)? = report["max_rel_error"] else { Issue.record("no report: \(String(decoding: output, as: UTF8.self))"); return }
        #expect(worst <= 1e-4, "worst relative error \(worst) at \(report["worst"] ?? .null)")
        #expect(report["ok"] == .bool(true))
        #expect(process.terminationStatus == 0)
        if case .object(let grads)? = report["grads"] { #expect(grads.count == model.layout.tensors.count) }
    }

    @Test func wholeModelFiniteDifferences() {
        let config = ModelConfig(vocabSize: 7, contextLength: 5, layers: 2, heads: 2, dim: 8, ffDim: 12, activation: .gelu)
        let model = Self.tinyModel(config, seed: 9, threads: 1)
        for i in 0..<model.parameters.count { model.parameters[i] /= 4 }
        let (inputs, targets) = Self.batch(batch: 2, length: 5, vocab: 7, seed: 10)
        func loss() -> Double { model.forward(inputs: inputs, targets: targets, batch: 2, length: 5) }
        model.zeroGradients()
        _ = loss()
        model.backward()
        let analytic = Array(model.gradients)
        let step: Float = 1e-2
        for tensor in model.layout.tensors {
            var worst = 0.0
            for i in stride(from: tensor.offset, to: tensor.offset + tensor.count, by: max(1, tensor.count / 5)) {
                let saved = model.parameters[i]
                model.parameters[i] = saved + step; let plus = loss()
                model.parameters[i] = saved - step; let minus = loss()
                model.parameters[i] = saved
                let numeric = (plus - minus) / Double(2 * step)
                worst = max(worst, abs(numeric - Double(analytic[i])) / max(0.05, abs(numeric)))
            }
            #expect(worst < 2e-2, "\(tensor.name): worst relative error \(worst)")
        }
    }

    /// Linear weights are packed for the GEMM at the start of every pass (WeightPanels): a
    /// pass after the parameters change computes with the new values, as a fresh model
    /// holding them does, on every replica.
    @Test func aPassSeesParametersChangedSinceTheLast() {
        let config = Self.configs[1]
        let (inputs, targets) = Self.batch(batch: 3, length: 6, vocab: config.vocabSize, seed: 8)
        let model = Self.tinyModel(config, seed: 4)
        let before = model.forward(inputs: inputs, targets: targets, batch: 3, length: 6)
        for i in 0..<model.parameters.count { model.parameters[i] *= 0.5 }
        let after = model.forward(inputs: inputs, targets: targets, batch: 3, length: 6)
        let fresh = GPT(config: config, pool: ThreadPool(threads: 2))
        for i in 0..<model.parameters.count { fresh.parameters[i] = model.parameters[i] }
        #expect(after == fresh.forward(inputs: inputs, targets: targets, batch: 3, length: 6))
        #expect(after != before)
    }

    /// Backward writes the linear weights' gradients instead of adding them to zeros, and
    /// zeroes only the rest: a training step leaves the same gradients, bit for bit, whatever
    /// the buffers held (NaN here, and the last step's in the replicas' own buffers). At one
    /// thread the weight gradients' GEMMs have two k blocks (288 rows; GEMM.kc is 256), so the first block
    /// writes and the second adds.
    @Test(arguments: [1, 2])
    func aTrainingStepWritesEveryGradient(threads: Int) {
        for config in Self.configs {
            let (x, xTargets) = Self.batch(batch: 48, length: 6, vocab: config.vocabSize, seed: 11)
            let (y, yTargets) = Self.batch(batch: 48, length: 6, vocab: config.vocabSize, seed: 12)
            let fresh = Self.tinyModel(config, seed: 5, threads: threads)
            _ = fresh.trainingStep(inputs: y, targets: yTargets, batch: 48, length: 6, measuringNorm: true)
            let reused = Self.tinyModel(config, seed: 5, threads: threads)
            _ = reused.trainingStep(inputs: x, targets: xTargets, batch: 48, length: 6, measuringNorm: false)
            for i in 0..<reused.gradients.count { reused.gradients[i] = .nan }
            _ = reused.trainingStep(inputs: y, targets: yTargets, batch: 48, length: 6, measuringNorm: true)
            let different = (0..<fresh.gradients.count).first { reused.gradients[$0].bitPattern != fresh.gradients[$0].bitPattern }
            #expect(different == nil, "\(config): gradient \(different ?? 0) differs")
            #expect(fresh.gradients.allSatisfy { $0.isFinite } && fresh.gradients.contains { $0 != 0 })
        }
    }

    /// The batch splits into one slice of sequences per thread (fewer, of several threads each,
    /// when threads outnumber sequences): loss, gradients and dropout masks must not depend on
    /// the split.
    @Test(arguments: [Float(0), 0.25])
    func resultsDoNotDependOnTheThreadCount(dropout: Float) {
        let config = Self.configs[0]
        let (inputs, targets) = Self.batch(batch: 4, length: 7, vocab: config.vocabSize, seed: 5)
        var results: [[Float]] = []
        for threads in [1, 2, 3, 8] {
            let model = Self.tinyModel(config, seed: 3, threads: threads)
            model.dropout = dropout
            model.zeroGradients()
            let loss = model.forward(inputs: inputs, targets: targets, batch: 4, length: 7, training: true)
            model.backward()
            results.append([Float(loss)] + Array(model.gradients))
        }
        #expect(results[0].dropFirst().contains { $0 != 0 })
        // Slices sum their gradients separately, and kernels split rows differently: the
        // same values up to rounding, not bit for bit.
        for other in results.dropFirst() {
            let worst = zip(results[0], other).map { abs($0 - $1) / max(1e-3, abs($0)) }.max()!
            #expect(worst < 1e-4)
        }
    }

    /// The trainer's fused step (forward and backward in one job per replica, gradients zeroed
    /// by the replicas, the norm taken while summing them) gives the separate calls' loss,
    /// gradients and norm bit for bit, dropout masks included, and overwrites what the
    /// gradient buffer held before.
    @Test(arguments: [(1, Float(0)), (2, 0), (3, 0.25), (8, 0.25)])
    func theFusedTrainingStepMatchesTheSeparateCalls(threads: Int, dropout: Float) {
        let config = Self.configs[1]
        let (inputs, targets) = Self.batch(batch: 4, length: 5, vocab: config.vocabSize, seed: 6)
        var masked = targets
        masked[3] = -1   // an uncounted position
        let separate = Self.tinyModel(config, seed: 3, threads: threads), fused = Self.tinyModel(config, seed: 3, threads: threads)
        separate.dropout = dropout
        fused.dropout = dropout
        for step in 0..<2 {
            separate.zeroGradients()
            let loss = separate.forward(inputs: inputs, targets: masked, batch: 4, length: 5, training: true)
            separate.backward()
            let norm = Optimizer.norm(separate.gradients.baseAddress!, count: separate.layout.count, pool: separate.pool)
            fused.gradients.update(repeating: 7)   // stale values the step must not add to
            let result = fused.trainingStep(inputs: inputs, targets: masked, batch: 4, length: 5, measuringNorm: step == 0)
            #expect(result.loss == loss && loss > 0)
            #expect(step == 0 ? result.gradientNorm == norm && norm > 0 : result.gradientNorm == nil)
            #expect(Array(fused.gradients) == Array(separate.gradients), "step \(step)")
        }
    }

    /// Replicas that finish first take GEMM tiles from the others (`TileExchange`): who
    /// computes a tile must not change the step's loss, gradients or norm, bit for bit. Seven
    /// sequences split 3/4 on two threads and 2/2/3 on three. Each step holds one replica
    /// back at its first GEMM until another has taken a tile of it, so tiles change hands in
    /// every step whatever the scheduler does.
    @Test(arguments: [2, 3])
    func sharingTilesBetweenReplicasChangesNothing(threads: Int) {
        let config = ModelConfig(vocabSize: 11, contextLength: 32, layers: 2, heads: 2, dim: 64, ffDim: 256, activation: .gelu)
        let (inputs, targets) = Self.batch(batch: 7, length: 32, vocab: config.vocabSize, seed: 8)
        let shared = Self.tinyModel(config, seed: 4, threads: threads), alone = Self.tinyModel(config, seed: 4, threads: threads)
        shared.forcesSideBySide = true   // a hold-back needs another thread to take the tile
        alone.sharesTiles = false
        var taken = 0
        for step in 0..<3 {
            shared.holdsBackReplicaOnce = step % threads
            let a = shared.trainingStep(inputs: inputs, targets: targets, batch: 7, length: 32, measuringNorm: true)
            let b = alone.trainingStep(inputs: inputs, targets: targets, batch: 7, length: 32, measuringNorm: true)
            #expect(shared.tilesTakenByHelpers > taken, "step \(step)")
            taken = shared.tilesTakenByHelpers
            #expect(a.loss == b.loss && a.gradientNorm == b.gradientNorm && a.loss > 0, "step \(step)")
            let same = Array(shared.gradients) == Array(alone.gradients)
            #expect(same, "step \(step)")
            shared.holdsBackReplicaOnce = (step + 1) % threads
            let evalShared = shared.forward(inputs: inputs, targets: targets, batch: 7, length: 32)
            #expect(evalShared == alone.forward(inputs: inputs, targets: targets, batch: 7, length: 32))
            #expect(shared.tilesTakenByHelpers > taken, "forward after step \(step)")
            taken = shared.tilesTakenByHelpers
            for model in [shared, alone] {   // move the weights, so the steps differ
                for i in 0..<model.layout.count { model.parameters[i] -= 0.01 * model.gradients[i] }
            }
        }
    }
}

extension ReferenceModelTests {
    /// Replicas are claimed by whichever thread comes: with the workers held off every job,
    /// as if the scheduler kept them off their cores, the caller runs every replica itself
    /// (before, the step waited for them). Side by side, side by side without the workers,
    /// and one after another on the caller (the schedule a busy core gets) give the same
    /// loss, norm and gradients bit for bit, for training steps and evaluation passes.
    @Test(arguments: [2, 3])
    func replicasGiveTheSameResultsOnWhicheverThreadsRunThem(threads: Int) {
        let config = ModelConfig(vocabSize: 11, contextLength: 32, layers: 2, heads: 2, dim: 64, ffDim: 256, activation: .gelu)
        let (inputs, targets) = Self.batch(batch: 7, length: 32, vocab: config.vocabSize, seed: 9)
        let sideBySide = Self.tinyModel(config, seed: 5, threads: threads)
        let withoutWorkers = Self.tinyModel(config, seed: 5, threads: threads)
        let oneAfterAnother = Self.tinyModel(config, seed: 5, threads: threads)
        sideBySide.forcesSideBySide = true
        withoutWorkers.forcesSideBySide = true
        withoutWorkers.pool.holdWorkers(threads - 1)
        defer { withoutWorkers.pool.holdWorkers(0) }
        oneAfterAnother.forcesSideBySide = false
        let models = [sideBySide, withoutWorkers, oneAfterAnother]
        for step in 0..<2 {
            let results = models.map { $0.trainingStep(inputs: inputs, targets: targets, batch: 7, length: 32, measuringNorm: true) }
            #expect(results[0].loss > 0 && results[0].gradientNorm! > 0)
            for (model, result) in zip(models.dropFirst(), results.dropFirst()) {
                #expect(result.loss == results[0].loss && result.gradientNorm == results[0].gradientNorm, "step \(step)")
                let same = Array(model.gradients) == Array(sideBySide.gradients)
                #expect(same, "step \(step)")
            }
            let evaluations = models.map { $0.forward(inputs: inputs, targets: targets, batch: 7, length: 32) }
            #expect(evaluations.allSatisfy { $0 == evaluations[0] })
            for model in models {   // move the weights, so the steps differ
                for i in 0..<model.layout.count { model.parameters[i] -= 0.01 * model.gradients[i] }
            }
        }
        #expect(withoutWorkers.pool.partsTakenByWorkers == 0)
    }

    /// The schedule's decisions, from the times it is shown (no clock involved): with free
    /// cores (a side-by-side step takes 0.55 of two replica times) it never leaves side by
    /// side, nor probes; on a busy core (1.1) it runs alone once most of a window says so,
    /// with a side-by-side probe after `probeInterval` jobs, each probe that does not gain
    /// doubling the interval to the next (up to `longestProbeInterval`), one that gains
    /// bringing it back; two probes in a row that gain bring side by side back, one alone
    /// does not. The yardstick is the shortest replica time of recent jobs, alone ones
    /// included.
    @Test func theReplicaScheduleFollowsWhatSideBySideGains() {
        var schedule = ReplicaSchedule()
        for _ in 0..<100 {
            #expect(schedule.nextRunsSideBySide)
            schedule.record(sideBySide: true, wall: 0.55, fastestReplica: 0.5, replicas: 2)
        }
        var busyJobs = 0
        while schedule.sideBySide && busyJobs < 100 {
            // Both threads at half speed now and then: the yardstick stays the recent 0.5.
            schedule.record(sideBySide: true, wall: 1.1, fastestReplica: busyJobs % 2 == 0 ? 0.5 : 1.0, replicas: 2)
            busyJobs += 1
        }
        #expect(busyJobs == ReplicaSchedule.window / 2 + 1)   // when the window's median turns
        func runAloneUntilProbe() -> Int {
            var alone = 0
            while !schedule.nextRunsSideBySide { schedule.record(sideBySide: false, wall: 1.0, fastestReplica: 0.5, replicas: 2); alone += 1 }
            return alone
        }
        #expect(runAloneUntilProbe() == ReplicaSchedule.probeInterval - 1)
        // Still busy, probe after probe: 32, 64, 128, then 256 jobs apart, and no further.
        var intervals: [Int] = []
        for _ in 0..<5 {
            schedule.record(sideBySide: true, wall: 1.1, fastestReplica: 0.55, replicas: 2)
            intervals.append(runAloneUntilProbe() + 1)
        }
        #expect(intervals == [64, 128, 256, 256, 256])
        #expect(ReplicaSchedule.longestProbeInterval == 256 && ReplicaSchedule.probeInterval == 32)
        schedule.record(sideBySide: true, wall: 0.55, fastestReplica: 0.5, replicas: 2)   // one probe that gains
        #expect(!schedule.sideBySide)
        #expect(runAloneUntilProbe() == ReplicaSchedule.probeInterval - 1)
        schedule.record(sideBySide: true, wall: 0.55, fastestReplica: 0.5, replicas: 2)   // and a second
        #expect(schedule.sideBySide && schedule.nextRunsSideBySide)
    }
}

extension ModelConfig: CustomTestStringConvertible {
    public var testDescription: String { "\(activation) tied=\(tieEmbeddings) bias=\(bias)" }
}
