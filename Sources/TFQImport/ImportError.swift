/// Why a file could not be imported; the message names the file and the problem.
/// Names read from a hostile file can hold control characters: they are shown escaped, so
/// the message stays one line.
public struct ImportError: Error, CustomStringConvertible {
    public let description: String
    init(_ path: String, _ problem: String) {
        description = "\(path): \(problem)".unicodeScalars.map {
            $0.properties.generalCategory == .control ? $0.escaped(asASCII: true) : String($0)
        }.joined()
    }
}
