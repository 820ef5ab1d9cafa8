#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr are mutable C globals
#endif
import TFQTrain

/// The live progress line on stderr: rewritten in place on a terminal, one line per
/// evaluation (and every 5% of the run) when stderr is a file or pipe.
final class ProgressDisplay {
    private let interactive = isatty(2) != 0
    private var lastPrintedStep = 0
    private var wroteInPlace = false
    private let quiet: Bool

    init(quiet: Bool) { self.quiet = quiet }

    func note(_ text: String) {
        guard !quiet else { return }
        clearLine()
        fputs(text + "\n", stderr)
    }

    func show(_ p: TrainingProgress) {
        guard !quiet else { return }
        let val = p.valLoss.map { " | val \(format4($0))" + (p.valBitsPerByte.map { " (\(format4($0)) bpb)" } ?? "") } ?? ""
        let line = "step \(p.step)/\(p.steps) | loss \(format4(p.loss))\(val) | \(Int(p.tokensPerSecond)) tok/s | ETA \(duration(p.secondsRemaining))"
        if interactive {
            fputs("\r\u{1B}[2K" + line, stderr)
            wroteInPlace = true
            if p.evaluated { fputs("\n", stderr); wroteInPlace = false }
        } else if p.evaluated || p.step - lastPrintedStep >= max(1, p.steps / 20) || p.step == p.steps {
            fputs(line + "\n", stderr)
            lastPrintedStep = p.step
        }
    }

    func finish() { clearLine() }

    private func clearLine() {
        if wroteInPlace { fputs("\n", stderr); wroteInPlace = false }
    }

    private func duration(_ seconds: Double) -> String {
        guard seconds.isFinite else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? "\(s / 3600)h\(s % 3600 / 60)m" : s >= 60 ? "\(s / 60)m\(s % 60)s" : "\(s)s"
    }
}
