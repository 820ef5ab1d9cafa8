import Foundation
import Testing
import TFQFormat
@testable import TFQModel

/// SentencePiece-style BPE on a vocabulary small enough to work out by hand. (The fixtures
/// of Tests/TFQImportTests check it against the `tokenizers` library.)
@Suite struct SentencePieceTokenizerTests {
    /// The 256 byte pieces, then ▁ (256), a (257), b (258), a▁ (259), a▁b (260), <s> (261).
    static func tokenizer(_ prefix: SentencePieceTokenizer.SpacePrefix, split: Bool = false) throws -> SentencePieceTokenizer {
        let pieces = (0..<256).map { String(format: "<0x%02X>", $0) } + ["\u{2581}", "a", "b", "a\u{2581}", "a\u{2581}b", "<s>"]
        return try SentencePieceTokenizer(pieces: pieces, merges: [.init(257, 256), .init(259, 258)], special: [261],
                                          beginning: 261, endOfText: nil, spacePrefix: prefix, splitsAtSpaces: split)
    }

    @Test func mergesCrossASpaceUnlessSplit() throws {
        #expect(try Self.tokenizer(.every).encode(Array("a b".utf8)) == [261, 256, 260])
        #expect(try Self.tokenizer(.every, split: true).encode(Array("a b".utf8)) == [261, 256, 257, 256, 258])
        // A character that is no piece falls back to its bytes.
        #expect(try Self.tokenizer(.every).encode(Array("aé".utf8)) == [261, 256, 257, 0xC3, 0xA9])
    }

    @Test func thePrefixGoesWhereTheSchemeSays() throws {
        let text = Array(" a<s>b".utf8)
        #expect(try Self.tokenizer(.every).encode(text) == [261, 256, 256, 257, 261, 256, 258])
        #expect(try Self.tokenizer(.everyUnlessSpace).encode(text) == [261, 256, 257, 261, 256, 258])
        #expect(try Self.tokenizer(.firstUnlessSpace).encode(text) == [261, 256, 257, 261, 258])
        #expect(try Self.tokenizer(.firstUnlessSpace).encode(Array("b".utf8)) == [261, 256, 258])
        #expect(try Self.tokenizer(.none).encode(text) == [261, 256, 257, 261, 258])
        #expect(try Self.tokenizer(.every).encode([]) == [261])
    }

    @Test func decodingTakesOffThePrefixSpaceAtTheStart() throws {
        let tokenizer = try Self.tokenizer(.every)
        #expect(tokenizer.decode([261, 256, 260]) == Array("a b".utf8))
        #expect(tokenizer.decode([256, 260]) == Array("a b".utf8))
        #expect(tokenizer.decode([257, 256, 260]) == Array("a a b".utf8))
        #expect(tokenizer.decode([261, 0x41, 0xC3, 0xA9]) == [0x41, 0xC3, 0xA9])
        #expect(tokenizer.bytes(of: 256, after: 257) == [0x20])
        #expect(tokenizer.bytes(of: 256, after: 261) == [])
    }

    @Test func storedFormsReadBackAndBadOnesAreNamed() throws {
        let tokenizer = Tokenizer.sentencePiece(try Self.tokenizer(.firstUnlessSpace, split: true))
        let stored = try JSONParser.parse(Array(JSONEncoder().encode(tokenizer)))
        #expect(stored["type"] == .string("sentencepiece") && stored["space_prefix"] == .string("first_unless_space") && stored["split"] == .bool(true))
        #expect(try Tokenizer(json: stored) == tokenizer)
        func problem(_ change: (inout [String: JSONValue]) -> Void) -> String {
            guard case .object(var object) = stored else { return "" }
            change(&object)
            do { _ = try Tokenizer(json: .object(object)); return "read" } catch { return error.description }
        }
        #expect(problem { $0["space_prefix"] = .string("always") }.contains("'space_prefix' must be one of every, every_unless_space"))
        #expect(problem { $0["merges"] = .string("257 256 259 257") }.contains("merge 1 (259 257) makes a piece that is not in the vocabulary"))
        #expect(problem { $0["merges"] = .string("257 256 257 256") }.contains("merge 1 (257 256) repeats merge 0"))
        #expect(problem { $0["merges"] = .string("261 256") }.contains("refers to an id that is not a piece"))
        #expect(problem { $0["bos_id"] = .integer(900) }.contains("bos_id 900 is not a token"))
        #expect(problem { $0["split"] = .string("yes") }.contains("'split' must be true or false"))
        func withPiece(_ id: Int, _ text: String) -> String {
            problem {
                guard case .array(var pieces)? = $0["vocab"] else { return }
                pieces[id] = .string(text)
                $0["vocab"] = .array(pieces)
            }
        }
        #expect(withPiece(0x41, "<0x42>").contains("pieces 65 and 66 are both the byte <0x42>"))
        #expect(withPiece(0x41, "x").contains("no piece is the byte <0x41>"))
    }
}
