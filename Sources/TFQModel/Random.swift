#if canImport(Glibc)
import Glibc
#endif

/// xoshiro256**: a small, fast generator whose whole state (four words) can be saved in a
/// checkpoint, so a resumed run draws exactly the numbers an uninterrupted one would.
public struct Xoshiro256: RandomNumberGenerator, Codable, Equatable, Sendable {
    /// The four 64-bit words of state.
    public var state: [UInt64]

    /// Stored as four hex strings: JSON numbers are doubles to most readers, and 64-bit
    /// state must survive a checkpoint exactly.
    public init(from decoder: Decoder) throws {
        let words = try decoder.singleValueContainer().decode([String].self)
        let parsed = words.compactMap { UInt64($0, radix: 16) }
        guard parsed.count == 4 else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "generator state must be 4 hex words"))
        }
        state = parsed
    }

    /// Writes the state as four hex strings, as the decoder reads it.
    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(state.map { String($0, radix: 16) })
    }

    /// A generator whose state SplitMix64 spreads from `seed`: equal seeds give equal sequences.
    public init(seed: UInt64) {
        // SplitMix64 spreads the seed over the state, as the authors recommend.
        var x = seed
        state = (0..<4).map { _ in
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    /// The next 64-bit output, advancing the state.
    public mutating func next() -> UInt64 {
        let result = rotate(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotate(state[3], 45)
        return result
    }

    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = Double(next() >> 11 | 1) / Double(1 << 53)
        let u2 = Double(next() >> 11) / Double(1 << 53)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    /// This generator advanced by `times` × 2¹²⁸ draws, computed in 256 steps per jump:
    /// the authors' way of cutting one sequence into streams that cannot overlap in any
    /// feasible run.
    public func jumped(times: Int = 1) -> Xoshiro256 {
        // The authors' jump polynomial for 2¹²⁸ steps (xoshiro256**.c, `jump`).
        let polynomial: [UInt64] = [0x180E_C6D3_3CFD_0ABA, 0xD5A6_1266_F0C9_392C, 0xA958_2618_E03F_C9AA, 0x39AB_DC45_29B1_661C]
        var generator = self
        for _ in 0..<times {
            var sum: [UInt64] = [0, 0, 0, 0]
            for word in polynomial {
                for bit in 0..<64 {
                    if word & (1 << UInt64(bit)) != 0 {
                        for i in 0..<4 { sum[i] ^= generator.state[i] }
                    }
                    _ = generator.next()
                }
            }
            generator.state = sum
        }
        return generator
    }

    private func rotate(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
