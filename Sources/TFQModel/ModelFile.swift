import FoundationEssentials
import TFQFormat

/// Where a file came from: written into every .tfq file tfq makes.
public struct Provenance: Codable, Equatable, Sendable {
    /// The program that wrote the file (`tool`, formats/tfq.md §8).
    public var tool = "tfq"
    /// That program's version (`tool_version`).
    public var toolVersion = TFQVersion.string
    /// When the file was written, in ISO 8601 UTC (`created`).
    public var created: String
    /// For exports: the source checkpoint's fingerprint, 8 hex digits (`source_checkpoint_crc32`, formats/tfq.md §8).
    public var sourceCheckpointCRC32: String?
    /// For exports: the steps the source checkpoint had trained for (`source_steps`).
    public var sourceSteps: Int?
    /// For exports: the source checkpoint's last validation loss (`source_val_loss`).
    public var sourceValLoss: Double?

    enum CodingKeys: String, CodingKey {
        case tool, created
        case toolVersion = "tool_version", sourceCheckpointCRC32 = "source_checkpoint_crc32"
        case sourceSteps = "source_steps", sourceValLoss = "source_val_loss"
    }

    /// Provenance naming this tfq, created at `created` (now by default), with no source fields.
    public init(created: String = Provenance.now()) { self.created = created }

    /// The current UTC time in ISO 8601.
    public static func now() -> String {
        Date.now.formatted(.iso8601)
    }
}

/// A .tfq file's model sections: what every model and checkpoint carries.
public struct ModelMetadata {
    /// `"checkpoint"` (training state, fp32) or `"model"` (for inference): `kind` (formats/tfq.md §8).
    public var kind: String
    /// The model's architecture (`config`, formats/tfq.md §9).
    public var config: ModelConfig
    /// The tokenizer (`tokenizer`, formats/tfq.md §10).
    public var tokenizer: Tokenizer
    /// Where the file came from (`provenance`, formats/tfq.md §8).
    public var provenance: Provenance
    /// Sections owned by other layers (`training`, `quantization`, `quality`, `extra`).
    public var sections: [String: JSONValue] = [:]

    /// The four model sections and no others; `provenance` defaults to this tfq, now.
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
        // A valid file this tfq cannot run is told apart from a malformed one.
        if case .string(let arch)? = file.metadata["config"]?["arch"], ModelConfig.Architecture(rawValue: arch) == nil {
            let known = ModelConfig.Architecture.allCases.map(\.rawValue).joined(separator: ", ")
            throw TFQFormatError(file: file.path, .unsupported("architecture '\(arch)' (this tfq runs \(known))"))
        }
        guard let config = try file.metadataSection("config", as: ModelConfig.self) else { throw missing("config") }
        guard let stored = file.metadata["tokenizer"] else { throw missing("tokenizer") }
        let tokenizer: Tokenizer
        do throws(Tokenizer.FormatError) { tokenizer = try Tokenizer(json: stored) } catch {
            throw TFQFormatError(file: file.path, error.isUnknownType ? .unsupported("\(error)") : .badMetadata("'tokenizer' is malformed: \(error)"))
        }
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
}
