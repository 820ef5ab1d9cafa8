/// Symmetric int8 quantization with one scale per group, and the byte layouts of the `q8`
/// (f32 scales) and `q8f16` (f16 scales) dtypes (formats/tfq.md §6.2).
public enum Q8Codec {
    /// The scale of a group whose largest magnitude is `maxAbs`, as `dtype` stores it:
    /// `maxAbs / 127`, for `q8f16` rounded to the nearest binary16 value, or to the next one
    /// up when the nearest is 0 (a non-zero group) or would take the largest weight past 127.5
    /// steps (only a subnormal binary16 scale, a group below about 0.0078, is that coarse: a
    /// normal one rounds by at most 2⁻¹¹ of itself, 127.06 steps). So no value is clamped,
    /// and every weight stays within half a step of its stored value. Infinite beyond 65504.
    @inline(__always)
    public static func scale(maxAbs: Float, dtype: DType) -> Float {
        let scale = maxAbs / 127
        guard dtype == .q8f16 else { return scale }
        let half = Float16(scale)
        let coarse = half == 0 ? maxAbs > 0 : (maxAbs / Float(half)).rounded() > 127
        return coarse ? Float(half.nextUp) : Float(half)
    }

    /// Whether every group of `weights` has a scale binary16 can hold: max |w| / 127 rounds
    /// to a finite half (|w| up to about 8.3 million).
    public static func halfScalesFit(_ weights: UnsafeBufferPointer<Float>) -> Bool {
        var maxAbs: Float = 0
        for w in weights { maxAbs = max(maxAbs, abs(w)) }
        return Float16(maxAbs / 127).isFinite
    }

    /// round-half-away(w / scale) within ±127 (a guard: ``scale(maxAbs:dtype:)`` keeps every
    /// rounded |w / scale| ≤ 127); 0 where the scale is 0.
    @inline(__always)
    public static func quantize(_ w: Float, scale: Float) -> Int8 {
        guard scale > 0 else { return 0 }
        return Int8(max(-127, min(127, (w / scale).rounded())))
    }

    /// Quantizes a row-major `[rows, cols]` matrix and lays out values and scales as `layout`
    /// and `dtype` (`q8` or `q8f16`) say. `groupSize` must divide `cols` (and the layout's own
    /// conditions must hold).
    public static func encode(_ weights: UnsafeBufferPointer<Float>, rows: Int, cols: Int, groupSize: Int,
                              layout: Q8Layout, dtype: DType = .q8) throws -> [UInt8] {
        precondition(weights.count == rows * cols && dtype.isInt8)
        let groups = cols / groupSize
        var values = [Int8](repeating: 0, count: rows * cols), scales = [Float](repeating: 0, count: rows * groups)
        for r in 0..<rows {
            for g in 0..<groups {
                let start = r * cols + g * groupSize
                var maxAbs: Float = 0
                for c in start..<(start + groupSize) { maxAbs = max(maxAbs, abs(weights[c])) }
                let scale = scale(maxAbs: maxAbs, dtype: dtype)
                for c in start..<(start + groupSize) { values[c] = quantize(weights[c], scale: scale) }
                scales[r * groups + g] = scale
            }
        }
        return try values.withUnsafeBufferPointer { v in
            try scales.withUnsafeBufferPointer { s in
                try pack(values: v, scales: s, rows: rows, cols: cols, groupSize: groupSize, layout: layout, dtype: dtype)
            }
        }
    }

    /// Lays out already-quantized values (row-major `[rows, cols]`, none −128) and their
    /// scales (row-major `[rows, cols / groupSize]`) as `layout` and `dtype` say: an import
    /// keeps a quantized checkpoint's own values instead of quantizing twice. For `q8f16`
    /// every scale must be a binary16 value already (``scale(maxAbs:dtype:)`` makes them).
    public static func pack(values: UnsafeBufferPointer<Int8>, scales: UnsafeBufferPointer<Float>, rows: Int, cols: Int,
                            groupSize: Int, layout: Q8Layout, dtype: DType = .q8) throws -> [UInt8] {
        let groups = cols / groupSize
        precondition(values.count == rows * cols && scales.count == rows * groups && dtype.isInt8)
        let length = try TensorGeometry.decodedLength(dtype: dtype, layout: layout, shape: [rows, cols], groupSize: groupSize).get()
        var out = [UInt8](repeating: 0, count: length)
        out.withUnsafeMutableBytes { bytes in
            let scalesStart = scalesOffset(rows: rows, cols: cols, layout: layout)
            for r in 0..<rows {
                for c in 0..<cols { bytes[valueOffset(row: r, col: c, cols: cols, layout: layout)] = UInt8(bitPattern: values[r * cols + c]) }
                for g in 0..<groups {
                    let at = scalesStart + dtype.scaleSize * scaleIndex(row: r, group: g, groups: groups, layout: layout)
                    let scale = scales[r * groups + g]
                    if dtype == .q8f16 {
                        let half = Float16(scale)
                        precondition(Float(half) == scale, "a q8f16 scale must be a binary16 value")
                        bytes.storeBytes(of: half.bitPattern.littleEndian, toByteOffset: at, as: UInt16.self)
                    } else {
                        bytes.storeBytes(of: scale.bitPattern.littleEndian, toByteOffset: at, as: UInt32.self)
                    }
                }
            }
        }
        return out
    }

    /// The scale stored at byte `offset` of an int8 tensor's decoded bytes, as a float.
    @inline(__always)
    public static func storedScale(_ bytes: UnsafeRawBufferPointer, at offset: Int, dtype: DType) -> Float {
        if dtype == .q8f16 {
            return Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self))))
        }
        return Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
    }

    /// The dequantized `[rows, cols]` matrix, row-major, of an int8 tensor's decoded bytes.
    public static func decode(_ bytes: UnsafeRawBufferPointer, info: TensorInfo) -> [Float] {
        precondition(info.dtype.isInt8 && bytes.count == info.decodedLength)
        let rows = info.rows, cols = info.columns, groups = cols / info.groupSize
        let scalesStart = scalesOffset(rows: rows, cols: cols, layout: info.layout)
        var out = [Float](repeating: 0, count: rows * cols)
        for r in 0..<rows {
            for c in 0..<cols {
                let q = Int8(bitPattern: bytes[valueOffset(row: r, col: c, cols: cols, layout: info.layout)])
                let at = scalesStart + info.dtype.scaleSize * scaleIndex(row: r, group: c / info.groupSize, groups: groups, layout: info.layout)
                out[r * cols + c] = Float(q) * storedScale(bytes, at: at, dtype: info.dtype)
            }
        }
        return out
    }

    /// Where the scales start in an int8 tensor's decoded bytes (formats/tfq.md §6.2).
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
