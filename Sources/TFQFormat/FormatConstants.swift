/// The byte-level constants of formats/tfq.md, in one place.
public enum TFQFormatSpec {
    /// `\x89TFQ\r\n\x1a\n`
    public static let magic: [UInt8] = [0x89, 0x54, 0x46, 0x51, 0x0D, 0x0A, 0x1A, 0x0A]
    /// The major version this code reads and writes (formats/tfq.md §4).
    public static let versionMajor: UInt16 = 1
    /// The minor version of the specification the writer implements (formats/tfq.md §4).
    public static let versionMinor: UInt16 = 5
    /// The header's size in bytes; every block and tensor starts at or after it (formats/tfq.md §3).
    public static let headerSize = 64
    /// Raw tensors start on cache-line (and `SIMD16<Float>`) boundaries: see formats/tfq.md §2.
    public static let alignment = 64
    /// The most tensors a file may hold: the limit on `tensor_count` (formats/tfq.md §3).
    public static let maxTensorCount = 1_000_000
    /// 16 MiB and 1,000,000 JSON values bound what parsing the metadata allocates (about
    /// 25 bytes per value) and takes: a hostile 64 MiB block of tiny values cost ~950 MB and
    /// seconds at every load. The largest metadata tfq writes, a llama2.c tokenizer of 32,000
    /// pieces, is ~1 MB and 64,000 values. formats/tfq.md §3 and §7.
    public static let maxMetadataLength = 16 << 20
    /// The most JSON values the metadata may hold, the outer object included (formats/tfq.md §7).
    public static let maxMetadataValues = 1_000_000
    /// The longest tensor directory, in bytes: 256 MiB (formats/tfq.md §3).
    public static let maxDirectoryLength = 256 << 20
    /// The longest tensor name, in UTF-8 bytes (formats/tfq.md §5).
    public static let maxNameLength = 1024
    /// The most dimensions a tensor may have; 0 is a scalar (formats/tfq.md §5).
    public static let maxRank = 8
}

/// How a tensor's elements are stored (formats/tfq.md §6.1).
public enum DType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 1
    case f16 = 2
    /// int8 values with one f32 scale per group along the last dimension.
    case q8 = 3
    /// int8 values with one f16 scale per group (since 1.5): `q8` with half the scale bytes.
    case q8f16 = 4

    /// The dtype's name in formats/tfq.md §6.1: "f32", "f16", "q8" or "q8f16".
    public var description: String {
        switch self {
        case .f32: return "f32"
        case .f16: return "f16"
        case .q8: return "q8"
        case .q8f16: return "q8f16"
        }
    }

    /// Bytes per element for the float dtypes; the int8 dtypes are 1 plus their scales.
    public var elementSize: Int {
        switch self {
        case .f32: return 4
        case .f16: return 2
        case .q8, .q8f16: return 1
        }
    }

    /// Whether the tensor holds int8 values with per-group scales (formats/tfq.md §6.2).
    public var isInt8: Bool { self == .q8 || self == .q8f16 }

    /// Bytes per scale of an int8 dtype (4 for `q8`, 2 for `q8f16`); 0 for the others.
    public var scaleSize: Int {
        switch self {
        case .q8: return 4
        case .q8f16: return 2
        case .f32, .f16: return 0
        }
    }
}

/// How a tensor's bytes are stored in the file (formats/tfq.md §6.3).
public enum Encoding: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case raw = 0
    case zstd = 1
    /// zstd over the bytes reordered into planes (byte 0 of every element, then byte 1, …).
    case zstdPlanes = 2

    /// The encoding's name in formats/tfq.md §6.3: "raw", "zstd" or "zstd-planes".
    public var description: String {
        switch self {
        case .raw: return "raw"
        case .zstd: return "zstd"
        case .zstdPlanes: return "zstd-planes"
        }
    }
}

/// The arrangement of an int8 tensor's values and scales (formats/tfq.md §6.2).
public enum Q8Layout: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    case rowMajor = 0
    /// Blocks of 16 rows × 4 consecutive values: one 64-byte load feeds 16 dot-product lanes.
    case interleaved16x4 = 1

    /// The layout's name in formats/tfq.md §6.2: "row-major" or "interleaved-16x4".
    public var description: String {
        switch self {
        case .rowMajor: return "row-major"
        case .interleaved16x4: return "interleaved-16x4"
        }
    }
}
