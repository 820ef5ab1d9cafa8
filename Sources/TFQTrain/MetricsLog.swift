import FoundationEssentials
#if canImport(Glibc)
import Glibc
#endif

/// The run's metrics as JSON lines next to the checkpoint (`CKPT.metrics.jsonl`), one per
/// step, for plotting and for other tools.
final class MetricsLog {
    struct Entry: Codable {
        var step: Int
        var loss: Double
        var lr: Float
        var tokensPerSecond: Double
        var valLoss: Double?
        var valBitsPerByte: Double?
        enum CodingKeys: String, CodingKey {
            case step, loss, lr, tokensPerSecond = "tokens_per_second", valLoss = "val_loss", valBitsPerByte = "val_bits_per_byte"
        }

        init(step: Int, loss: Double, lr: Float, tokensPerSecond: Double, valLoss: Double?, valBitsPerByte: Double?) {
            (self.step, self.loss, self.lr, self.tokensPerSecond) = (step, loss, lr, tokensPerSecond)
            (self.valLoss, self.valBitsPerByte) = (valLoss, valBitsPerByte)
        }

        /// The val keys are absent on steps without an evaluation; any number that is not
        /// finite is `null` (see FiniteJSON.swift).
        func encode(to encoder: Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(step, forKey: .step)
            try container.encodeFinite(loss, forKey: .loss)
            try container.encodeFinite(lr, forKey: .lr)
            try container.encodeFinite(tokensPerSecond, forKey: .tokensPerSecond)
            try container.encodeFinite(valLoss, forKey: .valLoss)
            try container.encodeFinite(valBitsPerByte, forKey: .valBitsPerByte)
        }

        init(from decoder: Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            step = try container.decode(Int.self, forKey: .step)
            loss = try container.decodeFinite(Double.self, forKey: .loss)
            lr = try container.decodeFinite(Float.self, forKey: .lr)
            tokensPerSecond = try container.decodeFinite(Double.self, forKey: .tokensPerSecond)
            valLoss = try container.decodeFiniteIfPresent(Double.self, forKey: .valLoss)
            valBitsPerByte = try container.decodeFiniteIfPresent(Double.self, forKey: .valBitsPerByte)
        }
    }

    let path: String

    init(path: String) { self.path = path }

    func reset() {
        try? Data().write(to: URL(fileURLWithPath: path))
    }

    /// Drops entries past `step`: a resumed run logs those steps again.
    func truncate(after step: Int) {
        let kept = read().filter { $0.step <= step }
        reset()
        for entry in kept { write(entry) }
    }

    func append(step: Int, loss: Double, learningRate: Float, tokensPerSecond: Double, valLoss: Double?, valBitsPerByte: Double?) {
        write(Entry(step: step, loss: loss, lr: learningRate, tokensPerSecond: tokensPerSecond, valLoss: valLoss, valBitsPerByte: valBitsPerByte))
    }

    func read() -> [Entry] {
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path)) else { return [] }
        return data.split(separator: UInt8(ascii: "\n")).compactMap { try? JSONDecoder().decode(Entry.self, from: Data($0)) }
    }

    private func write(_ entry: Entry) {
        guard var line = try? JSONEncoder().encode(entry) else { return }
        line.append(UInt8(ascii: "\n"))
        let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { return }
        defer { close(descriptor) }
        _ = line.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
    }
}
