import TFQModel

/// How the next token is chosen from the logits.
public struct SamplingParameters: Sendable, Equatable {
    /// 0 picks the most likely token (the seed's argmax); above 0 samples from softmax(logits / T).
    public var temperature: Float = 0
    /// Sample only among the k most likely tokens (0: all).
    public var topK: Int = 0
    /// Sample only among the most likely tokens whose probabilities add up to p (1: all).
    public var topP: Float = 1
    /// Seeds the sampler: the same seed gives the same tokens.
    public var seed: UInt64 = 0

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingParameters()
}

/// Picks tokens from logits: argmax (ties to the lowest id) or reproducible sampling.
public struct Sampler {
    public let parameters: SamplingParameters
    private var random: Xoshiro256
    private var order: [Int32] = []

    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = Xoshiro256(seed: parameters.seed)
    }

    /// The index of the largest logit; the lowest index among equals.
    public static func argmax(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    public mutating func next(_ logits: UnsafeBufferPointer<Float>) -> Int32 {
        guard parameters.temperature > 0 else { return Self.argmax(logits) }
        let count = logits.count
        if order.count != count { order = (0..<Int32(count)).map { $0 } }
        // Most likely first; ties by id, so the order (and the sample) is reproducible.
        order.sort { logits[Int($0)] > logits[Int($1)] || (logits[Int($0)] == logits[Int($1)] && $0 < $1) }
        let limit = parameters.topK > 0 ? min(parameters.topK, count) : count
        let top = Double(logits[Int(order[0])])
        var weights: [Double] = []
        weights.reserveCapacity(limit)
        var total = 0.0
        for i in 0..<limit {
            let w = Foundation_exp((Double(logits[Int(order[i])]) - top) / Double(parameters.temperature))
            weights.append(w)
            total += w
        }
        // Nucleus: the smallest prefix whose probability reaches top-p.
        var kept = limit
        if parameters.topP < 1 {
            var cumulative = 0.0
            for i in 0..<limit {
                cumulative += weights[i] / total
                if cumulative >= Double(parameters.topP) { kept = i + 1; break }
            }
            total = weights[..<kept].reduce(0, +)
        }
        var target = Double(random.next() >> 11) / Double(1 << 53) * total
        for i in 0..<kept {
            target -= weights[i]
            if target < 0 { return order[i] }
        }
        return order[kept - 1]
    }
}

#if canImport(Glibc)
import Glibc
@inline(__always) func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
#endif
