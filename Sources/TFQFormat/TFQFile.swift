#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import Synchronization

/// A .tfq file opened for reading: mapped into memory and checked before any use.
///
/// Raw tensors are views into the mapping (zero-copy); zstd tensors are decoded once, at
/// open, into 64-byte-aligned memory of exactly their declared size. Opening checks every
/// invariant of formats/tfq.md §7, so no later access can read out of bounds. An open file
/// is immutable and may be shared across threads.
public final class TFQFile: @unchecked Sendable {
    /// How ``TFQFile/init(path:options:)`` opens a file: what it checks and what it may allocate.
    public struct Options: Sendable {
        /// Check every tensor's CRC-32 at open (reads the whole file).
        public var verifyChecksums = false
        /// Refuse files whose compressed tensors decode to more than this many bytes.
        public var maxDecodedBytes = MappedFile.physicalMemory
        /// Read the file into private memory instead of mapping it: it costs a copy (no
        /// sharing with the page cache), and the file may then be truncated or rewritten
        /// while in use without effect (see ``isDamaged``).
        public var copyIntoMemory = false
        /// Options as given, with `maxDecodedBytes` at the size of physical memory.
        public init(verifyChecksums: Bool = false, copyIntoMemory: Bool = false) {
            self.verifyChecksums = verifyChecksums
            self.copyIntoMemory = copyIntoMemory
        }
    }

    /// The path the file was opened at.
    public let path: String
    /// The header's `version_major`: always 1, the only one this code reads (formats/tfq.md §4).
    public let versionMajor: UInt16
    /// The header's `version_minor`: the specification version its writer implemented (formats/tfq.md §4).
    public let versionMinor: UInt16
    /// The directory, in file order.
    public let tensors: [TensorInfo]
    /// The metadata block's JSON text, copied from the file at each use.
    public var metadataJSON: [UInt8] { Array(mapping.bytes[metadataRange]) }
    /// The metadata block parsed without a schema (less any section released with
    /// ``releaseMetadataSection(_:)``).
    public var metadata: [String: JSONValue] { parsedMetadata.withLock { $0 } }
    /// The file's length in bytes (its header's `file_length`, checked at open).
    public var fileLength: Int { mapping.bytes.count }
    /// True when every tensor is raw, so loading copies nothing.
    public var isZeroCopy: Bool { decoded.isEmpty }
    /// True once the mapped file was found truncated while in use: pages past its new end
    /// read as zeros, so anything computed from raw tensors since is wrong and must be
    /// discarded (``MappedFile/isDamaged``). A file may be replaced safely by renaming a new
    /// one over it, as tfq's writers do; truncating or rewriting it in place is not safe.
    public var isDamaged: Bool { mapping.isDamaged }

    private let mapping: MappedFile
    private let metadataRange: Range<Int>
    private let parsedMetadata: Mutex<[String: JSONValue]>
    private let indexByName: [String: Int]
    private var decoded: [String: UnsafeMutableRawBufferPointer] = [:]

    /// Opens `path` and checks every invariant of formats/tfq.md §7, then decodes the compressed
    /// tensors; throws a ``TFQFormatError`` naming the first problem.
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        mapping = try MappedFile(path: path, copy: options.copyIntoMemory)
        let file = mapping.bytes
        let header = try FileHeader.decode(file, file: path)
        versionMajor = header.versionMajor
        versionMinor = header.versionMinor
        guard header.fileLength == UInt64(file.count) else {
            throw TFQFormatError(file: path, .lengthMismatch(declared: header.fileLength, actual: file.count))
        }
        let metadataRange = try Self.block("metadata", offset: header.metadataOffset, length: header.metadataLength,
                                           minimum: 2, limit: TFQFormatSpec.maxMetadataLength, file: path, fileLength: file.count)
        let directoryRange = try Self.block("directory", offset: header.directoryOffset, length: header.directoryLength,
                                            minimum: 0, limit: TFQFormatSpec.maxDirectoryLength, file: path, fileLength: file.count)
        if metadataRange.overlaps(directoryRange) {
            throw TFQFormatError(file: path, .badHeaderField("metadata and directory overlap"))
        }
        guard header.tensorCount <= UInt32(TFQFormatSpec.maxTensorCount) else {
            throw TFQFormatError(file: path, .badHeaderField("tensor count \(header.tensorCount) exceeds \(TFQFormatSpec.maxTensorCount)"))
        }
        let metadataBytes = UnsafeRawBufferPointer(rebasing: file[metadataRange])
        let directoryBytes = UnsafeRawBufferPointer(rebasing: file[directoryRange])
        var index = CRC32()
        index.update(metadataBytes)
        index.update(directoryBytes)
        guard index.value == header.indexCRC32 else { throw TFQFormatError(file: path, .indexChecksum) }

        self.metadataRange = metadataRange
        parsedMetadata = Mutex(try Self.parseMetadata(metadataBytes, file: path))
        tensors = try TensorDirectory.decode(directoryBytes, count: Int(header.tensorCount), fileLength: file.count, file: path)
        try Self.checkNoOverlaps(tensors, metadata: metadataRange, directory: directoryRange, file: path)
        indexByName = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })

        if options.verifyChecksums { try verifyChecksums() }
        try decodeCompressedTensors(limit: options.maxDecodedBytes)
    }

    deinit {
        for buffer in decoded.values { free(buffer.baseAddress) }
    }

    /// The directory entry of the tensor named `name`, or nil when the file has none.
    public func info(_ name: String) -> TensorInfo? {
        indexByName[name].map { tensors[$0] }
    }

    /// The decoded bytes of a tensor: a view into the mapping for raw tensors, into the
    /// buffer decoded at open for compressed ones. Valid as long as this file is.
    public func bytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let info = info(name) else { throw TFQFormatError(file: path, tensor: name, .missingTensor) }
        return bytes(info)
    }

    /// The decoded bytes of the tensor `info` describes, which must be one of this file's `tensors`.
    public func bytes(_ info: TensorInfo) -> UnsafeRawBufferPointer {
        if let buffer = decoded[info.name] { return UnsafeRawBufferPointer(buffer) }
        return UnsafeRawBufferPointer(rebasing: mapping.bytes[info.offset..<(info.offset + info.storedLength)])
    }

    /// A tensor's values as fp32, row-major: f32 copied, f16 widened, q8 and q8f16 dequantized.
    public func floats(_ info: TensorInfo) -> [Float] {
        let bytes = bytes(info)
        switch info.dtype {
        case .f32: return Array(bytes.bindMemory(to: Float.self))
        case .f16: return bytes.bindMemory(to: Float16.self).map(Float.init)
        case .q8, .q8f16: return Q8Codec.decode(bytes, info: info)
        }
    }

    /// The bytes stored in the file for a tensor (compressed ones as they are on disk).
    public func storedBytes(_ info: TensorInfo) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: mapping.bytes[info.offset..<(info.offset + info.storedLength)])
    }

    /// Checks every tensor's CRC-32 over its stored bytes; throws naming the first bad one.
    public func verifyChecksums() throws {
        for info in tensors where CRC32.checksum(storedBytes(info)) != info.crc32 {
            throw TFQFormatError(file: path, tensor: info.name, .tensorChecksum)
        }
    }

    /// The full check of `tfq verify`: every checksum, then every int8 tensor's values.
    public func verify() throws {
        try verifyChecksums()
        try verifyValues()
    }

    /// Checks what checksums cannot: every `q8` and `q8f16` tensor's values (no −128, scales
    /// finite and ≥ 0, layout 0's gap before the scales and layout 1's padding rows all zero).
    public func verifyValues() throws {
        for info in tensors where info.dtype.isInt8 { try verifyQ8Values(info) }
    }

    private func verifyQ8Values(_ info: TensorInfo) throws {
        func bad(_ why: String) -> TFQFormatError { TFQFormatError(file: path, tensor: info.name, .badTensor(why)) }
        let bytes = bytes(info)
        let rows = info.rows, cols = info.columns, groups = cols / info.groupSize
        let scalesStart = Q8Codec.scalesOffset(rows: rows, cols: cols, layout: info.layout)
        // Layout 0's values end at rows·cols and zeros align the scales to 64 (§6.2); layout
        // 1's padding rows are checked below.
        let valuesEnd = info.layout == .rowMajor ? rows * cols : scalesStart
        if Self.contains(0x80, in: UnsafeRawBufferPointer(rebasing: bytes[..<valuesEnd])) { throw bad("holds the invalid int8 value -128") }
        if let at = bytes[valuesEnd..<scalesStart].firstIndex(where: { $0 != 0 }) {
            throw bad("byte \(at) between the values and the scales is not zero")
        }
        for offset in stride(from: scalesStart, to: bytes.count, by: info.dtype.scaleSize) {
            let scale = Q8Codec.storedScale(bytes, at: offset, dtype: info.dtype)
            if !scale.isFinite || scale < 0 { throw bad("has an invalid scale \(scale)") }
        }
        guard info.layout == .interleaved16x4 else { return }
        for row in rows..<Q8Codec.paddedRows(rows) {
            for column in 0..<cols where bytes[Q8Codec.valueOffset(row: row, col: column, cols: cols, layout: info.layout)] != 0 {
                throw bad("padding row \(row) holds a non-zero value")
            }
            for group in 0..<groups {
                let at = scalesStart + info.dtype.scaleSize * Q8Codec.scaleIndex(row: row, group: group, groups: groups, layout: info.layout)
                if bytes[at..<(at + info.dtype.scaleSize)].contains(where: { $0 != 0 }) { throw bad("padding row \(row) has a non-zero scale") }
            }
        }
    }

    /// Whether `bytes` holds `value`, 64 bytes per step: `contains` on a slice of raw bytes
    /// goes one byte at a time, and took most of the time of `tfq run --verify`.
    static func contains(_ value: UInt8, in bytes: UnsafeRawBufferPointer) -> Bool {
        guard let base = bytes.baseAddress else { return false }
        let needle = SIMD16<UInt8>(repeating: value)
        var index = 0
        while bytes.count - index >= 64 {
            func hits(_ at: Int) -> SIMDMask<SIMD16<Int8>> { base.loadUnaligned(fromByteOffset: index + at, as: SIMD16<UInt8>.self) .== needle }
            if any(hits(0) .| hits(16) .| hits(32) .| hits(48)) { return true }
            index += 64
        }
        return bytes[index...].contains(value)
    }

    /// Frees the parsed form of one metadata section, for a reader that has turned it into
    /// its own type and keeps only that (``metadata`` no longer has the key; the file's bytes
    /// and ``metadataJSON`` are unchanged). A model's tokenizer is the large one: a 32,000-piece
    /// vocabulary parses into megabytes.
    public func releaseMetadataSection(_ key: String) {
        _ = parsedMetadata.withLock { $0.removeValue(forKey: key) }
    }

    /// Decodes one section of the metadata with a schema the caller owns.
    public func metadataSection<T: Decodable>(_ key: String, as type: T.Type) throws -> T? {
        guard let value = metadata[key] else { return nil }
        do {
            return try JSONValueDecoder.decode(T.self, from: value)
        } catch {
            throw TFQFormatError(file: path, .badMetadata("'\(key)' is malformed: \(Self.describe(error))"))
        }
    }

    // MARK: - Checks

    private static func block(_ what: String, offset: UInt64, length: UInt64, minimum: Int, limit: Int,
                              file: String, fileLength: Int) throws -> Range<Int> {
        guard length >= UInt64(minimum), length <= UInt64(limit) else {
            throw TFQFormatError(file: file, .badHeaderField("\(what) length \(length) is out of range"))
        }
        guard offset >= UInt64(TFQFormatSpec.headerSize),
              case (let end, false) = offset.addingReportingOverflow(length), end <= UInt64(fileLength) else {
            throw TFQFormatError(file: file, .badHeaderField("\(what) at \(offset)+\(length) lies outside the file"))
        }
        return Int(offset)..<Int(end)
    }

    private static func parseMetadata(_ json: UnsafeRawBufferPointer, file: String) throws -> [String: JSONValue] {
        let value: JSONValue
        do { value = try JSONParser.parse(json, maxValues: TFQFormatSpec.maxMetadataValues) } catch { throw TFQFormatError(file: file, .badMetadata(error.description)) }
        guard case .object(let members) = value else { throw TFQFormatError(file: file, .badMetadata("not a JSON object")) }
        return members
    }

    private static func checkNoOverlaps(_ tensors: [TensorInfo], metadata: Range<Int>, directory: Range<Int>, file: String) throws {
        let ranges = [0..<TFQFormatSpec.headerSize, metadata, directory] + tensors.map { $0.offset..<($0.offset + $0.storedLength) }
        let names = ["header", "metadata", "directory"] + tensors.map(\.name)
        var order = Array(ranges.indices).filter { !ranges[$0].isEmpty }
        order.sort { ranges[$0].lowerBound < ranges[$1].lowerBound }
        for (previous, next) in zip(order, order.dropFirst()) where ranges[next].lowerBound < ranges[previous].upperBound {
            let first = names[previous], second = names[next]
            let tensor = next >= 3 ? second : (previous >= 3 ? first : nil)
            throw TFQFormatError(file: file, tensor: tensor, .badTensor("bytes overlap \(tensor == second ? first : second)"))
        }
    }

    private func decodeCompressedTensors(limit: Int) throws {
        var total = 0
        for info in tensors where info.encoding != .raw {
            // Byte-plane tensors briefly need a second buffer of the same size.
            let need = info.encoding == .zstdPlanes ? 2 * info.decodedLength : info.decodedLength
            total = total.addingReportingOverflow(need).overflow ? Int.max : total + need
            guard total <= limit else { throw TFQFormatError(file: path, tensor: info.name, .tooLarge(bytes: total, limit: limit)) }
        }
        for info in tensors where info.encoding != .raw {
            // The frames must be what §6.3 allows, and their own size headers must agree,
            // before anything is allocated for them.
            do {
                if let declared = try Zstd.checkFrames(storedBytes(info)), declared != info.decodedLength {
                    throw ZstdError.sizeMismatch(expected: info.decodedLength, actual: declared == Int.max ? nil : declared)
                }
            } catch let error as ZstdError {
                throw TFQFormatError(file: path, tensor: info.name, .decode(error.description))
            }
            // Below the limit the memory may still be refused (a process limit, say): that is
            // an error to report, not a trap.
            func allocate() throws -> UnsafeMutableRawBufferPointer {
                var raw: UnsafeMutableRawPointer?
                guard posix_memalign(&raw, TFQFormatSpec.alignment, info.decodedLength) == 0, let raw else {
                    throw TFQFormatError(file: path, tensor: info.name, .outOfMemory("cannot allocate \(info.decodedLength) bytes to decode it"))
                }
                return UnsafeMutableRawBufferPointer(start: raw, count: info.decodedLength)
            }
            let buffer = try allocate()
            do {
                if info.encoding == .zstd {
                    try Zstd.decompress(storedBytes(info), into: buffer)
                } else {
                    let planes = try allocate()
                    defer { free(planes.baseAddress) }
                    try Zstd.decompress(storedBytes(info), into: planes)
                    BytePlanes.merge(UnsafeRawBufferPointer(planes), into: buffer, elementSize: info.dtype.elementSize)
                }
            } catch {
                free(buffer.baseAddress)
                if let error = error as? ZstdError { throw TFQFormatError(file: path, tensor: info.name, .decode(error.description)) }
                throw error
            }
            decoded[info.name] = buffer
        }
    }

    static func describe(_ error: Error) -> String {
        if let decoding = error as? DecodingError {
            switch decoding {
            case .keyNotFound(let key, _): return "missing key '\(key.stringValue)'"
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                let path = context.codingPath.map(\.stringValue).joined(separator: ".")
                return path.isEmpty ? context.debugDescription : "at '\(path)': \(context.debugDescription)"
            @unknown default: return "\(error)"
            }
        }
        return "\(error)"
    }
}
