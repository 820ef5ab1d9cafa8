import TFQModel

/// Why generation stopped.
public enum StopReason: String, Sendable {
    /// The requested number of tokens was produced.
    case length
    /// The model's context is full.
    case context
    /// The callback asked to stop.
    case cancelled
}

extension Session {
    /// Feeds `prompt` (in one batched pass), then produces up to `maxTokens` tokens, calling
    /// `onToken` with each token and the text it completes. Return false from `onToken` to stop.
    @discardableResult
    public func generate(prompt: [Int32], maxTokens: Int, sampling: SamplingParameters = .greedy,
                         onToken: (Int32, String) -> Bool = { _, _ in true }) throws -> StopReason {
        var sampler = Sampler(sampling)
        var text = TextStream()
        var logits = try evaluate(prompt)
        for produced in 0..<maxTokens {
            let token = sampler.next(logits)
            let piece = text.append(model.tokenizer.bytes(of: token))
            if !onToken(token, piece) { return .cancelled }
            if produced + 1 == maxTokens { break }
            if position >= model.config.contextLength { return .context }
            logits = try evaluate([token])
        }
        return .length
    }
}
