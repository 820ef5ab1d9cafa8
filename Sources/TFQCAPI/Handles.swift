#if canImport(Glibc)
import Glibc
#endif
import TFQRuntime

/// The objects behind the C API's opaque handles, and the registry that lets every entry
/// point tell a live handle from a closed or made-up one.
final class ModelHandle {
    let model: Model
    init(model: Model) { self.model = model }
}

final class SessionHandle {
    let session: Session
    init(session: Session) { self.session = session }
}

enum Handles {
    /// Guarded by `lock`: any C thread may open, use and close handles.
    nonisolated(unsafe) private static var live = Set<UnsafeMutableRawPointer>()
    nonisolated(unsafe) private static var lock = pthread_mutex_t()
    private static let initialized: Bool = { pthread_mutex_init(&lock, nil); return true }()

    private static func locked<T>(_ body: () -> T) -> T {
        _ = initialized
        pthread_mutex_lock(&lock)
        defer { pthread_mutex_unlock(&lock) }
        return body()
    }

    /// A new handle that owns one reference to `object`.
    static func open<T: AnyObject>(_ object: T) -> OpaquePointer {
        let raw = Unmanaged.passRetained(object).toOpaque()
        _ = locked { live.insert(raw) }
        return OpaquePointer(raw)
    }

    /// The object behind a live handle of type T, or nil for NULL, closed or foreign pointers.
    static func get<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) -> T? {
        guard let handle else { return nil }
        let raw = UnsafeMutableRawPointer(handle)
        return locked {
            guard live.contains(raw) else { return nil }
            return Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() as? T
        }
    }

    /// Releases a live handle; false for NULL, closed or foreign pointers.
    @discardableResult
    static func close<T: AnyObject>(_ handle: OpaquePointer?, as type: T.Type) -> Bool {
        guard let handle else { return false }
        let raw = UnsafeMutableRawPointer(handle)
        let object: AnyObject? = locked {
            guard live.contains(raw), Unmanaged<AnyObject>.fromOpaque(raw).takeUnretainedValue() is T else { return nil }
            live.remove(raw)
            return Unmanaged<AnyObject>.fromOpaque(raw).takeRetainedValue()
        }
        return object != nil
    }
}

/// The calling thread's last error message, kept as a C string for `tfq_last_error`.
enum LastError {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func set(_ message: String) {
        free(pthread_getspecific(key))
        pthread_setspecific(key, strdup(message))
    }

    static var current: UnsafePointer<CChar> {
        if let message = pthread_getspecific(key) { return UnsafePointer(message.assumingMemoryBound(to: CChar.self)) }
        return UnsafePointer(empty)
    }

    /// Written once, then only read.
    nonisolated(unsafe) private static let empty: UnsafeMutablePointer<CChar> = strdup("")!
}
