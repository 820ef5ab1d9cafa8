import Foundation
import Testing
@testable import TFQFormat

/// Every kind of damaged or lying file must end in a TFQFormatError: never a crash, a hang,
/// or an allocation the file asked for without backing it.
@Suite struct HostileInputTests {
    /// A valid sample file's bytes.
    static let sample: [UInt8] = {
        let path = try! Support.temporaryDirectory().appendingPathComponent("s.tfq").path
        try! Support.writeSampleFile(at: path)
        return Array(try! Data(contentsOf: URL(fileURLWithPath: path)))
    }()

    /// Opens `bytes` as a file; returns the error, or nil if it opened (and then touches
    /// every tensor byte, which must stay in bounds).
    static func open(_ bytes: [UInt8], verify: Bool = false) -> TFQFormatError? {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("h-\(UUID().uuidString).tfq").path
        FileManager.default.createFile(atPath: path, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            let file = try TFQFile(path: path, options: .init(verifyChecksums: verify))
            var sum: UInt8 = 0
            for info in file.tensors { for byte in file.bytes(info) { sum &+= byte } }
            _ = sum
            return nil
        } catch let error as TFQFormatError {
            return error
        } catch {
            Issue.record("unexpected error type: \(error)")
            return nil
        }
    }

    /// Builds a file from a header and directory entries of our choosing, with valid
    /// checksums, so that each invariant can be broken on its own.
    static func forge(entries: [TensorInfo], data: [(offset: Int, bytes: [UInt8])], metadata: [UInt8] = Support.metadata,
                      edit: (inout FileHeader) -> Void = { _ in }) -> [UInt8] {
        var file = [UInt8](repeating: 0, count: 64)
        for (offset, bytes) in data {
            if file.count < offset + bytes.count { file += [UInt8](repeating: 0, count: offset + bytes.count - file.count) }
            file.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        }
        let directory = TensorDirectory.encode(entries)
        var header = FileHeader()
        header.tensorCount = UInt32(entries.count)
        header.metadataOffset = UInt64(file.count)
        header.metadataLength = UInt64(metadata.count)
        file += metadata
        header.directoryOffset = UInt64(file.count)
        header.directoryLength = UInt64(directory.count)
        file += directory
        header.fileLength = UInt64(file.count)
        var index = CRC32()
        index.update(metadata)
        index.update(directory)
        header.indexCRC32 = index.value
        edit(&header)
        file.replaceSubrange(0..<64, with: header.encoded())
        return file
    }

    static func f32Entry(_ name: String, count: Int, offset: Int, bytes: [UInt8]) -> TensorInfo {
        TensorInfo(name: name, dtype: .f32, encoding: .raw, layout: .rowMajor, groupSize: 0, shape: [count],
                   offset: offset, storedLength: count * 4, decodedLength: count * 4, crc32: CRC32.checksum(bytes))
    }

    static let sixteenBytes = [UInt8](repeating: 7, count: 16)

    @Test func forgedBaselineOpens() {
        let file = Self.forge(entries: [Self.f32Entry("a", count: 4, offset: 64, bytes: Self.sixteenBytes)],
                              data: [(64, Self.sixteenBytes)])
        #expect(Self.open(file, verify: true) == nil)
    }

    @Test func truncationAtEveryLengthIsAnError() {
        let count = Self.sample.count
        let lengths = Array(0..<300) + Array(stride(from: 300, to: count - 300, by: 11)) + Array((count - 300)..<count)
        for length in lengths {
            #expect(Self.open(Array(Self.sample.prefix(length))) != nil, "length \(length)")
        }
    }

    @Test func appendedBytesAreAnError() {
        #expect(Self.open(Self.sample + [0])?.problem == .lengthMismatch(declared: UInt64(Self.sample.count), actual: Self.sample.count + 1))
    }

    @Test func everyHeaderByteCorruptedIsAnError() {
        for index in 0..<64 {
            var bytes = Self.sample
            bytes[index] ^= 0x10
            #expect(Self.open(bytes) != nil, "header byte \(index)")
        }
    }

    @Test func metadataOrDirectoryBitFlipIsCaughtAtOpen() throws {
        let path = try Support.temporaryDirectory().appendingPathComponent("s.tfq").path
        try Data(Self.sample).write(to: URL(fileURLWithPath: path))
        let file = try TFQFile(path: path)
        let start = file.tensors.map { $0.offset + $0.storedLength }.max()!
        for index in stride(from: start, to: Self.sample.count, by: 3) {
            var bytes = Self.sample
            bytes[index] ^= 0x01
            #expect(Self.open(bytes)?.problem == .indexChecksum, "byte \(index)")
        }
    }

    @Test func everyTensorDataBitFlipIsCaughtByVerify() throws {
        let path = try Support.temporaryDirectory().appendingPathComponent("s.tfq").path
        try Data(Self.sample).write(to: URL(fileURLWithPath: path))
        let file = try TFQFile(path: path)
        for info in file.tensors {
            for index in stride(from: info.offset, to: info.offset + info.storedLength, by: max(1, info.storedLength / 40)) {
                var bytes = Self.sample
                bytes[index] ^= 1 << UInt8(index % 8)
                let error = Self.open(bytes, verify: true)
                #expect(error != nil, "\(info.name) byte \(index)")
                #expect(error?.tensor == info.name)
            }
        }
    }

    @Test func wrongVersionAndBadMagic() {
        let good = Self.forge(entries: [], data: [])
        #expect(Self.open(Self.forge(entries: [], data: []) { $0.versionMajor = 2 })?.problem == .unsupportedVersion(major: 2, minor: TFQFormatSpec.versionMinor))
        #expect(Self.open(Self.forge(entries: [], data: []) { $0.versionMinor = 7 }) == nil, "newer minor versions are read")
        var magic = good
        magic[1] = UInt8(ascii: "X")
        #expect(Self.open(magic)?.problem == .badMagic)
        #expect(Self.open([UInt8](repeating: 0, count: 10))?.problem == .tooShort(length: 10))
    }

    @Test func blocksOutsideTheFileOrOverlapping() {
        let cases: [(String, (inout FileHeader) -> Void)] = [
            ("metadata past EOF", { $0.metadataOffset = $0.fileLength }),
            ("metadata offset overflow", { $0.metadataOffset = UInt64.max - 1 }),
            ("directory length overflow", { $0.directoryLength = UInt64.max }),
            ("metadata inside the header", { $0.metadataOffset = 10 }),
            ("metadata over directory", { $0.metadataLength += 8 }),
            ("huge tensor count", { $0.tensorCount = UInt32.max }),
            ("count larger than the directory", { $0.tensorCount += 1 }),
        ]
        for (what, edit) in cases {
            let file = Self.forge(entries: [Self.f32Entry("a", count: 4, offset: 64, bytes: Self.sixteenBytes)],
                                  data: [(64, Self.sixteenBytes)], edit: edit)
            #expect(Self.open(file) != nil, "\(what)")
        }
    }

    @Test func directoryEntriesThatLie() {
        let data = [(offset: 64, bytes: Self.sixteenBytes), (offset: 128, bytes: Self.sixteenBytes)]
        var a = Self.f32Entry("a", count: 4, offset: 64, bytes: Self.sixteenBytes)
        var b = Self.f32Entry("b", count: 4, offset: 128, bytes: Self.sixteenBytes)
        #expect(Self.open(Self.forge(entries: [a, b], data: data)) == nil)

        var cases: [(String, [TensorInfo])] = []
        b.offset = 64; cases.append(("overlap", [a, b]))
        b.offset = 96; cases.append(("unaligned", [a, b]))
        b.offset = 1 << 40; cases.append(("past EOF", [a, b]))
        b.offset = 128; b.name = "a"; cases.append(("duplicate name", [a, b]))
        b.name = "b"; b.shape = [1 << 62, 1 << 62]; cases.append(("shape overflow", [a, b]))
        b.shape = [4]; b.decodedLength = 20; b.storedLength = 20; cases.append(("length mismatch", [a, b]))
        b.decodedLength = 16; b.storedLength = 16; b.shape = [4, 0]; cases.append(("zero dim", [a, b]))
        b.shape = [4]; b.groupSize = 4; cases.append(("group on f32", [a, b]))
        b.groupSize = 0; b.layout = .interleaved16x4; cases.append(("layout on f32", [a, b]))
        b.layout = .rowMajor; b.offset = 0; cases.append(("over the header", [a, b]))
        b.offset = 128; b.dtype = .q8; b.shape = [2, 3]; b.groupSize = 2; cases.append(("q8 group not dividing", [a, b]))
        b.name = "e\u{301}"; a.name = "\u{E9}"; cases.append(("canonically equal names", [a, b]))
        a.name = "a"
        b.name = String(repeating: "n", count: 1025); b.dtype = .f32; b.shape = [4]; b.groupSize = 0
        cases.append(("long name", [a, b]))
        for (what, entries) in cases {
            #expect(Self.open(Self.forge(entries: entries, data: data)) != nil, "\(what)")
        }
    }

    @Test func unknownCodesAndBadNames() {
        let entry = Self.f32Entry("ab", count: 4, offset: 64, bytes: Self.sixteenBytes)
        let good = Self.forge(entries: [entry], data: [(64, Self.sixteenBytes)])
        #expect(Self.open(good) == nil)
        // The directory starts right after the metadata; its fields sit at fixed places.
        let directory = 64 + 16 + Support.metadata.count
        let fields: [(String, Int, UInt8)] = [("dtype", 4, 9), ("encoding", 5, 9), ("layout", 6, 1), ("rank", 7, 9),
                                              ("name byte 0xFF", 2, 0xFF), ("name NUL", 3, 0)]
        for (what, at, value) in fields {
            var bytes = good
            bytes[directory + at] = value
            Self.refreshIndexChecksum(&bytes)
            #expect(Self.open(bytes) != nil, "\(what)")
        }
    }

    @Test func metadataMustBeAJSONObject() {
        for metadata in ["[1,2]", "{\"a\":", "\u{FF}\u{FE}", "nul"] {
            let bytes = Self.forge(entries: [], data: [], metadata: Array(metadata.utf8))
            if case .badMetadata = Self.open(bytes)?.problem {} else { Issue.record("accepted metadata \(metadata)") }
        }
        for metadata in [#"{"a":1,"b":{"c":2},"a":3}"#, #"{"x":[{"k":1,"k":2}]}"#, "\u{FEFF}{}"] {
            let bytes = Self.forge(entries: [], data: [], metadata: Array(metadata.utf8))
            if case .badMetadata = Self.open(bytes)?.problem {} else { Issue.record("accepted metadata \(metadata)") }
        }
        #expect(Self.open(Self.forge(entries: [], data: [], metadata: Array(#"{"a":{"k":1},"b":{"k":2},"s":"a\"b"}"#.utf8))) == nil)
        var invalid = Self.forge(entries: [], data: [], metadata: [0x7B, 0xC3, 0x28, 0x7D])
        Self.refreshIndexChecksum(&invalid)
        #expect(Self.open(invalid) != nil)
    }

    /// §3 and §7: at most 16 MiB and 1,000,000 JSON values, so that a hostile block of tiny
    /// values cannot make every load allocate gigabytes (a 64 MiB one took ~950 MB).
    @Test func metadataOverItsLimitsIsRefused() {
        func metadata(values: Int) -> [UInt8] {   // {"a":[0,0,…]}: the object, the array and values − 2 zeros
            Array(#"{"a":["#.utf8) + Array(repeating: Array("0,".utf8), count: values - 3).joined() + Array("0]}".utf8)
        }
        #expect(Self.open(Self.forge(entries: [], data: [], metadata: metadata(values: 1_000_000))) == nil)
        let tooMany = Self.open(Self.forge(entries: [], data: [], metadata: metadata(values: 1_000_001)))
        if case .badMetadata(let why) = tooMany?.problem { #expect(why.contains("more JSON values than the limit")) } else {
            Issue.record("accepted 1,000,001 values: \(String(describing: tooMany))")
        }
        let long = Array(#"{"k":""#.utf8) + [UInt8](repeating: 0x78, count: (16 << 20) - 8) + Array(#""}"#.utf8)
        #expect(long.count == 16 << 20)
        #expect(Self.open(Self.forge(entries: [], data: [], metadata: long)) == nil)
        let longer = Array(#"{"k":""#.utf8) + [UInt8](repeating: 0x78, count: (16 << 20) - 7) + Array(#""}"#.utf8)
        if case .badHeaderField(let why) = Self.open(Self.forge(entries: [], data: [], metadata: longer))?.problem {
            #expect(why.contains("metadata length"))
        } else { Issue.record("accepted metadata over 16 MiB") }
    }

    @Test func zstdFramesThatLieAboutTheirSize() throws {
        let values = [Float](repeating: 1.5, count: 1000)
        let frame = try values.withUnsafeBytes { try Zstd.compress($0) }
        var entry = TensorInfo(name: "z", dtype: .f32, encoding: .zstd, layout: .rowMajor, groupSize: 0, shape: [1000],
                               offset: 64, storedLength: frame.count, decodedLength: 4000, crc32: CRC32.checksum(frame))
        #expect(Self.open(Self.forge(entries: [entry], data: [(64, frame)]), verify: true) == nil)
        // The directory says 999 floats; the frame holds 1000.
        entry.shape = [999]; entry.decodedLength = 3996
        if case .decode = Self.open(Self.forge(entries: [entry], data: [(64, frame)]))?.problem {} else { Issue.record("frame too long accepted") }
        entry.shape = [1001]; entry.decodedLength = 4004
        if case .decode = Self.open(Self.forge(entries: [entry], data: [(64, frame)]))?.problem {} else { Issue.record("frame too short accepted") }
        // A huge declared tensor whose frame says otherwise is refused before any allocation.
        entry.shape = [1 << 30]; entry.decodedLength = 4 << 30
        if case .decode = Self.open(Self.forge(entries: [entry], data: [(64, frame)]))?.problem {} else { Issue.record("lying frame accepted") }
        // One larger than memory is refused outright.
        entry.shape = [1 << 40]; entry.decodedLength = 4 << 40
        if case .tooLarge = Self.open(Self.forge(entries: [entry], data: [(64, frame)]))?.problem {} else { Issue.record("huge tensor accepted") }
        // Not a frame at all.
        entry.shape = [1000]; entry.decodedLength = 4000
        let garbage = [UInt8](repeating: 0xAB, count: frame.count)
        entry.crc32 = CRC32.checksum(garbage)
        if case .decode = Self.open(Self.forge(entries: [entry], data: [(64, garbage)]))?.problem {} else { Issue.record("garbage accepted") }
    }

    /// A zstd frame of one raw block, built by hand (RFC 8878): `windowLog` gives a window
    /// descriptor, else the frame is single-segment; the content size is written unless nil.
    static func rawFrame(_ data: [UInt8], windowLog: Int? = nil, contentSize: Bool = true) -> [UInt8] {
        var frame: [UInt8] = [0x28, 0xB5, 0x2F, 0xFD]
        let single = windowLog == nil
        // Content size in 4 bytes (flag 2) when written; a single-segment frame must have one.
        frame.append(UInt8((contentSize || single ? 2 : 0) << 6) | (single ? 0x20 : 0))
        if let windowLog { frame.append(UInt8((windowLog - 10) << 3)) }
        if contentSize || single { withUnsafeBytes(of: UInt32(data.count).littleEndian) { frame += $0 } }
        let block = UInt32(1) | UInt32(data.count) << 3   // last block, raw
        withUnsafeBytes(of: block.littleEndian) { frame += $0.prefix(3) }
        return frame + data
    }

    /// formats/tfq.md §6.3: a tensor's zstd bytes are one or more data frames, each whole,
    /// with no skippable frame, no dictionary and a window of at most 2^27 bytes; the Swift
    /// reader accepts exactly those (tools/test_tfq_read.py checks the Python one the same way).
    @Test func zstdFramesAsTheFormatAllowsThem() throws {
        let values = (0..<1000).map { Float($0 % 7) - 3 }
        let bytes = values.withUnsafeBytes { Array($0) }
        func open(_ stored: [UInt8]) -> TFQFormatError? {
            let entry = TensorInfo(name: "z", dtype: .f32, encoding: .zstd, layout: .rowMajor, groupSize: 0, shape: [1000],
                                   offset: 64, storedLength: stored.count, decodedLength: 4000, crc32: CRC32.checksum(stored))
            return Self.open(Self.forge(entries: [entry], data: [(64, stored)]), verify: true)
        }
        func refused(_ stored: [UInt8], _ words: String, _ what: String) {
            let error = open(stored)
            if case .decode(let why) = error?.problem { #expect(why.contains(words), "\(what): \(why)") } else {
                Issue.record("\(what) accepted: \(String(describing: error))")
            }
        }
        let first = try Zstd.compress(Array(bytes[..<1600])), second = try Zstd.compress(Array(bytes[1600...]))
        // Valid: two frames; a frame without its content size; a window of exactly 2^27.
        #expect(open(first + second) == nil)
        #expect(open(Self.rawFrame(Array(bytes[..<1600]), windowLog: 12, contentSize: false) + Self.rawFrame(Array(bytes[1600...]), windowLog: 27)) == nil)
        // Refused.
        let skippable: [UInt8] = [0x50, 0x2A, 0x4D, 0x18, 4, 0, 0, 0, 1, 2, 3, 4]
        refused(first + second + skippable, "skippable frame", "a trailing skippable frame")
        refused(skippable + first + second, "skippable frame", "a leading skippable frame")
        refused(Self.rawFrame(bytes, windowLog: 28), "over the format's limit of 2^27", "a 2^28 window")
        refused(Array((first + second).dropLast(3)), "cut short or damaged", "a frame cut short")
        refused(first + second + [0x28, 0xB5], "cut short", "two bytes after the last frame")
        // Frames without a declared size that decode to too little: found by decoding.
        #expect(open(Self.rawFrame(Array(bytes[..<1000]), windowLog: 12, contentSize: false) + second) != nil)
        var badChecksum = first + second
        badChecksum[badChecksum.count - 1] ^= 0x40
        refused(badChecksum, "checksum", "a wrong frame checksum")
        var dictionary = Self.rawFrame(bytes, windowLog: 20)
        dictionary[4] |= 1; dictionary.insert(7, at: 6)   // Dictionary_ID flag 1, one byte of id
        refused(dictionary, "dictionary", "a frame that needs a dictionary")
    }

    /// Thousands of randomly damaged files: each must open cleanly or fail with a typed
    /// error. A crash here kills the test run, so surviving is the assertion.
    @Test func mutationFuzz() {
        var state: UInt64 = 0x5EED
        func next() -> Int { state = state &* 6364136223846793005 &+ 1442695040888963407; return Int(state >> 33) }
        var opened = 0, failed = 0
        for iteration in 0..<3000 {
            var bytes = Self.sample
            switch iteration % 4 {
            case 0:
                for _ in 0..<(1 + next() % 8) { bytes[next() % bytes.count] = UInt8(truncatingIfNeeded: next()) }
            case 1:
                bytes = Array(bytes.prefix(next() % bytes.count)) + Array(bytes.suffix(next() % 64))
            case 2:
                let at = next() % bytes.count
                bytes.insert(contentsOf: (0..<(1 + next() % 16)).map { _ in UInt8(truncatingIfNeeded: next()) }, at: at)
            default:
                // Damage behind valid checksums: the structural checks alone must hold.
                let at = 64 + next() % (bytes.count - 64)
                bytes[at] = UInt8(truncatingIfNeeded: next())
                Self.refreshIndexChecksum(&bytes)
            }
            if Self.open(bytes, verify: iteration % 2 == 0) == nil { opened += 1 } else { failed += 1 }
        }
        #expect(failed > 2500)
        #expect(opened + failed == 3000)
    }

    /// Recomputes index_crc32 and header_crc32 so a test can damage a file past its checksums.
    static func refreshIndexChecksum(_ bytes: inout [UInt8]) {
        guard bytes.count >= 64 else { return }
        var header = bytes.withUnsafeBytes { raw -> FileHeader? in try? FileHeader.decode(raw, file: "") }
        guard header != nil else { return }
        let metadata = Int(header!.metadataOffset), metadataLength = Int(header!.metadataLength)
        let directory = Int(header!.directoryOffset), directoryLength = Int(header!.directoryLength)
        guard metadata + metadataLength <= bytes.count, directory + directoryLength <= bytes.count else { return }
        var index = CRC32()
        index.update(Array(bytes[metadata..<(metadata + metadataLength)]))
        index.update(Array(bytes[directory..<(directory + directoryLength)]))
        header!.indexCRC32 = index.value
        bytes.replaceSubrange(0..<64, with: header!.encoded())
    }
}
