import TFQKernels
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Lets threads that run their own sequences of single-threaded GEMMs (the training
/// replicas) lend each other idle time. The participants' work is claimed, not assigned:
/// a thread of the job claims the next participant that nobody has started
/// (``runParticipants(thread:_:)``), so a thread the scheduler keeps off its core before it
/// claims leaves its share to the others. While it runs a participant, a thread posts the
/// row tiles of that participant's current GEMM block and takes them one at a time; a
/// thread with nothing left to claim takes tiles from the others' postings until every
/// participant is done.
///
/// Replicas do the same work, but the cores do not run at the same speed: on a shared
/// machine one is often slower for a while, and the other would wait for it at the end of
/// every step. Which thread computes a tile, or runs a participant, does not change its
/// value (its sums run in the same order anywhere), so results stay the same bit for bit.
///
/// A posting works like a sequence lock. Its state word holds a generation (high 32 bits,
/// odd while open) and the next unclaimed tile (low 32 bits). The owner claims with an
/// atomic add; a helper copies the block, then claims with a compare-and-swap on the state
/// it read, which fails if the owner has closed the posting (and may be rewriting the
/// block) in between. The owner closes a posting only when every tile is done, helpers'
/// included. (The copy is a deliberate race, the standard sequence-lock read: a race
/// detector will report it.)
public final class TileExchange: TileSharing, @unchecked Sendable {
    /// The GEMM sequences (replicas) run each round; also the most threads a round may have.
    public let participants: Int
    /// Per participant, apart from everything else: the posting's state word, the count of
    /// tiles finished by helpers and the owner's generation in one line; the count of tiles
    /// taken as a helper by thread `index` in another; its posted block in a third. Then the
    /// round's count of finished participants and, in the next line, of claimed ones. In raw
    /// memory, so that spinning readers never touch an object's reference count.
    private let lines: UnsafeMutableRawPointer
    /// 128 bytes: a cache line on every CPU tfq targets, two of the 64-byte ones.
    private static let lineBytes = 128
    private static let blockOffset = 2 * lineBytes
    private static let participantBytes = blockOffset + (MemoryLayout<TileBlock>.size + lineBytes - 1) / lineBytes * lineBytes

    /// The participant that ``holdBackOnce(_:)`` armed, or −1.
    private let heldBack = Atomic<Int>(-1)
    /// Per thread of a job: room to pack A's tiles taken as a helper.
    private let helperScratch: [UnsafeMutablePointer<Float>]

    /// An exchange for `participants` (at least one), with its postings and per-thread
    /// packing scratch allocated once.
    public init(participants: Int) {
        precondition(participants >= 1)
        self.participants = participants
        let bytes = (participants + 1) * Self.participantBytes
        lines = .allocate(byteCount: bytes, alignment: Self.lineBytes)
        lines.initializeMemory(as: UInt8.self, repeating: 0, count: bytes)
        for index in 0...participants {
            let base = lines + index * Self.participantBytes
            base.bindMemory(to: Atomic<UInt64>.self, capacity: 1).initialize(to: Atomic(0))
            (base + 8).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
            (base + 16).bindMemory(to: UInt64.self, capacity: 1).initialize(to: 0)
            (base + Self.lineBytes).bindMemory(to: Atomic<Int>.self, capacity: 1).initialize(to: Atomic(0))
            (base + Self.blockOffset).bindMemory(to: TileBlock.self, capacity: 1)
        }
        helperScratch = (0..<participants).map { _ in AlignedMemory.floats(GEMM.packedASliverFloats) }
    }

    deinit {
        for index in 0...participants {
            state(index).deinitialize(count: 1)
            doneByHelpers(index).deinitialize(count: 1)
            helped(index).deinitialize(count: 1)
        }
        lines.deallocate()
        for buffer in helperScratch { AlignedMemory.free(buffer) }
    }

    /// Generation (high 32 bits, odd while the posting is open) and next unclaimed tile.
    private func state(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (lines + index * Self.participantBytes).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// Tiles of the open posting finished by helpers; past the last participant, the
    /// participants that have finished this round.
    private func doneByHelpers(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (lines + index * Self.participantBytes + 8).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// The state's generation, written by the posting's owner only.
    private func generation(_ index: Int) -> UnsafeMutablePointer<UInt64> {
        (lines + index * Self.participantBytes + 16).assumingMemoryBound(to: UInt64.self)
    }

    /// Tiles thread `index` of a job took from others, in a line of its own (it writes there
    /// while owners write their states).
    private func helped(_ index: Int) -> UnsafeMutablePointer<Atomic<Int>> {
        (lines + index * Self.participantBytes + Self.lineBytes).assumingMemoryBound(to: Atomic<Int>.self)
    }

    /// The block posted by `index`.
    private func block(_ index: Int) -> UnsafeMutablePointer<TileBlock> {
        (lines + index * Self.participantBytes + Self.blockOffset).assumingMemoryBound(to: TileBlock.self)
    }

    private var finished: UnsafeMutablePointer<Atomic<Int>> { doneByHelpers(participants) }
    private var claimed: UnsafeMutablePointer<Atomic<Int>> { helped(participants) }

    /// Tiles computed by a participant other than the one that posted them, since the start.
    public var tilesTakenByHelpers: Int {
        (0..<participants).reduce(0) { $0 + helped($1).pointee.load(ordering: .relaxed) }
    }

    /// For tests: the next block that `participant` posts waits, unclaimed by the thread
    /// running it, until another thread has taken a tile of it. Tile sharing then happens
    /// whatever the scheduler does (the others reach that block once nothing is left to
    /// claim). Call between rounds, only with two or more participants, and only for a round
    /// run by more than one thread: a thread running every participant would wait forever.
    public func holdBackOnce(_ participant: Int) {
        precondition(participants >= 2 && (0..<participants).contains(participant))
        heldBack.store(participant, ordering: .sequentiallyConsistent)
    }

    /// Whether the current round runs on one thread only: its blocks are not posted.
    private var alone = false

    /// Starts a round: no participant claimed or finished. Call before the threads start;
    /// `alone` when a single thread will run every participant (``run(_:participant:packA:)``
    /// then computes its tiles without posting them: nobody could help).
    public func beginRound(alone: Bool = false) {
        self.alone = alone
        finished.pointee.store(0, ordering: .relaxed)
        claimed.pointee.store(0, ordering: .sequentiallyConsistent)
    }

    /// One thread's share of a round: runs `body(participant)` for each participant it
    /// claims, until none is left unclaimed, then takes tiles from the others' postings until
    /// every participant has finished. Call once from each thread of the job, with distinct
    /// `thread` numbers below ``participants``; a thread that comes late only helps, or
    /// returns at once if all is done.
    public func runParticipants(thread: Int, _ body: (Int) -> Void) {
        precondition((0..<participants).contains(thread))
        while true {
            let participant = claimed.pointee.wrappingAdd(1, ordering: .acquiringAndReleasing).oldValue
            guard participant < participants else { break }
            body(participant)
            finished.pointee.add(1, ordering: .releasing)
        }
        help(thread: thread)
    }

    /// Takes tiles from the open postings until every participant has finished.
    private func help(thread: Int) {
        let packA = helperScratch[thread]
        var spins = 0
        while finished.pointee.load(ordering: .acquiring) < participants {
            Self.pause(&spins)
            for index in 0..<participants {
                let state = state(index)
                let observed = state.pointee.load(ordering: .acquiring)
                guard (observed >> 32) & 1 == 1 else { continue }
                let posted = self.block(index).pointee
                // The copy must be read before the claim below re-checks the state.
                atomicMemoryFence(ordering: .acquiring)
                let tile = Int(truncatingIfNeeded: observed & 0xFFFF_FFFF)
                guard tile < posted.tiles,
                      state.pointee.compareExchange(expected: observed, desired: observed &+ 1,
                                                    ordering: .acquiringAndReleasing).exchanged else { continue }
                GEMM.multiplyTile(posted, tile: tile, packA: packA)
                doneByHelpers(index).pointee.add(1, ordering: .releasing)
                helped(thread).pointee.add(1, ordering: .relaxed)
                spins = 0
            }
        }
    }

    /// Computes every tile of `block`, with help from finished participants.
    public func run(_ block: TileBlock, participant: Int, packA: UnsafeMutablePointer<Float>) {
        if alone {
            for tile in 0..<block.tiles { GEMM.multiplyTile(block, tile: tile, packA: packA) }
            return
        }
        let state = state(participant), doneByHelpers = doneByHelpers(participant), generation = generation(participant)
        self.block(participant).pointee = block
        doneByHelpers.pointee.store(0, ordering: .relaxed)
        generation.pointee &+= 1
        state.pointee.store(generation.pointee << 32, ordering: .releasing)
        if block.tiles > 0 && heldBack.load(ordering: .relaxed) == participant {
            var spins = 0
            while state.pointee.load(ordering: .acquiring) & 0xFFFF_FFFF == 0 { Self.pause(&spins) }
            heldBack.store(-1, ordering: .relaxed)
        }
        var mine = 0
        while true {
            let tile = Int(truncatingIfNeeded: state.pointee.wrappingAdd(1, ordering: .relaxed).oldValue & 0xFFFF_FFFF)
            if tile >= block.tiles { break }
            GEMM.multiplyTile(block, tile: tile, packA: packA)
            mine += 1
        }
        // A helper may still be computing a tile it claimed.
        var spins = 0
        while mine + doneByHelpers.pointee.load(ordering: .acquiring) < block.tiles { Self.pause(&spins) }
        generation.pointee &+= 1
        state.pointee.store(generation.pointee << 32, ordering: .relaxed)
        // The closed state must be visible before the block is rewritten for the next post.
        atomicMemoryFence(ordering: .releasing)
    }

    /// One turn of a wait: spin at first (the awaited thread is usually running on another
    /// core), then yield, so that a machine with more threads than cores lets the awaited
    /// one run.
    @inline(__always)
    private static func pause(_ spins: inout Int) {
        spins += 1
        if spins > 2_000 { sched_yield() }
    }
}
