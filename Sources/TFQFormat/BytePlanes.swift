/// The byte-plane transform of the `zstd-planes` encoding (formats/tfq.md §6.3): byte p of
/// every element, for p = 0 ..< elementSize. The exponent bytes of neighbouring weights
/// repeat, so zstd finds them once they stand side by side.
enum BytePlanes {
    static func split(_ source: UnsafeRawBufferPointer, elementSize width: Int) -> [UInt8] {
        let count = source.count / width
        return [UInt8](unsafeUninitializedCapacity: source.count) { out, initialized in
            for plane in 0..<width {
                let base = plane * count
                for index in 0..<count { out[base + index] = source[index * width + plane] }
            }
            initialized = source.count
        }
    }

    static func merge(_ planes: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer, elementSize width: Int) {
        let count = planes.count / width
        for plane in 0..<width {
            let base = plane * count
            for index in 0..<count { destination[index * width + plane] = planes[base + index] }
        }
    }
}
