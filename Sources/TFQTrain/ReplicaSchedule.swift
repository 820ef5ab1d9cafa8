/// Whether a batch's replicas run side by side on the pool's threads or one after another on
/// the calling thread: the choice that a busy board makes matter.
///
/// With every core free, side by side is nearly twice as fast. When another program keeps a
/// core busy, two threads share the remaining time with it: a replica whose thread shares a
/// core advances at half speed, a replica is a sequence of kernels that one thread runs in
/// order, and the step waits for it, so side by side gains nothing and its waits cost a
/// little (BENCHMARKS.md, "A busy board"). Running the replicas one after another on the
/// caller computes the same values bit for bit (a replica's sums do not depend on the
/// thread), so the schedule is free to pick whichever is faster now.
///
/// The yardstick is one replica's time on a core of its own: the shortest replica time of the
/// last ``envelopeJobs`` jobs (one thread or another usually has a core to itself). A
/// side-by-side job gains if its wall time is well below `replicas ×` that, which is what
/// the caller alone would take. When the median of the last ``window`` side-by-side jobs is
/// above ``slowerThanAlone`` of it, the replicas run alone; then every ``probeInterval``-th
/// job runs side by side as a probe, and two probes in a row below ``fasterThanAlone`` bring
/// side by side back. Each probe that does not gain doubles the interval to the next, up to
/// ``longestProbeInterval`` jobs (a board busy for long pays for few probes); one that gains
/// brings the next probe in ``probeInterval`` jobs. With free cores the ratio is about 0.55
/// and no probe is ever made; on a busy core a probe costs at most one job in
/// ``probeInterval``, soon one in ``longestProbeInterval``. Only training steps are recorded,
/// so that every recorded job does the same work.
struct ReplicaSchedule {
    static let window = 8
    static let envelopeJobs = 16
    static let slowerThanAlone = 0.95
    static let probeInterval = 32
    static let longestProbeInterval = 256
    static let fasterThanAlone = 0.85

    /// Whether jobs run side by side (apart from the probes).
    private(set) var sideBySide = true
    /// The shortest replica time of each of the last ``envelopeJobs`` jobs.
    private var fastestReplicas: [Double] = []
    /// Side-by-side wall times over the yardstick, of the last ``window`` jobs.
    private var ratios: [Double] = []
    /// Jobs since the last probe (or since the replicas started running alone), and the
    /// interval to the next probe.
    private var jobsSinceProbe = 0
    private(set) var probeEvery = probeInterval
    private var lastProbeWasFaster = false

    /// Whether the next job runs side by side (a probe, when the schedule is alone).
    var nextRunsSideBySide: Bool {
        sideBySide || jobsSinceProbe + 1 >= probeEvery
    }

    /// Records a job: whether it ran side by side, its wall time, and the shortest time one of
    /// its `replicas` replicas took.
    mutating func record(sideBySide ranSideBySide: Bool, wall: Double, fastestReplica: Double, replicas: Int) {
        guard wall > 0, fastestReplica > 0 else { return }
        fastestReplicas.append(fastestReplica)
        if fastestReplicas.count > Self.envelopeJobs { fastestReplicas.removeFirst() }
        if !sideBySide { jobsSinceProbe += 1 }
        guard ranSideBySide else { return }
        let ratio = wall / (Double(replicas) * fastestReplicas.min()!)
        if sideBySide {
            ratios.append(ratio)
            if ratios.count > Self.window { ratios.removeFirst() }
            if ratios.count == Self.window && Self.median(ratios) > Self.slowerThanAlone {
                sideBySide = false
                ratios = []
                jobsSinceProbe = 0
                probeEvery = Self.probeInterval
                lastProbeWasFaster = false
            }
        } else {
            let faster = ratio < Self.fasterThanAlone
            if faster && lastProbeWasFaster { sideBySide = true }
            lastProbeWasFaster = faster
            jobsSinceProbe = 0
            probeEvery = faster ? Self.probeInterval : min(2 * probeEvery, Self.longestProbeInterval)
        }
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
