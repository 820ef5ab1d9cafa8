// libFuzzer target for the .tfq reader (TFQFile). Built by tools/fuzz/build.sh together with
// the sources of Sources/TFQFormat, in one module, with -sanitize=fuzzer,address.
//
// Contract under test (formats/tfq.md §7): whatever the bytes, opening a file, reading every
// tensor's bytes and running the full `verify()` either succeeds or throws TFQFormatError.
// A crash, a Swift runtime trap, an ASan report, an out-of-memory or a hang is a bug.
//
// Each input is opened twice:
//   1. as is, so every early check (magic, header CRC, lengths, index CRC) is exercised;
//   2. "repaired": file_length, every in-bounds tensor CRC, index_crc32 and header_crc32 are
//      recomputed from the bytes, so mutations of the header fields, metadata, directory and
//      tensor data reach the later checks, zstd decoding and q8 verification instead of dying
//      at a checksum compare (random mutations almost never produce a matching CRC-32).
//   The second open is skipped when repairing changes nothing.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private let scratch = ScratchFile()
nonisolated(unsafe) private var sink: UInt64 = 0

/// Little-endian field access on a byte array, bounds-checked by the array itself.
private func load<T: FixedWidthInteger>(_ bytes: [UInt8], _ offset: Int, as: T.Type) -> T {
    var value: T = 0
    for i in 0..<MemoryLayout<T>.size { value |= T(bytes[offset + i]) << (8 * i) }
    return value
}

private func store<T: FixedWidthInteger>(_ value: T, into bytes: inout [UInt8], at offset: Int) {
    for i in 0..<MemoryLayout<T>.size { bytes[offset + i] = UInt8(truncatingIfNeeded: value >> (8 * i)) }
}

/// A block's byte range, if `offset + length` lies inside a file of `count` bytes.
private func range(_ offset: UInt64, _ length: UInt64, in count: Int) -> Range<Int>? {
    let (end, overflow) = offset.addingReportingOverflow(length)
    guard !overflow, end <= UInt64(count) else { return nil }
    return Int(offset)..<Int(end)
}

/// The input with its length, tensor, index and header checksums made consistent with its
/// bytes (nothing else changes). Directory entries are walked leniently: as many as fit.
private func repaired(_ input: [UInt8]) -> [UInt8] {
    guard input.count >= 64 else { return input }
    var bytes = input
    store(UInt64(bytes.count), into: &bytes, at: 16)
    let tensorCount = Int(load(bytes, 12, as: UInt32.self))
    let metadata = range(load(bytes, 24, as: UInt64.self), load(bytes, 32, as: UInt64.self), in: bytes.count)
    let directory = range(load(bytes, 40, as: UInt64.self), load(bytes, 48, as: UInt64.self), in: bytes.count)
    if let directory {
        var at = directory.lowerBound
        for _ in 0..<min(tensorCount, 4096) {
            guard directory.upperBound - at >= 2 else { break }
            let nameLength = Int(load(bytes, at, as: UInt16.self))
            let fixed = at + 2 + nameLength          // dtype, encoding, layout, rank, group_size
            guard directory.upperBound - fixed >= 8 else { break }
            let rank = Int(bytes[fixed + 3])
            let tail = fixed + 8 + 8 * rank           // offset, stored_length, decoded_length, crc32
            guard directory.upperBound - tail >= 28 else { break }
            if let data = range(load(bytes, tail, as: UInt64.self), load(bytes, tail + 8, as: UInt64.self), in: bytes.count) {
                let crc = bytes.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[data])) }
                store(crc, into: &bytes, at: tail + 24)
            }
            at = tail + 28
        }
    }
    var index = CRC32()
    bytes.withUnsafeBytes { file in
        if let metadata { index.update(UnsafeRawBufferPointer(rebasing: file[metadata])) }
        if let directory { index.update(UnsafeRawBufferPointer(rebasing: file[directory])) }
    }
    store(index.value, into: &bytes, at: 56)
    store(bytes.withUnsafeBytes { CRC32.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<60])) }, into: &bytes, at: 60)
    return bytes
}

/// Opens `bytes` the way `tfq verify` does and uses everything the reader hands out.
private func exercise(_ bytes: UnsafeRawBufferPointer) {
    scratch.replaceContents(with: bytes)
    do {
        let file = try TFQFile(path: scratch.path, options: .init(verifyChecksums: true))
        var total: UInt64 = 0
        for info in file.tensors {
            let data = file.bytes(info)
            precondition(data.count == info.decodedLength, "bytes(\(info.name)) has \(data.count) bytes, not \(info.decodedLength)")
            for byte in data { total &+= UInt64(byte) }
            let stored = file.storedBytes(info)
            precondition(stored.count == info.storedLength)
            if let first = stored.first, let last = stored.last { total &+= UInt64(first) &+ UInt64(last) }
            precondition(file.info(info.name) == info)
        }
        try file.verify()
        // A verified q8 tensor must dequantize in bounds (small ones only, to keep runs fast).
        for info in file.tensors where info.dtype.isInt8 && info.elementCount <= 1 << 16 {
            // (Not checked finite: a valid scale near Float.greatestFiniteMagnitude times 127 is inf.)
            let values = Q8Codec.decode(file.bytes(info), info: info)
            precondition(values.count == info.elementCount)
            for value in values { total &+= UInt64(value.bitPattern) }
        }
        _ = file.metadata.count
        sink &+= total
    } catch is TFQFormatError {
        // The expected outcome for a bad file.
    } catch {
        fatalError("TFQFile threw something other than TFQFormatError: \(error)")
    }
}

/// Opens `bytes`, then truncates the file to `keep` bytes while it is mapped, as another
/// process might, and reads every tensor again: the SIGBUS guard (Sources/CMapGuard) must
/// turn the vanished pages into zeros and mark the file damaged, never crash.
private func exerciseTruncation(_ bytes: UnsafeRawBufferPointer, keep: Int) {
    scratch.replaceContents(with: bytes)
    guard let file = try? TFQFile(path: scratch.path) else { return }
    scratch.truncate(to: keep)
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let mappedEnd = (keep + page - 1) / page * page   // the rest of keep's last page reads as zeros, no fault
    var total: UInt64 = 0
    var touchedVanishedPage = false
    for info in file.tensors {
        for byte in file.bytes(info) { total &+= UInt64(byte) }   // zstd tensors: private copies, unaffected
        if info.encoding == .raw && info.storedLength > 0 && info.offset + info.storedLength > mappedEnd { touchedVanishedPage = true }
    }
    precondition(!touchedVanishedPage || file.isDamaged, "a read past the truncated end did not mark the file damaged")
    sink &+= total
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    exercise(input)
    let original = Array(input)
    let fixed = repaired(original)
    if fixed != original { fixed.withUnsafeBytes { exercise($0) } }
    // A length from the input's own bytes, so the fuzzer explores where the cut falls.
    let keep = fixed.count * Int(fixed.last ?? 0) / 256
    fixed.withUnsafeBytes { exerciseTruncation($0, keep: keep) }
    return 0
}
