import TFQFormat
import TFQKernels
import TFQModel

/// Why a corpus cannot be trained on.
public struct CorpusError: Error, CustomStringConvertible {
    /// The problem, usually prefixed with the file's path.
    public let description: String
}

/// A text file turned into token ids, split into training and validation parts.
public struct Corpus {
    /// The tokenizer the text was encoded with: the existing one given, or one made from the text.
    public let tokenizer: Tokenizer
    /// The training split's token ids.
    public let train: [Int32]
    /// The validation split's token ids.
    public let validation: [Int32]
    /// CRC-32 of the training file's bytes: a resumed run must use the same data.
    public let checksum: UInt32
    /// The training text's path, as given.
    public let path: String
    /// The validation text's path, as given; nil when validation is the end of `path`'s text.
    public let validationPath: String?

    /// Bytes of text each token id stands for: turns nats per token into bits per byte.
    public let tokenByteCounts: [Int]
    /// Seconds spent learning the tokenizer (BPE only; nil when none was learned).
    public let tokenizerSeconds: Double?

    /// Reads `path` (and `validationPath`, else the last 10 % of `path` is validation).
    /// `existing` (a resumed checkpoint's tokenizer) is used as it is; otherwise one of
    /// `kind` is made from the text, a BPE one of `vocabularySize` tokens learned on the
    /// training split alone.
    public init(path: String, validationPath: String?, tokenizer kind: TrainingOptions.TokenizerKind, vocabularySize: Int? = nil,
                existing: Tokenizer? = nil) throws {
        self.path = path
        self.validationPath = validationPath
        let text = try Self.readText(path)
        checksum = CRC32.checksum(Array(text.utf8))
        let validationText = try validationPath.map(Self.readText)
        let isBPE: Bool
        switch existing {
        case .bpe?: isBPE = true
        case nil: isBPE = kind == .bpe
        default: isBPE = false
        }
        // A char or byte corpus is split by tokens. A BPE one must be split before its
        // tokenizer exists, so it is split by text, at the same scalar as export's
        // evaluation text: the last 10% of the scalars (the same cut as char tokens).
        var parts: (train: String, validation: String)? = validationText.map { (text, $0) }
        if parts == nil && isBPE {
            let scalars = text.unicodeScalars
            let cut = scalars.index(scalars.startIndex, offsetBy: scalars.count - scalars.count / 10)
            parts = (String(scalars[..<cut]), String(scalars[cut...]))
        }
        let tokenizer: Tokenizer
        var learning: Double? = nil
        if let existing {
            tokenizer = existing
        } else {
            switch kind {
            case .byte: tokenizer = .byte
            case .char: tokenizer = .characters(of: text + (validationText ?? ""))
            case .bpe:
                let started = MonotonicClock.seconds()
                guard let vocabularySize else { throw CorpusError(description: "a BPE tokenizer needs a vocabulary size") }
                tokenizer = .bpe(BPELearner.learn(Array((parts?.train ?? text).utf8), vocabularySize: vocabularySize))
                learning = MonotonicClock.seconds() - started
            }
        }
        self.tokenizer = tokenizer
        tokenizerSeconds = learning
        tokenByteCounts = (0..<tokenizer.vocabularySize).map { tokenizer.bytes(of: Int32($0)).count }
        do {
            if let parts {
                train = try tokenizer.encode(parts.train)
                validation = try tokenizer.encode(parts.validation)
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
