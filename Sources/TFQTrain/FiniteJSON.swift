/// JSON has no NaN or infinity (JSONEncoder throws on them), and a run that diverges has
/// both: in the metrics log and the `--json` summary a number that is not finite is written
/// as `null`, so every line still parses and a reader sees exactly where the run broke.
extension KeyedEncodingContainer {
    /// `value`, or `null` when it is NaN or infinite; nothing when it is nil.
    mutating func encodeFinite<T: BinaryFloatingPoint & Encodable>(_ value: T?, forKey key: Key) throws {
        guard let value else { return }
        if value.isFinite { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

extension KeyedDecodingContainer {
    /// A number written by ``KeyedEncodingContainer/encodeFinite(_:forKey:)``: `null` reads
    /// as NaN (which one of NaN or ±infinity it was is not kept).
    func decodeFinite<T: BinaryFloatingPoint & Decodable>(_ type: T.Type, forKey key: Key) throws -> T {
        try decodeNil(forKey: key) ? .nan : decode(T.self, forKey: key)
    }

    /// As ``decodeFinite(_:forKey:)``, and nil when the key is absent.
    func decodeFiniteIfPresent<T: BinaryFloatingPoint & Decodable>(_ type: T.Type, forKey key: Key) throws -> T? {
        contains(key) ? try decodeFinite(T.self, forKey: key) : nil
    }
}
