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

    /// Parameters as named; the defaults are greedy decoding.
    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
    }

    /// Greedy decoding.
    public static let greedy = SamplingParameters()
}

/// Picks tokens from logits: argmax (ties to the lowest id) or reproducible sampling.
public struct Sampler {
    /// How this sampler picks.
    public let parameters: SamplingParameters
    private var random: Xoshiro256
    private var order: [Int32] = []

    /// A sampler whose random draws start from `parameters.seed`.
    public init(_ parameters: SamplingParameters) {
        self.parameters = parameters
        random = Xoshiro256(seed: parameters.seed)
    }

    /// The index of the largest logit; the lowest index among equals.
    public static func argmax(_ logits: some Collection<Float>) -> Int32 {
        logits.withContiguousStorageIfAvailable(argmax(raw:)) ?? Array(logits).withUnsafeBufferPointer(argmax(raw:))
    }

    static func argmax(raw logits: UnsafeBufferPointer<Float>) -> Int32 {
        // Two passes, the first vectorized (a 32,000-token vocabulary made the scalar loop a
        // few percent of a small model's decode step): the largest value, then its first
        // index. The same answer as the scalar "first strictly greater" scan, NaNs included.
        let count = logits.count
        guard count > 1, !logits[0].isNaN else { return 0 }
        typealias V = SIMD8<Float>
        let raw = UnsafeRawPointer(logits.baseAddress!)
        var best8 = V(repeating: logits[0]), i = 0
        while i + 8 <= count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            best8 = best8.replacing(with: v, where: v .> best8)
            i += 8
        }
        var best = logits[0]
        for lane in 0..<8 where best8[lane] > best { best = best8[lane] }
        while i < count { if logits[i] > best { best = logits[i] }; i += 1 }
        for j in 0..<count where logits[j] == best { return Int32(j) }
        return 0
    }

    /// The next token from `logits`, as ``parameters`` ask.
    public mutating func next(_ logits: some Collection<Float>) -> Int32 {
        if let token = logits.withContiguousStorageIfAvailable({ next(raw: $0) }) { return token }
        return Array(logits).withUnsafeBufferPointer { next(raw: $0) }
    }

    mutating func next(raw logits: UnsafeBufferPointer<Float>) -> Int32 {
        guard parameters.temperature > 0 else { return Self.argmax(raw: logits) }
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
