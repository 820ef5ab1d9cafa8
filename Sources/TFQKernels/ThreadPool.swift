#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A fixed set of worker threads with cheap fork/join, for kernels too short for
/// `DispatchQueue.concurrentPerform` (5–7 µs per fork/join on this hardware), built to keep
/// its speed when other programs take cores away.
///
/// A job is cut into parts that any thread may claim, the caller included, so nobody waits
/// for a thread the scheduler has taken off its core before it claimed a part: the caller
/// claims the parts that no worker has, and then waits only for parts a worker is computing
/// (a worker preempted in the middle of one delays the job by what is left of that part). A worker
/// that arrives after the last part was claimed finds nothing to do. Which thread computes
/// a part never changes its value, so results are the same for any thread count and any
/// timing.
///
/// Workers spin briefly on the job word after each part, so back-to-back kernels start in
/// well under a microsecond; a worker idle for longer parks on a condition variable and
/// costs nothing. When workers keep arriving too late to claim anything (their cores are
/// busy with other programs), spinning only takes time from the caller and from those
/// programs: the caller then runs jobs alone for a while (``soloJobs``) and the workers park,
/// and it offers jobs to them again afterwards to see whether the cores have come back.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads that run a job, the caller included.
    public let threadCount: Int

    /// What the workers share with the pool. They hold this, not the pool, so dropping the
    /// last reference to a pool runs its deinit, which stops and joins them.
    private final class Shared: @unchecked Sendable {
        /// The job word: the job's sequence number (high 32 bits); its part count (bits
        /// 16–31); the next unclaimed part (low 16). A claim is one atomic add on the whole
        /// word, so it always names the job it claimed from, which may be newer than the one
        /// a worker waited for.
        let word = Atomic<UInt64>(0)
        /// Parts of the current job that are finished.
        let finished = Atomic<Int>(0)
        /// Parts of all jobs so far that workers (not the caller) computed.
        let takenByWorkers = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopping = Atomic<Bool>(false)
        /// For tests: workers whose index is below this wait at the start of each job until
        /// the job is over, as if the scheduler had taken their core.
        let heldWorkers = Atomic<Int>(0)
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

        static func sequence(_ word: UInt64) -> UInt64 { word >> 32 }
        static func parts(_ word: UInt64) -> Int { Int((word >> 16) & 0xFFFF) }

        /// Claims the next part of the current job: its sequence number and the part, or nil
        /// when it has none left. One atomic add: a claim that comes too late only moves the
        /// counter past the part count, which the 16 bits leave room for
        /// (at most two failed claims per thread and job: 2·4,095 + 8,192 < 65,536).
        @inline(__always)
        func claim() -> (sequence: UInt64, part: Int)? {
            let current = word.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue
            let next = Int(current & 0xFFFF)
            guard next < Self.parts(current) else { return nil }
            return (Self.sequence(current), next)
        }

        func workerLoop(index: Int) {
            var seen: UInt64 = 0
            while true {
                var spins = 0
                while Self.sequence(word.load(ordering: .acquiring)) == seen && !stopping.load(ordering: .relaxed) {
                    spins += 1
                    // Let other threads of this core run now and then: on a busy machine the
                    // caller or another program may be waiting for it (a no-op when none is).
                    if spins & 255 == 0 { sched_yield() }
                    if spins < ThreadPool.spinsBeforeParking { continue }
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while Self.sequence(word.load(ordering: .sequentiallyConsistent)) == seen && !stopping.load(ordering: .sequentiallyConsistent) {
                        pthread_cond_wait(&wake, &mutex)
                    }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(&mutex)
                }
                if stopping.load(ordering: .acquiring) { return }
                seen = Self.sequence(word.load(ordering: .acquiring))
                if index < heldWorkers.load(ordering: .acquiring) {
                    // Held back by a test: wait until the job has no unfinished part left.
                    while jobIsRunning(seen) { sched_yield() }
                    continue
                }
                while let (sequence, part) = claim() {
                    // A claimed part keeps its job alive (the caller waits for it), so the
                    // job closure read here is that job's, even if it is newer than `seen`.
                    seen = sequence
                    do { let job = self.job!; job(part) }
                    // Counted before the part is marked finished, so a caller that has seen
                    // every part finished also sees who took them.
                    takenByWorkers.add(1, ordering: .relaxed)
                    finished.add(1, ordering: .releasing)
                }
            }
        }

        /// True while job `sequence` is current and not every part is finished.
        private func jobIsRunning(_ sequence: UInt64) -> Bool {
            let current = word.load(ordering: .acquiring)
            guard Self.sequence(current) == sequence else { return false }
            return finished.load(ordering: .acquiring) < Self.parts(current)
        }
    }

    /// Iterations a worker spins on the job word before it parks: about 50–100 µs, longer
    /// than the gap between the kernels of a decode step, much shorter than a scheduler tick.
    static let spinsBeforeParking = 50_000
    /// Jobs over which the caller counts the parts workers took.
    static let helpWindow = 32
    /// Jobs the caller runs alone when workers took less than half their share of a window
    /// (their cores are busy: they cost the caller more than they bring), before it offers
    /// jobs to them again.
    static let soloJobs = 256

    private let shared = Shared()
    private var threads: [pthread_t] = []
    /// Held for the whole of a job, so callers on different threads take turns.
    private var jobLock = pthread_mutex_t()
    /// Guarded by `jobLock`: the last job's sequence number; the current help window's jobs,
    /// parts, and parts taken by workers at its start; the solo jobs left.
    private var sequence: UInt64 = 0
    private var windowJobs = 0, windowParts = 0, windowTakenAtStart = 0
    private var soloLeft = 0

    /// A pool of `threads` threads (at least 1, at most 4,096); 1 runs everything on the caller.
    public init(threads: Int) {
        pthread_mutex_init(&jobLock, nil)
        var started: [pthread_t] = []
        for index in 1..<min(max(1, threads), 4096) {
            let context = Unmanaged.passRetained(WorkerContext(shared: shared, index: index))
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.shared.workerLoop(index: context.index)
                return nil
            }, context.toOpaque())
            // Out of threads (a limit of the system's): run with the ones there are.
            guard status == 0 else { context.release(); break }
            started.append(thread)
        }
        self.threads = started
        threadCount = 1 + started.count
    }

    deinit {
        shared.stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(&shared.mutex)
        pthread_cond_broadcast(&shared.wake)
        pthread_mutex_unlock(&shared.mutex)
        for thread in threads { pthread_join(thread, nil) }
        pthread_mutex_destroy(&jobLock)
    }

    /// The number of online processors.
    public static var availableProcessors: Int {
        max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// While true, every job but ``runOfferingWorkers(_:)``'s runs its parts on the caller,
    /// one after another, as in the solo jobs: the same parts, so the same values. For an
    /// owner that has measured that the workers cost more than they bring (the training
    /// replicas' schedule on a busy core). Set it from the thread that runs the jobs.
    public var runsAlone = false

    /// Parts computed by worker threads rather than the caller, since the pool was made.
    public var partsTakenByWorkers: Int { shared.takenByWorkers.load(ordering: .relaxed) }

    /// For tests: workers 1..<`count` + 1 stop taking part (each waits, at the start of every
    /// job, until the job is over), as if the scheduler kept them off their cores; 0 ends it.
    public func holdWorkers(_ count: Int) {
        shared.heldWorkers.store(count == 0 ? 0 : count + 1, ordering: .sequentiallyConsistent)
    }

    /// Runs `body(part)` once for each part in 0..<threadCount and returns when all have
    /// finished. Parts run on any of the pool's threads, several on one thread if others are
    /// late, but never two at once on the same part; `body` must depend on the part only.
    /// Calls from several threads run one after another; a job must not start another job on
    /// the same pool.
    public func run(_ body: (Int) -> Void) {
        run(parts: threadCount, solo: true, body)
    }

    /// Like ``run(_:)``, but the parts are offered to the workers even while the pool runs
    /// other jobs alone (``soloJobs``): for a job whose parts share out work among themselves
    /// and so must not all run on the caller one after another (a round of training's TileExchange,
    /// whose caller may wait for help from another thread), and that decides for itself
    /// whether to use more than one thread.
    public func runOfferingWorkers(_ body: (Int) -> Void) {
        run(parts: threadCount, solo: false, body)
    }

    /// Splits `0..<count` into ranges, whole multiples of `grain` but the last, and runs
    /// `body(range)` on each, on any of the pool's threads. The ranges depend on `count`,
    /// `grain` and the thread count only.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + grain - 1) / grain
        // Twice as many parts as threads: a late thread's share is smaller, and others take it.
        let parts = min(units, 2 * threadCount)
        if threadCount == 1 || parts <= 1 { if count > 0 { body(0..<count) }; return }
        run(parts: parts, solo: true) { part in
            let first = units * part / parts * grain
            let last = min(count, units * (part + 1) / parts * grain)
            if first < last { body(first..<last) }
        }
    }

    private func run(parts: Int, solo: Bool, _ body: (Int) -> Void) {
        if threadCount == 1 || parts <= 1 {
            for part in 0..<parts { body(part) }
            return
        }
        pthread_mutex_lock(&jobLock)
        defer { pthread_mutex_unlock(&jobLock) }
        if solo && (runsAlone || soloLeft > 0) {
            if !runsAlone { soloLeft -= 1 }
            for part in 0..<parts { body(part) }
            return
        }
        let shared = self.shared
        // The job never outlives this call (it waits for every part), so its closure
        // context can stay on the stack: no allocation per fork/join.
        withoutActuallyEscaping(body) { body in
            shared.job = body
            shared.finished.store(0, ordering: .relaxed)
            sequence = (sequence + 1) & 0xFFFF_FFFF
            if sequence == 0 { sequence = 1 }   // 0 is what the workers saw before any job
            let current = sequence
            shared.word.store(current << 32 | UInt64(parts) << 16, ordering: .sequentiallyConsistent)
            if shared.sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&shared.mutex)
                pthread_cond_broadcast(&shared.wake)
                pthread_mutex_unlock(&shared.mutex)
            }
            // Only this job's parts can be claimed until every one of them is finished.
            while let (_, part) = shared.claim() {
                body(part)
                shared.finished.add(1, ordering: .relaxed)
            }
            // Only parts that running workers claimed are left.
            var spins = 0
            while shared.finished.load(ordering: .acquiring) < parts {
                spins += 1
                if spins > 1_000 { sched_yield() }
            }
            shared.job = nil
        }
        // Workers that take less than half their share of the parts are not getting the CPU
        // time they need, and their spinning takes it from the caller: stop offering them work
        // for a while, so they park.
        if !solo { return }
        windowJobs += 1
        windowParts += parts
        if windowJobs == Self.helpWindow {
            let taken = shared.takenByWorkers.load(ordering: .relaxed) - windowTakenAtStart
            let share = windowParts * (threadCount - 1) / threadCount
            if 2 * taken < share { soloLeft = Self.soloJobs }
            windowJobs = 0; windowParts = 0
            windowTakenAtStart = shared.takenByWorkers.load(ordering: .relaxed)
        }
    }

    private final class WorkerContext {
        let shared: Shared
        let index: Int
        init(shared: Shared, index: Int) { self.shared = shared; self.index = index }
    }
}
