#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Float buffers on 64-byte boundaries (a cache line, one AVX-512 register), from
/// `posix_memalign`: every buffer allocated here is released with ``free(_:)``.
///
/// ``floats(_:)`` and ``uninitializedFloats(_:)`` trap when memory runs out: they are for
/// buffers whose size the caller has already bounded. A buffer sized by input (a file's
/// tensor, a session for a model's context) comes from ``availableFloats(_:zeroed:)``, which
/// returns nil instead, so the failure can be reported.
public enum AlignedMemory {
    /// The alignment of every buffer allocated here, in bytes.
    public static let alignment = 64

    /// `count` floats (at least one), all zero; release with ``AlignedMemory/free(_:)``.
    public static func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let buffer = availableFloats(count, zeroed: true) else { fatalError("out of memory: cannot allocate \(count) floats") }
        return buffer
    }

    /// Uninitialized floats: a large buffer's pages are committed only when first written,
    /// so a buffer sized for a whole context costs memory only for what is used.
    public static func uninitializedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        guard let buffer = availableFloats(count, zeroed: false) else { fatalError("out of memory: cannot allocate \(count) floats") }
        return buffer
    }

    /// `count` floats (at least one), zeroed or not, or nil when the memory cannot be had.
    public static func availableFloats(_ count: Int, zeroed: Bool) -> UnsafeMutablePointer<Float>? {
        let (bytes, overflow) = max(1, count).multipliedReportingOverflow(by: 4)
        guard !overflow, let raw = availableBytes(bytes) else { return nil }
        return zeroed ? raw.initializeMemory(as: Float.self, repeating: 0, count: max(1, count))
                      : raw.bindMemory(to: Float.self, capacity: max(1, count))
    }

    /// `count` uninitialized bytes (at least one), or nil when the memory cannot be had.
    public static func availableBytes(_ count: Int) -> UnsafeMutableRawPointer? {
        var buffer: UnsafeMutableRawPointer?
        guard posix_memalign(&buffer, alignment, max(1, count)) == 0 else { return nil }
        return buffer
    }

    /// Frees a buffer allocated here.
    public static func free<T>(_ pointer: UnsafeMutablePointer<T>) {
        free(UnsafeMutableRawPointer(pointer))
    }

    /// Frees a buffer allocated here.
    public static func free(_ pointer: UnsafeMutableRawPointer) {
        #if canImport(Glibc)
        Glibc.free(pointer)
        #else
        Darwin.free(pointer)
        #endif
    }
}
