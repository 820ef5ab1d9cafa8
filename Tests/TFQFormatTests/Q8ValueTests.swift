import Foundation
import Testing
@testable import TFQFormat

/// `TFQFile.verify` on q8 tensors whose checksums match but whose values formats/tfq.md §6.2
/// forbids: each file is written by the writer, so only the value check can catch it.
@Suite struct Q8ValueTests {
    /// A one-tensor file of 5 × 32 q8 values (groups of 8) in `layout`, with `edit` applied
    /// to the decoded bytes before they are written (the checksum covers the edit).
    static func file(_ layout: Q8Layout, rows: Int = 5, edit: (inout [UInt8]) -> Void = { _ in }) throws -> TFQFile {
        var bytes = try Support.floats(rows * 32, seed: 9).withUnsafeBufferPointer {
            try Q8Codec.encode($0, rows: rows, cols: 32, groupSize: 8, layout: layout)
        }
        edit(&bytes)
        let path = try Support.temporaryDirectory().appendingPathComponent("q.tfq").path
        let writer = try TFQWriter(path: path)
        _ = try bytes.withUnsafeBytes {
            try writer.add(name: "w", dtype: .q8, shape: [rows, 32], layout: layout, groupSize: 8, bytes: $0, compression: .none)
        }
        try writer.finish(metadata: Support.metadata)
        return try TFQFile(path: path)
    }

    static func problem(_ file: TFQFile) -> String? {
        do { try file.verify(); return nil } catch { return "\(error)" }
    }

    @Test func validTensorsPass() throws {
        #expect(Self.problem(try Self.file(.rowMajor)) == nil)
        #expect(Self.problem(try Self.file(.interleaved16x4)) == nil)
    }

    /// Layout 0: 5 × 32 = 160 value bytes, then 32 zero bytes up to S = 192, where the
    /// scales start (§6.2: "Bytes between rows·cols and S are zero").
    @Test(arguments: [160, 175, 191]) func rowMajorGapMustBeZero(at offset: Int) throws {
        let file = try Self.file(.rowMajor) { $0[offset] = 1 }
        #expect(Self.problem(file)?.hasSuffix("tensor 'w': byte \(offset) between the values and the scales is not zero") == true)
        // -128 in the gap is the gap's problem, not an int8 value's.
        let minus = try Self.file(.rowMajor) { $0[offset] = 0x80 }
        #expect(Self.problem(minus)?.hasSuffix("byte \(offset) between the values and the scales is not zero") == true)
    }

    /// The 64-bytes-a-step search finds the byte wherever it is: in a block, in the tail.
    @Test func containsFindsEveryPosition() {
        for count in [0, 1, 63, 64, 65, 200] {
            var bytes = [UInt8](repeating: 0x7F, count: count)
            #expect(!bytes.withUnsafeBytes { TFQFile.contains(0x80, in: $0) })
            for position in 0..<count {
                bytes[position] = 0x80
                #expect(bytes.withUnsafeBytes { TFQFile.contains(0x80, in: $0) }, "\(position) of \(count)")
                bytes[position] = 0x7F
            }
        }
    }

    @Test func forbiddenValuesAndScales() throws {
        #expect(Self.problem(try Self.file(.rowMajor) { $0[159] = 0x80 })?.hasSuffix("holds the invalid int8 value -128") == true)
        #expect(Self.problem(try Self.file(.interleaved16x4) { $0[3] = 0x80 })?.hasSuffix("holds the invalid int8 value -128") == true)
        let negative = try Self.file(.rowMajor) { bytes in
            withUnsafeBytes(of: Float(-1).bitPattern.littleEndian) { bytes.replaceSubrange(192..<196, with: $0) }
        }
        #expect(Self.problem(negative)?.hasSuffix("has an invalid scale -1.0") == true)
        // Layout 1 pads 5 rows to 16: row 7's first value is byte 7·4 of the first 16×4 tile.
        #expect(Self.problem(try Self.file(.interleaved16x4) { $0[28] = 1 })?.hasSuffix("padding row 7 holds a non-zero value") == true)
    }
}
