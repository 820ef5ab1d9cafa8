import TFQFormat
#if canImport(Glibc)
import Glibc
#endif

/// A Hugging Face model as `save_pretrained` writes it: `config.json` and the weights in
/// `model.safetensors`, or in shards listed by `model.safetensors.index.json`.
///
/// `path` is the model's directory, or one of those two files in it. A shard's name in the
/// index must be a plain file name in the same directory.
public struct HuggingFaceCheckpoint {
    /// The model's directory with a trailing `/`, ready to prefix a file name (empty when
    /// `path` named a file in the current directory).
    public let directory: String
    /// `config.json`, parsed: always an object.
    public let config: JSONValue
    /// Which file holds each tensor.
    private let files: [String: SafetensorsFile]

    /// Reads `config.json` and opens every safetensors file the weights are in (given the
    /// directory, `model.safetensors` is preferred to an index); throws an ``ImportError``
    /// naming the file.
    public init(path: String) throws {
        let directory: String, weights: String
        let named = path.hasSuffix(".safetensors") || path.hasSuffix(".json")
        if named {
            directory = path.lastIndex(of: "/").map { String(path[...$0]) } ?? ""
        } else {
            directory = path.hasSuffix("/") ? path : path + "/"
        }
        if named && !path.hasSuffix("config.json") {
            weights = path
        } else {
            let index = directory + "model.safetensors.index.json"
            weights = Self.exists(index) && !Self.exists(directory + "model.safetensors") ? index : directory + "model.safetensors"
        }
        self.directory = directory
        config = try Self.readJSON(directory + "config.json")
        guard case .object = config else { throw ImportError(directory + "config.json", "not a JSON object") }

        var files: [String: SafetensorsFile] = [:]
        if weights.hasSuffix(".json") {
            let index = try Self.readJSON(weights)
            guard case .object(let map)? = index["weight_map"] else { throw ImportError(weights, "no weight_map object") }
            var shards: [String: SafetensorsFile] = [:]
            for (tensor, shard) in map {
                guard case .string(let name) = shard, !name.isEmpty, !name.contains("/"), name != "..", name != "." else {
                    throw ImportError(weights, "tensor '\(tensor)': the shard must be a file name in the model's directory")
                }
                if shards[name] == nil { shards[name] = try SafetensorsFile(path: directory + name) }
                guard shards[name]!.tensors[tensor] != nil else { throw ImportError(directory + name, "no tensor '\(tensor)', which the index places there") }
                files[tensor] = shards[name]
            }
        } else {
            let file = try SafetensorsFile(path: weights)
            for name in file.tensors.keys { files[name] = file }
        }
        self.files = files
    }

    /// Every tensor's name, sorted.
    public var tensorNames: [String] { files.keys.sorted() }

    /// The shape of tensor `name`, or nil when the checkpoint has none.
    public func shape(_ name: String) -> [Int]? { files[name]?.tensors[name]?.shape }

    /// The stored element type of tensor `name` (`F32`, `F16`, `BF16`, …).
    public func dtype(_ name: String) -> String? { files[name]?.tensors[name]?.dtype.rawValue }

    /// Tensor `name` as f32, checked to have `shape`.
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        guard let file = files[name] else { throw ImportError(directory, "the checkpoint has no tensor '\(name)'") }
        let stored = file.tensors[name]!.shape
        guard stored == shape else { throw ImportError(file.path, "tensor '\(name)' has shape \(stored); the config needs \(shape)") }
        let values = try file.floats(name)
        guard values.allSatisfy(\.isFinite) else { throw ImportError(file.path, "tensor '\(name)' holds a NaN or an infinity") }
        return values
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func readJSON(_ path: String) throws -> JSONValue {
        do {
            let file = try InputFile(path: path)
            guard file.length <= 64 << 20 else { throw ImportError(path, "\(file.length) bytes is too large for this JSON file") }
            return try JSONParser.parse(file.readAll(), maxValues: 1 << 22)
        } catch let error as InputFile.Error {
            throw ImportError(path, error.description)
        } catch let error as JSONParser.ParseError {
            throw ImportError(path, "not valid JSON: \(error)")
        }
    }
}
