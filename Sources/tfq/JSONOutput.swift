import FoundationEssentials
import TFQFormat

/// JSON for the CLI's `--json` output: one object, keys sorted, so scripts and diffs are stable.
enum JSONOutput {
    static func string<T: Encodable>(_ value: T) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// A JSON value as a person reads it: strings without quotes, whole numbers without ".0".
    static func plain(_ value: JSONValue) -> String {
        switch value {
        case .string(let text): return text
        case .integer(let number): return String(number)
        case .number(let number):
            if number == number.rounded(), abs(number) < 1e15 { return String(Int(number)) }
            return String(number)
        default: return (try? string(value)) ?? "?"
        }
    }
}
