import Foundation
import Testing
import TFQFormat
import TFQModel

/// A config whose numbers are valid JSON but do not fit their fields.
@Suite struct ModelConfigTests {
    /// A model file with no tensors whose metadata has `key` set to the JSON number `number`.
    static func metadataError(_ key: String, _ number: String) throws -> String {
        let config = ModelConfig.llama(vocabSize: 256, contextLength: 8, layers: 1, heads: 2, kvHeads: 2, dim: 8, ffDim: 16, tieEmbeddings: true)
        var json = String(decoding: try ModelMetadata(kind: "model", config: config, tokenizer: .byte).encoded(), as: UTF8.self)
        let range = try #require(json.range(of: #""\#(key)":[^,}]*"#, options: .regularExpression))
        json.replaceSubrange(range, with: "\"\(key)\":\(number)")
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).tfq").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try TFQWriter(path: path).finish(metadata: Array(json.utf8))
        let file = try TFQFile(path: path)   // sound as a file: the JSON is valid
        do { _ = try ModelMetadata(file: file) } catch { return "\(error)" }
        return "no error"
    }

    @Test func floatsBeyondFloatRangeAreOutOfRangeNotInvalidJSON() throws {
        let theta = try Self.metadataError("rope_theta", "1e308")
        #expect(theta.hasSuffix("bad metadata: 'config' is malformed: at 'rope_theta': 1e+308 is out of range for a 32-bit float (at most 3.4028235e+38)"), "\(theta)")
        let eps = try Self.metadataError("norm_eps", "-1e300")
        #expect(eps.hasSuffix("at 'norm_eps': -1e+300 is out of range for a 32-bit float (at most 3.4028235e+38)"), "\(eps)")
        // In range: read, and then judged by the config's own rules.
        #expect(try Self.metadataError("rope_theta", "3e38").contains("no error"))
        #expect(try Self.metadataError("rope_theta", "0.5").hasSuffix("config: rope_theta must be above 1"))
    }
}
