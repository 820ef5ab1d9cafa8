import ArgumentParser
import FoundationEssentials
import TFQFormat
import TFQModel
#if canImport(Glibc)
@preconcurrency import Glibc  // stdout and stderr are mutable C globals
#endif

struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Turn text on stdin into a model's token ids, or ids back into text (--decode).",
        discussion: """
        Encoding reads stdin as bytes and prints the ids on one line, separated by spaces.
        --decode reads ids separated by any whitespace and writes exactly the bytes they stand
        for, nothing added (not even a newline). Byte, BPE, llama2c and sentencepiece models
        encode any bytes (llama2c ids start with BOS, as llama2.c encodes a prompt, and
        sentencepiece ids with the BOS of its template); a char model needs
        UTF-8 made of its characters. --json prints one object instead: ids,
        count, bytes, and when decoding the text (null if it is not valid UTF-8).
        """
    )

    @Argument(help: "The model or checkpoint (.tfq).") var model: String
    @Flag(help: "Read token ids, write the bytes they stand for.") var decode = false
    @Flag(help: "One JSON object instead.") var json = false

    func run() throws {
        let tokenizer = try ModelMetadata(file: try TFQFile(path: model)).tokenizer
        let input = try Self.readStandardInput()
        if decode {
            let ids = try Self.parseIDs(input, vocabularySize: tokenizer.vocabularySize)
            let bytes = tokenizer.decodeBytes(ids)
            if json {
                let text = String(validating: bytes, as: UTF8.self)
                print(try JSONOutput.string(JSONValue.object([
                    "ids": .array(ids.map { .integer(Int64($0)) }), "count": .integer(Int64(ids.count)),
                    "bytes": .integer(Int64(bytes.count)), "text": text.map { .string($0) } ?? .null,
                    "valid_utf8": .bool(text != nil),
                ])))
            } else {
                try Self.writeStandardOutput(bytes)
            }
        } else {
            let ids: [Int32]
            do { ids = try tokenizer.encode(bytes: input) } catch { throw UsageError("stdin: \(error)") }
            if json {
                print(try JSONOutput.string(JSONValue.object([
                    "ids": .array(ids.map { .integer(Int64($0)) }), "count": .integer(Int64(ids.count)),
                    "bytes": .integer(Int64(input.count)),
                ])))
            } else {
                print(ids.map(String.init).joined(separator: " "))
            }
        }
    }

    /// Whitespace-separated decimal ids, each below `vocabularySize`; errors name `source`.
    static func parseIDs(_ input: [UInt8], vocabularySize: Int, source: String = "stdin") throws -> [Int32] {
        var ids: [Int32] = []
        let words = input.split(whereSeparator: { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0D) })
        for (index, word) in words.enumerated() {
            let shown = String(decoding: word.prefix(24), as: UTF8.self).debugDescription.dropFirst().dropLast() + (word.count > 24 ? "…" : "")
            guard word.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
                throw UsageError("\(source): '\(shown)' (item \(index + 1)) is not a token id: expected whole numbers 0 to \(vocabularySize - 1)")
            }
            guard word.count <= 9, let id = Int(String(decoding: word, as: UTF8.self)), id < vocabularySize else {
                throw UsageError("\(source): token id \(shown) (item \(index + 1)) is out of range: the vocabulary has \(vocabularySize) tokens (0 to \(vocabularySize - 1))")
            }
            ids.append(Int32(id))
        }
        return ids
    }

    static func readStandardInput() throws -> [UInt8] {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw UsageError("stdin: cannot read (\(String(cString: strerror(errno))))")
            }
            if n == 0 { return bytes }
            bytes += buffer[..<n]
        }
    }

    static func writeStandardOutput(_ bytes: [UInt8]) throws {
        let written = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, stdout) }
        guard written == bytes.count, fflush(stdout) == 0 else {
            throw UsageError("stdout: cannot write (\(String(cString: strerror(errno))))")
        }
    }
}
