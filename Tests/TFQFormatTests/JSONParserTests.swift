import Foundation
import Testing
@testable import TFQFormat

@Suite struct JSONParserTests {
    static func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func parsesEveryKindOfValue() throws {
        let value = try Self.parse(#" { "a": [1, -0, 2.5, -1e3, 9223372036854775807, 9223372036854775808, true, false, null], "b": {"c": "x\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00"}, "d": [] , "e": {} } "#)
        #expect(value == .object([
            "a": .array([.integer(1), .integer(0), .number(2.5), .number(-1000), .integer(.max), .number(9_223_372_036_854_775_808),
                         .bool(true), .bool(false), .null]),
            "b": .object(["c": .string("x\"\\/\u{08}\u{0C}\n\r\té😀")]),
            "d": .array([]), "e": .object([:]),
        ]))
    }

    @Test func agreesWithFoundationOnNumbers() throws {
        for text in ["0.1", "1e-7", "-3.4028234663852886e38", "123456.789e-2", "5e-324", "0.30000000000000004"] {
            #expect(try Self.parse(text) == .number(Double(text)!), "\(text)")
        }
    }

    @Test func rejectsWhatRFC8259AndTheFormatRuleOut() {
        let cases: [(String, String)] = [
            ("", "unexpected end"), ("[1,]", "unexpected character"), ("{\"a\":1,}", "expected a key"), ("01", "leading zero"),
            ("1.", "invalid number"), ("-", "invalid number"), ("1e", "invalid number"), ("\"a\u{01}\"", "control character"),
            ("\"\\x\"", "invalid escape"), ("\"\\ud800\"", "unpaired surrogate"), ("\"\\udc00\"", "unpaired surrogate"),
            ("\"abc", "unterminated string"), ("tru", "truncated literal"), ("nul1", "invalid literal"), ("{} {}", "after the JSON value"),
            ("{\"k\":1,\"k\":2}", "key 'k' appears twice"), ("\u{FEFF}{}", "byte-order mark"), ("1e999", "out of range"),
            (String(repeating: "[", count: 300) + String(repeating: "]", count: 300), "nested deeper"),
        ]
        for (text, message) in cases {
            do {
                _ = try Self.parse(text)
                Issue.record("\(text.debugDescription) parsed")
            } catch {
                #expect("\(error)".contains(message), "\(text.debugDescription): \(error)")
            }
        }
        #expect(throws: JSONParser.ParseError.self) { try JSONParser.parse([0x22, 0xFF, 0x22]) }
    }

    @Test func sameKeyInDifferentObjectsIsFine() throws {
        #expect(try Self.parse(#"{"a":{"k":1},"b":{"k":2}}"#)["b"]?["k"] == .integer(2))
    }
}
