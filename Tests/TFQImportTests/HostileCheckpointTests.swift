import Foundation
import Testing
@testable import TFQImport
import TFQModel

/// Broken and lying llama2.c files: each must fail with a message naming the problem, and
/// leave no output behind. (llama2.c itself reads whatever the header says.)
@Suite struct HostileCheckpointTests {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-hostile-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    static let good = try! Data(contentsOf: LlamaFixtures.directory.appendingPathComponent("tiny-v0.bin"))
    static let goodV2 = try! Data(contentsOf: LlamaFixtures.directory.appendingPathComponent("tiny-v2.bin"))
    static let goodTokenizer = try! Data(contentsOf: LlamaFixtures.directory.appendingPathComponent("tokenizer.bin"))

    static func withInt32(_ data: Data, at offset: Int, _ value: Int32) -> Data {
        var copy = data
        withUnsafeBytes(of: value.littleEndian) { copy.replaceSubrange(offset..<(offset + 4), with: $0) }
        return copy
    }

    /// Imports `checkpoint` (and `tokenizer`) written to files; returns the error text.
    static func failure(_ checkpoint: Data, tokenizer: Data = goodTokenizer) -> String {
        let name = UUID().uuidString
        let path = directory.appendingPathComponent(name + ".bin").path, tokenizerPath = directory.appendingPathComponent(name + ".tok").path
        let output = directory.appendingPathComponent(name + ".tfq").path
        FileManager.default.createFile(atPath: path, contents: checkpoint)
        FileManager.default.createFile(atPath: tokenizerPath, contents: tokenizer)
        do {
            _ = try Llama2cImporter.importCheckpoint(path, tokenizer: tokenizerPath, output: output)
            return "imported"
        } catch {
            #expect(!FileManager.default.fileExists(atPath: output), "a failed import left \(output)")
            let listing = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            #expect(!listing.contains { $0.hasPrefix(name + ".tfq") }, "a failed import left a temporary file")
            return "\(error)"
        }
    }

    @Test func checkpoints() {
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "the file is empty"),
            ("short header", Self.good.prefix(10), "truncated header"),
            ("truncated weights", Self.good.prefix(Self.good.count - 4), "truncated: "),
            ("trailing bytes", Self.good + Data([0, 0, 0, 0]), "4 bytes after the last tensor"),
            ("zero dim", Self.withInt32(Self.good, at: 0, 0), "dim is 0"),
            ("negative layers", Self.withInt32(Self.good, at: 8, -3), "n_layers is -3"),
            ("heads not dividing dim", Self.withInt32(Self.good, at: 12, 5), "impossible shape"),
            ("kv heads not dividing heads", Self.withInt32(Self.good, at: 16, 3), "n_kv_heads 3 does not divide"),
            ("huge vocabulary", Self.withInt32(Self.good, at: 20, Int32.max), "vocabulary size"),
            ("huge context", Self.withInt32(Self.good, at: 24, 1 << 30), "context length"),
            ("dims far beyond the file", Self.withInt32(Self.withInt32(Self.good, at: 0, 65536), at: 4, 262_144), "truncated"),
            ("unknown version", Self.withInt32(Self.goodV2, at: 4, 7), "version 7 is not supported"),
            ("version 2, zero group", Self.withInt32(Self.goodV2, at: 37, 0), "group size 0"),
            ("version 2, groups not whole", Self.withInt32(Self.goodV2, at: 37, 7), "not a whole number of groups of 7"),
        ]
        for (name, data, message) in cases {
            let text = Self.failure(data)
            #expect(text.contains(message), "\(name): \(text)")
            #expect(!text.contains("\n"), "\(name): more than one line")
        }
    }

    @Test func vocabulariesTooSmallForByteFallbackAreRefused() throws {
        let path = LlamaFixtures.path("tokenizer.bin")
        #expect(throws: ImportError.self) { try Llama2cTokenizer.read(path: path, vocabSize: 100) }
        do { _ = try Llama2cTokenizer.read(path: path, vocabSize: 258) } catch { #expect("\(error)".contains("at least 259")) }
    }

    @Test func version2ScalesMustBeFiniteAndNonNegative() {
        // The first q8 tensor (tok_emb, 384 × 16 values) follows the norms: its scales start
        // after its int8 values.
        let norms = 4 * (2 * 2 * 16 + 16), values = 384 * 16
        var data = Self.goodV2
        data.replaceSubrange((256 + norms + values)..<(256 + norms + values + 4), with: [0, 0, 0x80, 0xBF])  // −1.0
        #expect(Self.failure(data).contains("token_embedding: the scale of group 0 is -1.0"))
    }

    @Test func tokenizers() {
        var nonUTF8 = Self.goodTokenizer
        // Token 0's piece starts at byte 12 (max_token_length, score, length).
        nonUTF8[12] = 0xFF
        let cases: [(String, Data, String)] = [
            ("empty", Data(), "truncated at max_token_length"),
            ("truncated", Self.goodTokenizer.prefix(Self.goodTokenizer.count - 3), "token 383"),
            ("too many tokens", Self.goodTokenizer + Self.goodTokenizer.suffix(12), "holds more than the model's 384 tokens"),
            ("zero max length", Self.withInt32(Self.goodTokenizer, at: 0, 0), "max_token_length 0"),
            ("negative piece length", Self.withInt32(Self.goodTokenizer, at: 8, -1), "token 0 has length -1"),
            ("NaN score", Self.withInt32(Self.goodTokenizer, at: 4, Int32(bitPattern: 0x7FC0_0000)), "not finite"),
            ("not UTF-8", nonUTF8, "token 0 is not valid UTF-8"),
        ]
        for (name, data, message) in cases {
            let text = Self.failure(Self.good, tokenizer: data)
            #expect(text.contains(message), "\(name): \(text)")
        }
    }
}
