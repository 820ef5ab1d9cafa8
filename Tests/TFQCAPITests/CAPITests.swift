import CTFQ
import Foundation
import Testing
@testable import TFQCAPI

/// Failed expectations print TFQ_ERROR_FILE, not tfq_status(rawValue: 2).
extension tfq_status: @retroactive CustomStringConvertible {
    public var description: String { String(cString: tfq_status_name(self)) }
}

/// Every C entry point against misuse: NULL pointers, closed and foreign handles, short
/// buffers, bad values. Each must return an error status with a message, never trap.
@Suite(.serialized) struct CAPITests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("TFQRuntimeTests/Fixtures/golden.int8.tfq").path

    static func lastError() -> String { String(cString: tfq_last_error()) }

    @Test func happyPath() throws {
        var model: OpaquePointer?
        #expect(tfq_model_open(Self.model, &model) == TFQ_OK)
        var info = tfq_model_info(vocab_size: -1, context_length: -1, n_layers: -1, n_heads: -1, dim: -1, ff_dim: -1, quantized: -1)
        #expect(tfq_model_get_info(model, &info) == TFQ_OK)
        #expect(info.vocab_size == 25 && info.context_length == 64 && info.n_layers == 2 && info.n_heads == 2)
        #expect(info.dim == 32 && info.ff_dim == 128 && info.quantized == 1)
        var tokens = [Int32](repeating: 0, count: 16)
        var count = 0
        #expect(tfq_tokenize(model, "the king", 8, &tokens, 16, &count) == TFQ_OK && count == 8)
        #expect(tokens[..<count] == [21, 10, 7, 1, 12, 11, 15, 9])   // golden.json's prompt_token_ids
        var text = [CChar](repeating: 0, count: 16)
        var length = 0
        #expect(tfq_detokenize(model, tokens, count, &text, 16, &length) == TFQ_OK && length == 8)
        #expect(String(decoding: text[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "the king")
        var session: OpaquePointer?
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)
        var logits = [Float](repeating: .nan, count: Int(info.vocab_size))
        #expect(tfq_session_eval(session, tokens, count, &logits, logits.count) == TFQ_OK)
        let finite = logits.allSatisfy { $0.isFinite }
        #expect(finite)
        var position: Int32 = 0
        #expect(tfq_session_position(session, &position) == TFQ_OK && position == 8)
        var generated: Int32 = 0
        #expect(tfq_generate(session, tokens, 1, 5, nil, nil, nil, &generated) == TFQ_OK && generated == 5)
        // A callback that asks to stop after two tokens.
        var seen: Int32 = 0
        let stop: tfq_token_callback = { _, _, _, user in
            let counter = user!.assumingMemoryBound(to: Int32.self)
            counter.pointee += 1
            return counter.pointee >= 2 ? 1 : 0
        }
        #expect(tfq_session_reset(session) == TFQ_OK)
        #expect(tfq_generate(session, tokens, count, 50, nil, stop, &seen, &generated) == TFQ_OK && generated == 2 && seen == 2)
        tfq_model_close(model)
        // The session keeps the model alive after its handle is closed.
        #expect(tfq_session_reset(session) == TFQ_OK)
        #expect(tfq_session_eval(session, tokens, 1, &logits, logits.count) == TFQ_OK)
        tfq_session_free(session)
        #expect(String(cString: tfq_version()).split(separator: ".").count == 3)
    }

    /// Sampling read through tfq_sampling's fields: the same seed gives the same tokens, and
    /// top_k 1 is greedy whatever the temperature.
    @Test func samplingParameters() throws {
        var model: OpaquePointer?, session: OpaquePointer?
        #expect(tfq_model_open(Self.model, &model) == TFQ_OK)
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)
        defer { tfq_session_free(session); tfq_model_close(model) }
        let collect: tfq_token_callback = { token, _, _, user in
            user!.assumingMemoryBound(to: [Int32].self).pointee.append(token)
            return 0
        }
        func run(_ sampling: tfq_sampling?) -> [Int32] {
            var tokens: [Int32] = []
            #expect(tfq_session_reset(session) == TFQ_OK)
            let status = withUnsafeMutablePointer(to: &tokens) { user in
                if var sampling { return tfq_generate(session, [21], 1, 12, &sampling, collect, user, nil) }
                return tfq_generate(session, [21], 1, 12, nil, collect, user, nil)
            }
            #expect(status == TFQ_OK)
            return tokens
        }
        let greedy = run(nil)
        #expect(greedy.count == 12)
        #expect(run(tfq_sampling(temperature: 0, top_k: 0, top_p: 1, seed: 9)) == greedy)
        #expect(run(tfq_sampling(temperature: 5, top_k: 1, top_p: 1, seed: 9)) == greedy)
        let hot = tfq_sampling(temperature: 5, top_k: 0, top_p: 1, seed: 42)
        let first = run(hot)
        #expect(run(hot) == first)
        #expect(first != greedy)   // at temperature 5 over 25 tokens, 12 greedy picks in a row do not happen
    }

    @Test func misuseIsAnErrorNeverACrash() throws {
        var model: OpaquePointer?
        #expect(tfq_model_open(nil, &model) == TFQ_ERROR_INVALID_ARGUMENT && model == nil)
        #expect(tfq_model_open(Self.model, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_model_open(Self.model, &model) == TFQ_OK)
        var session: OpaquePointer?
        #expect(tfq_session_new(model, -1, &session) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_session_new(model, 257, &session) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)

        var count = 0
        var tokens = [Int32](repeating: 0, count: 4)
        #expect(tfq_tokenize(model, nil, 3, &tokens, 4, &count) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_tokenize(model, "x", 1, &tokens, 4, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_tokenize(model, "x", 1, nil, 4, &count) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_tokenize(model, "", 0, nil, 0, &count) == TFQ_OK && count == 0)
        var bytes = [CChar](repeating: 0, count: 2)
        var length = 0
        #expect(tfq_detokenize(model, nil, 1, &bytes, 2, &length) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_detokenize(model, [1], 1, &bytes, 2, nil) == TFQ_ERROR_INVALID_ARGUMENT)

        var big = [Float](repeating: 0, count: 1024)
        #expect(tfq_session_eval(session, nil, 1, &big, 1024) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(Self.lastError() == "tfq_session_eval: tokens must not be NULL")
        var bad = tfq_sampling(temperature: -1, top_k: 0, top_p: 1, seed: 0)
        #expect(tfq_generate(session, [1], 1, 3, &bad, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        bad = tfq_sampling(temperature: 1, top_k: -1, top_p: 1, seed: 0)
        #expect(tfq_generate(session, [1], 1, 3, &bad, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        bad = tfq_sampling(temperature: 1, top_k: 0, top_p: 0, seed: 0)
        #expect(tfq_generate(session, [1], 1, 3, &bad, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        bad = tfq_sampling(temperature: .nan, top_k: 0, top_p: 1, seed: 0)
        #expect(tfq_generate(session, [1], 1, 3, &bad, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(Self.lastError() == "tfq_generate: sampling needs temperature ≥ 0, top_k ≥ 0, 0 < top_p ≤ 1")
        #expect(tfq_generate(session, [1], 1, -1, nil, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_generate(session, nil, 1, 3, nil, nil, nil, nil) == TFQ_ERROR_INVALID_ARGUMENT)

        // Handles of the wrong kind, made up, closed.
        var info = tfq_model_info()
        #expect(tfq_model_get_info(session, &info) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_model_get_info(model, nil) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_session_reset(model) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(tfq_session_reset(OpaquePointer(bitPattern: 0x1234)) == TFQ_ERROR_INVALID_ARGUMENT)
        tfq_session_free(session)
        tfq_session_free(session)   // twice: ignored
        #expect(tfq_session_reset(session) == TFQ_ERROR_INVALID_ARGUMENT && Self.lastError().contains("not an open session"))
        tfq_model_close(model)
        tfq_model_close(model)
        #expect(tfq_session_new(model, 1, &session) == TFQ_ERROR_INVALID_ARGUMENT)
        tfq_model_close(nil)
        tfq_session_free(nil)
    }
}
