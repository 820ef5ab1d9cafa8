/// How the writer stores a tensor's bytes.
public enum TensorCompression: Sendable, Equatable {
    case none
    /// zstd at this level; kept only where it makes the tensor smaller. Float tensors are
    /// also tried as byte planes, and the smaller of the two is kept.
    case zstd(level: Int32)
    /// zstd at this level as one layout, kept whatever its size: files whose encodings must
    /// not depend on which libzstd compressed them (the test vectors).
    case zstdExactly(planes: Bool, level: Int32)
}

/// Writes a .tfq file one tensor at a time (formats/tfq.md).
///
/// Tensors stream straight to a temporary file next to the target, so the writer never
/// holds the model twice; ``finish(metadata:)`` appends the metadata and the directory,
/// fills in the header, syncs, and renames the file into place. A writer dropped without
/// `finish` removes its temporary file and leaves the target untouched. Creating one checks
/// that `path` can be written (``OutputPath/check(_:)``) and removes the temporary files of
/// the same target that writers killed mid-write left behind.
public final class TFQWriter {
    /// The target path, where ``finish(metadata:)`` publishes the file.
    public let path: String
    private let file: AtomicFile
    private var tensors: [TensorInfo] = []
    private var names = Set<String>()
    private var completed = false

    /// Starts a file for `path`: checks that it can be written, removes stale temporary files of
    /// the same target, and reserves the header's 64 bytes.
    public init(path: String) throws {
        self.path = path
        file = try AtomicFile(path: path)
        try file.writeZeros(TFQFormatSpec.headerSize)
    }

    /// The tensors written so far.
    public var writtenTensors: [TensorInfo] { tensors }

    /// Appends one tensor whose decoded bytes are `bytes` (formats/tfq.md §6).
    @discardableResult
    public func add(name: String, dtype: DType, shape: [Int], layout: Q8Layout = .rowMajor, groupSize: Int = 0,
                    bytes: UnsafeRawBufferPointer, compression: TensorCompression = .none) throws -> TensorInfo {
        func bad(_ why: String) -> TFQFormatError { TFQFormatError(file: path, tensor: name, .usage(why)) }
        guard !completed else { throw bad("added after the file was finished") }
        let nameLength = name.utf8.count
        guard nameLength >= 1, nameLength <= TFQFormatSpec.maxNameLength, !name.utf8.contains(0) else {
            throw bad("name must be 1 to \(TFQFormatSpec.maxNameLength) bytes without NUL")
        }
        guard !names.contains(name) else { throw bad("written twice") }
        guard tensors.count < TFQFormatSpec.maxTensorCount else { throw bad("too many tensors") }
        let expected: Int
        switch TensorGeometry.decodedLength(dtype: dtype, layout: layout, shape: shape, groupSize: groupSize) {
        case .success(let length): expected = length
        case .failure(let why): throw bad(why.description)
        }
        guard bytes.count == expected else { throw bad("has \(bytes.count) bytes, \(dtype) \(shape) needs \(expected)") }

        if case .zstdExactly(let planes, _) = compression, planes, dtype.isInt8, !bytes.isEmpty {
            throw bad("byte planes are for f32 and f16, not \(dtype)")
        }
        let (encoding, compressed) = try Self.storedForm(bytes, dtype: dtype, compression: compression)

        guard let offset = TensorGeometry.alignUp(file.bytesWritten) else { throw bad("file too large") }
        try file.writeZeros(offset - file.bytesWritten)
        let crc: UInt32
        let stored: Int
        if let compressed {
            try file.write(compressed)
            crc = CRC32.checksum(compressed)
            stored = compressed.count
        } else {
            try file.write(bytes)
            crc = CRC32.checksum(bytes)
            stored = bytes.count
        }
        let info = TensorInfo(name: name, dtype: dtype, encoding: encoding, layout: layout, groupSize: groupSize,
                              shape: shape, offset: offset, storedLength: stored, decodedLength: expected, crc32: crc)
        tensors.append(info)
        names.insert(name)
        return info
    }

    /// How ``add(name:dtype:shape:layout:groupSize:bytes:compression:)`` stores `bytes`: the
    /// encoding, and the compressed bytes unless raw. `.zstd` keeps whichever of zstd and
    /// zstd over byte planes (f32, f16) is smaller, and raw when neither is smaller than raw.
    public static func storedForm(_ bytes: UnsafeRawBufferPointer, dtype: DType,
                                  compression: TensorCompression) throws -> (encoding: Encoding, compressed: [UInt8]?) {
        guard !bytes.isEmpty else { return (.raw, nil) }
        switch compression {
        case .none:
            return (.raw, nil)
        case .zstdExactly(let planes, let level):
            return planes ? (.zstdPlanes, try BytePlanes.split(bytes, elementSize: dtype.elementSize).withUnsafeBytes { try Zstd.compress($0, level: level) })
                          : (.zstd, try Zstd.compress(bytes, level: level))
        case .zstd(let level):
            var best = (encoding: Encoding.zstd, compressed: try Zstd.compress(bytes, level: level))
            if !dtype.isInt8 {
                let planed = try BytePlanes.split(bytes, elementSize: dtype.elementSize).withUnsafeBytes { try Zstd.compress($0, level: level) }
                if planed.count < best.compressed.count { best = (.zstdPlanes, planed) }
            }
            return best.compressed.count < bytes.count ? (best.encoding, best.compressed) : (.raw, nil)
        }
    }

    /// Appends an f32 tensor.
    @discardableResult
    public func add(name: String, shape: [Int], floats: UnsafeBufferPointer<Float>,
                    compression: TensorCompression = .none) throws -> TensorInfo {
        try add(name: name, dtype: .f32, shape: shape, bytes: UnsafeRawBufferPointer(floats), compression: compression)
    }

    /// Writes the metadata (a UTF-8 JSON object) and the directory, then publishes the file.
    public func finish(metadata: [UInt8]) throws {
        try complete(metadata: metadata)
        try file.commit()
    }

    /// Completes the file as ``finish(metadata:)`` does but leaves it unpublished, at the
    /// returned hidden path next to ``path``, to be read back (an export measures its model
    /// before writing the real file). It stays locked as a live staging file, and is removed
    /// by ``discard()`` or when the writer is released.
    public func finishStaged(metadata: [UInt8]) throws -> String {
        try complete(metadata: metadata)
        return file.temporaryPath
    }

    private func complete(metadata: [UInt8]) throws {
        guard !completed else { throw TFQFormatError(file: path, .usage("finished twice")) }
        completed = true
        guard metadata.count >= 2, metadata.count <= TFQFormatSpec.maxMetadataLength else {
            throw TFQFormatError(file: path, .usage("metadata must be 2 bytes to 16 MiB of JSON"))
        }
        let directory = TensorDirectory.encode(tensors)
        guard directory.count <= TFQFormatSpec.maxDirectoryLength else {
            throw TFQFormatError(file: path, .usage("tensor directory exceeds 256 MiB"))
        }
        var header = FileHeader()
        header.tensorCount = UInt32(tensors.count)
        header.metadataOffset = UInt64(file.bytesWritten)
        header.metadataLength = UInt64(metadata.count)
        try file.write(metadata)
        header.directoryOffset = UInt64(file.bytesWritten)
        header.directoryLength = UInt64(directory.count)
        try file.write(directory)
        header.fileLength = UInt64(file.bytesWritten)
        var index = CRC32()
        index.update(metadata)
        index.update(directory)
        header.indexCRC32 = index.value
        try file.overwrite(header.encoded(), at: 0)
    }

    /// Removes the temporary file without publishing anything.
    public func discard() { file.discard() }
}
