#if canImport(Glibc)
import Glibc
#endif

/// The file the reader opens: a memfd when the kernel has them, else an unlinked temp file.
/// It is reused for every input (truncated and rewritten), reached through /proc/self/fd/N.
final class ScratchFile {
    let descriptor: Int32
    let path: String

    init() {
        typealias MemfdCreate = @convention(c) (UnsafePointer<CChar>, UInt32) -> Int32
        var descriptor: Int32 = -1
        // memfd_create is only declared under _GNU_SOURCE, which Swift's Glibc module lacks.
        if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0) /* RTLD_DEFAULT */, "memfd_create") {
            let memfdCreate = unsafeBitCast(symbol, to: MemfdCreate.self)
            descriptor = memfdCreate("fuzz-tfq", 1 /* MFD_CLOEXEC */)
        }
        if descriptor < 0 {
            var template = Array("/tmp/fuzz-tfq-XXXXXX".utf8CString)
            descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
            guard descriptor >= 0 else { fatalError("fuzz harness: cannot create a scratch file") }
            template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        }
        self.descriptor = descriptor
        path = "/proc/self/fd/\(descriptor)"
    }

    func replaceContents(with bytes: UnsafeRawBufferPointer) {
        guard ftruncate(descriptor, off_t(bytes.count)) == 0 else { fatalError("fuzz harness: ftruncate failed") }
        var done = 0
        while done < bytes.count {
            let written = pwrite(descriptor, bytes.baseAddress! + done, bytes.count - done, off_t(done))
            if written < 0 && errno == EINTR { continue }
            guard written > 0 else { fatalError("fuzz harness: pwrite failed") }
            done += written
        }
    }

    func truncate(to length: Int) {
        guard ftruncate(descriptor, off_t(length)) == 0 else { fatalError("fuzz harness: ftruncate failed") }
    }
}
