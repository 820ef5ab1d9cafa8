import ArgumentParser
import TFQFormat

/// The `tfq` command line: train, export, inspect and run small transformer models.
@main
struct TFQCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tfq",
        abstract: "Train small transformer language models on a CPU, quantize them to int8, run them fast.",
        version: TFQVersion.string,
        subcommands: [TrainCommand.self, ExportCommand.self, RunCommand.self, InspectCommand.self, VerifyCommand.self, UnpackCommand.self]
    )
}
