import ArgumentParser
import TFQFormat

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a .tfq file completely: structure, every checksum, every tensor decodes."
    )

    @Argument(help: "The .tfq file.") var file: String

    func run() throws {
        // Opening checks the structure and decodes every zstd tensor; verify() covers every
        // stored byte and every q8 value.
        let model = try TFQFile(path: file)
        try model.verify()
        let bytes = model.tensors.reduce(0) { $0 + $1.storedLength }
        print("OK \(file): tfq \(model.versionMajor).\(model.versionMinor), \(model.tensors.count) tensors, \(bytes) tensor bytes, checksums match")
    }
}
