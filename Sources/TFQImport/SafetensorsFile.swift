import TFQFormat

/// A safetensors file (Hugging Face's format), memory-mapped and checked.
///
/// Layout: an unsigned 64-bit little-endian length N, then N bytes of JSON naming each
/// tensor's `dtype`, `shape` and `data_offsets` (begin and end, relative to the end of the
/// header), with an optional `__metadata__` object of strings; then the tensors' bytes,
/// little-endian and row-major.
///
/// Nothing in the file is trusted: the header length is bounded by the file and by 100 MB
/// (the reference library's limit), every shape's element count and byte size is computed
/// with overflow checks and must equal its byte range, ranges lie inside the data and do not
/// overlap. A tensor is read only through ``floats(_:)``, which converts to f32.
public final class SafetensorsFile {
    /// Element types of the format. Only the float ones can be read as weights.
    public enum DType: String, Sendable, CaseIterable {
        /// One-byte types: booleans, 8-bit integers and the two 8-bit float formats.
        case bool = "BOOL", u8 = "U8", i8 = "I8", f8e5m2 = "F8_E5M2", f8e4m3 = "F8_E4M3"
        /// Two-byte types: 16-bit integers, IEEE halves and bfloat16.
        case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
        /// Four- and eight-byte types: 32- and 64-bit integers and floats.
        case i32 = "I32", u32 = "U32", f32 = "F32", f64 = "F64", i64 = "I64", u64 = "U64"

        /// Bytes per element.
        public var byteCount: Int {
            switch self {
            case .bool, .u8, .i8, .f8e5m2, .f8e4m3: return 1
            case .i16, .u16, .f16, .bf16: return 2
            case .i32, .u32, .f32: return 4
            case .f64, .i64, .u64: return 8
            }
        }
    }

    /// A tensor's header entry, checked against the file.
    public struct Tensor: Sendable {
        /// The tensor's name in the header.
        public let name: String
        /// Its element type.
        public let dtype: DType
        /// Its shape, outermost first (row-major).
        public let shape: [Int]
        /// Where the bytes are, from the start of the file.
        public let byteRange: Range<Int>
        /// The number of elements (1 for a shape of `[]`).
        public var count: Int { shape.reduce(1, *) }
    }

    /// The path the file was opened at.
    public let path: String
    /// The tensors by name.
    public let tensors: [String: Tensor]
    /// The header's `__metadata__` (string values only, as the format requires).
    public let metadata: [String: String]
    private let file: MappedFile

    /// The reference implementation refuses larger headers too.
    static let maxHeaderBytes = 100_000_000

    /// Maps `path` and checks its header against the file; throws an ``ImportError`` naming
    /// the first problem.
    public init(path: String) throws {
        self.path = path
        func fail(_ problem: String) -> ImportError { ImportError(path, problem) }
        file = try MappedFile.toImport(path)
        let bytes = file.bytes
        guard bytes.count >= 8 else { throw fail("truncated: \(bytes.count) bytes, shorter than the 8-byte header length") }
        let declared = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard declared <= UInt64(Self.maxHeaderBytes) else { throw fail("the header length \(declared) is over the format's limit of \(Self.maxHeaderBytes) bytes") }
        let headerLength = Int(declared)
        guard headerLength <= bytes.count - 8 else {
            throw fail("the header length \(headerLength) runs past the end of the file (\(bytes.count) bytes)")
        }
        let dataStart = 8 + headerLength, dataLength = bytes.count - dataStart
        let header: JSONValue
        do { header = try JSONParser.parse(Array(bytes[8..<dataStart]), maxValues: 1 << 24) } catch {
            throw fail("the header is not valid JSON: \(error)")
        }
        guard case .object(let entries) = header else { throw fail("the header is not a JSON object") }

        var tensors: [String: Tensor] = [:]
        var metadata: [String: String] = [:]
        for (name, entry) in entries {
            if name == "__metadata__" {
                guard case .object(let members) = entry else { throw fail("__metadata__ is not an object") }
                for (key, value) in members {
                    guard case .string(let text) = value else { throw fail("__metadata__ '\(key)' is not a string") }
                    metadata[key] = text
                }
                continue
            }
            guard case .string(let typeName)? = entry["dtype"] else { throw fail("tensor '\(name)' has no dtype string") }
            guard let dtype = DType(rawValue: typeName) else { throw fail("tensor '\(name)' has unknown dtype '\(typeName)'") }
            guard case .array(let dims)? = entry["shape"] else { throw fail("tensor '\(name)' has no shape array") }
            var shape: [Int] = [], count = 1
            for dim in dims {
                guard case .integer(let value) = dim, value >= 0, value <= Int64(Int32.max) else {
                    throw fail("tensor '\(name)' has a shape entry that is not a size: \(dim)")
                }
                shape.append(Int(value))
                let (product, overflow) = count.multipliedReportingOverflow(by: Int(value))
                guard !overflow else { throw fail("tensor '\(name)': the shape \(shape) overflows") }
                count = product
            }
            guard case .array(let offsets)? = entry["data_offsets"], offsets.count == 2,
                  case .integer(let begin) = offsets[0], case .integer(let end) = offsets[1] else {
                throw fail("tensor '\(name)' has no data_offsets [begin, end]")
            }
            guard begin >= 0, begin <= end, end <= Int64(dataLength) else {
                throw fail("tensor '\(name)': data_offsets [\(begin), \(end)] lie outside the \(dataLength) data bytes")
            }
            let (size, overflow) = count.multipliedReportingOverflow(by: dtype.byteCount)
            guard !overflow, Int64(size) == end - begin else {
                throw fail("tensor '\(name)': \(end - begin) bytes for \(dtype.rawValue) of shape \(shape)")
            }
            tensors[name] = Tensor(name: name, dtype: dtype, shape: shape, byteRange: dataStart + Int(begin)..<dataStart + Int(end))
        }
        let ordered = tensors.values.filter { !$0.byteRange.isEmpty }.sorted { $0.byteRange.lowerBound < $1.byteRange.lowerBound }
        for (a, b) in zip(ordered, ordered.dropFirst()) where b.byteRange.lowerBound < a.byteRange.upperBound {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap")
        }
        self.tensors = tensors
        self.metadata = metadata
    }

    /// The values of tensor `name` as f32 (from F32, F16, BF16 or F64), row-major.
    public func floats(_ name: String) throws -> [Float] {
        guard let tensor = tensors[name] else { throw ImportError(path, "no tensor '\(name)'") }
        let count = tensor.count
        let source = UnsafeRawBufferPointer(rebasing: file.bytes[tensor.byteRange])
        let values: [Float]
        switch tensor.dtype {
        case .f32: values = StoredFloats.f32(source, count: count)
        case .f16: values = StoredFloats.f16(source, count: count)
        case .bf16: values = StoredFloats.bf16(source, count: count)
        case .f64:
            values = (0..<count).map { Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self)))) }
        default:
            throw ImportError(path, "tensor '\(name)' is \(tensor.dtype.rawValue); weights must be F32, F16, BF16 or F64")
        }
        guard !file.isDamaged else { throw ImportError(path, "the file changed while it was read") }
        return values
    }
}
