/// A one-line message about options (an error, or a note) that names each option by its
/// stored name: the key a checkpoint or the library's options use (`vocab_size`, `lr`).
/// A front end shows it with its own names: `tfq` names its flags (`--vocab-size`), so the
/// library's messages say nothing of any command line.
///
///     let message: OptionMessage = "\(option: "batch") must be at least 1 (got \(batch))"
///     message.description                        // "batch must be at least 1 (got 0)"
///     message.text { "--" + $0 }                 // "--batch must be at least 1 (got 0)"
public struct OptionMessage: Error, CustomStringConvertible, Equatable, Sendable, ExpressibleByStringInterpolation {
    /// Text as written, or an option's stored name.
    enum Part: Equatable, Sendable {
        case text(String)
        case option(String)
    }

    private let parts: [Part]

    /// A message without options.
    public init(stringLiteral text: String) { parts = [.text(text)] }

    /// A message whose `\(option: name)` interpolations name options.
    public init(stringInterpolation: Interpolation) { parts = stringInterpolation.parts }

    /// Builds a message: literal text, values as text, and `\(option: name)` for options.
    public struct Interpolation: StringInterpolationProtocol {
        var parts: [Part] = []
        /// An empty message.
        public init(literalCapacity: Int, interpolationCount: Int) {}
        /// Text as written.
        public mutating func appendLiteral(_ literal: String) { parts.append(.text(literal)) }
        /// A value, as `"\(value)"` would show it.
        public mutating func appendInterpolation<T>(_ value: T) { parts.append(.text("\(value)")) }
        /// The option stored as `name`.
        public mutating func appendInterpolation(option name: String) { parts.append(.option(name)) }
    }

    /// `text` followed by `message` (a file's name before a problem, say).
    public static func + (text: String, message: OptionMessage) -> OptionMessage {
        OptionMessage(parts: [.text(text)] + message.parts)
    }

    /// One message after the other.
    public static func + (first: OptionMessage, second: OptionMessage) -> OptionMessage {
        OptionMessage(parts: first.parts + second.parts)
    }

    private init(parts: [Part]) { self.parts = parts }

    /// The options the message names, by stored name, in order.
    public var options: [String] {
        parts.compactMap { if case .option(let name) = $0 { name } else { nil } }
    }

    /// The message with each option named by `name` (given its stored name).
    public func text(naming name: (String) -> String) -> String {
        parts.map { part in
            switch part {
            case .text(let text): text
            case .option(let option): name(option)
            }
        }.joined()
    }

    /// The message with each option named as it is stored.
    public var description: String { text { $0 } }
}

/// An error whose message may name options (``OptionMessage``): a front end catches it to
/// name them its own way.
public protocol OptionNamingError: Error, CustomStringConvertible {
    /// The message, options named by their stored names.
    var message: OptionMessage { get }
}

extension OptionNamingError {
    /// The message with options named as stored.
    public var description: String { message.description }
}
