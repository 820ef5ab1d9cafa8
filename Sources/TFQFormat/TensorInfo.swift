/// One entry of a file's tensor directory: what a tensor is and where its bytes are.
public struct TensorInfo: Sendable, Equatable {
    /// The name: 1 to 1024 bytes of UTF-8 without NUL, unique in the file (formats/tfq.md §5).
    public var name: String
    /// How the elements are stored (formats/tfq.md §6.1).
    public var dtype: DType
    /// How the decoded bytes are stored in the file (formats/tfq.md §6.3).
    public var encoding: Encoding
    /// `.rowMajor` for every dtype but `q8`.
    public var layout: Q8Layout
    /// Elements per scale group for `q8`; 0 otherwise.
    public var groupSize: Int
    /// The dimensions, outermost first, each ≥ 1; empty for a scalar.
    public var shape: [Int]
    /// Where the stored bytes start, in bytes from the start of the file; a multiple of 64.
    public var offset: Int
    /// The length of the bytes stored in the file, in bytes (compressed, for zstd tensors).
    public var storedLength: Int
    /// The length of the decoded bytes, in bytes (formats/tfq.md §6.4).
    public var decodedLength: Int
    /// CRC-32 of the stored bytes.
    public var crc32: UInt32

    /// The number of elements: the product of `shape` (1 for a scalar).
    public var elementCount: Int { shape.reduce(1, *) }

    /// The last dimension: the reduction dimension of a `q8` matrix.
    public var columns: Int { shape.last ?? 1 }
    /// The product of all but the last dimension.
    public var rows: Int { shape.dropLast().reduce(1, *) }
}

/// Sizes of a tensor's decoded bytes, computed with overflow checks (formats/tfq.md §6.4).
public enum TensorGeometry {
    /// The one valid decoded length for this dtype, shape and q8 grouping, or a reason why
    /// the combination is invalid.
    public static func decodedLength(dtype: DType, layout: Q8Layout, shape: [Int], groupSize: Int) -> Result<Int, InvalidGeometry> {
        func failure(_ why: String) -> Result<Int, InvalidGeometry> { .failure(InvalidGeometry(why)) }
        guard shape.count <= TFQFormatSpec.maxRank else { return failure("rank \(shape.count) exceeds \(TFQFormatSpec.maxRank)") }
        guard shape.allSatisfy({ $0 >= 1 }) else { return failure("a dimension is zero or negative: \(shape)") }
        guard let count = checkedProduct(shape) else { return failure("element count of \(shape) overflows") }
        switch dtype {
        case .f32, .f16:
            guard groupSize == 0 else { return failure("group size \(groupSize) set on a \(dtype) tensor") }
            guard layout == .rowMajor else { return failure("layout \(layout) set on a \(dtype) tensor") }
            guard let bytes = checkedProduct([count, dtype.elementSize]) else { return failure("byte size overflows") }
            return .success(bytes)
        case .q8, .q8f16:
            guard !shape.isEmpty else { return failure("a \(dtype) tensor needs at least one dimension") }
            let cols = shape[shape.count - 1]
            let rows = count / cols
            guard groupSize >= 1, cols % groupSize == 0 else {
                return failure("group size \(groupSize) does not divide the row length \(cols)")
            }
            let groups = cols / groupSize
            switch layout {
            case .rowMajor:
                guard let values = alignUp(count),
                      let scales = checkedProduct([rows, groups, dtype.scaleSize]),
                      case (let total, false) = values.addingReportingOverflow(scales) else { return failure("byte size overflows") }
                return .success(total)
            case .interleaved16x4:
                guard cols % 4 == 0, groupSize % 4 == 0 else {
                    return failure("interleaved layout needs row length and group size divisible by 4 (got \(cols), \(groupSize))")
                }
                guard case (let padded16, false) = rows.addingReportingOverflow(15),
                      let values = checkedProduct([padded16 / 16 * 16, cols]),
                      let scales = checkedProduct([padded16 / 16 * 16, groups, dtype.scaleSize]),
                      case (let total, false) = values.addingReportingOverflow(scales) else { return failure("byte size overflows") }
                return .success(total)
            }
        }
    }

    /// `value` rounded up to a multiple of 64, or nil on overflow.
    public static func alignUp(_ value: Int, to alignment: Int = TFQFormatSpec.alignment) -> Int? {
        let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
        return overflow ? nil : sum / alignment * alignment
    }

    /// The product of `factors` (1 for none), or nil when it overflows or is negative.
    public static func checkedProduct(_ factors: [Int]) -> Int? {
        var product = 1
        for factor in factors {
            let (next, overflow) = product.multipliedReportingOverflow(by: factor)
            if overflow || next < 0 { return nil }
            product = next
        }
        return product
    }
}

/// Why a dtype, shape and grouping do not describe a valid tensor.
public struct InvalidGeometry: Error, Equatable, CustomStringConvertible {
    /// What is invalid, in one line.
    public let description: String
    init(_ description: String) { self.description = description }
}
