import TFQModel

/// Why generation stopped.
public enum StopReason: String, Sendable {
    /// The requested number of tokens was produced.
    case length
    /// The session's context is full (the model's context, or the session's smaller capacity).
    case context
    /// The callback asked to stop.
    case cancelled
    /// The model produced its tokenizer's stop token (``Tokenizer/stopToken``).
    case endOfText = "end-of-text"
}

extension Session {
    /// Feeds `prompt` (in one batched pass), then produces up to `maxTokens` tokens, calling
    /// `onToken` with each token and the text it completes. Return false from `onToken` to stop.
    /// Generation also ends at the tokenizer's stop token, which is not passed to `onToken`,
    /// unless `ignoringEndOfText` (the token is then generated like any other).
    @discardableResult
    public func generate(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy, ignoringEndOfText: Bool = false,
                         onToken: (Int32, String) -> Bool = { _, _ in true }) throws -> StopReason {
        var sampler = Sampler(sampling)
        var text = TextStream()
        var logits = try evaluate(prompt)
        var previous = prompt.last
        for produced in 0..<maxTokens {
            let token = sampler.next(logits)
            if !ignoringEndOfText && token == model.tokenizer.stopToken { return .endOfText }
            let piece = text.append(model.tokenizer.bytes(of: token, after: previous))
            previous = token
            if !onToken(token, piece) { return .cancelled }
            if produced + 1 == maxTokens { break }
            if position >= capacity { return .context }
            logits = try evaluate(token: token)
        }
        return .length
    }
}

/// One generated token and the text it completes (empty while a character is split across
/// byte tokens).
public struct GeneratedToken: Sendable, Equatable {
    public let id: Int32
    public let text: String
}

extension Session {
    /// The tokens `generate` would produce, as an `AsyncSequence`: each `next()` runs one
    /// decode step, so a consumer that stops iterating stops the work.
    ///
    ///     for try await token in session.tokens(prompt: ids, maxTokens: 100) { print(token.text, terminator: "") }
    public func tokens(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy) -> TokenSequence {
        TokenSequence(session: self, prompt: prompt, maxTokens: maxTokens, sampling: sampling)
    }
}

/// Generated tokens, one decode step per element.
public struct TokenSequence: AsyncSequence {
    public typealias Element = GeneratedToken
    let session: Session
    let prompt: [Int32]
    let maxTokens: Int
    let sampling: SamplingParameters

    public func makeAsyncIterator() -> Iterator {
        Iterator(session: session, prompt: prompt, maxTokens: maxTokens, sampler: Sampler(sampling))
    }

    public struct Iterator: AsyncIteratorProtocol {
        let session: Session
        let prompt: [Int32]
        let maxTokens: Int
        var sampler: Sampler
        var text = TextStream()
        var produced = 0
        var last: Int32?

        init(session: Session, prompt: [Int32], maxTokens: Int, sampler: Sampler) {
            self.session = session; self.prompt = prompt; self.maxTokens = maxTokens; self.sampler = sampler
        }

        public mutating func next() async throws -> GeneratedToken? {
            guard produced < maxTokens else { return nil }
            let logits: UnsafeBufferPointer<Float>
            if let last {
                guard session.position < session.capacity else { return nil }
                logits = try session.evaluate(token: last)
            } else {
                logits = try session.evaluate(prompt)
            }
            let token = sampler.next(logits)
            if token == session.model.tokenizer.stopToken { produced = maxTokens; return nil }
            let previous = last ?? prompt.last
            last = token
            produced += 1
            return GeneratedToken(id: token, text: text.append(session.model.tokenizer.bytes(of: token, after: previous)))
        }
    }
}
