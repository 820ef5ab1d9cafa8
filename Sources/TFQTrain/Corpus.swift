import TFQFormat
import TFQModel

/// Why a corpus cannot be trained on.
public struct CorpusError: Error, CustomStringConvertible {
    public let description: String
}

/// A text file turned into token ids, split into training and validation parts.
public struct Corpus {
    public let tokenizer: Tokenizer
    public let train: [Int32]
    public let validation: [Int32]
    /// CRC-32 of the training file's bytes: a resumed run must use the same data.
    public let checksum: UInt32
    public let path: String
    public let validationPath: String?

    /// Reads `path` (and `validationPath`, else the last 10 % of `path` is validation).
    public init(path: String, validationPath: String?, tokenizer kind: TrainingOptions.TokenizerKind, existing: Tokenizer? = nil) throws {
        self.path = path
        self.validationPath = validationPath
        let text = try Self.readText(path)
        checksum = CRC32.checksum(Array(text.utf8))
        let validationText = try validationPath.map(Self.readText)
        let tokenizer: Tokenizer
        if let existing {
            tokenizer = existing
        } else {
            switch kind {
            case .byte: tokenizer = .byte
            case .char: tokenizer = .characters(of: text + (validationText ?? ""))
            }
        }
        self.tokenizer = tokenizer
        do {
            if let validationText {
                train = try tokenizer.encode(text)
                validation = try tokenizer.encode(validationText)
            } else {
                let all = try tokenizer.encode(text)
                let cut = all.count - all.count / 10
                train = Array(all[..<cut])
                validation = Array(all[cut...])
            }
        } catch {
            throw CorpusError(description: "\(path): \(error)")
        }
    }

    /// The file's text; refuses missing, empty and binary files with a message naming them.
    public static func readText(_ path: String) throws -> String {
        let bytes: [UInt8]
        do { bytes = try FileBytes.read(path) } catch { throw CorpusError(description: "\(path): \(error)") }
        if bytes.isEmpty { throw CorpusError(description: "\(path): the corpus is empty") }
        if bytes.contains(0) { throw CorpusError(description: "\(path): not a text file (it contains NUL bytes)") }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw CorpusError(description: "\(path): not a text file (it is not valid UTF-8)")
        }
        return text
    }
}
