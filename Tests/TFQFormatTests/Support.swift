import Foundation
@testable import TFQFormat

/// Files and fixtures shared by the format tests.
enum Support {
    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-format-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static let metadata = Array(#"{"kind":"model","extra":{"purpose":"test"}}"#.utf8)

    /// Deterministic floats in [-1, 1).
    static func floats(_ count: Int, seed: UInt64) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return Float(state >> 40) / Float(1 << 23) - 1
        }
    }

    /// Writes a small file with one tensor of every dtype, encoding and layout.
    @discardableResult
    static func writeSampleFile(at path: String, compression: TensorCompression = .zstd(level: 3)) throws -> [String: [Float]] {
        let writer = try TFQWriter(path: path)
        var expected: [String: [Float]] = [:]
        let matrix = floats(48 * 64, seed: 1)
        _ = try matrix.withUnsafeBufferPointer { try writer.add(name: "f32.matrix", shape: [48, 64], floats: $0, compression: compression) }
        expected["f32.matrix"] = matrix
        // Smooth, so zstd pays on it and the test sees a compressed tensor.
        let smooth = (0..<4096).map { Float(Int($0 / 64)) * 0.5 }
        _ = try smooth.withUnsafeBufferPointer { try writer.add(name: "f32.smooth", shape: [64, 64], floats: $0, compression: compression) }
        expected["f32.smooth"] = smooth
        let halves = floats(40, seed: 2).map { Float16($0) }
        _ = try halves.withUnsafeBytes { try writer.add(name: "f16.vector", dtype: .f16, shape: [40], bytes: $0, compression: compression) }
        expected["f16.vector"] = halves.map(Float.init)
        for (layout, rows) in [(Q8Layout.rowMajor, 5), (.interleaved16x4, 21)] {
            let weights = floats(rows * 32, seed: 3)
            let bytes = try weights.withUnsafeBufferPointer { try Q8Codec.encode($0, rows: rows, cols: 32, groupSize: 8, layout: layout) }
            let info = try bytes.withUnsafeBytes {
                try writer.add(name: "q8.\(layout)", dtype: .q8, shape: [rows, 32], layout: layout, groupSize: 8, bytes: $0, compression: compression)
            }
            expected["q8.\(layout)"] = bytes.withUnsafeBytes { Q8Codec.decode($0, info: info) }
        }
        try writer.finish(metadata: metadata)
        return expected
    }

    static func readFloats(_ file: TFQFile, _ name: String) throws -> [Float] {
        let info = try require(file.info(name))
        let bytes = try file.bytes(name)
        switch info.dtype {
        case .f32: return Array(bytes.bindMemory(to: Float.self))
        case .f16: return bytes.bindMemory(to: Float16.self).map(Float.init)
        case .q8, .q8f16: return Q8Codec.decode(bytes, info: info)
        }
    }
}

private func require<T>(_ value: T?) throws -> T {
    guard let value else { throw CocoaError(.fileReadUnknown) }
    return value
}
