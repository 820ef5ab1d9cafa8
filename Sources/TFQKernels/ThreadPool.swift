#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A fixed set of worker threads with cheap fork/join, for kernels too short for
/// `DispatchQueue.concurrentPerform` (5–7 µs per fork/join on this hardware).
///
/// Workers spin briefly on a generation counter after each job, so back-to-back kernels
/// start in well under a microsecond; a worker that stays idle longer parks on a condition
/// variable and costs nothing. The calling thread always takes part as worker 0.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads that run a job, the caller included.
    public let threadCount: Int

    /// What the workers share with the pool. They hold this, not the pool, so dropping the
    /// last reference to a pool runs its deinit, which stops and joins them.
    private final class Shared: @unchecked Sendable {
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        var job: ((Int) -> Void)?
        var mutex = pthread_mutex_t()
        var wake = pthread_cond_t()

        init() {
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&wake, nil)
        }

        deinit {
            pthread_cond_destroy(&wake)
            pthread_mutex_destroy(&mutex)
        }

        func workerLoop(index: Int) {
            var seen = 0
            while true {
                var spins = 0
                while generation.load(ordering: .acquiring) == seen {
                    spins += 1
                    if spins < 200_000 { continue }
                    pthread_mutex_lock(&mutex)
                    while generation.load(ordering: .acquiring) == seen { pthread_cond_wait(&wake, &mutex) }
                    pthread_mutex_unlock(&mutex)
                }
                seen = generation.load(ordering: .acquiring)
                if stopping.load(ordering: .acquiring) { return }
                job?(index)
                pending.subtract(1, ordering: .releasing)
            }
        }
    }

    private let shared = Shared()
    private var threads: [pthread_t] = []
    /// Held for the whole of a job, so callers on different threads take turns.
    private var jobLock = pthread_mutex_t()

    /// A pool of `threads` threads (at least 1); 1 runs everything on the caller.
    public init(threads: Int) {
        threadCount = max(1, threads)
        pthread_mutex_init(&jobLock, nil)
        for index in 1..<threadCount {
            let context = Unmanaged.passRetained(WorkerContext(shared: shared, index: index)).toOpaque()
            var thread = pthread_t()
            pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.shared.workerLoop(index: context.index)
                return nil
            }, context)
            self.threads.append(thread)
        }
    }

    deinit {
        shared.stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&shared.mutex)
        shared.generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&shared.wake)
        pthread_mutex_unlock(&shared.mutex)
        for thread in threads { pthread_join(thread, nil) }
        pthread_mutex_destroy(&jobLock)
    }

    /// The number of online processors.
    public static var availableProcessors: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Runs `body(worker)` once on each of the pool's threads (worker in 0..<threadCount)
    /// and returns when all have finished. Calls from several threads run one after another;
    /// a job must not start another job on the same pool.
    public func run(_ body: (Int) -> Void) {
        if threadCount == 1 { body(0); return }
        pthread_mutex_lock(&jobLock)
        defer { pthread_mutex_unlock(&jobLock) }
        let shared = self.shared
        // The job never outlives this call (it waits for every worker), so its closure
        // context can stay on the stack: no allocation per fork/join.
        withoutActuallyEscaping(body) { body in
            shared.job = body
            shared.pending.store(threadCount - 1, ordering: .sequentiallyConsistent)
            pthread_mutex_lock(&shared.mutex)
            shared.generation.add(1, ordering: .sequentiallyConsistent)
            pthread_cond_broadcast(&shared.wake)
            pthread_mutex_unlock(&shared.mutex)
            body(0)
            var spins = 0
            while shared.pending.load(ordering: .acquiring) > 0 {
                spins += 1
                if spins > 10_000 { sched_yield() }
            }
            shared.job = nil
        }
    }

    /// Splits `0..<count` into one contiguous range per thread and runs `body(range)` on each.
    /// Ranges are whole multiples of `grain` but the last.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + grain - 1) / grain
        let workers = min(threadCount, units)
        if workers <= 1 { if count > 0 { body(0..<count) }; return }
        run { worker in
            guard worker < workers else { return }
            let first = units * worker / workers * grain
            let last = min(count, units * (worker + 1) / workers * grain)
            if first < last { body(first..<last) }
        }
    }

    private final class WorkerContext {
        let shared: Shared
        let index: Int
        init(shared: Shared, index: Int) { self.shared = shared; self.index = index }
    }
}
