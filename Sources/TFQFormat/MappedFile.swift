#if canImport(Glibc)
import Glibc
#endif

/// A whole file mapped read-only into memory. Pages are shared with the page cache (and so
/// with every other process that maps the same file) and read from disk only when touched.
public final class MappedFile {
    public let path: String
    public let bytes: UnsafeRawBufferPointer

    /// Maps `path`; a file shorter than `minimumLength` bytes is refused.
    public init(path: String, minimumLength: Int = TFQFormatSpec.headerSize) throws {
        self.path = path
        let file: InputFile
        do { file = try InputFile(path: path) } catch { throw TFQFormatError(file: path, .io(error.description)) }
        let length = file.length
        guard length >= max(1, minimumLength) else { throw TFQFormatError(file: path, .tooShort(length: length)) }
        guard let address = mmap(nil, length, PROT_READ, MAP_PRIVATE, file.descriptor, 0), address != MAP_FAILED else {
            throw TFQFormatError(file: path, .io("cannot map: \(errnoText())"))
        }
        bytes = UnsafeRawBufferPointer(start: address, count: length)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: bytes.baseAddress), bytes.count)
    }

    /// Bytes of physical memory: the default ceiling on what decoding a file may allocate.
    static var physicalMemory: Int {
        Int(sysconf(Int32(_SC_PHYS_PAGES))) &* Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
