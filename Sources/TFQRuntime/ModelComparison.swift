#if canImport(Glibc)
import Glibc
#endif

/// Two models measured on the same token positions: the reference (fp32) and a candidate
/// (an export), window by window of the context length.
public struct ModelComparison: Sendable, Equatable {
    /// Next-token predictions compared.
    public var positions = 0
    /// Positions left out because the text has a character the vocabulary lacks.
    public var skipped = 0
    /// Mean cross-entropy (nats per token) of each model.
    public var referenceCrossEntropy = 0.0
    /// Mean cross-entropy of the candidate, nats per token.
    public var candidateCrossEntropy = 0.0
    /// Positions where both models rank the same token first, in percent.
    public var top1AgreementPercent = 0.0
    /// Mean KL(reference ‖ candidate) over the positions, in nats.
    public var meanKL = 0.0
    /// The largest KL(reference ‖ candidate) at any one position, in nats.
    public var maxKL = 0.0
    /// The largest absolute difference between the two models' logits.
    public var maxAbsLogitError = 0.0
    /// Bytes of text the predicted tokens stand for: turns nats per token into bits per byte.
    public var targetBytes = 0
    /// The reference's cross-entropy in bits per byte of text.
    public var referenceBitsPerByte: Double { referenceCrossEntropy * Double(positions) / Double(max(1, targetBytes)) / log(2) }
    /// The candidate's cross-entropy in bits per byte of text.
    public var candidateBitsPerByte: Double { candidateCrossEntropy * Double(positions) / Double(max(1, targetBytes)) / log(2) }

    /// Compares over at most `maxPositions` next-token predictions of `tokens` (ids, with -1
    /// where the text has a character the vocabulary lacks).
    public static func measure(reference: Session, candidate: Session, tokens: [Int32], maxPositions: Int) throws -> ModelComparison {
        let context = reference.model.config.contextLength, vocab = reference.model.config.vocabSize
        precondition(candidate.model.config.vocabSize == vocab)
        var result = ModelComparison()
        var agree = 0, referenceLoss = 0.0, candidateLoss = 0.0, kl = 0.0
        var start = 0
        while start + 1 < tokens.count && result.positions < maxPositions {
            // A window of known tokens: an unknown one ends it, and the next starts after it.
            var end = start
            while end < tokens.count - 1 && end - start < min(context, candidate.model.config.contextLength) && tokens[end] >= 0 { end += 1 }
            if end == start { result.skipped += 1; start += 1; continue }
            let window = Array(tokens[start..<end])
            reference.reset(); candidate.reset()
            let p = try reference.evaluate(window, allLogits: true)
            let q = try candidate.evaluate(window, allLogits: true)
            for t in 0..<window.count where result.positions < maxPositions {
                let target = Int(tokens[start + t + 1])
                if target < 0 { result.skipped += 1; continue }
                let pLog = logSoftmax(p, offset: t * vocab, count: vocab)
                let qLog = logSoftmax(Array(q[(t * vocab)..<((t + 1) * vocab)]), offset: 0, count: vocab)
                result.targetBytes += candidate.model.tokenizer.bytes(of: Int32(target), after: window[t]).count
                referenceLoss -= pLog[target]
                candidateLoss -= qLog[target]
                var divergence = 0.0, bestP = 0, bestQ = 0
                for v in 0..<vocab {
                    divergence += exp(pLog[v]) * (pLog[v] - qLog[v])
                    result.maxAbsLogitError = max(result.maxAbsLogitError, abs(Double(p[t * vocab + v]) - Double(q[t * vocab + v])))
                    if p[t * vocab + v] > p[t * vocab + bestP] { bestP = v }
                    if q[t * vocab + v] > q[t * vocab + bestQ] { bestQ = v }
                }
                kl += divergence
                result.maxKL = max(result.maxKL, divergence)
                if bestP == bestQ { agree += 1 }
                result.positions += 1
            }
            start = end
        }
        guard result.positions > 0 else { return result }
        let n = Double(result.positions)
        result.referenceCrossEntropy = referenceLoss / n
        result.candidateCrossEntropy = candidateLoss / n
        result.top1AgreementPercent = Double(agree) / n * 100
        result.meanKL = kl / n
        return result
    }

    static func logSoftmax(_ logits: [Float], offset: Int, count: Int) -> [Double] {
        var top = -Double.infinity
        for v in 0..<count { top = max(top, Double(logits[offset + v])) }
        var total = 0.0
        for v in 0..<count { total += exp(Double(logits[offset + v]) - top) }
        let shift = top + log(total)
        return (0..<count).map { Double(logits[offset + $0]) - shift }
    }
}
