/// Symmetric int8 quantization with one f32 scale per group, and the byte layouts of the
/// `q8` dtype (formats/tfq.md §6.2).
public enum Q8Codec {
    /// Quantizes a row-major `[rows, cols]` matrix and lays out values and scales as `layout`
    /// says. `groupSize` must divide `cols` (and the layout's own conditions must hold).
    public static func encode(_ weights: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int,
                              layout: Q8Layout) throws -> [UInt8] {
        precondition(weights.count == rows * cols)
        let length = try TensorGeometry.decodedLength(dtype: .q8, layout: layout, shape: [rows, cols], groupSize: groupSize).get()
        let groups = cols / groupSize
        var out = [UInt8](repeating: 0, count: length)
        out.withUnsafeMutableBytes { bytes in
            let scalesStart = scalesOffset(rows: rows, cols: cols, layout: layout)
            for r in 0..<rows {
                for g in 0..<groups {
                    let start = r * cols + g * groupSize
                    var maxAbs: Float = 0
                    for c in start..<(start + groupSize) { maxAbs = max(maxAbs, abs(weights[c])) }
                    let scale = maxAbs / 127
                    for c in 0..<groupSize {
                        let column = g * groupSize + c
                        let q = scale == 0 ? 0 : Int8(clamping: Int((weights[start + c] / scale).rounded()))
                        bytes[valueOffset(row: r, col: column, cols: cols, layout: layout)] = UInt8(bitPattern: max(q, -127))
                    }
                    let at = scalesStart + 4 * scaleIndex(row: r, group: g, groups: groups, layout: layout)
                    bytes.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                }
            }
        }
        return out
    }

    /// Lays out already-quantized values (row-major `[rows, cols]`, none −128) and their
    /// scales (row-major `[rows, cols / groupSize]`) as `layout` says: an import keeps a
    /// quantized checkpoint's own values instead of quantizing twice.
    public static func pack(values: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                            groupSize: Int, layout: Q8Layout) throws -> [UInt8] {
        let groups = cols / groupSize
        precondition(values.count == rows * cols && scales.count == rows * groups)
        let length = try TensorGeometry.decodedLength(dtype: .q8, layout: layout, shape: [rows, cols], groupSize: groupSize).get()
        var out = [UInt8](repeating: 0, count: length)
        out.withUnsafeMutableBytes { bytes in
            let scalesStart = scalesOffset(rows: rows, cols: cols, layout: layout)
            for r in 0..<rows {
                for c in 0..<cols { bytes[valueOffset(row: r, col: c, cols: cols, layout: layout)] = UInt8(bitPattern: values[r * cols + c]) }
                for g in 0..<groups {
                    let at = scalesStart + 4 * scaleIndex(row: r, group: g, groups: groups, layout: layout)
                    bytes.storeBytes(of: scales[r * groups + g].bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                }
            }
        }
        return out
    }

    /// The dequantized `[rows, cols]` matrix, row-major, of a `q8` tensor's decoded bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer, info: TensorInfo) -> [Float] {
        precondition(info.dtype == .q8 && bytes.count == info.decodedLength)
        let rows = info.rows, cols = info.columns, groups = cols / info.groupSize
        let scalesStart = scalesOffset(rows: rows, cols: cols, layout: info.layout)
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let q = Int8(bitPattern: bytes[valueOffset(row: r, col: c, cols: cols, layout: info.layout)])
                let at = scalesStart + 4 * scaleIndex(row: r, group: c / info.groupSize, groups: groups, layout: info.layout)
                let scale = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
                out[r * cols + c] = Float(q) * scale
            }
        }
        return out
    }

    /// Where the scales start in a q8 tensor's decoded bytes (formats/tfq.md §6.2).
    public static func scalesOffset(rows: Int, cols: Int, layout: Q8Layout) -> Int {
        layout == .rowMajor ? TensorGeometry.alignUp(rows * cols)! : paddedRows(rows) * cols
    }

    /// Rows rounded up to the interleaved layout's blocks of 16.
    public static func paddedRows(_ rows: Int) -> Int { (rows + 15) / 16 * 16 }

    @inline(__always)
    static func valueOffset(row r: Int, col c: Int, cols: Int, layout: Q8Layout) -> Int {
        switch layout {
        case .rowMajor: return r * cols + c
        case .interleaved16x4: return (r / 16) * 16 * cols + (c / 4) * 64 + (r % 16) * 4 + (c % 4)
        }
    }

    @inline(__always)
    static func scaleIndex(row r: Int, group g: Int, groups: Int, layout: Q8Layout) -> Int {
        switch layout {
        case .rowMajor: return r * groups + g
        case .interleaved16x4: return ((r / 16) * groups + g) * 16 + r % 16
        }
    }
}
