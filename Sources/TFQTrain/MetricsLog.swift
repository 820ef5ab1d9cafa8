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
