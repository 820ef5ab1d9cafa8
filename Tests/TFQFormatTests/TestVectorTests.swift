import Foundation
import Testing
import TFQTestSupport
@testable import TFQFormat

/// formats/testdata: small files made by our writer, with the values they must decode to.
/// Our reader and the independent Python reader (tools/tfq_read.py) must both agree.
///
/// Set TFQ_REGENERATE_TESTDATA=1 to rewrite them after a deliberate format change.
@Suite struct TestVectorTests {
    struct Tensor: Codable, Equatable {
        var name: String
        var dtype: String
        var shape: [Int]
        var encoding: String
        var layout: String
        var group_size: Int
        var values: [Float]
    }

    struct Vector: Codable, Equatable {
        var file: String
        var metadata: JSONValue
        var tensors: [Tensor]
    }

    static let directory = Support.repositoryRoot.appendingPathComponent("formats/testdata")

    static func smooth(_ count: Int, step: Int) -> [Float] { (0..<count).map { Float($0 / step) * 0.25 - 2 } }

    /// Writes every test vector into `directory` and returns what each must decode to.
    static func generate(into directory: URL) throws -> [Vector] {
        var vectors: [Vector] = []
        func file(_ name: String, metadata: String, _ body: (TFQWriter) throws -> [Tensor]) throws {
            let writer = try TFQWriter(path: directory.appendingPathComponent(name).path)
            let tensors = try body(writer)
            try writer.finish(metadata: Array(metadata.utf8))
            vectors.append(Vector(file: name, metadata: try JSONDecoder().decode(JSONValue.self, from: Data(metadata.utf8)),
                                  tensors: tensors))
        }
        // Each vector's encodings are fixed, not chosen by compressed size: they must not
        // depend on the libzstd that writes them.
        func compression(_ zstd: Bool, planes: Bool) -> TensorCompression { zstd ? .zstdExactly(planes: planes, level: 19) : .none }
        func add(_ writer: TFQWriter, _ name: String, _ shape: [Int], f32 values: [Float], zstd: Bool = false) throws -> Tensor {
            let info = try values.withUnsafeBufferPointer {
                try writer.add(name: name, shape: shape, floats: $0, compression: compression(zstd, planes: true))
            }
            return Tensor(name: name, dtype: "f32", shape: shape, encoding: info.encoding.description, layout: "row-major",
                          group_size: 0, values: values)
        }
        func add(_ writer: TFQWriter, _ name: String, _ shape: [Int], f16 values: [Float], zstd: Bool = false) throws -> Tensor {
            let halves = values.map { Float16($0) }
            let info = try halves.withUnsafeBytes {
                try writer.add(name: name, dtype: .f16, shape: shape, bytes: $0, compression: compression(zstd, planes: true))
            }
            return Tensor(name: name, dtype: "f16", shape: shape, encoding: info.encoding.description, layout: "row-major",
                          group_size: 0, values: halves.map(Float.init))
        }
        func add(_ writer: TFQWriter, _ name: String, rows: Int, cols: Int, group: Int, layout: Q8Layout,
                 weights: [Float], zstd: Bool = false, dtype: DType = .q8) throws -> Tensor {
            let bytes = try weights.withUnsafeBufferPointer {
                try Q8Codec.encode($0, rows: rows, cols: cols, groupSize: group, layout: layout, dtype: dtype)
            }
            let info = try bytes.withUnsafeBytes {
                try writer.add(name: name, dtype: dtype, shape: [rows, cols], layout: layout, groupSize: group, bytes: $0,
                               compression: compression(zstd, planes: false))
            }
            return Tensor(name: name, dtype: dtype.description, shape: [rows, cols], encoding: info.encoding.description,
                          layout: layout.description, group_size: group,
                          values: bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) })
        }

        try file("f32_raw.tfq", metadata: #"{"kind":"model","extra":{"vector":"f32 raw, every rank"}}"#) { w in
            [try add(w, "scalar", [], f32: [3.5]),
             try add(w, "vector", [5], f32: [0, -1.5, 2.25, 0.001, -0.0]),
             try add(w, "matrix", [3, 4], f32: (0..<12).map { Float($0) * 0.25 - 1 }),
             try add(w, "cube", [2, 3, 2], f32: (0..<12).map { Float($0 * $0) / 7 })]
        }
        try file("f16_planes.tfq", metadata: #"{"kind":"model","extra":{"vector":"f16 raw; f32 and f16 as zstd byte planes"}}"#) { w in
            [try add(w, "f16.raw", [2, 3], f16: [0.5, -2, 65504, 6.1035156e-05, 1 / 3, -0.0]),
             try add(w, "f32.planes", [64, 64], f32: smooth(4096, step: 64), zstd: true),
             try add(w, "f16.planes", [32, 32], f16: smooth(1024, step: 32), zstd: true)]
        }
        let weights = Support.floats(18 * 64, seed: 42)
        try file("q8.tfq", metadata: #"{"kind":"model","quantization":{"scheme":"q8_symmetric_grouped"}}"#) { w in
            [try add(w, "q8.rowmajor.g4", rows: 3, cols: 8, group: 4, layout: .rowMajor, weights: Array(weights[..<24])),
             try add(w, "q8.interleaved.g8", rows: 18, cols: 8, group: 8, layout: .interleaved16x4, weights: Array(weights[..<144])),
             try add(w, "q8.interleaved.g32", rows: 18, cols: 64, group: 32, layout: .interleaved16x4, weights: weights),
             try add(w, "q8.rowmajor.zstd", rows: 16, cols: 64, group: 64, layout: .rowMajor,
                     weights: smooth(1024, step: 16), zstd: true)]
        }
        // f16 scales: the same shapes, plus groups whose binary16 scale is subnormal (weights
        // near 1e-6) or rounds to zero (near 1e-10), and an all-zero group.
        var edges = Array(weights[..<64])
        for i in 0..<8 { edges[i] = Float(i + 1) * 1e-6 * (i % 2 == 0 ? 1 : -1) }
        for i in 8..<16 { edges[i] = Float(i) * 1e-10 }
        for i in 16..<24 { edges[i] = 0 }
        try file("q8f16.tfq", metadata: #"{"kind":"model","quantization":{"scheme":"q8_symmetric_grouped"}}"#) { w in
            [try add(w, "q8f16.rowmajor.g4", rows: 3, cols: 8, group: 4, layout: .rowMajor, weights: Array(weights[..<24]), dtype: .q8f16),
             try add(w, "q8f16.interleaved.g8", rows: 18, cols: 8, group: 8, layout: .interleaved16x4, weights: Array(weights[..<144]),
                     dtype: .q8f16),
             try add(w, "q8f16.interleaved.g32", rows: 18, cols: 64, group: 32, layout: .interleaved16x4, weights: weights, dtype: .q8f16),
             try add(w, "q8f16.edges.g8", rows: 1, cols: 64, group: 8, layout: .rowMajor, weights: edges, dtype: .q8f16),
             try add(w, "q8f16.rowmajor.zstd", rows: 16, cols: 64, group: 64, layout: .rowMajor,
                     weights: smooth(1024, step: 16), zstd: true, dtype: .q8f16)]
        }
        return vectors
    }

    /// The writer still makes the committed files: raw files byte for byte; files with zstd
    /// tensors in everything but the compressed bytes, which differ between libzstd versions
    /// (1.5.4 and 1.5.7 do), while the decoded bytes must not.
    @Test func committedVectorsMatchTheWriter() throws {
        if ProcessInfo.processInfo.environment["TFQ_REGENERATE_TESTDATA"] == "1" {
            let vectors = try Self.generate(into: Self.directory)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try encoder.encode(vectors).write(to: Self.directory.appendingPathComponent("expected.json"))
        }
        let fresh = try Support.temporaryDirectory()
        let vectors = try Self.generate(into: fresh)
        for vector in vectors {
            let committedPath = Self.directory.appendingPathComponent(vector.file).path
            let freshPath = fresh.appendingPathComponent(vector.file).path
            if vector.tensors.allSatisfy({ $0.encoding == "raw" }) {
                #expect(try Data(contentsOf: URL(fileURLWithPath: freshPath)) == Data(contentsOf: URL(fileURLWithPath: committedPath)), "\(vector.file)")
                continue
            }
            let committed = try TFQFile(path: committedPath), written = try TFQFile(path: freshPath)
            #expect(written.metadataJSON == committed.metadataJSON, "\(vector.file)")
            #expect(written.tensors.count == committed.tensors.count, "\(vector.file)")
            for (a, b) in zip(written.tensors, committed.tensors) {
                #expect(a.name == b.name && a.dtype == b.dtype && a.shape == b.shape && a.encoding == b.encoding
                        && a.layout == b.layout && a.groupSize == b.groupSize && a.decodedLength == b.decodedLength, "\(a.name)")
                let decoded = Array(try written.bytes(a.name)), expected = Array(try committed.bytes(b.name))
                #expect(decoded == expected, "\(a.name)")
            }
        }
        let expected = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: Self.directory.appendingPathComponent("expected.json")))
        #expect(expected.count == vectors.count)
        for (e, v) in zip(expected, vectors) {
            #expect(e.file == v.file && e.metadata == v.metadata && e.tensors.count == v.tensors.count)
            for (et, vt) in zip(e.tensors, v.tensors) { #expect(et == vt, "\(v.file): \(vt.name)") }
        }
    }

    @Test func swiftReaderDecodesTheExpectedValues() throws {
        let expected = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: Self.directory.appendingPathComponent("expected.json")))
        #expect(Set(expected.flatMap { $0.tensors.map(\.encoding) }) == ["raw", "zstd", "zstd-planes"])
        for vector in expected {
            let file = try TFQFile(path: Self.directory.appendingPathComponent(vector.file).path, options: .init(verifyChecksums: true))
            #expect(JSONValue.object(file.metadata) == vector.metadata)
            #expect(file.tensors.map(\.name) == vector.tensors.map(\.name))
            for tensor in vector.tensors {
                let info = try #require(file.info(tensor.name))
                #expect(info.shape == tensor.shape && info.dtype.description == tensor.dtype && info.encoding.description == tensor.encoding)
                #expect(try Support.readFloats(file, tensor.name) == tensor.values, "\(vector.file) \(tensor.name)")
            }
        }
    }

    @Test(.enabled(if: Python.hasNumpy, "python3 with numpy is needed to run tools/tfq_read.py"))
    func pythonReaderDecodesTheExpectedValues() throws {
        let expected = try JSONDecoder().decode([Vector].self, from: Data(contentsOf: Self.directory.appendingPathComponent("expected.json")))
        for vector in expected {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", Support.repositoryRoot.appendingPathComponent("tools/tfq_read.py").path, "--json",
                                 Self.directory.appendingPathComponent(vector.file).path]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let output = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "tfq_read.py failed on \(vector.file)")
            struct Report: Decodable { var metadata: JSONValue; var tensors: [Tensor] }
            let report = try JSONDecoder().decode(Report.self, from: output)
            #expect(report.metadata == vector.metadata)
            #expect(report.tensors == vector.tensors, "\(vector.file)")
        }
    }

    /// formats/testdata/zstd (tools/zstd_vectors.py): a tensor's zstd frames as §6.3 allows
    /// or refuses them. The allowed ones decode to the values; the others fail to open with
    /// a decode error containing the listed words. tools/test_tfq_read.py checks the same.
    @Test func zstdVectorsAreReadAsTheSpecSays() throws {
        struct Case: Decodable { var file: String; var valid: Bool; var error: String? }
        struct Listing: Decodable { var values: [Float]; var cases: [Case] }
        let directory = Self.directory.appendingPathComponent("zstd")
        let listing = try JSONDecoder().decode(Listing.self, from: Data(contentsOf: directory.appendingPathComponent("cases.json")))
        #expect(listing.cases.count == 11 && listing.cases.contains { $0.valid } && listing.cases.contains { !$0.valid })
        for vector in listing.cases {
            let path = directory.appendingPathComponent(vector.file).path
            do {
                let file = try TFQFile(path: path, options: .init(verifyChecksums: true))
                try file.verify()
                #expect(vector.valid, "\(vector.file) was accepted")
                #expect(try Support.readFloats(file, "z") == listing.values, "\(vector.file)")
            } catch let error as TFQFormatError {
                #expect(!vector.valid, "\(vector.file): \(error)")
                if case .decode(let why) = error.problem, let words = vector.error {
                    #expect(why.contains(words) && error.tensor == "z", "\(vector.file): \(why)")
                } else {
                    Issue.record("\(vector.file): \(error)")
                }
            }
        }
    }
}
