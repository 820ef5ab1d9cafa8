/// A strict RFC 8259 parser straight to ``JSONValue``, with the two rules formats/tfq.md §7
/// adds: no byte-order mark, and no key twice in one object (parsers disagree on which
/// duplicate wins).
///
/// Metadata is parsed at every load, and a llama tokenizer makes it ~1 MB: going through
/// Codable took 200 ms there, this takes a few.
public enum JSONParser {
    /// Why bytes are not JSON this parser accepts.
    public struct ParseError: Error, CustomStringConvertible {
        /// What is wrong and, for a problem inside the text, at which byte offset.
        public let description: String
    }

    /// Deepest nesting accepted: keeps recursion bounded on hostile input.
    static let maxDepth = 256

    /// Parses `bytes`, refusing text that holds more than `maxValues` values (every
    /// number, string, literal, array and object counts one): the parsed tree's memory grows
    /// with the count, whatever the byte length.
    public static func parse(_ bytes: [UInt8], maxValues: Int = .max) throws(ParseError) -> JSONValue {
        // A Result rather than a typed-throws closure: Swift 6.0's withUnsafeBufferPointer
        // rethrows `any Error`.
        try bytes.withUnsafeBufferPointer { parse($0, maxValues: maxValues) }.get()
    }

    /// Parses the bytes in `bytes` (a file's mapping, say) without copying them first.
    static func parse(_ bytes: UnsafeRawBufferPointer, maxValues: Int = .max) throws(ParseError) -> JSONValue {
        let buffer = UnsafeBufferPointer(start: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self), count: bytes.count)
        return try parse(buffer, maxValues: maxValues).get()
    }

    private static func parse(_ buffer: UnsafeBufferPointer<UInt8>, maxValues: Int) -> Result<JSONValue, ParseError> {
        guard String(validating: buffer, as: UTF8.self) != nil else { return .failure(ParseError(description: "not valid UTF-8")) }
        if buffer.starts(with: [0xEF, 0xBB, 0xBF]) { return .failure(ParseError(description: "starts with a byte-order mark")) }
        var parser = Parser(bytes: buffer, valuesLeft: maxValues)
        parser.skipWhitespace()
        do throws(ParseError) {
            let value = try parser.value(depth: 0)
            parser.skipWhitespace()
            guard parser.index == buffer.count else { throw parser.error("unexpected text after the JSON value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    private struct Parser {
        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0
        var valuesLeft: Int
        init(bytes: UnsafeBufferPointer<UInt8>, valuesLeft: Int) { self.bytes = bytes; self.valuesLeft = valuesLeft }

        func error(_ what: String) -> ParseError { ParseError(description: "\(what) at byte \(index)") }

        var current: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipWhitespace() {
            while index < bytes.count {
                switch bytes[index] {
                case 0x20, 0x09, 0x0A, 0x0D: index += 1
                default: return
                }
            }
        }

        mutating func expect(_ literal: StaticString) throws(ParseError) {
            let count = literal.utf8CodeUnitCount
            guard index + count <= bytes.count else { throw error("truncated literal") }
            for i in 0..<count where bytes[index + i] != literal.utf8Start[i] { throw error("invalid literal") }
            index += count
        }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            guard depth < JSONParser.maxDepth else { throw error("nested deeper than \(JSONParser.maxDepth) levels") }
            guard valuesLeft > 0 else { throw error("more JSON values than the limit") }
            valuesLeft -= 1
            guard let byte = current else { throw error("unexpected end of JSON") }
            switch byte {
            case UInt8(ascii: "{"): return try object(depth: depth)
            case UInt8(ascii: "["): return try array(depth: depth)
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "t"): try expect("true"); return .bool(true)
            case UInt8(ascii: "f"): try expect("false"); return .bool(false)
            case UInt8(ascii: "n"): try expect("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw error("unexpected character")
            }
        }

        mutating func object(depth: Int) throws(ParseError) -> JSONValue {
            index += 1
            var members: [String: JSONValue] = [:]
            skipWhitespace()
            if current == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipWhitespace()
                guard current == UInt8(ascii: "\"") else { throw error("expected a key") }
                let key = try string()
                skipWhitespace()
                guard current == UInt8(ascii: ":") else { throw error("expected ':'") }
                index += 1
                skipWhitespace()
                let member = try value(depth: depth + 1)
                guard members.updateValue(member, forKey: key) == nil else {
                    throw ParseError(description: "key '\(key)' appears twice in one object")
                }
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "}"): index += 1; return .object(members)
                default: throw error("expected ',' or '}'")
                }
            }
        }

        mutating func array(depth: Int) throws(ParseError) -> JSONValue {
            index += 1
            var elements: [JSONValue] = []
            skipWhitespace()
            if current == UInt8(ascii: "]") { index += 1; return .array(elements) }
            while true {
                skipWhitespace()
                elements.append(try value(depth: depth + 1))
                skipWhitespace()
                switch current {
                case UInt8(ascii: ","): index += 1
                case UInt8(ascii: "]"): index += 1; return .array(elements)
                default: throw error("expected ',' or ']'")
                }
            }
        }

        mutating func string() throws(ParseError) -> String {
            index += 1
            let start = index
            // Fast path: no escapes, the bytes are the string (the whole input is valid UTF-8).
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    defer { index += 1 }
                    return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
                }
                if byte == UInt8(ascii: "\\") { break }
                if byte < 0x20 { throw error("control character in a string") }
                index += 1
            }
            var text = Array(bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    guard let string = String(validating: text, as: UTF8.self) else { throw error("a string is not valid UTF-8") }
                    return string
                case UInt8(ascii: "\\"):
                    guard let escape = current else { throw error("unterminated escape") }
                    index += 1
                    switch escape {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): text.append(escape)
                    case UInt8(ascii: "b"): text.append(0x08)
                    case UInt8(ascii: "f"): text.append(0x0C)
                    case UInt8(ascii: "n"): text.append(0x0A)
                    case UInt8(ascii: "r"): text.append(0x0D)
                    case UInt8(ascii: "t"): text.append(0x09)
                    case UInt8(ascii: "u"):
                        var scalar = try hex4()
                        if (0xD800..<0xDC00).contains(scalar) {
                            // A high surrogate must be followed by an escaped low one.
                            guard current == UInt8(ascii: "\\"), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "u") else {
                                throw error("unpaired surrogate in a string")
                            }
                            index += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate in a string") }
                            scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(scalar) {
                            throw error("unpaired surrogate in a string")
                        }
                        text += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
                    default: throw error("invalid escape")
                    }
                default:
                    if byte < 0x20 { throw error("control character in a string") }
                    text.append(byte)
                }
            }
            throw error("unterminated string")
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard index + 4 <= bytes.count else { throw error("truncated \\u escape") }
            var value: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[index]
                let digit: UInt32
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(c - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(c - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(c - UInt8(ascii: "A") + 10)
                default: throw error("invalid \\u escape")
                }
                value = value << 4 | digit
                index += 1
            }
            return value
        }

        /// RFC 8259's grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?. A number with
        /// neither fraction nor exponent that fits in 64 bits stays an exact integer.
        mutating func number() throws(ParseError) -> JSONValue {
            let start = index
            if current == UInt8(ascii: "-") { index += 1 }
            func digits(_ parser: inout Parser) -> Int {
                let from = parser.index
                while let c = parser.current, c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") { parser.index += 1 }
                return parser.index - from
            }
            let firstDigit = current
            let integerDigits = digits(&self)
            guard integerDigits > 0 else { throw error("invalid number") }
            if firstDigit == UInt8(ascii: "0") && integerDigits > 1 { throw error("leading zero in a number") }
            var integral = true
            if current == UInt8(ascii: ".") {
                index += 1
                integral = false
                guard digits(&self) > 0 else { throw error("invalid number") }
            }
            if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
                index += 1
                integral = false
                if current == UInt8(ascii: "+") || current == UInt8(ascii: "-") { index += 1 }
                guard digits(&self) > 0 else { throw error("invalid number") }
            }
            let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
            if integral, let value = Int64(text) { return .integer(value) }
            guard let value = Double(text), value.isFinite else { throw error("number out of range") }
            return .number(value)
        }
    }
}
