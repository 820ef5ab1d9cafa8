import ArgumentParser
import TFQFormat
import TFQModel
import TFQRuntime
import TFQTrain

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a .tfq file completely: structure, every checksum, every tensor decodes, and it loads.",
        discussion: """
        After the file's structure, every checksum and every int8 value, a model is loaded as \
        `tfq run` loads it (config, tokenizer, every tensor's name, dtype and shape), and a \
        training checkpoint as `tfq train --resume` and `tfq export` load it (also its training \
        state and optimizer moments). A file whose metadata has no kind, config or tokenizer \
        is only a container of tensors, and is checked as one.
        """
    )

    @Argument(help: "The .tfq file.") var file: String

    func run() throws {
        // Opening checks the structure and decodes every zstd tensor; verify() covers every
        // stored byte and every q8 value; then the loads of the programs that use the file.
        let opened = try TFQFile(path: file)
        try opened.verify()
        let loads = try LoadCheck.run(opened)
        let bytes = opened.tensors.reduce(0) { $0 + $1.storedLength }
        print("OK \(file): tfq \(opened.versionMajor).\(opened.versionMinor), \(opened.tensors.count) tensors, \(bytes) tensor bytes, "
              + "checksums match, \(loads)")
    }
}

/// The checks that loading a file makes, run by `tfq verify` after its own, so that a file it
/// passes is one the other commands accept.
enum LoadCheck {
    /// Loads `file` as what its metadata says it is; returns what was checked, for the report.
    static func run(_ file: TFQFile) throws -> String {
        let kind = file.metadata["kind"]
        guard kind != nil || file.metadata["config"] != nil || file.metadata["tokenizer"] != nil else {
            return "not a model (no kind, config or tokenizer in its metadata)"
        }
        // A model for `tfq run` (and a checkpoint for `tfq export`, which opens it the same way).
        _ = try Model(file: file)
        guard kind == .string("checkpoint") else { return "loads as a model" }
        try checkpoint(file)
        return "loads as a model and as a training checkpoint"
    }

    /// What `tfq train --resume` reads besides the model: the training state, and the AdamW
    /// moments of every parameter once a step has been taken.
    static func checkpoint(_ file: TFQFile) throws {
        let metadata = try ModelMetadata(file: file)
        guard let state = try file.metadataSection("training", as: TrainingState.self) else {
            throw TFQFormatError(file: file.path, .badMetadata("not a training checkpoint (no training state); it cannot be resumed"))
        }
        if let problem = state.options.problem {
            throw TFQFormatError(file: file.path, .badMetadata("training.options: \(problem)"))
        }
        guard state.options.modelConfig(vocabSize: metadata.config.vocabSize) == metadata.config else {
            throw TFQFormatError(file: file.path, .badMetadata("training.options describe another model than config; it cannot be resumed"))
        }
        guard state.options.optimizer == .adamw && state.step > 0 else { return }
        for tensor in ParameterLayout(config: metadata.config).tensors {
            for name in ["adam.m." + tensor.name, "adam.v." + tensor.name] {
                guard let info = file.info(name) else { throw TFQFormatError(file: file.path, tensor: name, .missingTensor) }
                guard info.shape == tensor.shape else {
                    throw TFQFormatError(file: file.path, tensor: name, .badTensor("has shape \(info.shape), the config needs \(tensor.shape)"))
                }
            }
        }
    }
}
