import Foundation
import Testing
@testable import TFQKernels
@testable import TFQRuntime

/// formats/testdata/decode: int8 models with the greedy tokens formats/tfq.md §11 gives
/// (computed by tools/reference_decode.py, which follows the spec alone). Every build must
/// produce them: portable and host-CPU x86-64, the 16-lane build, and aarch64 under qemu.
@Suite struct SpecArithmeticTests {
    struct Case: Decodable {
        var model: String
        var prompt_token_ids: [Int32]
        var n: Int
        var fused: [Int32]
        var unfused: [Int32]
        var stop_reason: String
    }

    struct Expected: Decodable { var cases: [Case] }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("formats/testdata/decode")

    static func cases() throws -> [Case] {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: directory.appendingPathComponent("expected.json"))).cases
    }

    @Test(arguments: [1, 2])
    func greedyTokensAreTheSpecs(threads: Int) throws {
        let cases = try Self.cases()
        #expect(cases.count == 6)
        for c in cases {
            let model = try Model(path: Self.directory.appendingPathComponent(c.model).path, verify: true)
            let session = try Session(model: model, threads: threads, capacity: min(model.config.contextLength, c.prompt_token_ids.count + c.n))
            var tokens: [Int32] = []
            let reason = try session.generate(prompt: c.prompt_token_ids, maxTokens: c.n, ignoringEndOfText: true) { token, _ in
                tokens.append(token)
                return true
            }
            let expected = Arithmetic.fusedMultiplyAdd ? c.fused : c.unfused
            #expect(tokens == expected, "\(c.model): first difference at \(tokens.indices.first { $0 >= expected.count || tokens[$0] != expected[$0] } ?? tokens.count)")
            #expect(reason.rawValue == c.stop_reason)
        }
    }

    /// The build's multiply-add is the one its defines say (§11.1: the one choice left to it).
    @Test func fusedMultiplyAddFollowsTheBuild() {
        #if arch(arm64)
        #expect(Arithmetic.fusedMultiplyAdd)
        #elseif TFQ_FMA
        #expect(Arithmetic.fusedMultiplyAdd)
        #else
        #expect(!Arithmetic.fusedMultiplyAdd)
        #endif
        // (1 + 2⁻²³)(1 − 2⁻²³) = 1 − 2⁻⁴⁶, which rounds to 1: unfused, −1 + 1 = 0.
        var accumulator: Float = -1
        multiplyAdd(&accumulator, 1 + 0x1p-23, 1 - 0x1p-23)
        #expect(accumulator == (Arithmetic.fusedMultiplyAdd ? -0x1p-46 : 0))
        var lanes = SIMD16<Float>(repeating: -1)
        multiplyAdd(&lanes, SIMD16(repeating: 1 + 0x1p-23), SIMD16(repeating: 1 - 0x1p-23))
        #expect(lanes == SIMD16(repeating: Arithmetic.fusedMultiplyAdd ? -0x1p-46 : 0))
    }
}
