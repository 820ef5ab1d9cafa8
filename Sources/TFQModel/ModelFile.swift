import FoundationEssentials
import TFQFormat

/// Where a file came from: written into every .tfq file tfq makes.
public struct Provenance: Codable, Equatable, Sendable {
    public var tool = "tfq"
    public var toolVersion = TFQVersion.string
    public var created: String
    public var sourceCheckpointCRC32: String?
    public var sourceSteps: Int?
    public var sourceValLoss: Double?

    enum CodingKeys: String, CodingKey {
        case tool, created
        case toolVersion = "tool_version", sourceCheckpointCRC32 = "source_checkpoint_crc32"
        case sourceSteps = "source_steps", sourceValLoss = "source_val_loss"
    }

    public init(created: String = Provenance.now()) { self.created = created }

    /// The current UTC time in ISO 8601.
    public static func now() -> String {
        Date.now.formatted(.iso8601)
    }
}

/// A .tfq file's model sections: what every model and checkpoint carries.
public struct ModelMetadata {
    public var kind: String
    public var config: ModelConfig
    public var tokenizer: Tokenizer
    public var provenance: Provenance
    /// Sections owned by other layers (`training`, `quantization`, `quality`, `extra`).
    public var sections: [String: JSONValue] = [:]

    public init(kind: String, config: ModelConfig, tokenizer: Tokenizer, provenance: Provenance = Provenance()) {
        self.kind = kind; self.config = config; self.tokenizer = tokenizer; self.provenance = provenance
    }

    /// The metadata block's JSON bytes.
    public func encoded() throws -> [UInt8] {
        var members = sections
        members["kind"] = .string(kind)
        members["config"] = try JSONValue(encoding: config)
        members["tokenizer"] = try JSONValue(encoding: tokenizer)
        members["provenance"] = try JSONValue(encoding: provenance)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(JSONValue.object(members)))
    }

    /// Reads and checks the model sections of an open file.
    public init(file: TFQFile) throws {
        func missing(_ key: String) -> TFQFormatError { TFQFormatError(file: file.path, .badMetadata("no '\(key)' section: not a tfq model")) }
        guard let config = try file.metadataSection("config", as: ModelConfig.self) else { throw missing("config") }
        guard let stored = file.metadata["tokenizer"] else { throw missing("tokenizer") }
        let tokenizer: Tokenizer
        do { tokenizer = try Tokenizer(json: stored) } catch { throw TFQFormatError(file: file.path, .badMetadata("'tokenizer' is malformed: \(error)")) }
        if let problem = config.problem { throw TFQFormatError(file: file.path, .badMetadata("config: \(problem)")) }
        guard tokenizer.vocabularySize == config.vocabSize else {
            throw TFQFormatError(file: file.path, .badMetadata("tokenizer has \(tokenizer.vocabularySize) tokens, config says \(config.vocabSize)"))
        }
        self.config = config
        self.tokenizer = tokenizer
        kind = (try? file.metadataSection("kind", as: String.self)) ?? "model"
        provenance = (try? file.metadataSection("provenance", as: Provenance.self)) ?? Provenance(created: "")
        sections = file.metadata.filter { !["kind", "config", "tokenizer", "provenance"].contains($0.key) }
    }
}

extension JSONValue {
    /// The JSON form of any encodable value.
    public init<T: Encodable>(encoding value: T) throws {
        self = try JSONParser.parse(Array(JSONEncoder().encode(value)))
    }

    /// Decodes this value as `T`.
    public func decoded<T: Decodable>(as type: T.Type) throws -> T {
        try JSONDecoder().decode(T.self, from: JSONEncoder().encode(self))
    }
}

extension GPT {
    /// Writes every parameter as an f32 tensor under its formats/tfq.md name.
    public func writeParameters(to writer: TFQWriter, prefix: String = "", from buffer: UnsafeBufferPointer<Float>? = nil,
                                compression: TensorCompression = .none) throws {
        let source = buffer ?? UnsafeBufferPointer(parameters)
        for tensor in layout.tensors {
            let values = UnsafeBufferPointer(rebasing: source[tensor.offset..<(tensor.offset + tensor.count)])
            try writer.add(name: prefix + tensor.name, shape: tensor.shape, floats: values, compression: compression)
        }
    }

    /// Reads every parameter (f32, f16 or q8, dequantized) from `file` into `buffer`
    /// (the parameters by default), checking names and shapes.
    public func readParameters(from file: TFQFile, prefix: String = "", into buffer: UnsafeMutableBufferPointer<Float>? = nil) throws {
        let target = buffer ?? parameters
        for tensor in layout.tensors {
            let name = prefix + tensor.name
            guard let info = file.info(name) else { throw TFQFormatError(file: file.path, tensor: name, .missingTensor) }
            guard info.shape == tensor.shape else {
                throw TFQFormatError(file: file.path, tensor: name, .badTensor("has shape \(info.shape), the config needs \(tensor.shape)"))
            }
            (target.baseAddress! + tensor.offset).update(from: file.floats(info), count: tensor.count)
        }
    }
}
