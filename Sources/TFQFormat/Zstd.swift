import CZstd

/// A failure inside libzstd, with zstd's own description of it.
public enum ZstdError: Error, Equatable, CustomStringConvertible {
    case compressionFailed(String)
    /// The frame is damaged or not a zstd frame at all.
    case corruptFrame(String)
    /// The frame decodes to a different number of bytes than the caller was promised.
    case sizeMismatch(expected: Int, actual: Int?)

    /// One line saying what failed, with zstd's own error name where it gave one.
    public var description: String {
        switch self {
        case .compressionFailed(let why): return "zstd compression failed: \(why)"
        case .corruptFrame(let why): return "corrupt zstd frame: \(why)"
        case .sizeMismatch(let expected, let actual):
            let got = actual.map(String.init) ?? "more"
            return "zstd frame decodes to \(got) bytes, expected \(expected)"
        }
    }
}

/// One-shot zstd compression and bounded decompression over raw buffers.
///
/// Decompression always takes the exact decoded size the caller expects and never
/// allocates more than that, so a frame that lies about its size is an error, not a
/// large allocation.
public enum Zstd {
    /// The default level: fast to write, and int8 weights gain little from higher levels.
    public static let defaultLevel: Int32 = 3
    /// The highest compression level the linked libzstd supports.
    public static var maxLevel: Int32 { ZSTD_maxCLevel() }
    /// The lowest level offered: 1 (zstd's negative "fast" levels are below it).
    public static var minLevel: Int32 { 1 }

    /// Compresses `source` into a new frame that carries its content size and a checksum.
    public static func compress(_ source: UnsafeRawBufferPointer, level: Int32 = defaultLevel) throws -> [UInt8] {
        guard let context = ZSTD_createCCtx() else { throw ZstdError.compressionFailed("out of memory") }
        defer { ZSTD_freeCCtx(context) }
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_compressionLevel, level), compressing: true)
        try check(ZSTD_CCtx_setParameter(context, ZSTD_c_checksumFlag, 1), compressing: true)
        let bound = ZSTD_compressBound(source.count)
        var out = [UInt8](repeating: 0, count: bound)
        let written = try out.withUnsafeMutableBytes { dst in
            try check(ZSTD_compress2(context, dst.baseAddress, dst.count, source.baseAddress, source.count),
                      compressing: true)
        }
        out.removeSubrange(written...)
        return out
    }

    /// Compresses `source` into a new frame that carries its content size and a checksum.
    public static func compress(_ source: [UInt8], level: Int32 = defaultLevel) throws -> [UInt8] {
        try source.withUnsafeBytes { try compress($0, level: level) }
    }

    /// The largest window a frame may need (formats/tfq.md §6.3): zstd's default decoder limit.
    public static let maxWindowSize = 1 << 27

    /// Checks that `frames` is one or more zstd data frames back to back, as formats/tfq.md
    /// §6.3 allows them: no skippable frame, no dictionary, no window over 2^27 bytes,
    /// nothing after the last frame, every frame whole. Returns the total decoded size the
    /// frames declare, or nil when a frame does not declare its size.
    public static func checkFrames(_ frames: UnsafeRawBufferPointer) throws -> Int? {
        guard let base = frames.baseAddress, frames.count > 0 else { throw ZstdError.corruptFrame("no zstd frame") }
        var offset = 0, total: Int? = 0
        while offset < frames.count {
            let frame = UnsafeRawBufferPointer(rebasing: frames[offset...])
            let header = try FrameHeader(frame, at: offset)
            let length = ZSTD_findFrameCompressedSize(base + offset, frames.count - offset)
            if ZSTD_isError(length) != 0 || length == 0 {
                throw ZstdError.corruptFrame("the frame at byte \(offset) is cut short or damaged (\(String(cString: ZSTD_getErrorName(length))))")
            }
            // The total is known only if every frame declares its size (Int.max: too large).
            if let size = header.contentSize {
                if let sum = total { total = size <= UInt64(Int.max - sum) ? sum + Int(size) : Int.max }
            } else {
                total = nil
            }
            offset += length
        }
        return total
    }

    /// What formats/tfq.md needs of a frame header (RFC 8878 §3.1.1.1).
    struct FrameHeader {
        var contentSize: UInt64?

        init(_ bytes: UnsafeRawBufferPointer, at offset: Int) throws {
            func bad(_ why: String) -> ZstdError { .corruptFrame("the frame at byte \(offset) \(why)") }
            guard bytes.count >= 5 else { throw bad("is cut short") }
            let magic = bytes.loadUnaligned(as: UInt32.self).littleEndian
            if magic & 0xFFFF_FFF0 == 0x184D_2A50 { throw bad("is a skippable frame, which the format does not allow") }
            guard magic == 0xFD2F_B528 else { throw bad("is not a zstd frame") }
            let descriptor = bytes[4]
            let sizeFlag = Int(descriptor >> 6), singleSegment = descriptor & 0x20 != 0, dictionaryFlag = Int(descriptor & 3)
            guard descriptor & 0x08 == 0 else { throw bad("has a reserved bit set") }
            guard dictionaryFlag == 0 else { throw bad("needs a dictionary, which the format does not allow") }
            var at = 5
            var window = 0
            if !singleSegment {
                guard bytes.count > at else { throw bad("is cut short") }
                let descriptor = bytes[at]
                let log = 10 + Int(descriptor >> 3)
                window = (1 << log) + (1 << log) / 8 * Int(descriptor & 7)
                at += 1
            }
            let sizeBytes = [singleSegment ? 1 : 0, 2, 4, 8][sizeFlag]
            guard bytes.count >= at + sizeBytes else { throw bad("is cut short") }
            if sizeBytes > 0 {
                var size: UInt64 = 0
                for i in 0..<sizeBytes { size |= UInt64(bytes[at + i]) << (8 * i) }
                if sizeBytes == 2 { size += 256 }
                contentSize = size
                // A single-segment frame's window is its whole content.
                if singleSegment { window = size > UInt64(Zstd.maxWindowSize) ? Int.max : Int(size) }
            }
            guard window <= Zstd.maxWindowSize else {
                throw bad("needs a window of \(window == Int.max ? "over 2^27" : String(window)) bytes, over the format's limit of 2^27")
            }
        }
    }

    /// Decodes `frames` into `destination`, which must be exactly the decoded size.
    public static func decompress(_ frames: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        if let declared = try checkFrames(frames), declared != destination.count {
            throw ZstdError.sizeMismatch(expected: destination.count, actual: declared == Int.max ? nil : declared)
        }
        // An empty destination has no base address; zstd still wants a valid pointer.
        var scratch: UInt8 = 0
        let result = withUnsafeMutablePointer(to: &scratch) { fallback in
            ZSTD_decompress(destination.baseAddress ?? UnsafeMutableRawPointer(fallback), destination.count,
                            frames.baseAddress, frames.count)
        }
        if ZSTD_isError(result) != 0 {
            if ZSTD_getErrorCode(result) == ZSTD_error_dstSize_tooSmall {
                throw ZstdError.sizeMismatch(expected: destination.count, actual: nil)
            }
            throw ZstdError.corruptFrame(String(cString: ZSTD_getErrorName(result)))
        }
        if result != destination.count { throw ZstdError.sizeMismatch(expected: destination.count, actual: result) }
    }

    /// Decodes `frame`, which must decode to exactly `decodedSize` bytes.
    public static func decompress(_ frame: [UInt8], decodedSize: Int) throws -> [UInt8] {
        precondition(decodedSize >= 0)
        var out = [UInt8](repeating: 0, count: decodedSize)
        try frame.withUnsafeBytes { src in
            try out.withUnsafeMutableBytes { dst in try decompress(src, into: dst) }
        }
        return out
    }

    @discardableResult
    private static func check(_ code: Int, compressing: Bool) throws -> Int {
        if ZSTD_isError(code) != 0 {
            let name = String(cString: ZSTD_getErrorName(code))
            throw compressing ? ZstdError.compressionFailed(name) : ZstdError.corruptFrame(name)
        }
        return code
    }
}
