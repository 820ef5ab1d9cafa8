import Foundation
import Testing
import TFQFormat
@testable import TFQImport
import TFQModel
import TFQRuntime

/// GGUF out and in: a model exported as F32 and imported back is the same model bit for bit;
/// Q8_0 comes back as the same int8 values and f16 scales; hostile files are refused.
/// (tools/test_gguf.py checks the exported files with the `gguf` package itself.)
@Suite struct GGUFTests {
    static func temporary(_ name: String) -> String { HuggingFaceFixtures.output.appendingPathComponent("\(UUID().uuidString)-\(name)").path }

    /// The HF fixtures and the llama2.c one (SentencePiece pieces), imported as fp32 .tfq.
    static func source(_ name: String) throws -> String {
        let out = temporary(name + ".tfq")
        if name == "llama2c" {
            _ = try Llama2cImporter.importCheckpoint(LlamaFixtures.path("tiny-v0.bin"), tokenizer: LlamaFixtures.path("tokenizer.bin"), output: out)
        } else {
            _ = try HuggingFaceImporter.importModel(HuggingFaceFixtures.directory.appendingPathComponent(name).path, output: out)
        }
        return out
    }

    @Test(arguments: ["gpt2", "llama", "llama2c"])
    func f32RoundTripKeepsEveryWeightAndTheTokenizer(name: String) throws {
        let original = try Self.source(name)
        let gguf = Self.temporary(name + ".gguf"), back = Self.temporary(name + ".back.tfq")
        let exported = try GGUFExporter.export(original, output: gguf, precision: .f32)
        #expect(exported.keptF32.isEmpty)
        let summary = try GGUFImporter.importModel(gguf, output: back)
        #expect(summary.keptQuantized == 0 && summary.types.keys.sorted() == ["F32"])
        let a = try Model(path: original, verify: true), b = try Model(path: back, verify: true)
        #expect(a.config == b.config)
        #expect(a.tokenizer == b.tokenizer)
        let fileA = try TFQFile(path: original), fileB = try TFQFile(path: back)
        #expect(fileA.tensors.map(\.name).sorted() == fileB.tensors.map(\.name).sorted())
        for info in fileA.tensors {
            let other = try #require(fileB.info(info.name))
            #expect(fileA.floats(info) == fileB.floats(other), "\(name): \(info.name)")
        }
    }

    /// Q8_0 blocks become tfq's q8 groups of 32 with the same values: each weight reads back
    /// as d·q of its GGUF block, computed here from the file's bytes.
    @Test(arguments: ["gpt2", "llama"])
    func q8_0ImportKeepsLlamaCppsValues(name: String) throws {
        let original = try Self.source(name)
        let gguf = Self.temporary(name + ".q8.gguf"), back = Self.temporary(name + ".q8.tfq")
        let exported = try GGUFExporter.export(original, output: gguf, precision: .q8_0)
        let summary = try GGUFImporter.importModel(gguf, output: back)
        let file = try GGUFFile(path: gguf)
        let q8 = file.tensors.values.filter { $0.type == .q8_0 }
        #expect(q8.count >= 8)
        // gpt2's output, a copy of the shared table, is not read again; llama's q, k and v
        // become one tfq tensor.
        #expect(summary.types["Q8_0"] == q8.count - (name == "gpt2" ? 1 : 0))
        #expect(summary.keptQuantized == q8.count - (name == "llama" ? 2 * 2 : 1))
        #expect(exported.keptF32 == (name == "llama" ? ["blk.0.ffn_down.weight", "blk.1.ffn_down.weight"] : []))
        let imported = try TFQFile(path: back)
        let embedding = try #require(file.tensors["token_embd.weight"])
        let bytes = file.bytes(embedding)
        var expected: [Float] = []
        for block in 0..<(embedding.count / 32) {
            let scale = Float(Float16(bitPattern: bytes.loadUnaligned(fromByteOffset: block * 34, as: UInt16.self)))
            for j in 0..<32 { expected.append(Float(Int8(bitPattern: bytes[block * 34 + 2 + j])) * scale) }
        }
        let info = try #require(imported.info("tok_emb"))
        #expect(info.dtype == .q8f16 && info.groupSize == 32)
        #expect(imported.floats(info) == expected)
        let model = try Model(path: back, verify: true)
        #expect(model.isQuantized)
        var tokens: [Int32] = []
        try Session(model: model, threads: 1).generate(prompt: [5, 6, 7], maxTokens: 10, ignoringEndOfText: true) { token, _ in tokens.append(token); return true }
        #expect(tokens.count == 10)
    }

    @Test func quantizeQ8_0FollowsLlamaCppsRule() {
        // max |x| = 127·d exactly; halves round away from zero; a block of zeros has d = 0.
        var values = (0..<32).map { Float($0) - 16 }
        values[0] = 127
        values += [Float](repeating: 0, count: 32)
        let bytes = GGUFExporter.quantizeQ8_0(values)
        #expect(bytes.count == 2 * 34)
        #expect(Float(Float16(bitPattern: UInt16(bytes[0]) | UInt16(bytes[1]) << 8)) == 1)
        #expect(Array(bytes[2..<34]).map { Int8(bitPattern: $0) } == values[0..<32].map { Int8($0) })
        let halves = GGUFExporter.quantizeQ8_0([127, 0.5, -0.5, 2.5, -2.5] + [Float](repeating: 0, count: 27))
        #expect(halves[2..<7].map { Int8(bitPattern: $0) } == [127, 1, -1, 3, -3])  // not to even
        #expect(bytes[34] == 0 && bytes[35] == 0 && bytes[36...].allSatisfy { $0 == 0 })
        // A block so small that 1/d is infinite: d rounds to 0 in f16, and so do the values.
        let tiny = GGUFExporter.quantizeQ8_0([Float](repeating: 1e-38, count: 31) + [0])
        #expect(tiny.allSatisfy { $0 == 0 })
    }

    /// A GGUF of the given parts, for hostile cases.
    static func file(version: UInt32 = 3, tensors: UInt64 = 0, metadata: [(String, UInt32, [UInt8])] = [], tail: [UInt8] = []) -> String {
        var w = GGUF.ByteWriter()
        w.bytes(GGUF.magic)
        w.u32(version)
        w.u64(tensors)
        w.u64(UInt64(metadata.count))
        for (key, type, value) in metadata { w.string(key); w.u32(type); w.bytes(value) }
        w.bytes(tail)
        let path = temporary("hostile.gguf")
        FileManager.default.createFile(atPath: path, contents: Data(w.data))
        return path
    }

    static func failure(_ path: String) -> String {
        do {
            _ = try GGUFImporter.importModel(path, output: temporary("never.tfq"))
            return "imported"
        } catch {
            #expect(!"\(error)".contains("\n"))
            return "\(error)"
        }
    }

    @Test func lyingFilesAreRefusedByName() {
        func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        func string(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }
        /// One tensor info: name "t", rank, dimensions, type and offset.
        func tensor(rank: UInt8, _ dimensions: [UInt64], type: UInt8, offset: UInt64) -> [UInt8] {
            var bytes: [UInt8] = string("t") + [rank, 0, 0, 0]
            for d in dimensions { bytes += u64(d) }
            return bytes + [type, 0, 0, 0] + u64(offset)
        }
        let u32one: [UInt8] = [1, 0, 0, 0]
        let arrayOfStrings: [UInt8] = [8, 0, 0, 0] + u64(1 << 40)
        // Padded so that the data starts inside the file (at 64), with no bytes in it.
        let noData: [UInt8] = tensor(rank: 1, [4], type: 0, offset: 0) + [UInt8](repeating: 0, count: 7)
        var cases: [(String, String)] = []
        cases.append((Self.file(version: 4), "GGUF version 4 is not supported"))
        cases.append((Self.file(tensors: 1 << 40), "cannot fit"))
        cases.append((Self.file(metadata: [("k", 8, u64(1 << 40))]), "runs past the end"))
        cases.append((Self.file(metadata: [("k", 9, arrayOfStrings)]), "an array of"))
        cases.append((Self.file(metadata: [("k", 13, [])]), "unknown metadata value type 13"))
        cases.append((Self.file(metadata: [("k", 7, [2])]), "a bool at byte"))
        cases.append((Self.file(metadata: [("k", 4, u32one), ("k", 4, u32one)]), "metadata key 'k' appears twice"))
        cases.append((Self.file(metadata: [("general.alignment", 4, [3, 0, 0, 0])]), "general.alignment must be a power of two"))
        cases.append((Self.file(tensors: 1, tail: string("t") + [0, 0, 0, 0]), "has 0 dimensions"))
        cases.append((Self.file(tensors: 1, tail: tensor(rank: 1, [0], type: 0, offset: 0)), "has a dimension of 0"))
        cases.append((Self.file(tensors: 1, tail: tensor(rank: 1, [4], type: 2, offset: 0)), "ggml type 2"))
        cases.append((Self.file(tensors: 1, tail: tensor(rank: 1, [48], type: 8, offset: 0)), "not whole blocks of 32"))
        cases.append((Self.file(tensors: 1, tail: tensor(rank: 2, [(1 << 31) - 1, (1 << 31) - 1], type: 0, offset: 0)), "its size overflows"))
        cases.append((Self.file(tensors: 1, tail: tensor(rank: 1, [4], type: 0, offset: 8)), "is not aligned"))
        cases.append((Self.file(tensors: 1, tail: noData), "runs past the end of the data"))
        cases.append((Self.file(), "no general.architecture"))
        cases.append((Self.file(metadata: [("general.architecture", 8, string("falcon"))]), "architecture 'falcon' is not supported"))
        for (path, problem) in cases {
            let message = Self.failure(path)
            #expect(message.contains(problem), "\(message)")
            #expect(message.contains(".gguf: "), "the message names the file: \(message)")
        }
        let notGGUF = Self.temporary("not.gguf")
        FileManager.default.createFile(atPath: notGGUF, contents: Data(repeating: 7, count: 100))
        #expect(Self.failure(notGGUF).contains("not a GGUF file"))
    }

    /// Every truncation, and corruptions of every byte of the header and tensor infos, of a
    /// real exported file: an error or an import, never a crash.
    @Test func truncatedAndCorruptedFilesNeverCrash() throws {
        let gguf = Self.temporary("sweep.gguf")
        _ = try GGUFExporter.export(try Self.source("gpt2"), output: gguf, precision: .q8_0)
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: gguf)))
        let path = Self.temporary("mutated.gguf")
        for length in stride(from: 0, to: good.count, by: 997) {
            FileManager.default.createFile(atPath: path, contents: Data(good.prefix(length)))
            #expect(Self.failure(path) != "imported", "a file cut to \(length) bytes was imported")
        }
        // The tensor infos sit after the tokenizer's metadata: sweep the start and the end
        // of the header, where the counts, lengths, types, dimensions and offsets are.
        let infosEnd = try GGUFFile(path: gguf).tensors.values.map(\.byteRange.lowerBound).min()!
        let offsets = Array(0..<min(400, infosEnd)) + Array(max(0, infosEnd - 1200)..<infosEnd)
        for offset in offsets {
            for value: UInt8 in [0x00, 0x1F, 0xFF] where good[offset] != value {
                var bytes = good
                bytes[offset] = value
                FileManager.default.createFile(atPath: path, contents: Data(bytes))
                _ = Self.failure(path)
            }
        }
    }
}
