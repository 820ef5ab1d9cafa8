import ArgumentParser
import TFQKernels

/// `--threads`, for every command that computes: 1 to 256, all online processors by default.
///
/// All processors even on a machine where other programs are running: the pool's parts go to
/// whichever thread is on a core, so a busy core costs little (BENCHMARKS.md, "A busy
/// board"), and free cores are used when they come back.
struct ThreadOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Threads (default: all online processors; other busy programs cost little: the caller takes the parts of a thread that is off its core)."))
    var threads: Int?

    /// Refuses a count outside 1...256 with a one-line error (ArgumentParser's own validation
    /// would print the usage too).
    func check() throws {
        if let threads, threads < 1 || threads > 256 { throw UsageError("--threads must be 1 to 256 (got \(threads))") }
    }

    /// The thread count to use.
    var count: Int { threads ?? ThreadPool.availableProcessors }
}
