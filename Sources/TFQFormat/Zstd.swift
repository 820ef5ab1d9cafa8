import CZstd

/// A failure inside libzstd, with zstd's own description of it.
public enum ZstdError: Error, Equatable, CustomStringConvertible {
    case compressionFailed(String)
    /// The frame is damaged or not a zstd frame at all.
    case corruptFrame(String)
    /// The frame decodes to a different number of bytes than the caller was promised.
    case sizeMismatch(expected: Int, actual: Int?)

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
    public static var maxLevel: Int32 { ZSTD_maxCLevel() }
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

    public static func compress(_ source: [UInt8], level: Int32 = defaultLevel) throws -> [UInt8] {
        try source.withUnsafeBytes { try compress($0, level: level) }
    }

    /// The total decoded size the frames' headers declare, or nil when a frame does not say
    /// (or the bytes are not frames: decoding will report that).
    public static func declaredContentSize(_ frames: UnsafeRawBufferPointer) -> Int? {
        guard let base = frames.baseAddress else { return nil }
        var offset = 0, total = 0
        while offset < frames.count {
            let remaining = frames.count - offset
            let size = ZSTD_getFrameContentSize(base + offset, remaining)
            if size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN { return nil }
            let length = ZSTD_findFrameCompressedSize(base + offset, remaining)
            if ZSTD_isError(length) != 0 || length == 0 { return nil }
            guard let frameSize = Int(exactly: size), case (let sum, false) = total.addingReportingOverflow(frameSize) else { return Int.max }
            total = sum
            offset += length
        }
        return total
    }

    /// Decodes `frame` into `destination`, which must be exactly the decoded size.
    public static func decompress(_ frame: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer) throws {
        let declared = ZSTD_getFrameContentSize(frame.baseAddress, frame.count)
        if declared == ZSTD_CONTENTSIZE_ERROR { throw ZstdError.corruptFrame("not a zstd frame") }
        if declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != UInt64(destination.count) {
            throw ZstdError.sizeMismatch(expected: destination.count, actual: Int(exactly: declared))
        }
        // An empty destination has no base address; zstd still wants a valid pointer.
        var scratch: UInt8 = 0
        let result = withUnsafeMutablePointer(to: &scratch) { fallback in
            ZSTD_decompress(destination.baseAddress ?? UnsafeMutableRawPointer(fallback), destination.count,
                            frame.baseAddress, frame.count)
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
