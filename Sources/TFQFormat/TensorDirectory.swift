/// Encoding and validating the tensor directory (formats/tfq.md §5 and §7 steps 8–10).
enum TensorDirectory {
    static func encode(_ tensors: [TensorInfo]) -> [UInt8] {
        var out = ByteWriter()
        for tensor in tensors {
            let name = Array(tensor.name.utf8)
            out.append(UInt16(name.count))
            out.append(name)
            out.append(tensor.dtype.rawValue)
            out.append(tensor.encoding.rawValue)
            out.append(tensor.layout.rawValue)
            out.append(UInt8(tensor.shape.count))
            out.append(UInt32(tensor.groupSize))
            for dim in tensor.shape { out.append(UInt64(dim)) }
            out.append(UInt64(tensor.offset))
            out.append(UInt64(tensor.storedLength))
            out.append(UInt64(tensor.decodedLength))
            out.append(tensor.crc32)
        }
        return out.bytes
    }

    /// Parses `count` entries that must fill `bytes` exactly and checks each against a file
    /// of `fileLength` bytes.
    static func decode(_ bytes: UnsafeRawBufferPointer, count: Int, fileLength: Int, file: String) throws -> [TensorInfo] {
        func fail(_ why: String) -> TFQFormatError { TFQFormatError(file: file, .badDirectory(why)) }
        var reader = ByteReader(bytes)
        var tensors: [TensorInfo] = []
        tensors.reserveCapacity(min(count, bytes.count / 38))
        var names = Set<String>()
        for index in 0..<count {
            guard let nameLength = reader.read(UInt16.self) else { throw fail("entry \(index) is cut off") }
            guard nameLength >= 1, Int(nameLength) <= TFQFormatSpec.maxNameLength else {
                throw fail("entry \(index) has a name of \(nameLength) bytes")
            }
            guard let nameBytes = reader.readBytes(Int(nameLength)) else { throw fail("entry \(index) is cut off") }
            guard !nameBytes.contains(0), let name = String(validating: nameBytes, as: UTF8.self) else {
                throw fail("entry \(index) has a name that is not valid UTF-8 text")
            }
            func bad(_ why: String) -> TFQFormatError { TFQFormatError(file: file, tensor: name, .badTensor(why)) }
            guard names.insert(name).inserted else { throw bad("name appears twice in the directory") }
            guard let dtypeCode = reader.read(UInt8.self), let encodingCode = reader.read(UInt8.self),
                  let layoutCode = reader.read(UInt8.self), let rank = reader.read(UInt8.self),
                  let groupSize = reader.read(UInt32.self) else { throw fail("entry '\(name)' is cut off") }
            guard let dtype = DType(rawValue: dtypeCode) else { throw bad("unknown dtype code \(dtypeCode)") }
            guard let encoding = Encoding(rawValue: encodingCode) else { throw bad("unknown encoding code \(encodingCode)") }
            guard let layout = Q8Layout(rawValue: layoutCode) else { throw bad("unknown layout code \(layoutCode)") }
            guard Int(rank) <= TFQFormatSpec.maxRank else { throw bad("rank \(rank) exceeds \(TFQFormatSpec.maxRank)") }
            var shape: [Int] = []
            for _ in 0..<rank {
                guard let dim = reader.read(UInt64.self) else { throw fail("entry '\(name)' is cut off") }
                guard dim >= 1, dim <= UInt64(Int.max) else { throw bad("dimension \(dim) is out of range") }
                shape.append(Int(dim))
            }
            guard let offset = reader.read(UInt64.self), let stored = reader.read(UInt64.self),
                  let decoded = reader.read(UInt64.self), let crc = reader.read(UInt32.self) else {
                throw fail("entry '\(name)' is cut off")
            }
            if encoding == .zstdPlanes && dtype.isInt8 { throw bad("zstd-planes encoding applies to f32 and f16 only") }
            if !dtype.isInt8 && groupSize != 0 { throw bad("group size \(groupSize) set on a \(dtype) tensor") }
            let expected: Int
            switch TensorGeometry.decodedLength(dtype: dtype, layout: layout, shape: shape, groupSize: Int(groupSize)) {
            case .success(let length): expected = length
            case .failure(let why): throw bad(why.description)
            }
            guard decoded == UInt64(expected) else { throw bad("decoded length \(decoded) should be \(expected) for \(dtype) \(shape)") }
            if encoding == .raw && stored != decoded { throw bad("raw tensor stores \(stored) bytes, expected \(decoded)") }
            if encoding != .raw && stored == 0 { throw bad("compressed tensor stores no bytes") }
            guard offset % UInt64(TFQFormatSpec.alignment) == 0, offset >= UInt64(TFQFormatSpec.headerSize) else {
                throw bad("offset \(offset) is not a multiple of \(TFQFormatSpec.alignment) past the header")
            }
            guard case (let end, false) = offset.addingReportingOverflow(stored), end <= UInt64(fileLength) else {
                throw bad("data at \(offset)+\(stored) runs past the end of the file (\(fileLength) bytes)")
            }
            tensors.append(TensorInfo(name: name, dtype: dtype, encoding: encoding, layout: layout,
                                      groupSize: Int(groupSize), shape: shape, offset: Int(offset),
                                      storedLength: Int(stored), decodedLength: expected, crc32: crc))
        }
        guard reader.remaining == 0 else { throw fail("\(reader.remaining) bytes left after \(count) entries") }
        return tensors
    }
}
