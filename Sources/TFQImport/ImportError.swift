import TFQFormat

/// Why a file could not be imported; the message names the file and the problem.
/// Names read from a hostile file can hold control, format and line-separator characters:
/// they are shown escaped, so the message stays one line and reads as it prints.
public struct ImportError: Error, CustomStringConvertible {
    public let description: String
    init(_ path: String, _ problem: String) {
        description = "\(path): \(problem)".unicodeScalars.map {
            switch $0.properties.generalCategory {
            case .control, .format, .lineSeparator, .paragraphSeparator: $0.escaped(asASCII: true)
            default: String($0)
            }
        }.joined()
    }
}

extension MappedFile {
    /// `path` mapped for an import, its problems (absent, unreadable, empty) as ImportError.
    static func toImport(_ path: String) throws -> MappedFile {
        do { return try MappedFile(path: path, minimumLength: 1) } catch let error as TFQFormatError {
            if case .tooShort = error.problem { throw ImportError(path, "the file is empty") }
            if case .io(let why) = error.problem { throw ImportError(path, why) }
            throw error
        }
    }
}
