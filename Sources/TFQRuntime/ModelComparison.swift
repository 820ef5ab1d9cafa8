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
        try measure(reference: reference, candidates: [candidate], tokens: tokens, maxPositions: maxPositions)[0]
    }

    /// Compares each candidate with the reference on the same positions, running the
    /// reference once; windows are as long as the shortest context of them all, so for
    /// candidates of the reference's shape each result is what
    /// ``measure(reference:candidate:tokens:maxPositions:)`` gives, in order.
    public static func measure(reference: Session, candidates: [Session], tokens: [Int32], maxPositions: Int) throws -> [ModelComparison] {
        let context = reference.model.config.contextLength, vocab = reference.model.config.vocabSize
        precondition(candidates.allSatisfy { $0.model.config.vocabSize == vocab })
        guard let first = candidates.first else { return [] }
        let window = candidates.reduce(context) { min($0, $1.model.config.contextLength) }
        var results = [ModelComparison](repeating: ModelComparison(), count: candidates.count)
        var sums = [Sums](repeating: Sums(), count: candidates.count)
        var positions = 0, skipped = 0, targetBytes = 0, referenceLoss = 0.0
        var start = 0
        while start + 1 < tokens.count && positions < maxPositions {
            // A window of known tokens: an unknown one ends it, and the next starts after it.
            var end = start
            while end < tokens.count - 1 && end - start < window && tokens[end] >= 0 { end += 1 }
            if end == start { skipped += 1; start += 1; continue }
            let ids = Array(tokens[start..<end])
            reference.reset()
            let p = try reference.evaluate(ids, allLogits: true)
            let q = try candidates.map { candidate in
                candidate.reset()
                return try candidate.evaluate(ids, allLogits: true)
            }
            for t in 0..<ids.count where positions < maxPositions {
                let target = Int(tokens[start + t + 1])
                if target < 0 { skipped += 1; continue }
                let pLog = logSoftmax(p, offset: t * vocab, count: vocab)
                let pProbability = pLog.map { exp($0) }
                var bestP = 0
                for v in 0..<vocab where p[t * vocab + v] > p[t * vocab + bestP] { bestP = v }
                targetBytes += first.model.tokenizer.bytes(of: Int32(target), after: ids[t]).count
                referenceLoss -= pLog[target]
                for c in candidates.indices {
                    let qLog = logSoftmax(q[c], offset: t * vocab, count: vocab)
                    sums[c].loss -= qLog[target]
                    var divergence = 0.0, bestQ = 0
                    for v in 0..<vocab {
                        divergence += pProbability[v] * (pLog[v] - qLog[v])
                        results[c].maxAbsLogitError = max(results[c].maxAbsLogitError, abs(Double(p[t * vocab + v]) - Double(q[c][t * vocab + v])))
                        if q[c][t * vocab + v] > q[c][t * vocab + bestQ] { bestQ = v }
                    }
                    sums[c].kl += divergence
                    results[c].maxKL = max(results[c].maxKL, divergence)
                    if bestP == bestQ { sums[c].agree += 1 }
                }
                positions += 1
            }
            start = end
        }
        for c in results.indices {
            results[c].positions = positions
            results[c].skipped = skipped
            results[c].targetBytes = targetBytes
            guard positions > 0 else { continue }
            let n = Double(positions)
            results[c].referenceCrossEntropy = referenceLoss / n
            results[c].candidateCrossEntropy = sums[c].loss / n
            results[c].top1AgreementPercent = Double(sums[c].agree) / n * 100
            results[c].meanKL = sums[c].kl / n
        }
        return results
    }

    /// One candidate's running totals.
    private struct Sums {
        var agree = 0, loss = 0.0, kl = 0.0
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
