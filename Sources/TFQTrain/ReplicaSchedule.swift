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
/// side by side back. With free cores the ratio is about 0.55 and no probe is ever made; on a
/// busy core a probe costs at most one job in ``probeInterval``. Only training steps are
/// recorded, so that every recorded job does the same work.
struct ReplicaSchedule {
    static let window = 8
    static let envelopeJobs = 16
    static let slowerThanAlone = 0.95
    static let probeInterval = 32
    static let fasterThanAlone = 0.85

    /// Whether jobs run side by side (apart from the probes).
    private(set) var sideBySide = true
    /// The shortest replica time of each of the last ``envelopeJobs`` jobs.
    private var fastestReplicas: [Double] = []
    /// Side-by-side wall times over the yardstick, of the last ``window`` jobs.
    private var ratios: [Double] = []
    private var jobsAlone = 0
    private var lastProbeWasFaster = false

    /// Whether the next job runs side by side (a probe, when the schedule is alone).
    var nextRunsSideBySide: Bool {
        sideBySide || (jobsAlone + 1) % Self.probeInterval == 0
    }

    /// Records a job: whether it ran side by side, its wall time, and the shortest time one of
    /// its `replicas` replicas took.
    mutating func record(sideBySide ranSideBySide: Bool, wall: Double, fastestReplica: Double, replicas: Int) {
        guard wall > 0, fastestReplica > 0 else { return }
        fastestReplicas.append(fastestReplica)
        if fastestReplicas.count > Self.envelopeJobs { fastestReplicas.removeFirst() }
        if !sideBySide { jobsAlone += 1 }
        guard ranSideBySide else { return }
        let ratio = wall / (Double(replicas) * fastestReplicas.min()!)
        if sideBySide {
            ratios.append(ratio)
            if ratios.count > Self.window { ratios.removeFirst() }
            if ratios.count == Self.window && Self.median(ratios) > Self.slowerThanAlone {
                sideBySide = false
                ratios = []
                jobsAlone = 0
                lastProbeWasFaster = false
            }
        } else {
            let faster = ratio < Self.fasterThanAlone
            if faster && lastProbeWasFaster { sideBySide = true }
            lastProbeWasFaster = faster
        }
    }

    private static func median(_ values: [Double]) -> Double {
        let sorted = values.sorted()
        return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
    }
}
