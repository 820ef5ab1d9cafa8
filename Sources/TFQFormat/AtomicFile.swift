#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file written under a temporary name in its target's directory and renamed into place
/// only once it is complete and synced: a crash or kill at any point leaves either the old
/// file or the complete new one at the target path, never a half-written one. The temporary
/// file is locked while it exists, and a later write of the same target removes it if its
/// writer died (``StagingFiles``).
public final class AtomicFile {
    /// The target path, where the file appears once committed.
    public let path: String
    let temporaryPath: String
    private var descriptor: Int32
    /// How many bytes the write calls have appended so far.
    public private(set) var bytesWritten = 0
    private var committed = false

    /// Creates and locks the temporary file for `path`, after checking that `path` can be written
    /// and removing temporary files that dead writers of the same target left behind.
    public init(path: String) throws {
        self.path = path
        try OutputPath.check(path)
        let target = OutputPath(path)
        StagingFiles.removeStale(of: target)
        temporaryPath = StagingFiles.newName(for: target)
        descriptor = open(temporaryPath, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard descriptor >= 0 else { throw TFQFormatError(file: path, .io("cannot create: \(errnoText())")) }
        StagingFiles.lock(descriptor)
    }

    deinit {
        if !committed { discard() }
    }

    /// Appends `bytes` to the temporary file, retrying interrupted writes.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let result = Glibc.write(descriptor, bytes.baseAddress! + done, bytes.count - done)
            if result < 0 {
                if errno == EINTR { continue }
                throw TFQFormatError(file: path, .io("write failed: \(errnoText())"))
            }
            done += result
        }
        bytesWritten += bytes.count
    }

    /// Appends `bytes` to the temporary file.
    public func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    /// Appends `count` zero bytes (nothing when `count` ≤ 0).
    public func writeZeros(_ count: Int) throws {
        if count > 0 { try write([UInt8](repeating: 0, count: count)) }
    }

    /// Overwrites bytes already written, at `offset`.
    func overwrite(_ bytes: [UInt8], at offset: Int) throws {
        let result = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        guard result == bytes.count else { throw TFQFormatError(file: path, .io("write failed: \(errnoText())")) }
    }

    /// fsync, rename over the target, fsync the directory so the rename itself is durable.
    /// The descriptor (and its lock) is closed only after the rename, so the file is never
    /// unlocked under its temporary name.
    public func commit() throws {
        guard fsync(descriptor) == 0 else { throw TFQFormatError(file: path, .io("fsync failed: \(errnoText())")) }
        guard rename(temporaryPath, path) == 0 else {
            throw TFQFormatError(file: path, .io("cannot rename into place: \(errnoText())"))
        }
        committed = true
        close(descriptor)
        descriptor = -1
        let directoryDescriptor = open(OutputPath(path).directoryToOpen, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryDescriptor >= 0 {
            _ = fsync(directoryDescriptor)
            close(directoryDescriptor)
        }
    }

    /// Removes the temporary file; the target is untouched.
    public func discard() {
        if !committed { unlink(temporaryPath) }
        if descriptor >= 0 { close(descriptor); descriptor = -1 }
    }
}

func errnoText() -> String { String(cString: strerror(errno)) }
