#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// `--busy N` of the benchmarks: N threads that spin for as long as a measurement runs, as
/// another program keeping cores busy on a board would (a camera pipeline, a second model).
/// They only load the CPU; they touch no memory the measurement uses.
final class BusyLoad {
    private final class Flag: @unchecked Sendable { let stop = Atomic<Bool>(false) }
    private let flag = Flag()
    private var threads: [pthread_t] = []

    init(threads count: Int) {
        for _ in 0..<count {
            let context = Unmanaged.passRetained(flag).toOpaque()
            var thread = pthread_t()
            pthread_create(&thread, nil, { raw in
                let flag = Unmanaged<Flag>.fromOpaque(raw!).takeRetainedValue()
                var x: UInt64 = 1
                while !flag.stop.load(ordering: .relaxed) {
                    for _ in 0..<1_000 { x = x &* 6364136223846793005 &+ 1442695040888963407 }
                }
                return UnsafeMutableRawPointer(bitPattern: UInt(x | 1))   // keeps the loop from being optimized away
            }, context)
            threads.append(thread)
        }
    }

    /// Stops and joins the threads.
    func stop() {
        flag.stop.store(true, ordering: .relaxed)
        for thread in threads { pthread_join(thread, nil) }
        threads = []
    }

    deinit { stop() }
}
