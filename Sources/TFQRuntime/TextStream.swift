/// Turns a stream of token bytes into text that is always valid UTF-8: bytes of a character
/// split across tokens are held back until the character is complete.
public struct TextStream {
    private var pending: [UInt8] = []

    /// An empty stream.
    public init() {}

    /// The text that became complete with `bytes`.
    public mutating func append(_ bytes: [UInt8]) -> String {
        pending += bytes
        var end = pending.count
        // Hold back an incomplete sequence at the end (at most 3 bytes of a 4-byte character).
        for back in 1...min(3, pending.count) {
            let byte = pending[pending.count - back]
            if byte & 0xC0 == 0x80 { continue }           // continuation byte: keep looking back
            if byte & 0x80 != 0 {
                let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
                if length > back { end = pending.count - back }
            }
            break
        }
        let text = String(decoding: pending[..<end], as: UTF8.self)
        pending.removeFirst(end)
        return text
    }

    /// Whatever is still held back, with U+FFFD for an incomplete character.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}
