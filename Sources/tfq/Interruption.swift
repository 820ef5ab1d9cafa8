#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Ctrl-C and SIGTERM, turned into a flag the training loop polls between steps, so an
/// interrupted run saves its checkpoint and exits instead of dying mid-write.
enum Interruption {
    private static let received = Atomic<Int32>(0)

    static func install() {
        var signals = sigset_t()
        sigemptyset(&signals)
        for sig in [SIGINT, SIGTERM] {
            Glibc.signal(sig) { number in Interruption.received.store(number, ordering: .relaxed) }
            sigaddset(&signals, sig)
        }
        // A parent may have started us with these blocked (the mask is inherited across exec).
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    /// The signal received, or 0.
    static var signalNumber: Int32 { received.load(ordering: .relaxed) }
}
