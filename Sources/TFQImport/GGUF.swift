import TFQFormat

/// GGUF, llama.cpp's model file (version 3), read and written.
///
/// Layout, little-endian: the magic `GGUF`, the version (u32), the tensor count and the
/// metadata count (u64); the metadata as key (string) / type (u32) / value; the tensor
/// infos as name / dimension count (u32) / dimensions (u64 each, the fastest-varying first)
/// / type (u32) / offset (u64, from the start of the data); then, at the next multiple of
/// `general.alignment` (default 32), the data. A string is a u64 length and UTF-8 bytes.
public enum GGUF {
    /// ggml's tensor types that tfq reads and writes.
    public enum TensorType: UInt32, Sendable, CustomStringConvertible {
        /// Floats, IEEE halves, Q8_0 blocks (``GGUF/q8BlockBytes``) and bfloat16, by ggml type code.
        case f32 = 0, f16 = 1, q8_0 = 8, bf16 = 30

        /// The type's name as ggml spells it: `F32`, `F16`, `Q8_0` or `BF16`.
        public var description: String {
            switch self {
            case .f32: "F32"
            case .f16: "F16"
            case .q8_0: "Q8_0"
            case .bf16: "BF16"
            }
        }

        /// Bytes of `count` values (`count` a multiple of 32 for Q8_0), nil on overflow.
        public func byteCount(_ count: Int) -> Int? {
            switch self {
            case .f32: return count.multipliedReportingOverflow(by: 4).overflow ? nil : count * 4
            case .f16, .bf16: return count.multipliedReportingOverflow(by: 2).overflow ? nil : count * 2
            case .q8_0: return count % 32 == 0 ? count / 32 * GGUF.q8BlockBytes : nil
            }
        }
    }

    /// A Q8_0 block: an f16 scale d and 32 int8 values; value i is d·q[i].
    public static let q8BlockBytes = 34
    /// The file's first four bytes.
    public static let magic: [UInt8] = Array("GGUF".utf8)
    /// The alignment of the data and of each tensor, in bytes, when `general.alignment` is absent.
    public static let defaultAlignment = 32

    /// A metadata value. Arrays hold values of one type, named by `elementType`.
    public enum Value: Equatable, Sendable {
        /// GGUF's scalar types 0 to 6.
        case uint8(UInt8), int8(Int8), uint16(UInt16), int16(Int16), uint32(UInt32), int32(Int32), float32(Float)
        /// GGUF's types 7, 8 and 10 to 12.
        case bool(Bool), string(String), uint64(UInt64), int64(Int64), float64(Double)
        /// GGUF's type 9: values all of the type whose code is `elementType`.
        case array(elementType: UInt32, [Value])

        var typeCode: UInt32 {
            switch self {
            case .uint8: 0
            case .int8: 1
            case .uint16: 2
            case .int16: 3
            case .uint32: 4
            case .int32: 5
            case .float32: 6
            case .bool: 7
            case .string: 8
            case .array: 9
            case .uint64: 10
            case .int64: 11
            case .float64: 12
            }
        }

        /// An array of strings.
        public static func strings(_ items: [String]) -> Value { .array(elementType: 8, items.map { .string($0) }) }
        /// An array of float32 values.
        public static func float32s(_ items: [Float]) -> Value { .array(elementType: 6, items.map { .float32($0) }) }
        /// An array of int32 values.
        public static func int32s(_ items: [Int32]) -> Value { .array(elementType: 5, items.map { .int32($0) }) }

        /// A whole number of any integer type.
        public var integer: Int? {
            switch self {
            case .uint8(let v): Int(v)
            case .int8(let v): Int(v)
            case .uint16(let v): Int(v)
            case .int16(let v): Int(v)
            case .uint32(let v): Int(v)
            case .int32(let v): Int(v)
            case .uint64(let v): v <= UInt64(Int.max) ? Int(v) : nil
            case .int64(let v): Int(v)
            default: nil
            }
        }

        /// A float or integer of any type as a Float (a float64 rounded); nil for other values.
        public var number: Float? {
            switch self {
            case .float32(let v): v
            case .float64(let v): Float(v)
            default: integer.map(Float.init)
            }
        }
    }

    /// One tensor to write: its name, type, dimensions (fastest-varying first, as GGUF
    /// lists them) and bytes.
    public struct TensorPlan {
        /// The tensor's name in the file.
        public var name: String
        /// How its values are stored.
        public var type: TensorType
        /// Its dimensions, fastest-varying first.
        public var dimensions: [Int]
        /// The bytes ``GGUF/write(path:metadata:tensors:bytes:)`` expects for it.
        public var byteCount: Int
        /// A plan whose byte count follows from `type` and `dimensions`; a Q8_0 tensor's
        /// element count must be a multiple of 32.
        public init(name: String, type: TensorType, dimensions: [Int]) {
            self.name = name; self.type = type; self.dimensions = dimensions
            byteCount = type.byteCount(dimensions.reduce(1, *))!
        }
    }

    /// Writes a GGUF file atomically: the metadata, the tensor infos, then each tensor's
    /// bytes as `bytes(i)` gives them (called in order, so a large model is never whole in
    /// memory).
    public static func write(path: String, metadata: [(String, Value)], tensors: [TensorPlan],
                             bytes: (Int) throws -> [UInt8]) throws {
        var header = ByteWriter()
        header.bytes(magic)
        header.u32(3)
        header.u64(UInt64(tensors.count))
        header.u64(UInt64(metadata.count))
        for (key, value) in metadata {
            header.string(key)
            header.u32(value.typeCode)
            header.value(value)
        }
        var offset = 0
        for tensor in tensors {
            header.string(tensor.name)
            header.u32(UInt32(tensor.dimensions.count))
            for dimension in tensor.dimensions { header.u64(UInt64(dimension)) }
            header.u32(tensor.type.rawValue)
            header.u64(UInt64(offset))
            offset = aligned(offset + tensor.byteCount)
        }
        let file = try AtomicFile(path: path)
        try file.write(header.data)
        try file.writeZeros(aligned(header.data.count) - header.data.count)
        for (index, tensor) in tensors.enumerated() {
            let data = try bytes(index)
            precondition(data.count == tensor.byteCount, "\(tensor.name): \(data.count) bytes, planned \(tensor.byteCount)")
            try file.write(data)
            try file.writeZeros(aligned(data.count) - data.count)
        }
        try file.commit()
    }

    static func aligned(_ n: Int, to alignment: Int = defaultAlignment) -> Int { (n + alignment - 1) / alignment * alignment }

    struct ByteWriter {
        var data: [UInt8] = []
        mutating func bytes(_ b: [UInt8]) { data += b }
        mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data += $0 } }
        mutating func string(_ s: String) { u64(UInt64(s.utf8.count)); data += Array(s.utf8) }
        mutating func value(_ value: Value) {
            switch value {
            case .uint8(let v): data.append(v)
            case .int8(let v): data.append(UInt8(bitPattern: v))
            case .uint16(let v): withUnsafeBytes(of: v.littleEndian) { data += $0 }
            case .int16(let v): withUnsafeBytes(of: v.littleEndian) { data += $0 }
            case .uint32(let v): u32(v)
            case .int32(let v): u32(UInt32(bitPattern: v))
            case .float32(let v): u32(v.bitPattern)
            case .bool(let v): data.append(v ? 1 : 0)
            case .string(let v): string(v)
            case .uint64(let v): u64(v)
            case .int64(let v): u64(UInt64(bitPattern: v))
            case .float64(let v): u64(v.bitPattern)
            case .array(let type, let items):
                u32(type)
                u64(UInt64(items.count))
                for item in items { precondition(item.typeCode == type); self.value(item) }
            }
        }
    }
}

/// A GGUF file, memory-mapped and checked: every count, length, dimension and offset is
/// bounded by the file before use.
public final class GGUFFile {
    /// A tensor's info, checked against the file.
    public struct Tensor: Sendable {
        /// The tensor's name in the file.
        public let name: String
        /// How its values are stored.
        public let type: GGUF.TensorType
        /// Fastest-varying first, as GGUF lists them.
        public let dimensions: [Int]
        /// Where its bytes are, as offsets from the start of the file.
        public let byteRange: Range<Int>
        /// The number of values.
        public var count: Int { dimensions.reduce(1, *) }
    }

    /// The path the file was opened at.
    public let path: String
    /// The file's GGUF version: 2 or 3.
    public let version: Int
    /// The metadata, by key.
    public let metadata: [String: GGUF.Value]
    /// The tensors, by name.
    public let tensors: [String: Tensor]
    private let file: MappedFile

    /// Maps `path` and checks its header, metadata and tensor infos; throws an
    /// ``ImportError`` naming the first problem.
    public init(path: String) throws {
        self.path = path
        func fail(_ problem: String) -> ImportError { ImportError(path, problem) }
        file = try MappedFile.toImport(path)
        var reader = Reader(bytes: file.bytes, path: path)
        guard file.bytes.count >= 24, Array(file.bytes[0..<4]) == GGUF.magic else { throw fail("not a GGUF file (no 'GGUF' magic)") }
        reader.offset = 4
        version = Int(try reader.u32())
        guard version == 2 || version == 3 else { throw fail("GGUF version \(version) is not supported (2 and 3 are)") }
        let tensorCount = try reader.u64(), metadataCount = try reader.u64()
        // Each entry takes at least 8 bytes of the file: a count beyond that is a lie.
        guard tensorCount <= UInt64(file.bytes.count / 8), metadataCount <= UInt64(file.bytes.count / 8) else {
            throw fail("\(tensorCount) tensors and \(metadataCount) metadata entries cannot fit in \(file.bytes.count) bytes")
        }
        var metadata: [String: GGUF.Value] = [:]
        reader.valuesLeft = Self.maxValues
        for _ in 0..<metadataCount {
            let key = try reader.string()
            guard metadata[key] == nil else { throw fail("metadata key '\(key)' appears twice") }
            metadata[key] = try reader.value(type: try reader.u32(), depth: 0)
        }
        var alignment = GGUF.defaultAlignment
        if let value = metadata["general.alignment"] {
            guard let a = value.integer, a > 0, a <= 1 << 16, a & (a - 1) == 0 else { throw fail("general.alignment must be a power of two up to 65536") }
            alignment = a
        }
        var infos: [(name: String, type: GGUF.TensorType, dimensions: [Int], size: Int, offset: UInt64)] = []
        for _ in 0..<tensorCount {
            let name = try reader.string()
            let rank = try reader.u32()
            guard rank >= 1 && rank <= 4 else { throw fail("tensor '\(name)' has \(rank) dimensions (1 to 4 are allowed)") }
            var dimensions: [Int] = [], count = 1
            for _ in 0..<rank {
                let d = try reader.u64()
                guard d >= 1, d <= UInt64(Int32.max) else { throw fail("tensor '\(name)' has a dimension of \(d)") }
                dimensions.append(Int(d))
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
                guard !overflow else { throw fail("tensor '\(name)': its dimensions overflow") }
                count = product
            }
            let code = try reader.u32()
            guard let type = GGUF.TensorType(rawValue: code) else {
                throw fail("tensor '\(name)' has ggml type \(code); tfq reads F32 (0), F16 (1), Q8_0 (8) and BF16 (30)")
            }
            guard type != .q8_0 || dimensions[0] % 32 == 0 else { throw fail("tensor '\(name)': Q8_0 rows of \(dimensions[0]) values are not whole blocks of 32") }
            guard let size = type.byteCount(count) else { throw fail("tensor '\(name)': its size overflows") }
            infos.append((name, type, dimensions, size, try reader.u64()))
        }
        let dataStart = GGUF.aligned(reader.offset, to: alignment)
        let dataLength = max(0, file.bytes.count - dataStart)
        var tensors: [String: Tensor] = [:]
        for info in infos {
            let size = info.size
            guard info.offset % UInt64(alignment) == 0 else { throw fail("tensor '\(info.name)' is not aligned to \(alignment) bytes") }
            guard info.offset <= UInt64(dataLength), UInt64(size) <= UInt64(dataLength) - info.offset else {
                throw fail("tensor '\(info.name)' (\(size) bytes at \(info.offset)) runs past the end of the data (\(dataLength) bytes)")
            }
            guard tensors[info.name] == nil else { throw fail("tensor '\(info.name)' appears twice") }
            let start = dataStart + Int(info.offset)
            tensors[info.name] = Tensor(name: info.name, type: info.type, dimensions: info.dimensions, byteRange: start..<(start + size))
        }
        self.metadata = metadata
        self.tensors = tensors
    }

    /// The raw bytes of a tensor.
    public func bytes(_ tensor: Tensor) -> UnsafeRawBufferPointer { UnsafeRawBufferPointer(rebasing: file.bytes[tensor.byteRange]) }

    /// True once the mapped file was found truncated while in use: bytes read since are not
    /// the file's, and anything made from them must be discarded (``MappedFile/isDamaged``).
    public var isDamaged: Bool { file.isDamaged }

    /// Metadata values a file may hold in all (a 256K-token vocabulary is about a million):
    /// the parsed values take ~25 bytes each, whatever their size in the file.
    static let maxValues = 1 << 22

    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let path: String
        var offset = 0
        var valuesLeft = GGUFFile.maxValues

        mutating func take(_ count: Int) throws -> Int {
            guard count >= 0, count <= bytes.count - offset else { throw ImportError(path, "truncated at byte \(offset) (needs \(count) more)") }
            defer { offset += count }
            return offset
        }
        mutating func u8() throws -> UInt8 { bytes[try take(1)] }
        mutating func u16() throws -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(2), as: UInt16.self)) }
        mutating func u32() throws -> UInt32 { UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(4), as: UInt32.self)) }
        mutating func u64() throws -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: try take(8), as: UInt64.self)) }
        mutating func string() throws -> String {
            let length = try u64()
            guard length <= UInt64(bytes.count - offset) else { throw ImportError(path, "a string of \(length) bytes at byte \(offset - 8) runs past the end") }
            let start = try take(Int(length))
            guard let text = String(validating: bytes[start..<(start + Int(length))], as: UTF8.self) else {
                throw ImportError(path, "a string at byte \(start) is not UTF-8")
            }
            return text
        }

        mutating func value(type: UInt32, depth: Int) throws -> GGUF.Value {
            valuesLeft -= 1
            guard valuesLeft >= 0 else { throw ImportError(path, "more than \(GGUFFile.maxValues) metadata values") }
            switch type {
            case 0: return .uint8(try u8())
            case 1: return .int8(Int8(bitPattern: try u8()))
            case 2: return .uint16(try u16())
            case 3: return .int16(Int16(bitPattern: try u16()))
            case 4: return .uint32(try u32())
            case 5: return .int32(Int32(bitPattern: try u32()))
            case 6: return .float32(Float(bitPattern: try u32()))
            case 7:
                let b = try u8()
                guard b <= 1 else { throw ImportError(path, "a bool at byte \(offset - 1) is \(b)") }
                return .bool(b == 1)
            case 8: return .string(try string())
            case 9:
                guard depth < 2 else { throw ImportError(path, "arrays nested too deep at byte \(offset)") }
                let elementType = try u32(), count = try u64()
                // Every element takes at least one byte.
                guard count <= UInt64(bytes.count - offset) else { throw ImportError(path, "an array of \(count) values at byte \(offset) runs past the end") }
                guard count <= UInt64(max(0, valuesLeft)) else { throw ImportError(path, "more than \(GGUFFile.maxValues) metadata values") }
                var items: [GGUF.Value] = []
                items.reserveCapacity(Int(count))
                for _ in 0..<count { items.append(try value(type: elementType, depth: depth + 1)) }
                return .array(elementType: elementType, items)
            case 10: return .uint64(try u64())
            case 11: return .int64(Int64(bitPattern: try u64()))
            case 12: return .float64(Double(bitPattern: try u64()))
            default: throw ImportError(path, "unknown metadata value type \(type) at byte \(offset - 4)")
            }
        }
    }
}
