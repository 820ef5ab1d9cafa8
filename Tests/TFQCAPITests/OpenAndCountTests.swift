import CTFQ
import Foundation
import Testing
@testable import TFQCAPI
import TFQFormat

/// tfq_model_open on what is not a regular file, tfq_model_open_flags' verification, and the
/// counts and out-parameters of tfq_session_eval and tfq_generate.
@Suite(.serialized) struct OpenAndCountTests {
    static func lastError() -> String { String(cString: tfq_last_error()) }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-capi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A FIFO without a writer: refused at once. If the open blocked (waiting for a writer),
    /// a watchdog opens the write end after a generous bound so the call returns and the test
    /// fails instead of hanging.
    @Test func aFIFOIsRefusedWithoutWaiting() throws {
        let fifo = try Self.temporaryDirectory().appendingPathComponent("f.tfq").path
        #expect(mkfifo(fifo, 0o600) == 0)
        let done = DispatchSemaphore(value: 0), watch = DispatchGroup()
        nonisolated(unsafe) var hung = false
        DispatchQueue.global().async(group: watch) {
            guard done.wait(timeout: .now() + 60) == .timedOut else { return }
            hung = true
            repeat {
                let writer = open(fifo, O_WRONLY | O_NONBLOCK)   // succeeds once a reader waits in open
                if writer >= 0 { close(writer) }
            } while done.wait(timeout: .now() + 0.2) == .timedOut
        }
        var model: OpaquePointer?
        let status = tfq_model_open(fifo, &model)
        done.signal()
        watch.wait()
        #expect(!hung, "tfq_model_open waited for a writer")
        #expect(status == TFQ_ERROR_CANNOT_OPEN && model == nil)
        #expect(Self.lastError() == fifo + ": is not a regular file (a FIFO)")
        #expect(tfq_model_open("/dev/zero", &model) == TFQ_ERROR_CANNOT_OPEN)
        #expect(Self.lastError() == "/dev/zero: is not a regular file (a character device)")
    }

    /// A bit flipped in a weight: tfq_model_open takes the file, TFQ_OPEN_VERIFY refuses it.
    @Test func openFlagsVerifyEveryChecksum() throws {
        let damaged = try Self.temporaryDirectory().appendingPathComponent("d.tfq").path
        var bytes = try Data(contentsOf: URL(fileURLWithPath: CAPITests.model))
        let weight = try #require(try TFQFile(path: CAPITests.model).info("blocks.1.attn.proj.weight"))
        bytes[weight.offset + 100] ^= 0x10
        try bytes.write(to: URL(fileURLWithPath: damaged))
        var model: OpaquePointer?
        #expect(tfq_model_open(damaged, &model) == TFQ_OK)
        tfq_model_close(model)
        #expect(tfq_model_open_flags(damaged, 0, &model) == TFQ_OK)
        tfq_model_close(model)
        model = OpaquePointer(bitPattern: 0x10)
        #expect(tfq_model_open_flags(damaged, TFQ_OPEN_VERIFY, &model) == TFQ_ERROR_FILE && model == nil)
        #expect(Self.lastError() == damaged + ": tensor 'blocks.1.attn.proj.weight': checksum mismatch (corrupt data)")
        #expect(tfq_model_open_flags(CAPITests.model, TFQ_OPEN_VERIFY, &model) == TFQ_OK && model != nil)
        tfq_model_close(model)
        #expect(tfq_model_open_flags(CAPITests.model, TFQ_OPEN_VERIFY | TFQ_OPEN_COPY, &model) == TFQ_OK && model != nil)
        tfq_model_close(model)
        #expect(tfq_model_open_flags(CAPITests.model, 6, &model) == TFQ_ERROR_INVALID_ARGUMENT && model == nil)
        #expect(Self.lastError() == "tfq_model_open_flags: unknown flags 0x4")
        #expect(tfq_model_open_flags(nil, TFQ_OPEN_VERIFY, &model) == TFQ_ERROR_INVALID_ARGUMENT)
    }

    @Test func generatedIsZeroAfterEveryError() throws {
        var model: OpaquePointer?, session: OpaquePointer?
        #expect(tfq_model_open(CAPITests.model, &model) == TFQ_OK)
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)
        let token: [Int32] = [1]
        var generated: Int32 = 77
        let invalid: [() -> tfq_status] = [{ tfq_generate(nil, token, 1, 3, nil, nil, nil, &generated) },
                                           { tfq_generate(model, token, 1, 3, nil, nil, nil, &generated) },   // a model is not a session
                                           { tfq_generate(session, nil, 1, 3, nil, nil, nil, &generated) },
                                           { tfq_generate(session, token, 1, -1, nil, nil, nil, &generated) }]
        for call in invalid {
            generated = 77
            #expect(call() == TFQ_ERROR_INVALID_ARGUMENT && generated == 0)
        }
        generated = 77
        #expect(tfq_generate(session, token, 0, 3, nil, nil, nil, &generated) == TFQ_ERROR_NO_TOKENS && generated == 0)
        generated = 77
        #expect(tfq_generate(session, [-1], 1, 3, nil, nil, nil, &generated) == TFQ_ERROR_INVALID_TOKEN && generated == 0)
        tfq_session_free(session)
        tfq_model_close(model)
    }

    @Test func countsTooLarge() throws {
        var model: OpaquePointer?, session: OpaquePointer?
        #expect(tfq_model_open(CAPITests.model, &model) == TFQ_OK)
        #expect(tfq_session_new(model, 1, &session) == TFQ_OK)
        var logits = [Float](repeating: 0, count: 1024)
        let token: [Int32] = [1]
        // size_t values above Int.max (SIZE_MAX is -1 as a Swift Int).
        #expect(tfq_session_eval(session, token, -1, &logits, logits.count) == TFQ_ERROR_INVALID_ARGUMENT)
        #expect(Self.lastError() == "tfq_session_eval: count \(UInt.max) is too large")
        var generated: Int32 = 77
        #expect(tfq_generate(session, token, -1, 3, nil, nil, nil, &generated) == TFQ_ERROR_INVALID_ARGUMENT && generated == 0)
        #expect(Self.lastError() == "tfq_generate: prompt_count \(UInt.max) is too large")
        // Counts larger than the array and than the context: refused before the array is
        // read (copying 2^40 tokens from a one-token array would read far past it).
        #expect(tfq_session_eval(session, token, 1 << 40, &logits, logits.count) == TFQ_ERROR_CONTEXT_FULL)
        #expect(Self.lastError() == "tfq_session_eval: \(1 << 40) tokens do not fit in the session's context of 64")
        generated = 77
        #expect(tfq_generate(session, token, 1 << 40, 3, nil, nil, nil, &generated) == TFQ_ERROR_CONTEXT_FULL && generated == 0)
        tfq_session_free(session)
        tfq_model_close(model)
    }

    /// The model file truncated under a running session (another process's ftruncate): the
    /// host process lives, and generation fails with TFQ_ERROR_FILE; a TFQ_OPEN_COPY model
    /// goes on unaffected.
    @Test func aTruncatedModelFailsTheCallNotTheProcess() throws {
        let directory = try Self.temporaryDirectory()
        let mapped = directory.appendingPathComponent("mapped.tfq").path, copied = directory.appendingPathComponent("copied.tfq").path
        try FileManager.default.copyItem(atPath: CAPITests.model, toPath: mapped)
        try FileManager.default.copyItem(atPath: CAPITests.model, toPath: copied)
        var a: OpaquePointer?, b: OpaquePointer?, sa: OpaquePointer?, sb: OpaquePointer?
        #expect(tfq_model_open(mapped, &a) == TFQ_OK && tfq_model_open_flags(copied, TFQ_OPEN_COPY, &b) == TFQ_OK)
        #expect(tfq_session_new(a, 2, &sa) == TFQ_OK && tfq_session_new(b, 2, &sb) == TFQ_OK)
        let prompt: [Int32] = [1, 2, 3]
        // Collects the generated ids into the [Int32] that user_data points to.
        let collect: tfq_token_callback = { token, _, _, user in
            user!.assumingMemoryBound(to: [Int32].self).pointee.append(token)
            return 0
        }
        var generated: Int32 = 0
        // `&array` would pass the elements' address: the callback needs the Array itself.
        func generate(_ session: OpaquePointer?) -> (status: tfq_status, tokens: [Int32]) {
            var tokens: [Int32] = []
            let status = withUnsafeMutablePointer(to: &tokens) { tfq_generate(session, prompt, 3, 8, nil, collect, $0, &generated) }
            return (status, tokens)
        }
        let before = generate(sa)
        #expect(before.status == TFQ_OK && generated == 8 && before.tokens.count == 8)
        #expect(truncate(mapped, 0) == 0 && truncate(copied, 0) == 0)
        #expect(tfq_session_reset(sa) == TFQ_OK && tfq_session_reset(sb) == TFQ_OK)
        let failed = generate(sa)
        #expect(failed.status == TFQ_ERROR_FILE && generated == 0 && failed.tokens.isEmpty)
        #expect(Self.lastError() == mapped + " was truncated while in use; the result is discarded (reopen the model)")
        let after = generate(sb)
        #expect(after.status == TFQ_OK && generated == 8)
        #expect(after.tokens == before.tokens)
        tfq_session_free(sa); tfq_session_free(sb); tfq_model_close(a); tfq_model_close(b)
    }
}
