#if canImport(Glibc)
import Glibc
#endif

/// This process's memory, as the kernel counts it.
public enum ProcessMemory {
    /// Peak resident set size (VmHWM), in bytes; 0 where /proc is unavailable.
    public static func peakResidentBytes() -> Int { statusField("VmHWM:") }

    /// Bytes of physical memory.
    public static var physicalBytes: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    /// Memory the system can give this process without swapping: MemAvailable, or less if
    /// the process's cgroup has a lower limit (cgroup v2 `memory.max` − `memory.current`).
    /// nil where /proc/meminfo is unavailable.
    public static func systemAvailableBytes() -> Int? {
        guard let available = field("MemAvailable:", in: "/proc/meminfo"), available > 0 else { return nil }
        if let limit = number(in: "/sys/fs/cgroup/memory.max"), let used = number(in: "/sys/fs/cgroup/memory.current") {
            return min(available, max(0, limit - used))
        }
        return available
    }

    /// The number a one-line file holds (`max` and anything else unparsable: nil).
    private static func number(in path: String) -> Int? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), file) != nil else { return nil }
        return Int(String(decoding: line.prefix { $0 != 0 && $0 != 10 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
    }

    private static func statusField(_ name: String) -> Int { field(name, in: "/proc/self/status") ?? 0 }

    /// A `Name:   N kB` line's value in bytes.
    private static func field(_ name: String, in path: String) -> Int? {
        guard let file = fopen(path, "r") else { return nil }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 256)
        while fgets(&line, Int32(line.count), file) != nil {
            let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            if text.hasPrefix(name) {
                let digits = text.dropFirst(name.count).filter { $0.isNumber }
                return Int(digits).map { $0 * 1024 }
            }
        }
        return nil
    }
}
