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

/// One generated token and the text it completes: empty while a character is split across
/// byte tokens. When generation ends with such a character unfinished, the last token's text
/// ends with U+FFFD in its place (see ``Session/generate(prompt:maxTokens:sampling:ignoringEndOfText:onToken:)``).
public struct GeneratedToken: Sendable, Equatable {
    /// The token's id in the model's vocabulary.
    public let id: Int32
    /// The text this token completes (UTF-8 characters only whole).
    public let text: String
    /// True only for the tokenizer's stop token handed out at end-of-text to carry the
    /// U+FFFD of an unfinished character: its text belongs to the output, its id is not a
    /// generated token.
    public var isStopToken: Bool = false
}

extension Session {
    /// Feeds `prompt` (in one batched pass), then produces up to `maxTokens` tokens, calling
    /// `onToken` with each token and the text it completes. Return false from `onToken` to stop.
    ///
    /// Generation also ends at the tokenizer's stop token, which is not passed to `onToken`
    /// (unless `ignoringEndOfText`: the token is then generated like any other), except when
    /// bytes of an unfinished character are held back: the stop token then carries them, as
    /// U+FFFD. At the token limit or a full context, the last token's text carries them. So
    /// the texts passed to `onToken` always add up to the whole output.
    @discardableResult
    public func generate(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy, ignoringEndOfText: Bool = false,
                         onToken: (Int32, String) -> Bool = { _, _ in true }) throws -> StopReason {
        var generator = Generator(session: self, prompt: prompt, maxTokens: maxTokens, sampling: sampling,
                                  ignoringEndOfText: ignoringEndOfText)
        while let token = try generator.next() {
            if !onToken(token.id, token.text) { return .cancelled }
        }
        return generator.stopReason ?? .length
    }

    /// The tokens ``generate(prompt:maxTokens:sampling:ignoringEndOfText:onToken:)`` would
    /// produce, as an `AsyncSequence`: each `next()` runs one decode step, so a consumer that
    /// stops iterating stops the work.
    ///
    ///     for try await token in session.tokens(prompt: ids, maxTokens: 100) { print(token.text, terminator: "") }
    ///
    /// The sequence's ``TokenSequence/stopReason`` says afterwards why it ended.
    public func tokens(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy,
                       ignoringEndOfText: Bool = false) -> TokenSequence {
        TokenSequence(generator: Generator(session: self, prompt: prompt, maxTokens: maxTokens, sampling: sampling,
                                           ignoringEndOfText: ignoringEndOfText))
    }
}

/// Generated tokens, one decode step per element.
public struct TokenSequence: AsyncSequence {
    /// Each element is one generated token and the text it completes.
    public typealias Element = GeneratedToken
    let generator: Generator
    private let outcome = Outcome()

    /// Why the last iteration stopped: nil until it has (and when the consumer stopped
    /// iterating first, in which case the reason is the consumer's).
    ///
    ///     let tokens = session.tokens(prompt: ids, maxTokens: 100)
    ///     for try await token in tokens { print(token.text, terminator: "") }
    ///     if tokens.stopReason == .endOfText { print("(the model ended the text)") }
    public var stopReason: StopReason? { outcome.stopReason }

    /// An iterator that runs the prompt on its first `next()`, then one decode step per call.
    public func makeAsyncIterator() -> Iterator {
        outcome.stopReason = nil
        return Iterator(generator: generator, outcome: outcome)
    }

    /// Runs one decode step per element.
    public struct Iterator: AsyncIteratorProtocol {
        var generator: Generator
        fileprivate let outcome: Outcome

        /// The next token, or nil once generation has stopped.
        public mutating func next() async throws -> GeneratedToken? {
            let token = try generator.next()
            outcome.stopReason = generator.stopReason
            return token
        }
    }

    /// Where iterators leave the stop reason for the sequence they came from.
    fileprivate final class Outcome {
        var stopReason: StopReason?
    }
}

/// The one generation loop: prompt, then one token per step, until a stop reason.
struct Generator {
    let session: Session
    let prompt: [Int32]
    let maxTokens: Int
    let ignoringEndOfText: Bool
    var sampler: Sampler
    var text = TextStream()
    var produced = 0
    var last: Int32?
    /// Set once generation has stopped (``next()`` then returns nil).
    private(set) var stopReason: StopReason?

    init(session: Session, prompt: [Int32], maxTokens: Int, sampling: SamplingParameters, ignoringEndOfText: Bool) {
        self.session = session; self.prompt = prompt; self.maxTokens = maxTokens
        self.ignoringEndOfText = ignoringEndOfText
        sampler = Sampler(sampling)
        if maxTokens <= 0 { stopReason = .length }
    }

    /// Evaluates the prompt (first call) or the last token, samples the next one, and returns
    /// it with the text it completes; nil once stopped.
    mutating func next() throws -> GeneratedToken? {
        guard stopReason == nil else { return nil }
        let tokenizer = session.model.tokenizer
        let logits: UnsafeBufferPointer<Float>
        if let last {
            logits = try session.evaluateInPlace(token: last)
        } else {
            logits = try prompt.withUnsafeBufferPointer { try session.evaluateInPlace($0, allLogits: false) }
        }
        let token = sampler.next(raw: logits)
        if !ignoringEndOfText && token == tokenizer.stopToken {
            stopReason = .endOfText
            let held = text.finish()
            return held.isEmpty ? nil : GeneratedToken(id: token, text: held, isStopToken: true)
        }
        var piece = text.append(tokenizer.bytes(of: token, after: last ?? prompt.last))
        last = token
        produced += 1
        // Known before the token is handed out: it is the last one.
        if produced == maxTokens {
            stopReason = .length
        } else if session.position >= session.capacity {
            stopReason = .context
        }
        if stopReason != nil { piece += text.finish() }
        return GeneratedToken(id: token, text: piece)
    }
}
