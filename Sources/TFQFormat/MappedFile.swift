#if canImport(Glibc)
import Glibc
#endif
import CMapGuard

/// A whole file mapped read-only into memory. Pages are shared with the page cache (and so
/// with every other process that maps the same file) and read from disk only when touched.
///
/// A file truncated while it is mapped would kill the process with SIGBUS at the next touch
/// of a page past its new end. The mapping is registered with a SIGBUS guard instead
/// (`CMapGuard`): such a page reads as zeros and ``isDamaged`` turns true, so the code using
/// the bytes can discard its result and fail. With `copy`, the file is read into private
/// memory instead, and nothing another process does to it afterwards matters.
public final class MappedFile {
    /// The path the file was opened at.
    public let path: String
    /// The whole file, read-only; valid as long as this object lives.
    public let bytes: UnsafeRawBufferPointer
    /// The SIGBUS guard's slot for this mapping, or −1 (a private copy, or no slot free).
    private let guardSlot: Int32

    /// True once a page of the mapping was found gone (the file was truncated while mapped):
    /// the bytes read since then are not the file's, and results computed from them must be
    /// discarded. Always false for a private copy.
    public var isDamaged: Bool { tfq_map_guard_damaged(guardSlot) != 0 }

    /// Maps `path` (or, with `copy`, reads it into private memory); a file shorter than
    /// `minimumLength` bytes is refused.
    public init(path: String, minimumLength: Int = TFQFormatSpec.headerSize, copy: Bool = false) throws {
        self.path = path
        let file: InputFile
        do { file = try InputFile(path: path) } catch { throw TFQFormatError(file: path, .io(error.description)) }
        let length = file.length
        guard length >= max(1, minimumLength) else { throw TFQFormatError(file: path, .tooShort(length: length)) }
        if copy {
            bytes = UnsafeRawBufferPointer(try Self.read(file.descriptor, length: length, path: path))
            guardSlot = -1
            return
        }
        guard let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, file.descriptor, 0), address != MAP_FAILED else {
            throw TFQFormatError(file: path, .io("cannot map: \(errnoText())"))
        }
        bytes = UnsafeRawBufferPointer(start: address, count: length)
        guardSlot = tfq_map_guard_register(address, length)
    }

    /// The whole file in anonymous memory (page-aligned, like a mapping), read with pread.
    private static func read(_ descriptor: Int32, length: Int, path: String) throws -> UnsafeMutableRawBufferPointer {
        guard let address = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), address != MAP_FAILED else {
            throw TFQFormatError(file: path, .outOfMemory("cannot allocate \(length) bytes to copy the file into: \(errnoText())"))
        }
        var done = 0
        while done < length {
            let got = pread(descriptor, address + done, length - done, off_t(done))
            if got < 0 && errno == EINTR { continue }
            guard got > 0 else {
                let why = got == 0 ? "the file shrank while it was read" : "cannot read: \(errnoText())"
                munmap(address, length)
                throw TFQFormatError(file: path, .io(why))
            }
            done += got
        }
        mprotect(address, length, PROT_READ)
        return UnsafeMutableRawBufferPointer(start: address, count: length)
    }

    deinit {
        tfq_map_guard_unregister(guardSlot)
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }

    /// Bytes of physical memory: the default ceiling on what decoding a file may allocate.
    static var physicalMemory: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
