import Testing
@testable import TFQFormat

@Suite struct ZstdTests {
    /// Deterministic, partly compressible bytes: runs of a repeated byte mixed with noise.
    static func sample(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed | 1
        var out = [UInt8](); out.reserveCapacity(count)
        while out.count < count {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let byte = UInt8(truncatingIfNeeded: state >> 56)
            let run = Int(state >> 40 & 7)
            for _ in 0..<min(run == 0 ? 1 : run, count - out.count) { out.append(byte) }
        }
        return out
    }

    @Test(arguments: [0, 1, 17, 4096, 65_537, 3 << 20])
    func roundTrip(size: Int) throws {
        let data = Self.sample(count: size, seed: UInt64(size))
        let frame = try Zstd.compress(data)
        #expect(try Zstd.decompress(frame, decodedSize: size) == data)
        if size >= 4096 { #expect(frame.count < data.count) }
    }

    @Test func everyLevelRoundTrips() throws {
        let data = Self.sample(count: 10_000, seed: 7)
        for level in [Zstd.minLevel, Zstd.defaultLevel, 19] {
            #expect(try Zstd.decompress(Zstd.compress(data, level: level), decodedSize: data.count) == data)
        }
    }

    @Test func corruptedFrameThrowsTypedError() throws {
        let data = Self.sample(count: 100_000, seed: 3)
        var frame = try Zstd.compress(data)
        frame[frame.count / 2] ^= 0xFF
        #expect(throws: ZstdError.self) { try Zstd.decompress(frame, decodedSize: data.count) }
    }

    @Test func garbageIsNotAFrame() {
        #expect(throws: ZstdError.corruptFrame("the frame at byte 0 is not a zstd frame")) {
            try Zstd.decompress([1, 2, 3, 4, 5, 6, 7, 8], decodedSize: 8)
        }
    }

    @Test func frameLyingAboutItsSizeIsRejectedWithoutAllocating() throws {
        let data = Self.sample(count: 5000, seed: 9)
        let frame = try Zstd.compress(data)
        #expect(throws: ZstdError.sizeMismatch(expected: 4999, actual: 5000)) {
            try Zstd.decompress(frame, decodedSize: 4999)
        }
        #expect(throws: ZstdError.sizeMismatch(expected: 5001, actual: 5000)) {
            try Zstd.decompress(frame, decodedSize: 5001)
        }
    }

    @Test func truncatedFrameThrows() throws {
        let data = Self.sample(count: 5000, seed: 11)
        let frame = try Zstd.compress(data)
        for cut in [1, 5, frame.count / 2, frame.count - 1] {
            #expect(throws: ZstdError.self) { try Zstd.decompress(Array(frame.prefix(cut)), decodedSize: data.count) }
        }
    }
}
