import Foundation
import Testing
@testable import TFQImport

/// The safetensors reader: values written by the `safetensors` library (tools/hf_fixtures.py)
/// read bit for bit, and broken or lying files refused with a message naming the problem.
@Suite struct SafetensorsTests {
    static let directory: URL = {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-safetensors-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }()

    /// A file of `header` (JSON text, with its length in front) and `data`.
    static func file(_ header: String, data: [UInt8] = [], headerLength: UInt64? = nil) -> String {
        var bytes: [UInt8] = []
        withUnsafeBytes(of: (headerLength ?? UInt64(header.utf8.count)).littleEndian) { bytes += $0 }
        bytes += Array(header.utf8) + data
        let path = directory.appendingPathComponent(UUID().uuidString + ".safetensors").path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        return path
    }

    static func failure(_ path: String) -> String {
        do {
            let file = try SafetensorsFile(path: path)
            for name in file.tensors.keys { _ = try file.floats(name) }
            return "read"
        } catch {
            return "\(error)"
        }
    }

    @Test func valuesWrittenBySafetensorsReadBitForBit() throws {
        struct Expected: Decodable { var dtype: String; var shape: [Int]; var bits: [UInt32] }
        let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/hf")
        let expected = try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: directory.appendingPathComponent("dtypes.json")))
        let file = try SafetensorsFile(path: directory.appendingPathComponent("dtypes.safetensors").path)
        #expect(file.metadata == ["format": "pt"])
        #expect(Set(file.tensors.keys) == Set(expected.keys))
        for (name, tensor) in expected {
            #expect(file.tensors[name]?.dtype.rawValue == tensor.dtype)
            #expect(file.tensors[name]?.shape == tensor.shape)
            #expect(try file.floats(name).map(\.bitPattern) == tensor.bits, "\(name)")
        }
    }

    @Test func aTensorAtAnyOffsetAndOfZeroElementsReads() throws {
        // Offsets need not be aligned: one byte of padding puts the f32 values at offset 9.
        let values: [Float] = [1.5, -2, 0x1p-149]
        var data: [UInt8] = [0xAA]
        for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data += $0 } }
        let path = Self.file(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[1,13]},"empty":{"dtype":"F16","shape":[0,4],"data_offsets":[13,13]}}"#, data: data)
        let file = try SafetensorsFile(path: path)
        #expect(try file.floats("a") == values)
        #expect(try file.floats("empty") == [])
    }

    @Test(arguments: [
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 4, "data_offsets [0, 8] lie outside the 4 data bytes"),
        (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, "8 bytes for F32 of shape [3]"),
        (#"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}"#, 0, "a shape entry that is not a size"),
        (#"{"a":{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,0]}}"#, 0, "overflows"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, 4, "lie outside"),
        (#"{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}"#, 1, "unknown dtype 'Q4'"),
        (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "overlap"),
        (#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, 8, "weights must be F32, F16, BF16 or F64"),
        (#"{"a":{"shape":[1],"data_offsets":[0,4]}}"#, 4, "no dtype"),
        (#"{"a":{"dtype":"F32","shape":[1]}}"#, 4, "no data_offsets"),
        (#"{"__metadata__":{"n":1}}"#, 0, "__metadata__ 'n' is not a string"),
        (#"[1,2]"#, 0, "not a JSON object"),
        (#"{"a":"#, 0, "not valid JSON"),
        (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, 4, "not valid JSON"),
    ])
    func lyingHeadersAreRefused(header: String, dataBytes: Int, problem: String) {
        let message = Self.failure(Self.file(header, data: [UInt8](repeating: 0, count: dataBytes)))
        #expect(message.contains(problem), "\(message)")
        #expect(message.contains(".safetensors: "), "the message names the file: \(message)")
    }

    @Test func headerLengthsBeyondTheFileOrTheLimitAreRefused() {
        #expect(Self.failure(Self.file("{}", headerLength: 3)).contains("runs past the end of the file"))
        #expect(Self.failure(Self.file("{}", headerLength: UInt64.max)).contains("over the format's limit"))
        #expect(Self.failure(Self.file("{}", headerLength: 100_000_001)).contains("over the format's limit"))
        let short = Self.directory.appendingPathComponent("short.safetensors").path
        FileManager.default.createFile(atPath: short, contents: Data([1, 0, 0]))
        #expect(Self.failure(short).contains("truncated: 3 bytes"))
        let empty = Self.directory.appendingPathComponent("empty.safetensors").path
        FileManager.default.createFile(atPath: empty, contents: Data())
        #expect(Self.failure(empty).contains("the file is empty"))
        #expect(Self.failure(Self.directory.appendingPathComponent("absent.safetensors").path).contains("absent.safetensors"))
    }

    /// Every truncation and single-byte corruptions at every offset of a good file: an error
    /// or a successful read, never a crash or a read outside the file.
    @Test func truncatedAndCorruptedFilesNeverCrash() throws {
        let header = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"BF16","shape":[2,3],"data_offsets":[0,12]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}}"#
        let good = try Data(contentsOf: URL(fileURLWithPath: Self.file(header, data: [UInt8](repeating: 0x3F, count: 20))))
        #expect(Self.failure(Self.file(header, data: [UInt8](repeating: 0x3F, count: 20))) == "read")
        let path = Self.directory.appendingPathComponent("mutated.safetensors").path
        for length in stride(from: 0, to: good.count, by: 3) {
            FileManager.default.createFile(atPath: path, contents: good.prefix(length))
            #expect(Self.failure(path) != "read", "a file cut to \(length) bytes was read")
        }
        var read = 0
        for offset in 0..<good.count {
            for value: UInt8 in [0x00, 0x22, 0x2C, 0x39, 0x5D, 0x7D, 0xFF] where good[offset] != value {
                var bytes = [UInt8](good)
                bytes[offset] = value
                FileManager.default.createFile(atPath: path, contents: Data(bytes))
                if Self.failure(path) == "read" { read += 1 }
            }
        }
        // Changes to the data bytes (or to a digit where another size is valid) still read.
        #expect(read > 0 && read < 7 * good.count / 2, "\(read) corrupted files read")
    }
}
