/// The fixed 64-byte header at the start of every .tfq file (formats/tfq.md §3).
struct FileHeader: Equatable {
    var versionMajor = TFQFormatSpec.versionMajor
    var versionMinor = TFQFormatSpec.versionMinor
    var tensorCount: UInt32 = 0
    var fileLength: UInt64 = 0
    var metadataOffset: UInt64 = 0
    var metadataLength: UInt64 = 0
    var directoryOffset: UInt64 = 0
    var directoryLength: UInt64 = 0
    var indexCRC32: UInt32 = 0

    /// The 64 header bytes, `header_crc32` included.
    func encoded() -> [UInt8] {
        var out = ByteWriter()
        out.append(TFQFormatSpec.magic)
        out.append(versionMajor)
        out.append(versionMinor)
        out.append(tensorCount)
        out.append(fileLength)
        out.append(metadataOffset)
        out.append(metadataLength)
        out.append(directoryOffset)
        out.append(directoryLength)
        out.append(indexCRC32)
        out.append(CRC32.checksum(out.bytes))
        assert(out.bytes.count == TFQFormatSpec.headerSize)
        return out.bytes
    }

    /// Checks steps 1–3 of formats/tfq.md §7 and decodes the fields; the caller checks them
    /// against the file.
    static func decode(_ bytes: UnsafeRawBufferPointer, file: String) throws -> FileHeader {
        guard bytes.count >= TFQFormatSpec.headerSize else { throw TFQFormatError(file: file, .tooShort(length: bytes.count)) }
        guard bytes.prefix(8).elementsEqual(TFQFormatSpec.magic) else { throw TFQFormatError(file: file, .badMagic) }
        var reader = ByteReader(UnsafeRawBufferPointer(rebasing: bytes.prefix(TFQFormatSpec.headerSize)))
        _ = reader.readBytes(8)
        var header = FileHeader()
        header.versionMajor = reader.read(UInt16.self)!
        header.versionMinor = reader.read(UInt16.self)!
        header.tensorCount = reader.read(UInt32.self)!
        header.fileLength = reader.read(UInt64.self)!
        header.metadataOffset = reader.read(UInt64.self)!
        header.metadataLength = reader.read(UInt64.self)!
        header.directoryOffset = reader.read(UInt64.self)!
        header.directoryLength = reader.read(UInt64.self)!
        header.indexCRC32 = reader.read(UInt32.self)!
        let stored = reader.read(UInt32.self)!
        guard CRC32.checksum(UnsafeRawBufferPointer(rebasing: bytes.prefix(60))) == stored else {
            throw TFQFormatError(file: file, .headerChecksum)
        }
        guard header.versionMajor == TFQFormatSpec.versionMajor else {
            throw TFQFormatError(file: file, .unsupportedVersion(major: header.versionMajor, minor: header.versionMinor))
        }
        return header
    }
}
