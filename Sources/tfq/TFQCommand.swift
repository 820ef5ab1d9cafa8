import ArgumentParser
import TFQFormat

/// The `tfq` command line: train, export, inspect and run small transformer models.
@main
struct TFQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tfq",
        abstract: "Train small transformer language models on a CPU, quantize them to int8, run them fast.",
        version: TFQVersion.string,
        subcommands: [TrainCommand.self, ExportCommand.self, ImportCommand.self, RunCommand.self, TokenizeCommand.self, InspectCommand.self,
                      VerifyCommand.self, UnpackCommand.self, BenchCommand.self]
    )

    /// `--zstd` may stand without its level (`--zstd [LEVEL]`), which ArgumentParser cannot
    /// express: a bare `--zstd` gets the default level before parsing.
    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        for index in arguments.indices.reversed() where arguments[index] == "--zstd" {
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if next.map({ Int32($0) == nil }) ?? true { arguments.insert(String(ExportCommand.defaultZstdLevel), at: index + 1) }
        }
        Self.main(arguments)
    }
}
