/// Why a .tfq file could not be read or written. The description is one line naming the
/// file, the tensor where there is one, and the problem.
public struct TFQFormatError: Error, CustomStringConvertible, Equatable {
    /// What went wrong, with the details the description shows.
    public enum Problem: Equatable, Sendable {
        case io(String)
        case tooShort(length: Int)
        case badMagic
        case headerChecksum
        case unsupportedVersion(major: UInt16, minor: UInt16)
        case lengthMismatch(declared: UInt64, actual: Int)
        case badHeaderField(String)
        case indexChecksum
        case badMetadata(String)
        case badDirectory(String)
        case badTensor(String)
        case tensorChecksum
        case decode(String)
        case tooLarge(bytes: Int, limit: Int)
        case missingTensor
        /// A well-formed file this build cannot run: an architecture, tokenizer or tensor
        /// layout it does not implement.
        case unsupported(String)
        /// Running the file would need more memory than there is (or than could be allocated).
        case outOfMemory(String)
        case usage(String)
    }

    /// The path of the file concerned.
    public var file: String
    /// The name of the tensor concerned, or nil when the problem is not one tensor's.
    public var tensor: String?
    /// What went wrong.
    public var problem: Problem

    /// An error about `file` and, where given, its tensor named `tensor`.
    public init(file: String, tensor: String? = nil, _ problem: Problem) {
        self.file = file
        self.tensor = tensor
        self.problem = problem
    }

    /// One line: the file, then "tensor 'name'" where there is one, then the problem.
    public var description: String {
        var text = file + ": "
        if let tensor { text += "tensor '\(tensor)': " }
        switch problem {
        case .io(let why): text += why
        case .tooShort(let length): text += "not a tfq file (only \(length) bytes)"
        case .badMagic: text += "not a tfq file (bad magic bytes)"
        case .headerChecksum: text += "header checksum mismatch (corrupt file)"
        case .unsupportedVersion(let major, let minor):
            text += "format version \(major).\(minor) is not supported (this tfq reads \(TFQFormatSpec.versionMajor).x)"
        case .lengthMismatch(let declared, let actual):
            text += "file is \(actual) bytes but its header says \(declared)" + (UInt64(actual) < declared ? " (truncated)" : "")
        case .badHeaderField(let why): text += "bad header: \(why)"
        case .indexChecksum: text += "metadata/directory checksum mismatch (corrupt file)"
        case .badMetadata(let why): text += "bad metadata: \(why)"
        case .badDirectory(let why): text += "bad tensor directory: \(why)"
        case .badTensor(let why): text += why
        case .tensorChecksum: text += "checksum mismatch (corrupt data)"
        case .decode(let why): text += "cannot decode: \(why)"
        case .tooLarge(let bytes, let limit): text += "decodes to \(bytes) bytes, more than the limit of \(limit)"
        case .missingTensor: text += "not found in the file"
        case .unsupported(let why): text += "not supported: " + why
        case .outOfMemory(let why): text += "out of memory: " + why
        case .usage(let why): text += why
        }
        return text
    }
}
