import TFQFormat
import TFQModel

/// Why a file could not be imported; the message names the file and the problem.
/// Names read from a hostile file can hold control, format and line-separator characters:
/// they are shown escaped, so the message stays one line and reads as it prints.
public struct ImportError: OptionNamingError {
    /// `path: problem` on one line, with control and format characters escaped.
    public let message: OptionMessage
    init(_ path: String, _ problem: String) {
        message = OptionMessage(stringLiteral: Self.escaped("\(path): \(problem)"))
    }
    /// A problem that names options (`give \(option: "tokenizer") FILE`).
    init(_ path: String, _ problem: OptionMessage) {
        message = Self.escaped(path) + ": " + problem
    }

    private static func escaped(_ text: String) -> String {
        text.unicodeScalars.map {
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
