/// Zeroed float buffers on 64-byte boundaries (a cache line, one AVX-512 register).
///
/// Memory allocated with an alignment must be freed through a raw pointer, which frees it
/// the same way; a typed pointer's `deallocate()` would not.
public enum AlignedMemory {
    public static let alignment = 64

    public static func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: alignment)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(1, count))
    }

    /// Uninitialized floats: a large buffer's pages are committed only when first written,
    /// so a session sized for its whole context costs memory only for what it uses.
    public static func uninitializedFloats(_ count: Int) -> UnsafeMutablePointer<Float> {
        UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * 4, alignment: alignment).bindMemory(to: Float.self, capacity: max(1, count))
    }

    public static func free<T>(_ pointer: UnsafeMutablePointer<T>) {
        UnsafeMutableRawPointer(pointer).deallocate()
    }
}
