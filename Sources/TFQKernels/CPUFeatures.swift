import CKernels

/// The CPU this process runs on against the CPU the build was made for (tools/build.sh).
public enum CPUFeatures {
    /// The first instruction-set feature this build needs that this CPU lacks, e.g. "AVX2"
    /// for a build made on another machine; nil when the build can run here.
    public static var missingFromThisCPU: String? { missing(from: tfq_cpu_features()) }

    /// What the build needs and `features` (a `TFQ_CPU_*` mask) lacks.
    static func missing(from features: UInt32) -> String? {
        tfq_cpu_missing_feature(features).map { String(cString: $0) }
    }

    /// Whether this CPU has ARMv8.2's dot product (the sdot int8 path can run here).
    public static var hasDotProduct: Bool { tfq_cpu_features() & TFQ_CPU_DOTPROD != 0 }

    /// Whether this CPU has AVX-512 VNNI with AVX-512VL (the vpdpbusd int8 path can run here).
    public static var hasAVX512VNNI: Bool { tfq_cpu_features() & TFQ_CPU_AVX512VNNI != 0 }
}
