/// Little-endian float data as other tools store it, widened to f32. The conversions are
/// exact: f16 and bf16 values are all f32 values.
enum StoredFloats {
    static func f32(_ bytes: UnsafeRawBufferPointer, count: Int) -> [Float] {
        (0..<count).map { Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
    }

    static func f16(_ bytes: UnsafeRawBufferPointer, count: Int) -> [Float] {
        (0..<count).map { Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self)))) }
    }

    /// bfloat16 is the top half of an f32.
    static func bf16(_ bytes: UnsafeRawBufferPointer, count: Int) -> [Float] {
        (0..<count).map { Float(bitPattern: UInt32(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self))) << 16) }
    }

    /// GGUF's Q8_0 blocks (an f16 scale d, then 32 int8 values q; value d·q) of `count`
    /// values: the int8 values and one scale per block.
    static func q8_0(_ bytes: UnsafeRawBufferPointer, count: Int) -> (values: [Int8], scales: [Float]) {
        var values: [Int8] = [], scales: [Float] = []
        values.reserveCapacity(count)
        scales.reserveCapacity(count / 32)
        for block in 0..<(count / 32) {
            let base = block * GGUF.q8BlockBytes
            scales.append(Float(Float16(bitPattern: UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: base, as: UInt16.self)))))
            for j in 0..<32 { values.append(Int8(bitPattern: bytes[base + 2 + j])) }
        }
        return (values, scales)
    }
}
