import CTFQ
import Foundation
import Testing
@testable import TFQCAPI
import TFQFormat
import TFQModel
import TFQRuntime

/// Each status tfq.h defines, forced through the C API where input can force it, and the
/// mapping from every library error to its status.
@Suite(.serialized) struct StatusTests {
    static func lastError() -> String { String(cString: tfq_last_error()) }

    static let golden = try! Data(contentsOf: URL(fileURLWithPath: CAPITests.model))

    /// `bytes` written to a new temporary file; its path.
    static func file(_ bytes: Data, name: String = "m.tfq") throws -> String {
        let url = try OpenAndCountTests.temporaryDirectory().appendingPathComponent(name)
        try bytes.write(to: url)
        return url.path
    }

    /// The status and message of opening `path`; the handle must stay NULL.
    static func open(_ path: String, flags: UInt32 = 0) -> (tfq_status, String) {
        var model = OpaquePointer(bitPattern: 0x10)
        let status = tfq_model_open_flags(path, flags, &model)
        #expect(model == nil)
        return (status, lastError())
    }

    /// A little-endian integer of the .tfq header (formats/tfq.md §3).
    static func field<T: FixedWidthInteger>(_ bytes: Data, _ offset: Int, as: T.Type) -> T {
        bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }

    static func setField<T: FixedWidthInteger>(_ bytes: inout Data, _ offset: Int, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.replaceSubrange(offset..<offset + MemoryLayout<T>.size, with: $0) }
    }

    /// Recomputes the index checksum (metadata + directory) and the header checksum, so that
    /// an edit reaches the check it is meant for.
    static func reseal(_ bytes: inout Data) {
        let metadata = Int(field(bytes, 24, as: UInt64.self)), metadataLength = Int(field(bytes, 32, as: UInt64.self))
        let directory = Int(field(bytes, 40, as: UInt64.self)), directoryLength = Int(field(bytes, 48, as: UInt64.self))
        var index = CRC32()
        index.update(Array(bytes[metadata..<metadata + metadataLength]))
        index.update(Array(bytes[directory..<directory + directoryLength]))
        setField(&bytes, 56, index.value)
        setField(&bytes, 60, CRC32.checksum(Array(bytes[0..<60])))
    }

    @Test func cannotOpen() throws {
        #expect(Self.open("/no/such/file.tfq") == (TFQ_ERROR_CANNOT_OPEN, "/no/such/file.tfq: cannot open: No such file or directory"))
        let directory = try OpenAndCountTests.temporaryDirectory().path
        #expect(Self.open(directory) == (TFQ_ERROR_CANNOT_OPEN, directory + ": is not a regular file (a directory)"))
    }

    @Test func notATFQFile() throws {
        #expect(Self.open(#filePath) == (TFQ_ERROR_NOT_TFQ_FILE, #filePath + ": not a tfq file (bad magic bytes)"))
        let empty = try Self.file(Data())
        #expect(Self.open(empty) == (TFQ_ERROR_NOT_TFQ_FILE, empty + ": not a tfq file (only 0 bytes)"))
        let short = try Self.file(Self.golden.prefix(40))
        #expect(Self.open(short) == (TFQ_ERROR_NOT_TFQ_FILE, short + ": not a tfq file (only 40 bytes)"))
    }

    @Test func unsupportedVersion() throws {
        var bytes = Self.golden
        Self.setField(&bytes, 8, UInt16(2))   // format major version 2
        Self.reseal(&bytes)
        let path = try Self.file(bytes)
        #expect(Self.open(path) == (TFQ_ERROR_UNSUPPORTED, path + ": format version 2.0 is not supported (this tfq reads 1.x)"))
    }

    @Test func damagedFile() throws {
        var header = Self.golden
        header[20] ^= 1   // file length, under the header checksum
        let headerPath = try Self.file(header)
        #expect(Self.open(headerPath) == (TFQ_ERROR_FILE, headerPath + ": header checksum mismatch (corrupt file)"))

        let truncated = try Self.file(Self.golden.prefix(Self.golden.count - 100))
        #expect(Self.open(truncated) == (TFQ_ERROR_FILE, truncated + ": file is \(Self.golden.count - 100) bytes but its header says \(Self.golden.count) (truncated)"))

        var metadata = Self.golden
        metadata[Int(Self.field(metadata, 24, as: UInt64.self)) + 5] ^= 1
        let metadataPath = try Self.file(metadata)
        #expect(Self.open(metadataPath) == (TFQ_ERROR_FILE, metadataPath + ": metadata/directory checksum mismatch (corrupt file)"))
    }

    /// A zstd tensor whose directory entry declares 4 TiB decoded: refused before anything is
    /// allocated, as more than this machine's memory.
    @Test func outOfMemory() throws {
        let path = try OpenAndCountTests.temporaryDirectory().appendingPathComponent("huge.tfq").path
        let writer = try TFQWriter(path: path)
        let zeros = [Float](repeating: 0, count: 4)
        try zeros.withUnsafeBufferPointer {
            _ = try writer.add(name: "x", shape: [4], floats: $0, compression: .zstdExactly(planes: false, level: 3))
        }
        try writer.finish(metadata: Array("{}".utf8))
        var bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        // The one directory entry: u16 name length, "x", dtype, encoding, layout, rank,
        // u32 group size, then the dimension at +11 and the decoded length at +35.
        let entry = Int(Self.field(bytes, 40, as: UInt64.self))
        #expect(Self.field(bytes, entry + 11, as: UInt64.self) == 4 && Self.field(bytes, entry + 35, as: UInt64.self) == 16)
        Self.setField(&bytes, entry + 11, UInt64(1) << 40)
        Self.setField(&bytes, entry + 35, UInt64(4) << 40)
        Self.reseal(&bytes)
        try bytes.write(to: URL(fileURLWithPath: path))
        let (status, message) = Self.open(path)
        #expect(status == TFQ_ERROR_OUT_OF_MEMORY)
        #expect(message.hasPrefix(path + ": tensor 'x': decodes to \(UInt64(4) << 40) bytes, more than the limit of "))
    }

    /// The golden model written again with its metadata edited and, where `rowMajor` names
    /// one, that q8 tensor laid out row-major: checksums all match, so only loading refuses it.
    static func rewrite(name: String, rowMajor: String? = nil, edit: (inout [String: JSONValue]) -> Void = { _ in }) throws -> String {
        let source = try TFQFile(path: CAPITests.model)
        var metadata = source.metadata
        edit(&metadata)
        let path = try OpenAndCountTests.temporaryDirectory().appendingPathComponent(name).path
        let writer = try TFQWriter(path: path)
        for info in source.tensors {
            if info.name == rowMajor {
                let weights = Q8Codec.decode(source.bytes(info), info: info)
                let bytes = try weights.withUnsafeBufferPointer {
                    try Q8Codec.encode($0, rows: info.rows, cols: info.columns, groupSize: info.groupSize, layout: .rowMajor)
                }
                try bytes.withUnsafeBytes {
                    _ = try writer.add(name: info.name, dtype: .q8, shape: info.shape, layout: .rowMajor, groupSize: info.groupSize, bytes: $0)
                }
            } else {
                try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout, groupSize: info.groupSize,
                               bytes: source.bytes(info), compression: .none)
            }
        }
        try writer.finish(metadata: Array(JSONEncoder().encode(JSONValue.object(metadata))))
        return path
    }

    /// Sound files this library cannot run are UNSUPPORTED (a newer writer's architecture or
    /// tokenizer, a q8 layout the runtime does not run), one that would not fit in this
    /// machine's memory OUT_OF_MEMORY, and a malformed one FILE.
    @Test func modelsThisLibraryCannotRun() throws {
        func section(_ key: String, _ field: String, _ value: JSONValue) -> (inout [String: JSONValue]) -> Void {
            { metadata in
                guard case .object(var members)? = metadata[key] else { return }
                members[field] = value
                metadata[key] = .object(members)
            }
        }
        let arch = try Self.rewrite(name: "arch.tfq", edit: section("config", "arch", .string("mamba")))
        #expect(Self.open(arch) == (TFQ_ERROR_UNSUPPORTED, arch + ": not supported: architecture 'mamba' (this tfq runs gpt, llama)"))
        let tokenizer = try Self.rewrite(name: "tokenizer.tfq", edit: section("tokenizer", "type", .string("unigram")))
        #expect(Self.open(tokenizer) == (TFQ_ERROR_UNSUPPORTED,
                                         tokenizer + ": not supported: unknown tokenizer type 'unigram' (this tfq reads char, byte, llama2c, bpe, sentencepiece)"))
        let layout = try Self.rewrite(name: "layout.tfq", rowMajor: "blocks.1.ffn.up.weight")
        #expect(Self.open(layout) == (TFQ_ERROR_UNSUPPORTED, layout + ": tensor 'blocks.1.ffn.up.weight': not supported: q8 in the row-major "
                                      + "layout, which the runtime does not run (export the model again as int8: interleaved16x4)"))
        // Each size within the format's bounds, a session of them ~256 GB: refused before any tensor is read.
        let huge = try Self.rewrite(name: "huge.tfq") { metadata in
            for (field, value) in [("context_length", 1 << 16), ("dim", 1 << 16), ("ff_dim", 1 << 18)] {
                section("config", field, .integer(Int64(value)))(&metadata)
            }
        }
        let (status, message) = Self.open(huge)
        #expect(status == TFQ_ERROR_OUT_OF_MEMORY)
        #expect(message.hasPrefix(huge + ": out of memory: a session would need more memory than this machine has (context 65536, "), "\(message)")
        let malformed = try Self.rewrite(name: "malformed.tfq", edit: section("tokenizer", "vocab", .integer(3)))
        #expect(Self.open(malformed) == (TFQ_ERROR_FILE, malformed + ": bad metadata: 'tokenizer' is malformed: 'vocab' must be an array of strings"))
    }

    @Test func tokensAndText() throws {
        var model: OpaquePointer?, session: OpaquePointer?
        #expect(tfq_model_open(CAPITests.model, &model) == TFQ_OK)
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)
        defer { tfq_session_free(session); tfq_model_close(model) }
        var tokens = [Int32](repeating: 0, count: 4)
        var count = 0
        #expect(tfq_tokenize(model, "the king", 8, &tokens, 4, &count) == TFQ_ERROR_BUFFER_TOO_SMALL && count == 8)
        #expect(tfq_tokenize(model, "THE", 3, &tokens, 4, &count) == TFQ_ERROR_UNKNOWN_CHARACTER)
        #expect(Self.lastError() == "character T (U+54) at position 0 is not in the model's vocabulary")
        #expect(tfq_tokenize(model, "a\u{FF}", 2, &tokens, 4, &count) == TFQ_ERROR_INVALID_UTF8)   // "a" and half of "ÿ"
        #expect(Self.lastError() == "tfq_tokenize: the text is not valid UTF-8")

        var bytes = [CChar](repeating: 0, count: 2)
        var length = 0
        #expect(tfq_detokenize(model, [1, 2, 3], 3, &bytes, 2, &length) == TFQ_ERROR_BUFFER_TOO_SMALL && length == 3)
        #expect(tfq_detokenize(model, [1, 25], 2, &bytes, 2, &length) == TFQ_ERROR_INVALID_TOKEN)
        #expect(Self.lastError() == "tfq_detokenize: token id 25 is outside the vocabulary (0..<25)")

        // Every failure leaves the session where it was.
        var logits = [Float](repeating: 0, count: 25)
        #expect(tfq_session_eval(session, [21, 10], 2, &logits, 25) == TFQ_OK)
        #expect(tfq_session_eval(session, [1], 1, &logits, 24) == TFQ_ERROR_BUFFER_TOO_SMALL)
        #expect(Self.lastError() == "tfq_session_eval: logits needs 25 floats, got 24")
        #expect(tfq_session_eval(session, [1, 25], 2, &logits, 25) == TFQ_ERROR_INVALID_TOKEN)
        #expect(Self.lastError() == "token id 25 is outside the vocabulary (0..<25)")
        #expect(tfq_session_eval(session, [-3], 1, &logits, 25) == TFQ_ERROR_INVALID_TOKEN)
        #expect(tfq_session_eval(session, [1], 0, &logits, 25) == TFQ_ERROR_NO_TOKENS)
        #expect(Self.lastError() == "tfq_session_eval: no tokens (count is 0)")
        #expect(tfq_session_eval(session, [Int32](repeating: 1, count: 63), 63, &logits, 25) == TFQ_ERROR_CONTEXT_FULL)
        #expect(Self.lastError() == "tfq_session_eval: 65 tokens do not fit in the session's context of 64")
        var position: Int32 = -1
        #expect(tfq_session_position(session, &position) == TFQ_OK && position == 2)
    }

    /// Every library error reaching the C API, by kind; the switch in status(of:) has no
    /// default for these, so a new kind is a build error until it has a status and a row here.
    @Test func everyLibraryErrorHasItsStatus() {
        struct Unexpected: Error {}
        func format(_ problem: TFQFormatError.Problem) -> Error { TFQFormatError(file: "m.tfq", problem) }
        let cases: [(Error, tfq_status)] = [
            (format(.io("cannot open: No such file or directory")), TFQ_ERROR_CANNOT_OPEN),
            (format(.tooShort(length: 3)), TFQ_ERROR_NOT_TFQ_FILE),
            (format(.badMagic), TFQ_ERROR_NOT_TFQ_FILE),
            (format(.headerChecksum), TFQ_ERROR_FILE),
            (format(.unsupportedVersion(major: 2, minor: 0)), TFQ_ERROR_UNSUPPORTED),
            (format(.lengthMismatch(declared: 100, actual: 50)), TFQ_ERROR_FILE),
            (format(.badHeaderField("metadata and directory overlap")), TFQ_ERROR_FILE),
            (format(.indexChecksum), TFQ_ERROR_FILE),
            (format(.badMetadata("not a JSON object")), TFQ_ERROR_FILE),
            (format(.badDirectory("entry 0 is cut off")), TFQ_ERROR_FILE),
            (format(.badTensor("has shape [2], the config needs [3]")), TFQ_ERROR_FILE),
            (format(.tensorChecksum), TFQ_ERROR_FILE),
            (format(.decode("corrupt zstd frame")), TFQ_ERROR_FILE),
            (format(.tooLarge(bytes: 1 << 42, limit: 1 << 33)), TFQ_ERROR_OUT_OF_MEMORY),
            (format(.missingTensor), TFQ_ERROR_FILE),
            (format(.unsupported("architecture 'mamba'")), TFQ_ERROR_UNSUPPORTED),
            (format(.outOfMemory("cannot allocate 4096 bytes")), TFQ_ERROR_OUT_OF_MEMORY),
            (format(.usage("finished twice")), TFQ_ERROR_INTERNAL),
            (SessionError.contextFull(needed: 65, context: 64), TFQ_ERROR_CONTEXT_FULL),
            (SessionError.invalidToken(25, vocabulary: 25), TFQ_ERROR_INVALID_TOKEN),
            (SessionError.noTokens, TFQ_ERROR_NO_TOKENS),
            (SessionError.modelFileDamaged(path: "m.tfq"), TFQ_ERROR_FILE),
            (SessionError.outOfMemory(bytes: 1 << 30, positions: 4096), TFQ_ERROR_OUT_OF_MEMORY),
            (TokenizerError.unknownCharacter("T", position: 0), TFQ_ERROR_UNKNOWN_CHARACTER),
            (TokenizerError.invalidUTF8(offset: 1), TFQ_ERROR_INVALID_UTF8),
            (Unexpected(), TFQ_ERROR_INTERNAL),
        ]
        for (error, expected) in cases {
            #expect(status(of: error) == expected, "\(error)")
            #expect(fail(error) == expected)
            #expect(Self.lastError() == "\(error)")
        }
    }

    /// tfq_status_name names every constant of tfq.h's enum, read from the header itself.
    @Test func statusNamesMatchTheHeader() throws {
        let header = try String(contentsOf: TFQCAPISources.header, encoding: .utf8)
        let enumBody = try #require(header.firstRange(of: "typedef enum tfq_status {").flatMap { start in
            header[start.upperBound...].firstRange(of: "} tfq_status;").map { header[start.upperBound..<$0.lowerBound] }
        })
        var constants: [(name: String, value: UInt32)] = []
        for line in enumBody.split(separator: "\n") {
            let words = line.split(whereSeparator: { " =,".contains($0) })
            if words.count >= 2, words[0].hasPrefix("TFQ_"), let value = UInt32(words[1]) { constants.append((String(words[0]), value)) }
        }
        #expect(constants.count == 14)
        #expect(constants.map(\.value) == Array(0..<14))   // no gaps, no reuse
        for (name, value) in constants {
            #expect(String(cString: tfq_status_name(tfq_status(rawValue: value))) == name)
        }
        #expect(statusNames.map(\.name) == constants.map(\.name))
        #expect(String(cString: tfq_status_name(tfq_status(rawValue: 14))) == "TFQ_ERROR_UNKNOWN")
        #expect(String(cString: tfq_status_name(tfq_status(rawValue: .max))) == "TFQ_ERROR_UNKNOWN")
    }

    /// Every function tfq.h declares is implemented under its own name (@_cdecl("f") func f)
    /// and has a line in SignatureCheck.swift, which holds its type to the header's.
    @Test func everyHeaderFunctionIsImplementedAndChecked() throws {
        let header = try String(contentsOf: TFQCAPISources.header, encoding: .utf8)
        var declared: [String] = []
        for line in header.split(separator: "\n") where !line.hasPrefix(" ") && !line.hasPrefix("/*") && !line.hasPrefix("typedef") && !line.hasPrefix("#") {
            // A declaration's first line: "tfq_status tfq_tokenize(const tfq_model *model, ...".
            guard let open = line.firstIndex(of: "("), let name = line[..<open].split(separator: " ").last else { continue }
            let bare = name.drop(while: { $0 == "*" })
            if bare.hasPrefix("tfq_") { declared.append(String(bare)) }
        }
        #expect(declared.count == 15)
        var implementation = ""
        for file in try FileManager.default.contentsOfDirectory(at: TFQCAPISources.directory, includingPropertiesForKeys: nil) {
            implementation += try String(contentsOf: file, encoding: .utf8)
        }
        let check = try String(contentsOf: TFQCAPISources.directory.appendingPathComponent("SignatureCheck.swift"), encoding: .utf8)
        for name in declared {
            #expect(implementation.contains("@_cdecl(\"\(name)\")\npublic func \(name)("), "\(name) has no @_cdecl implementation of that name")
            #expect(check.contains("same(type(of: CTFQ.\(name)), type(of: TFQCAPI.\(name)))"), "\(name) is not in SignatureCheck.swift")
        }
        #expect(implementation.components(separatedBy: "@_cdecl(").count - 1 == declared.count)
    }
}

/// Where the C API's sources are, from this file's path.
enum TFQCAPISources {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let header = root.appendingPathComponent("Sources/CTFQ/include/tfq.h")
    static let directory = root.appendingPathComponent("Sources/TFQCAPI")
}
