import Foundation
import Testing
@testable import TFQFormat

@Suite struct RoundTripTests {
    @Test(arguments: [TensorCompression.none, .zstd(level: 3), .zstd(level: 19)])
    func everyDtypeLayoutAndEncodingReadsBack(compression: TensorCompression) throws {
        let directory = try Support.temporaryDirectory()
        let path = directory.appendingPathComponent("sample.tfq").path
        let expected = try Support.writeSampleFile(at: path, compression: compression)
        let file = try TFQFile(path: path, options: .init(verifyChecksums: true))
        #expect(file.tensors.map(\.name).sorted() == expected.keys.sorted())
        for (name, values) in expected {
            #expect(try Support.readFloats(file, name) == values, "tensor \(name)")
        }
        #expect(file.metadata["extra"]?["purpose"] == .string("test"))
        let encodings = Set(file.tensors.map(\.encoding))
        if compression == .none {
            #expect(encodings == [.raw])
            #expect(file.isZeroCopy)
        } else {
            // A tensor is stored compressed only where that makes it smaller.
            for info in file.tensors where info.encoding != .raw { #expect(info.storedLength < info.decodedLength) }
            #expect(file.info("f32.smooth")?.encoding == .zstdPlanes)
            #expect(!file.isZeroCopy)
        }
    }

    @Test func rawTensorsAreViewsIntoTheMappingAndAligned() throws {
        let path = try Support.temporaryDirectory().appendingPathComponent("m.tfq").path
        try Support.writeSampleFile(at: path, compression: .none)
        let file = try TFQFile(path: path)
        for info in file.tensors {
            let bytes = file.bytes(info)
            #expect(Int(bitPattern: bytes.baseAddress) % 64 == 0)
            #expect(bytes.baseAddress == file.storedBytes(info).baseAddress)
        }
    }

    @Test func writerRejectsBadTensorsAndLeavesNothingBehind() throws {
        let directory = try Support.temporaryDirectory()
        let path = directory.appendingPathComponent("bad.tfq").path
        let writer = try TFQWriter(path: path)
        let four: [Float] = [1, 2, 3, 4]
        #expect(throws: TFQFormatError.self) {
            try four.withUnsafeBufferPointer { try writer.add(name: "x", shape: [5], floats: $0) }
        }
        try four.withUnsafeBufferPointer { _ = try writer.add(name: "x", shape: [2, 2], floats: $0) }
        #expect(throws: TFQFormatError.self) {
            try four.withUnsafeBufferPointer { try writer.add(name: "x", shape: [4], floats: $0) }
        }
        #expect(throws: TFQFormatError.self) {
            try four.withUnsafeBytes { try writer.add(name: "q", dtype: .q8, shape: [1, 4], groupSize: 3, bytes: $0) }
        }
        // An exact encoding is the one asked for (the test vectors rely on it: f16_planes.tfq),
        // and byte planes are refused for q8, with a message that says so.
        let q8 = try four.withUnsafeBufferPointer { try Q8Codec.encode($0, rows: 1, cols: 4, groupSize: 4, layout: .rowMajor) }
        let kept = try q8.withUnsafeBytes {
            try writer.add(name: "q.zstd", dtype: .q8, shape: [1, 4], groupSize: 4, bytes: $0, compression: .zstdExactly(planes: false, level: 3))
        }
        #expect(kept.encoding == .zstd)
        var refusal = ""
        do {
            _ = try q8.withUnsafeBytes {
                try writer.add(name: "q.planes", dtype: .q8, shape: [1, 4], groupSize: 4, bytes: $0, compression: .zstdExactly(planes: true, level: 3))
            }
        } catch { refusal = "\(error)" }
        #expect(refusal.contains("byte planes are for f32 and f16, not q8"), "\(refusal)")
        writer.discard()
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).isEmpty)
    }

    @Test func anUnfinishedWriteLeavesTheOldFileInPlace() throws {
        let directory = try Support.temporaryDirectory()
        let path = directory.appendingPathComponent("model.tfq").path
        try Support.writeSampleFile(at: path)
        let before = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            let writer = try TFQWriter(path: path)
            let values: [Float] = [1, 2]
            try values.withUnsafeBufferPointer { _ = try writer.add(name: "partial", shape: [2], floats: $0) }
            // Dropped without finish(), as if the process had died here.
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["model.tfq"])
    }

    @Test func crc32MatchesTheStandardCheckValue() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        #expect(CRC32.checksum([]) == 0)
        // Long input crosses the 8-byte fast path and the byte tail.
        var crc = CRC32()
        let bytes = (0..<1003).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        crc.update(Array(bytes[..<500]))
        crc.update(Array(bytes[500...]))
        #expect(crc.value == CRC32.checksum(bytes))
    }

    @Test(arguments: [1, 4, 8, 32, 64, 128])
    func quantizationErrorIsAtMostHalfAScale(groupSize: Int) throws {
        let rows = 7, cols = 128
        var weights = Support.floats(rows * cols, seed: UInt64(groupSize))
        weights[5] = 0; weights[cols + 3] = 40  // an outlier in one group
        for c in 0..<groupSize { weights[2 * cols + c] = 0 }  // an all-zero group
        for layout in Q8Layout.allCases where layout == .rowMajor || groupSize % 4 == 0 {
            let bytes = try weights.withUnsafeBufferPointer {
                try Q8Codec.encode($0, rows: rows, cols: cols, groupSize: groupSize, layout: layout)
            }
            let info = TensorInfo(name: "w", dtype: .q8, encoding: .raw, layout: layout, groupSize: groupSize,
                                  shape: [rows, cols], offset: 64, storedLength: bytes.count, decodedLength: bytes.count, crc32: 0)
            let restored = bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) }
            for r in 0..<rows {
                for g in 0..<(cols / groupSize) {
                    let group = (r * cols + g * groupSize)..<(r * cols + (g + 1) * groupSize)
                    let scale = group.map { abs(weights[$0]) }.max()! / 127
                    for i in group { #expect(abs(restored[i] - weights[i]) <= scale / 2 * 1.0001 + 1e-12) }
                }
            }
            #expect(restored[2 * cols] == 0)
        }
    }
}

/// The SIGBUS guard of `MappedFile`: pages past a truncated file's new end read as zeros and
/// mark the mapping damaged; pages before it keep the file's bytes.
@Suite struct MappedFileGuardTests {
    @Test func truncatedMappingReadsZerosAndIsMarkedDamaged() throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("guard-\(UUID().uuidString)").path
        defer { unlink(path) }
        let content = (0..<(3 * page)).map { UInt8(truncatingIfNeeded: $0 % 251 + 1) }
        FileManager.default.createFile(atPath: path, contents: Data(content))
        let file = try MappedFile(path: path)
        #expect(file.bytes[2 * page + 5] == content[2 * page + 5] && !file.isDamaged)
        #expect(truncate(path, off_t(page)) == 0)
        #expect(file.bytes[page - 1] == content[page - 1])
        #expect(!file.isDamaged)
        #expect(file.bytes[2 * page + 5] == 0)   // would be SIGBUS without the guard
        #expect(file.isDamaged)
        let copy = try MappedFile(path: path, copy: true)
        #expect(Array(copy.bytes) == Array(content[..<page]) && !copy.isDamaged)
    }

    /// Runs in a child process: while every slot is taken, a mapping another test truncates
    /// would have no guard and kill the test process with SIGBUS.
    @Test func everyGuardSlotCanBeTakenAndGivenBack() async throws {
        #if compiler(>=6.2)
        await #expect(processExitsWith: .success) {
            let path = FileManager.default.temporaryDirectory.appendingPathComponent("guard-\(UUID().uuidString)").path
            defer { unlink(path) }
            FileManager.default.createFile(atPath: path, contents: Data(repeating: 7, count: 100))
            // More mappings than slots: the ones without a slot still work, unguarded.
            var files = try (0..<300).map { _ in try MappedFile(path: path, minimumLength: 1) }
            precondition(files.allSatisfy { $0.bytes[99] == 7 && !$0.isDamaged })
            files.removeAll()
            let again = try MappedFile(path: path, minimumLength: 1)
            precondition(again.bytes[0] == 7)
        }
        #endif
    }
}
