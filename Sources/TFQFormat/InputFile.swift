#if canImport(Glibc)
import Glibc
#endif

/// A file opened for reading through the one check every input of tfq goes through: .tfq
/// files, corpora, prompt files, llama2.c checkpoints and tokenizers.
///
/// Only a regular file is accepted. The open itself must not block, so it uses O_NONBLOCK:
/// a blocking open of a FIFO waits for a writer that may never come, and the check on the
/// descriptor (fstat, so no one can swap the path in between) would never run. A directory
/// or a device such as /dev/zero opens at once but could not be mapped, or would be read
/// forever. On a regular file O_NONBLOCK changes nothing.
public struct InputFile: ~Copyable {
    /// Why a path cannot be read, in one line: "cannot open: …", "is not a regular file (a FIFO)".
    public struct Error: Swift.Error, CustomStringConvertible, Equatable {
        /// The reason in one line, without the path.
        public let description: String
    }

    /// The open descriptor, closed with this value.
    public let descriptor: Int32
    /// The file's length in bytes when it was opened.
    public let length: Int

    /// Opens `path` for reading without blocking; throws unless it is a regular file.
    public init(path: String) throws(Error) {
        let descriptor = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { throw Error(description: "cannot open: \(errnoText())") }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else {
            let why = errnoText()
            close(descriptor)
            throw Error(description: "cannot stat: \(why)")
        }
        let type = status.st_mode & S_IFMT
        guard type == S_IFREG else {
            close(descriptor)
            throw Error(description: "is not a regular file (\(Self.describe(type: type)))")
        }
        self.descriptor = descriptor
        length = Int(status.st_size)
    }

    deinit { close(descriptor) }

    /// Every byte of the file, read to its end.
    public func readAll() throws(Error) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(length)
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Error(description: "read failed: \(errnoText())")
            }
            if count == 0 { return bytes }
            bytes.append(contentsOf: chunk[..<count])
        }
    }

    static func describe(type: mode_t) -> String {
        switch type {
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        case S_IFLNK: return "a symbolic link"
        default: return "file type \(type)"
        }
    }
}
