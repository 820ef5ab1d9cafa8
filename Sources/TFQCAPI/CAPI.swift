#if canImport(Glibc)
import Glibc
#endif
import CTFQ
import TFQFormat
import TFQKernels
import TFQRuntime

// The functions tfq.h declares (module CTFQ), under the same names and with its types;
// SignatureCheck.swift holds each one to its declaration. Each function checks every
// argument, catches every error, and reports it as a status code plus a thread-local message
// (Status.swift); nothing here may trap.

/// Written once, then only read by C callers.
nonisolated(unsafe) private let versionString: UnsafeMutablePointer<CChar> = strdup(TFQVersion.string)!

/// C's `tfq_version` (contract in include/tfq.h): ``TFQVersion/string``, copied once into
/// memory that is never freed.
@_cdecl("tfq_version")
public func tfq_version() -> UnsafePointer<CChar>? { UnsafePointer(versionString) }

/// C's `tfq_last_error` (contract in include/tfq.h): the calling thread's message, kept in
/// thread-specific storage by `LastError`.
@_cdecl("tfq_last_error")
public func tfq_last_error() -> UnsafePointer<CChar>? { LastError.current }

/// The flags of tfq_model_open_flags (tfq.h's TFQ_OPEN_*).
enum OpenFlag {
    static let verify: UInt32 = TFQ_OPEN_VERIFY
    static let copy: UInt32 = TFQ_OPEN_COPY
    static let all = verify | copy
}

/// C's `tfq_model_open` (contract in include/tfq.h): `tfq_model_open_flags` with no flags.
@_cdecl("tfq_model_open")
public func tfq_model_open(_ path: UnsafePointer<CChar>?, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> tfq_status {
    openModel(path, flags: 0, out, function: "tfq_model_open")
}

/// C's `tfq_model_open_flags` (contract in include/tfq.h): a ``Model`` behind a new handle
/// (`Handles`); the flags map to its `verify` and `copyIntoMemory`.
@_cdecl("tfq_model_open_flags")
public func tfq_model_open_flags(_ path: UnsafePointer<CChar>?, _ flags: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> tfq_status {
    openModel(path, flags: flags, out, function: "tfq_model_open_flags")
}

private func openModel(_ path: UnsafePointer<CChar>?, flags: UInt32, _ out: UnsafeMutablePointer<OpaquePointer?>?, function: String) -> tfq_status {
    guard let path, let out else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "\(function): path and model must not be NULL") }
    out.pointee = nil
    guard flags & ~OpenFlag.all == 0 else {
        return fail(TFQ_ERROR_INVALID_ARGUMENT, "\(function): unknown flags 0x\(String(flags & ~OpenFlag.all, radix: 16))")
    }
    do {
        let model = try Model(path: String(cString: path), verify: flags & OpenFlag.verify != 0,
                              copyIntoMemory: flags & OpenFlag.copy != 0)
        out.pointee = Handles.open(ModelHandle(model: model))
        return TFQ_OK
    } catch {
        return fail(error)
    }
}

/// C's `tfq_model_close` (contract in include/tfq.h): drops the handle's reference; each
/// session holds its own reference to the model, so sessions outlive the handle. A closed or
/// unknown handle is ignored.
@_cdecl("tfq_model_close")
public func tfq_model_close(_ model: OpaquePointer?) {
    Handles.close(model, as: ModelHandle.self)
}

/// C's `tfq_model_get_info` (contract in include/tfq.h): fills `info` from the model's config.
@_cdecl("tfq_model_get_info")
public func tfq_model_get_info(_ handle: OpaquePointer?, _ info: UnsafeMutablePointer<tfq_model_info>?) -> tfq_status {
    guard let model = Handles.get(handle, as: ModelHandle.self)?.model else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_model_get_info: not an open model") }
    guard let info else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_model_get_info: info must not be NULL") }
    let c = model.config
    info.pointee = tfq_model_info(vocab_size: Int32(c.vocabSize), context_length: Int32(c.contextLength), n_layers: Int32(c.layers),
                                  n_heads: Int32(c.heads), dim: Int32(c.dim), ff_dim: Int32(c.ffDim), quantized: model.isQuantized ? 1 : 0)
    return TFQ_OK
}

/// C's `tfq_tokenize` (contract in include/tfq.h): the model's tokenizer on the text,
/// which must be valid UTF-8.
@_cdecl("tfq_tokenize")
public func tfq_tokenize(_ handle: OpaquePointer?, _ text: UnsafePointer<CChar>?, _ length: Int,
                         _ tokens: UnsafeMutablePointer<Int32>?, _ capacity: Int, _ count: UnsafeMutablePointer<Int>?) -> tfq_status {
    guard let model = Handles.get(handle, as: ModelHandle.self)?.model else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_tokenize: not an open model") }
    guard let count, length >= 0, capacity >= 0, text != nil || length == 0, tokens != nil || capacity == 0 else {
        return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_tokenize: NULL pointer or negative length")
    }
    let bytes = UnsafeRawBufferPointer(start: text, count: length)
    guard let string = String(validating: bytes, as: UTF8.self) else { return fail(TFQ_ERROR_INVALID_UTF8, "tfq_tokenize: the text is not valid UTF-8") }
    do {
        let ids = try model.tokenizer.encode(string)
        count.pointee = ids.count
        guard ids.count <= capacity else {
            return fail(TFQ_ERROR_BUFFER_TOO_SMALL, "tfq_tokenize: \(ids.count) tokens do not fit in a buffer of \(capacity)")
        }
        ids.withUnsafeBufferPointer { tokens?.update(from: $0.baseAddress!, count: ids.count) }
        return TFQ_OK
    } catch {
        return fail(error)
    }
}

/// C's `tfq_detokenize` (contract in include/tfq.h): each token's bytes as the tokenizer
/// gives them after the token before it.
@_cdecl("tfq_detokenize")
public func tfq_detokenize(_ handle: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ count: Int,
                           _ text: UnsafeMutablePointer<CChar>?, _ capacity: Int, _ length: UnsafeMutablePointer<Int>?) -> tfq_status {
    guard let model = Handles.get(handle, as: ModelHandle.self)?.model else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_detokenize: not an open model") }
    guard let length, count >= 0, capacity >= 0, tokens != nil || count == 0, text != nil || capacity == 0 else {
        return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_detokenize: NULL pointer or negative length")
    }
    let vocabulary = model.config.vocabSize
    var bytes: [UInt8] = []
    for i in 0..<count {
        let token = tokens![i]
        guard token >= 0 && Int(token) < vocabulary else {
            return fail(TFQ_ERROR_INVALID_TOKEN, "tfq_detokenize: token id \(token) is outside the vocabulary (0..<\(vocabulary))")
        }
        bytes += model.tokenizer.bytes(of: token, after: i > 0 ? tokens![i - 1] : nil)
    }
    length.pointee = bytes.count
    guard bytes.count <= capacity else { return fail(TFQ_ERROR_BUFFER_TOO_SMALL, "tfq_detokenize: \(bytes.count) bytes do not fit in \(capacity)") }
    bytes.withUnsafeBytes { UnsafeMutableRawPointer(text)?.copyMemory(from: $0.baseAddress!, byteCount: bytes.count) }
    return TFQ_OK
}

/// C's `tfq_session_new` (contract in include/tfq.h): a ``Session`` with the default cache
/// and capacity behind a new handle; `threads` must be 0 to 256.
@_cdecl("tfq_session_new")
public func tfq_session_new(_ handle: OpaquePointer?, _ threads: Int32, _ out: UnsafeMutablePointer<OpaquePointer?>?) -> tfq_status {
    guard let model = Handles.get(handle, as: ModelHandle.self)?.model else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_new: not an open model") }
    guard let out else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_new: session must not be NULL") }
    guard threads >= 0 && threads <= 256 else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_new: threads must be 0 to 256") }
    out.pointee = nil
    do {
        let session = try Session(model: model, threads: threads == 0 ? ThreadPool.availableProcessors : Int(threads))
        out.pointee = Handles.open(SessionHandle(session: session))
    } catch {
        return fail(error)
    }
    return TFQ_OK
}

/// C's `tfq_session_free` (contract in include/tfq.h); a closed or unknown handle is ignored.
@_cdecl("tfq_session_free")
public func tfq_session_free(_ session: OpaquePointer?) {
    Handles.close(session, as: SessionHandle.self)
}

/// C's `tfq_session_reset` (contract in include/tfq.h).
@_cdecl("tfq_session_reset")
public func tfq_session_reset(_ handle: OpaquePointer?) -> tfq_status {
    guard let session = Handles.get(handle, as: SessionHandle.self)?.session else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_reset: not an open session") }
    session.reset()
    return TFQ_OK
}

/// C's `tfq_session_position` (contract in include/tfq.h).
@_cdecl("tfq_session_position")
public func tfq_session_position(_ handle: OpaquePointer?, _ position: UnsafeMutablePointer<Int32>?) -> tfq_status {
    guard let session = Handles.get(handle, as: SessionHandle.self)?.session else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_position: not an open session") }
    guard let position else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_position: position must not be NULL") }
    position.pointee = Int32(session.position)
    return TFQ_OK
}

/// C's `tfq_session_eval` (contract in include/tfq.h): the context is checked before the
/// tokens are copied, so a `count` too large for it is refused without reading them.
@_cdecl("tfq_session_eval")
public func tfq_session_eval(_ handle: OpaquePointer?, _ tokens: UnsafePointer<Int32>?, _ count: Int,
                             _ logits: UnsafeMutablePointer<Float>?, _ capacity: Int) -> tfq_status {
    guard let session = Handles.get(handle, as: SessionHandle.self)?.session else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_eval: not an open session") }
    // A size_t above Int.max arrives negative: a count too large, not a missing one.
    guard count >= 0 else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_eval: count \(UInt(bitPattern: count)) is too large") }
    guard count > 0 else { return fail(TFQ_ERROR_NO_TOKENS, "tfq_session_eval: no tokens (count is 0)") }
    guard let tokens else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_session_eval: tokens must not be NULL") }
    let vocabulary = session.model.config.vocabSize
    guard let logits, capacity >= vocabulary else {
        return fail(TFQ_ERROR_BUFFER_TOO_SMALL, "tfq_session_eval: logits needs \(vocabulary) floats, got \(UInt(bitPattern: capacity))")
    }
    // Refused before the tokens are read: a count larger than the caller's array is the
    // likely mistake, and copying it would read past that array.
    if let full = contextFull(session, adding: count) { return fail(TFQ_ERROR_CONTEXT_FULL, "tfq_session_eval: \(full)") }
    do {
        try session.evaluate(Array(UnsafeBufferPointer(start: tokens, count: count))) {
            logits.update(from: $0.baseAddress!, count: vocabulary)
        }
        return TFQ_OK
    } catch {
        return fail(error)
    }
}

/// The message when `count` more tokens do not fit in the session's context, else nil.
private func contextFull(_ session: Session, adding count: Int) -> String? {
    let context = session.capacity
    guard count > context - session.position else { return nil }
    return SessionError.contextFull(needed: session.position + count, context: context).description
}

/// C's `tfq_generate` (contract in include/tfq.h): ``Session``'s generation with the C
/// sampling parameters (greedy when NULL), each piece passed to `callback` as UTF-8.
@_cdecl("tfq_generate")
public func tfq_generate(_ handle: OpaquePointer?, _ prompt: UnsafePointer<Int32>?, _ promptCount: Int, _ maxTokens: Int32,
                         _ sampling: UnsafePointer<tfq_sampling>?, _ callback: tfq_token_callback?, _ userData: UnsafeMutableRawPointer?,
                         _ generated: UnsafeMutablePointer<Int32>?) -> tfq_status {
    // Set first, so that every failure leaves it 0 (tfq.h).
    generated?.pointee = 0
    guard let session = Handles.get(handle, as: SessionHandle.self)?.session else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_generate: not an open session") }
    guard promptCount >= 0 else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_generate: prompt_count \(UInt(bitPattern: promptCount)) is too large") }
    guard promptCount > 0 else { return fail(TFQ_ERROR_NO_TOKENS, "tfq_generate: the prompt must hold at least one token") }
    guard let prompt else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_generate: prompt must not be NULL") }
    guard maxTokens >= 0 else { return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_generate: max_tokens must not be negative") }
    if let full = contextFull(session, adding: promptCount) { return fail(TFQ_ERROR_CONTEXT_FULL, "tfq_generate: \(full)") }
    var parameters = SamplingParameters.greedy
    if let sampling = sampling?.pointee {
        parameters.temperature = sampling.temperature
        parameters.topK = Int(sampling.top_k)
        parameters.topP = sampling.top_p
        parameters.seed = sampling.seed
        guard parameters.temperature >= 0, parameters.temperature.isFinite, parameters.topK >= 0,
              parameters.topP > 0, parameters.topP <= 1 else {
            return fail(TFQ_ERROR_INVALID_ARGUMENT, "tfq_generate: sampling needs temperature ≥ 0, top_k ≥ 0, 0 < top_p ≤ 1")
        }
    }
    if maxTokens == 0 { return TFQ_OK }
    var count: Int32 = 0
    do {
        try session.generate(prompt: Array(UnsafeBufferPointer(start: prompt, count: promptCount)), maxTokens: Int(maxTokens),
                             sampling: parameters) { token, piece in
            // The stop token comes only to carry an unfinished character's U+FFFD: not counted.
            if token != session.model.tokenizer.stopToken {
                count += 1
                generated?.pointee = count
            }
            guard let callback else { return true }
            var text = piece
            return text.withUTF8 { bytes in
                bytes.withMemoryRebound(to: CChar.self) { callback(token, $0.baseAddress, $0.count, userData) == 0 }
            }
        }
        return TFQ_OK
    } catch {
        return fail(error)
    }
}
