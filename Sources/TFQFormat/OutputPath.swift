#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A file path to be written, split as the atomic writer needs it, and checked before any
/// long work: a training run or an export must not learn at its very end that `-o` names a
/// directory.
public struct OutputPath: Sendable {
    /// The path as given.
    public let path: String
    /// The directory part with its trailing slash, or "" for the current directory.
    let directory: String
    /// The last path component (empty when `path` ends in a slash).
    let name: String

    init(_ path: String) {
        self.path = path
        let slash = path.lastIndex(of: "/")
        directory = slash.map { String(path[...$0]) } ?? ""
        name = slash.map { String(path[path.index(after: $0)...]) } ?? path
    }

    /// The directory to open, list or sync.
    var directoryToOpen: String { directory.isEmpty ? "." : directory }

    /// Throws a one-line error unless a file can be written at `path` by renaming a new file
    /// over it: its directory exists and is writable, and the path is absent or a regular
    /// file (a directory, FIFO, device or socket there is refused, not replaced).
    public static func check(_ path: String) throws {
        let output = OutputPath(path)
        func fail(_ why: String) -> TFQFormatError { TFQFormatError(file: path, .io(why)) }
        guard !output.name.isEmpty else { throw fail("is a directory, not a file name") }
        var status = stat()
        if stat(path, &status) == 0 {
            switch status.st_mode & S_IFMT {
            case S_IFREG: break
            case S_IFDIR: throw fail("is a directory; give a file name (e.g. \(path)/model.tfq)")
            default: throw fail("is not a regular file (a FIFO, device or socket); give a file name to write")
            }
        } else if errno != ENOENT {
            throw fail("cannot create: \(errnoText())")
        }
        let directory = output.directoryToOpen
        guard stat(directory, &status) == 0 else { throw fail("cannot create: directory \(directory): \(errnoText())") }
        guard status.st_mode & S_IFMT == S_IFDIR else { throw fail("cannot create: \(directory) is not a directory") }
        guard access(directory, W_OK | X_OK) == 0 else { throw fail("cannot create: directory \(directory): \(errnoText())") }
    }
}
