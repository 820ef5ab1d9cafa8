#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// A fixed set of worker threads with cheap fork/join, for kernels too short for
/// `DispatchQueue.concurrentPerform` (5–7 µs per fork/join on this hardware), built to keep
/// its speed when other programs take cores away.
///
/// A job has at most one part per thread. Part 0 is the caller's; part i is offered to worker i in
/// a mailbox of its own (one cache line, so that posting a job, claiming it and reporting it
/// done cost a few cache-line transfers, as little as a plain fork/join). Any thread may
/// claim a part still in its mailbox: the caller, once its own part is done, takes every
/// part whose worker has not come (the scheduler took its core), so nobody waits for a
/// thread that is not running; it then waits only for parts a worker is computing (a worker
/// preempted in the middle of one delays the job by what is left of that part). Idle
/// workers of a bigger pool take parts of late ones the same way. Which thread computes a
/// part never changes its value, so results are the same for any thread count and any
/// timing.
///
/// Workers spin briefly on their mailbox after each part, so back-to-back kernels start in
/// well under a microsecond; a worker idle for longer parks on a condition variable and
/// costs nothing until a job wakes it. When workers keep arriving too late to claim anything
/// (their cores are busy with other programs), spinning only takes time from the caller and
/// from those programs: the caller then runs jobs alone for a while (``soloJobs``) and the
/// workers park, and it offers jobs to them again afterwards to see whether the cores have
/// come back. Only jobs that found every worker started and unparked count: a worker waking
/// from its condition variable, or not yet running in a new pool, is late whatever the cores
/// do (a prompt's prefill used to run alone for that reason in half the runs). Jobs too far
/// apart for the workers to stay awake send the pool solo only when a whole window of them
/// in a row had no part taken by a worker.
public final class ThreadPool: @unchecked Sendable {
    /// Number of threads that run a job, the caller included.
    public let threadCount: Int

    /// Where part `index` of each job is offered: the job's sequence number (high 32 bits) and
    /// the part's state (low bits), alone on its cache line.
    private final class Mailbox: @unchecked Sendable {
        static let posted: UInt64 = 1, claimed: UInt64 = 2, done: UInt64 = 3, stop: UInt64 = 4
        // 128 bytes of padding on both sides (a line, or a pair of 64-byte lines that some
        // CPUs fetch together) keep the word off the object's header (its reference count)
        // and whatever the allocator puts next.
        private let before = Mailbox.padding
        let word = Atomic<UInt64>(0)
        private let after = Mailbox.padding
        private typealias Padding = (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                                     UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        private static var padding: Padding { (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0) }

        static func sequence(_ word: UInt64) -> UInt64 { word >> 32 }

        /// Takes the part of job `sequence` if it is still on offer. A load first: a part
        /// already claimed costs no write to a line its worker is using.
        @inline(__always)
        func claim(_ sequence: UInt64) -> Bool {
            let offered = sequence << 32 | Self.posted
            guard word.load(ordering: .relaxed) == offered else { return false }
            return word.compareExchange(expected: offered, desired: sequence << 32 | Self.claimed,
                                        ordering: .acquiringAndReleasing).exchanged
        }
    }

    /// What the workers share with the pool. They hold this, not the pool, so dropping the
    /// last reference to a pool runs its deinit, which stops and joins them.
    private final class Shared: @unchecked Sendable {
        /// `mailboxes[i]` offers part i to worker i (index 0, the caller's part, is unused).
        let mailboxes: [Mailbox]
        let sleepers = Atomic<Int>(0)
        /// Workers that have started and are not parked: a job posted while one is not (a
        /// new pool, or one idle for a while) finds it late for reasons that say nothing
        /// about the cores, so its parts do not count towards ``soloJobs``.
        let awake = Atomic<Int>(0)
        /// Workers that have started their loop.
        let started = Atomic<Int>(0)
        /// For tests: workers whose index is below this leave every job's part on offer, as if
        /// the scheduler had taken their core, and never park (a preempted worker is still
        /// spinning).
        let heldWorkers = Atomic<Int>(0)
        var job: ((Int) -> Void)?
        var mutex = pthread_mutex_t()
        var wake = pthread_cond_t()

        init(threads: Int) {
            mailboxes = (0..<threads).map { _ in Mailbox() }
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&wake, nil)
        }

        deinit {
            pthread_cond_destroy(&wake)
            pthread_mutex_destroy(&mutex)
        }

        /// Runs part `part` of job `sequence`, claimed by this thread, and marks it done.
        @inline(__always)
        func runClaimed(_ part: Int, sequence: UInt64) {
            // A claimed part keeps its job alive (the caller waits for it), so `job` is that
            // job's closure.
            do { let job = self.job!; job(part) }
            mailboxes[part].word.store(sequence << 32 | Mailbox.done, ordering: .releasing)
        }

        func workerLoop(index: Int) {
            let mailbox = mailboxes[index]
            var seen: UInt64 = 0
            started.add(1, ordering: .relaxed)
            awake.add(1, ordering: .relaxed)
            while true {
                var spins = 0
                var word = mailbox.word.load(ordering: .acquiring)
                while Mailbox.sequence(word) == seen {
                    spins += 1
                    // After a few microseconds with no job, let other threads of this core
                    // run now and then: on a busy machine the caller or another program may
                    // be waiting for it (a no-op when none is). Not sooner: a worker inside
                    // the system call starts the next job late, and decode's jobs come a few
                    // microseconds apart.
                    if spins > ThreadPool.spinsBeforeYielding && spins & 255 == 0 { sched_yield() }
                    if spins >= ThreadPool.spinsBeforeParking && index >= heldWorkers.load(ordering: .relaxed) {
                        // `holdWorkers` changes the hold under the mutex and wakes sleepers, so a
                        // worker held after this check is woken and does not sleep again.
                        pthread_mutex_lock(&mutex)
                        awake.subtract(1, ordering: .relaxed)
                        sleepers.add(1, ordering: .sequentiallyConsistent)
                        while Mailbox.sequence(mailbox.word.load(ordering: .sequentiallyConsistent)) == seen
                                && index >= heldWorkers.load(ordering: .relaxed) {
                            pthread_cond_wait(&wake, &mutex)
                        }
                        sleepers.subtract(1, ordering: .relaxed)
                        awake.add(1, ordering: .relaxed)
                        pthread_mutex_unlock(&mutex)
                        spins = 0
                    }
                    word = mailbox.word.load(ordering: .acquiring)
                }
                seen = Mailbox.sequence(word)
                if word & 0xFFFF_FFFF == Mailbox.stop { return }
                if index < heldWorkers.load(ordering: .relaxed) { continue }
                if mailbox.claim(seen) { runClaimed(index, sequence: seen) }
                // In a pool of more than two, parts whose workers have not come yet.
                for other in 1..<mailboxes.count where other != index && mailboxes[other].claim(seen) {
                    runClaimed(other, sequence: seen)
                }
            }
        }
    }

    /// Iterations a worker spins on its mailbox before it parks: about 100–200 µs on a free
    /// core (longer where the yields after ``spinsBeforeYielding`` let others run), longer
    /// than the gap between the kernels of a decode step, much shorter than a scheduler tick.
    static let spinsBeforeParking = 50_000
    /// Iterations a worker spins on its mailbox before it starts giving its core away: a few
    /// microseconds.
    static let spinsBeforeYielding = 4_096
    /// Jobs over which the caller counts the parts workers took.
    static let helpWindow = 32
    /// Jobs the caller runs alone when workers took less than half their share of a window
    /// (their cores are busy: they cost the caller more than they bring), before it offers
    /// jobs to them again.
    static let soloJobs = 256

    private let shared: Shared
    private var threads: [pthread_t] = []
    /// Held for the whole of a job, so callers on different threads take turns.
    private var jobLock = pthread_mutex_t()
    /// Guarded by `jobLock`: the last job's sequence number; the current help window's jobs,
    /// its parts and the parts workers took in it; the solo jobs left.
    private var sequence: UInt64 = 0
    private var windowJobs = 0, windowParts = 0, windowTaken = 0
    private var soloLeft = 0
    /// Guarded by `jobLock`: jobs in a row that found a worker parked and in which workers
    /// took no part.
    private var drowsyJobs = 0
    private let takenByWorkers = Atomic<Int>(0)

    /// A pool of `threads` threads (at least 1, at most 4,096); 1 runs everything on the caller.
    public init(threads: Int) {
        let wanted = min(max(1, threads), 4096)
        shared = Shared(threads: wanted)
        pthread_mutex_init(&jobLock, nil)
        var started: [pthread_t] = []
        for index in 1..<wanted {
            let context = Unmanaged.passRetained(WorkerContext(shared: shared, index: index))
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.shared.workerLoop(index: context.index)
                return nil
            }, context.toOpaque())
            // Out of threads (a limit of the system's): run with the ones there are. Their
            // mailboxes are the first ones; the others are never posted to.
            guard status == 0 else { context.release(); break }
            started.append(thread)
        }
        self.threads = started
        threadCount = 1 + started.count
    }

    deinit {
        var last = (sequence + 1) & 0xFFFF_FFFF
        if last == 0 { last = 1 }   // 0 is what the workers saw before any job
        let stop = last << 32 | Mailbox.stop
        for index in 1..<threadCount { shared.mailboxes[index].word.store(stop, ordering: .sequentiallyConsistent) }
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

    /// Jobs the caller still runs alone before it offers jobs to the workers again (0 when
    /// it offers them): for tests and diagnostics.
    public var soloJobsLeft: Int { soloLeft }

    /// Workers parked on the condition variable now, and workers started and not parked:
    /// for tests.
    public var parkedWorkers: Int { shared.sleepers.load(ordering: .sequentiallyConsistent) }
    public var awakeWorkers: Int { shared.awake.load(ordering: .relaxed) }

    /// For tests: jobs do not wake parked workers, as if every woken worker came too late to
    /// take a part. Set it from the thread that runs the jobs.
    public var leavesWorkersAsleep = false

    /// Parts computed by worker threads rather than the caller, since the pool was made.
    public var partsTakenByWorkers: Int { takenByWorkers.load(ordering: .relaxed) }

    /// For tests: workers 1..<`count` + 1 stop taking part (each leaves its part of every job
    /// on offer, for the caller to take) and never park, as if the scheduler kept them off
    /// their cores while they spin; 0 ends it.
    public func holdWorkers(_ count: Int) {
        pthread_mutex_lock(&shared.mutex)
        shared.heldWorkers.store(count == 0 ? 0 : count + 1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(&shared.wake)
        pthread_mutex_unlock(&shared.mutex)
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

    /// Splits `0..<count` into at most `threadCount` ranges, whole multiples of `grain` but
    /// the last, and runs `body(range)` on each, on any of the pool's threads. The ranges
    /// depend on `count`, `grain` and the thread count only.
    public func parallelFor(_ count: Int, grain: Int = 1, _ body: (Range<Int>) -> Void) {
        let units = (count + grain - 1) / grain
        let parts = min(units, threadCount)
        if parts <= 1 { if count > 0 { body(0..<count) }; return }
        run(parts: parts, solo: true) { part in
            let first = units * part / parts * grain
            let last = min(count, units * (part + 1) / parts * grain)
            if first < last { body(first..<last) }
        }
    }

    /// Like ``parallelFor(_:grain:_:)`` for work that may be cut anywhere: at most one range
    /// per thread and at most ⌈count / minimum⌉ ranges, of equal length but the last. (A
    /// grain whose ranges come out uneven leaves one thread waiting for the other.)
    public func parallelFor(_ count: Int, evenlyWithAtLeast minimum: Int, _ body: (Range<Int>) -> Void) {
        let parts = min(threadCount, (count + max(1, minimum) - 1) / max(1, minimum))
        parallelFor(count, grain: max(1, (count + max(1, parts) - 1) / max(1, parts)), body)
    }

    /// Runs parts 0..<parts (at most `threadCount`): part 0 on the caller, part i offered to
    /// worker i.
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
        var taken = 0
        // Whether this job can tell anything about the cores: every worker had started and
        // was not parked.
        let evidence = shared.awake.load(ordering: .relaxed) == threadCount - 1
        // The job never outlives this call (it waits for every part), so its closure
        // context can stay on the stack: no allocation per fork/join.
        withoutActuallyEscaping(body) { body in
            shared.job = body
            sequence = (sequence + 1) & 0xFFFF_FFFF
            if sequence == 0 { sequence = 1 }   // 0 is what the workers saw before any job
            let current = sequence
            // Workers without a part this time see the job as done: they wait for the next.
            for index in 1..<threadCount {
                let state = index < parts ? Mailbox.posted : Mailbox.done
                shared.mailboxes[index].word.store(current << 32 | state, ordering: .sequentiallyConsistent)
            }
            if shared.sleepers.load(ordering: .sequentiallyConsistent) > 0 && !leavesWorkersAsleep {
                pthread_mutex_lock(&shared.mutex)
                pthread_cond_broadcast(&shared.wake)
                pthread_mutex_unlock(&shared.mutex)
            }
            body(0)
            // Take every part whose worker has not come; then wait for the ones being computed.
            taken = parts - 1
            for part in 1..<parts where shared.mailboxes[part].claim(current) {
                body(part)
                shared.mailboxes[part].word.store(current << 32 | Mailbox.done, ordering: .relaxed)
                taken -= 1
            }
            let done = current << 32 | Mailbox.done
            for part in 1..<parts {
                var spins = 0
                while shared.mailboxes[part].word.load(ordering: .acquiring) != done {
                    spins += 1
                    if spins > 1_000 { sched_yield() }
                }
            }
            shared.job = nil
        }
        takenByWorkers.add(taken, ordering: .relaxed)
        // Workers that take less than half their share of the parts are not getting the CPU
        // time they need, and their spinning takes it from the caller: stop offering them work
        // for a while, so they park.
        if !solo { return }
        if !evidence {
            // Jobs too far apart for the workers to stay awake: each wakes them. When they
            // keep coming too late to take anything, a window of such jobs in a row (once the
            // workers have started) sends the pool solo too, so that waking them stops costing
            // the caller and the cores' other programs.
            let started = shared.started.load(ordering: .relaxed) == threadCount - 1
            drowsyJobs = started && taken == 0 ? drowsyJobs + 1 : 0
            if drowsyJobs == Self.helpWindow { soloLeft = Self.soloJobs; drowsyJobs = 0 }
            return
        }
        drowsyJobs = 0
        windowJobs += 1
        windowParts += parts
        windowTaken += taken
        if windowJobs == Self.helpWindow {
            let share = windowParts * (threadCount - 1) / threadCount
            if 2 * windowTaken < share { soloLeft = Self.soloJobs }
            windowJobs = 0; windowParts = 0; windowTaken = 0
        }
    }

    private final class WorkerContext {
        let shared: Shared
        let index: Int
        init(shared: Shared, index: Int) { self.shared = shared; self.index = index }
    }
}
