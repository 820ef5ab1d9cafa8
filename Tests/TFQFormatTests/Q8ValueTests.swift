import Foundation
import Testing
@testable import TFQFormat

/// `TFQFile.verify` on q8 tensors whose checksums match but whose values formats/tfq.md §6.2
/// forbids: each file is written by the writer, so only the value check can catch it.
@Suite struct Q8ValueTests {
    /// A one-tensor file of 5 × 32 q8 values (groups of 8) in `layout`, with `edit` applied
    /// to the decoded bytes before they are written (the checksum covers the edit).
    static func file(_ layout: Q8Layout, rows: Int = 5, dtype: DType = .q8, edit: (inout [UInt8]) -> Void = { _ in }) throws -> TFQFile {
        var bytes = try Support.floats(rows * 32, seed: 9).withUnsafeBufferPointer {
            try Q8Codec.encode($0, rows: rows, cols: 32, groupSize: 8, layout: layout, dtype: dtype)
        }
        edit(&bytes)
        let path = try Support.temporaryDirectory().appendingPathComponent("q.tfq").path
        let writer = try TFQWriter(path: path)
        _ = try bytes.withUnsafeBytes {
            try writer.add(name: "w", dtype: dtype, shape: [rows, 32], layout: layout, groupSize: 8, bytes: $0, compression: .none)
        }
        try writer.finish(metadata: Support.metadata)
        return try TFQFile(path: path)
    }

    static func problem(_ file: TFQFile) -> String? {
        do { try file.verify(); return nil } catch { return "\(error)" }
    }

    @Test func validTensorsPass() throws {
        for dtype in [DType.q8, .q8f16] {
            #expect(Self.problem(try Self.file(.rowMajor, dtype: dtype)) == nil)
            #expect(Self.problem(try Self.file(.interleaved16x4, dtype: dtype)) == nil)
        }
    }

    /// f16 scales (§6.2, z = 2): the scales start at the same S, two bytes each; a NaN, an
    /// infinity or a negative half is refused, and so is a non-zero padding row's scale.
    @Test func halfScalesAreChecked() throws {
        for (bits, shown) in [(UInt16(0x7E00), "nan"), (0x7C00, "inf"), (0xBC00, "-1.0")] {
            let file = try Self.file(.rowMajor, dtype: .q8f16) { bytes in
                withUnsafeBytes(of: bits.littleEndian) { bytes.replaceSubrange(194..<196, with: $0) }
            }
            #expect(Self.problem(file)?.hasSuffix("has an invalid scale \(shown)") == true, "\(shown)")
        }
        // -0 is ≥ 0: allowed, as in q8.
        let negativeZero = try Self.file(.rowMajor, dtype: .q8f16) { bytes in
            withUnsafeBytes(of: UInt16(0x8000).littleEndian) { bytes.replaceSubrange(192..<194, with: $0) }
        }
        #expect(Self.problem(negativeZero) == nil)
        // Layout 1, 5 rows padded to 16: the scales start at 16·32 = 512; group 0's lanes
        // 5…15 are padding rows, lane 9's half at 512 + 2·9.
        let padding = try Self.file(.interleaved16x4, dtype: .q8f16) { $0[512 + 18] = 1 }
        #expect(Self.problem(padding)?.hasSuffix("padding row 9 has a non-zero scale") == true)
        #expect(Self.problem(try Self.file(.interleaved16x4, dtype: .q8f16) { $0[3] = 0x80 })?.hasSuffix("holds the invalid int8 value -128") == true)
    }

    /// q8f16's scales are max|w|/127 rounded to the nearest binary16 value, or up where the
    /// nearest (a coarse subnormal one) would clamp the group's largest weight, and the values
    /// are chosen with them: every weight is within half a step of its decoded value.
    @Test func halfScalesKeepEveryWeightWithinHalfAStep() throws {
        let rows = 4, cols = 64, group = 16
        var weights = Support.floats(rows * cols, seed: 3)
        for c in 16..<32 { weights[c] = Float(c - 15) * 1e-6 * (c % 2 == 0 ? 1 : -1) }   // a subnormal binary16 scale
        for c in 32..<48 { weights[c] = c == 32 ? 3e-9 : 0 }   // below the smallest binary16 step: all zero
        for c in 48..<64 { weights[c] = 0 }                    // a zero scale
        let bytes = try weights.withUnsafeBufferPointer { try Q8Codec.encode($0, rows: rows, cols: cols, groupSize: group, layout: .rowMajor, dtype: .q8f16) }
        let f32Bytes = try weights.withUnsafeBufferPointer { try Q8Codec.encode($0, rows: rows, cols: cols, groupSize: group, layout: .rowMajor) }
        #expect(bytes.count == 256 + 2 * rows * cols / group && f32Bytes.count == 256 + 4 * rows * cols / group)
        let info = TensorInfo(name: "w", dtype: .q8f16, encoding: .raw, layout: .rowMajor, groupSize: group, shape: [rows, cols],
                              offset: 0, storedLength: bytes.count, decodedLength: bytes.count, crc32: 0)
        let decoded = bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) }
        var subnormal = 0
        for r in 0..<rows {
            for g in 0..<(cols / group) {
                let slice = (r * cols + g * group)..<(r * cols + (g + 1) * group)
                let largest = weights[slice].map(abs).max()!, ideal = largest / 127
                let stored = bytes.withUnsafeBytes { Q8Codec.storedScale($0, at: 256 + 2 * (r * cols / group + g), dtype: .q8f16) }
                let nearest = Float(Float16(ideal))
                let clamps = nearest == 0 ? largest > 0 : (largest / nearest).rounded() > 127
                #expect(stored == (clamps ? Float(Float16(nearest).nextUp) : nearest), "\(r), \(g)")
                if clamps { #expect(nearest < 0x1p-14, "only a subnormal scale is rounded up") }
                if stored > 0 && stored < 0x1p-14 { subnormal += 1 }
                for i in slice {
                    let q = stored == 0 ? 0 : (weights[i] / stored).rounded()
                    #expect(abs(q) <= 127 && decoded[i] == q * stored, "\(i)")
                    #expect(abs(decoded[i] - weights[i]) <= stored / 2, "\(i)")
                }
            }
        }
        #expect(subnormal == 2)   // the 1e-6 group and the 3e-9 one
        #expect(decoded[32..<64].allSatisfy { $0 == 0 })
        // The subnormal group keeps its largest weight to within 1% (rounded to nearest, its
        // scale would have clamped it by 5%).
        #expect(abs(decoded[31] - weights[31]) <= abs(weights[31]) * 0.01)
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
