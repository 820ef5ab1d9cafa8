import Foundation
import Testing
@testable import TFQCAPI

/// Every C entry point against misuse: NULL pointers, closed and foreign handles, short
/// buffers, bad values. Each must return an error status with a message, never trap.
@Suite(.serialized) struct CAPITests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TFQRuntimeTests/Fixtures/golden.int8.tfq").path

    static func lastError() -> String { String(cString: tfq_last_error()) }

    @Test func happyPath() throws {
        var model: OpaquePointer?
        #expect(tfq_model_open(Self.model, &model) == 0)
        var info = [Int32](repeating: -1, count: 7)
        #expect(info.withUnsafeMutableBytes { tfq_model_get_info(model, $0.baseAddress) } == 0)
        #expect(info[1] == 64 && info[2] == 2 && info[4] == 32 && info[6] == 1)
        var tokens = [Int32](repeating: 0, count: 16)
        var count = 0
        #expect(tfq_tokenize(model, "the king", 8, &tokens, 16, &count) == 0 && count == 8)
        var text = [CChar](repeating: 0, count: 16)
        var length = 0
        #expect(tfq_detokenize(model, tokens, count, &text, 16, &length) == 0 && length == 8)
        #expect(String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "the king")
        var session: OpaquePointer?
        #expect(tfq_session_new(model, 1, &session) == 0)
        var logits = [Float](repeating: .nan, count: Int(info[0]))
        #expect(tfq_session_eval(session, tokens, count, &logits, logits.count) == 0)
        let finite = logits.allSatisfy { $0.isFinite }
        #expect(finite)
        var position: Int32 = 0
        #expect(tfq_session_position(session, &position) == 0 && position == 8)
        var generated: Int32 = 0
        #expect(tfq_generate(session, tokens, 1, 5, nil, nil, nil, &generated) == 0 && generated == 5)
        // A callback that asks to stop after two tokens.
        var seen: Int32 = 0
        let stop: TokenCallback = { _, _, _, user in
            let counter = user!.assumingMemoryBound(to: Int32.self)
            counter.pointee += 1
            return counter.pointee >= 2 ? 1 : 0
        }
        #expect(tfq_session_reset(session) == 0)
        #expect(tfq_generate(session, tokens, count, 50, nil, stop, &seen, &generated) == 0 && generated == 2 && seen == 2)
        tfq_model_close(model)
        // The session keeps the model alive after its handle is closed.
        #expect(tfq_session_reset(session) == 0)
        #expect(tfq_session_eval(session, tokens, 1, &logits, logits.count) == 0)
        tfq_session_free(session)
        #expect(String(cString: tfq_version()).split(separator: ".").count == 3)
    }

    @Test func misuseIsAnErrorNeverACrash() throws {
        var model: OpaquePointer?
        #expect(tfq_model_open(nil, &model) == 1 && model == nil)
        #expect(tfq_model_open(Self.model, nil) == 1)
        #expect(tfq_model_open("/no/such/file.tfq", &model) == 2 && Self.lastError().contains("cannot open"))
        #expect(tfq_model_open(#filePath, &model) == 2 && Self.lastError().contains("not a tfq file"))
        #expect(tfq_model_open(Self.model, &model) == 0)
        var session: OpaquePointer?
        #expect(tfq_session_new(model, -1, &session) == 1)
        #expect(tfq_session_new(model, 1, &session) == 0)

        var count = 0
        var tokens = [Int32](repeating: 0, count: 4)
        #expect(tfq_tokenize(model, "the king", 8, &tokens, 4, &count) == 3 && count == 8)  // buffer too small
        #expect(tfq_tokenize(model, "THE", 3, &tokens, 4, &count) == 5)                     // unknown character
        #expect(tfq_tokenize(model, nil, 3, &tokens, 4, &count) == 1)
        #expect(tfq_tokenize(model, "x", 1, &tokens, 4, nil) == 1)
        var bytes = [CChar](repeating: 0, count: 2)
        var length = 0
        #expect(tfq_detokenize(model, [1, 2, 3], 3, &bytes, 2, &length) == 3 && length == 3)
        #expect(tfq_detokenize(model, [9999], 1, &bytes, 2, &length) == 1)

        var logits = [Float](repeating: 0, count: 4)
        #expect(tfq_session_eval(session, [1], 1, &logits, 4) == 3)             // vocabulary is larger than 4
        var big = [Float](repeating: 0, count: 1024)
        #expect(tfq_session_eval(session, [9999], 1, &big, 1024) == 1)
        #expect(tfq_session_eval(session, nil, 1, &big, 1024) == 1)
        #expect(tfq_session_eval(session, [Int32](repeating: 1, count: 65), 65, &big, 1024) == 4)  // context is 64
        var bad = (temperature: Float(-1), topK: Int32(0), topP: Float(1), pad: Int32(0), seed: UInt64(0))
        #expect(withUnsafeBytes(of: &bad) { tfq_generate(session, [1], 1, 3, $0.baseAddress, nil, nil, nil) } == 1)
        #expect(tfq_generate(session, [1], 1, -1, nil, nil, nil, nil) == 1)
        #expect(tfq_generate(session, [1], 0, 3, nil, nil, nil, nil) == 1)

        // Handles of the wrong kind, made up, closed.
        var info = [Int32](repeating: 0, count: 7)
        #expect(info.withUnsafeMutableBytes { tfq_model_get_info(session, $0.baseAddress) } == 1)
        #expect(tfq_session_reset(model) == 1)
        #expect(tfq_session_reset(OpaquePointer(bitPattern: 0x1234)) == 1)
        tfq_session_free(session)
        tfq_session_free(session)   // twice: ignored
        #expect(tfq_session_reset(session) == 1 && Self.lastError().contains("not an open session"))
        tfq_model_close(model)
        tfq_model_close(model)
        #expect(tfq_session_new(model, 1, &session) == 1)
        tfq_model_close(nil)
        tfq_session_free(nil)
    }
}
