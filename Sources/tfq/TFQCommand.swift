import ArgumentParser
import Foundation
import TFQFormat
import TFQKernels
import TFQModel

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
        // A build for another CPU would die of an illegal instruction inside a kernel.
        if let missing = CPUFeatures.missingFromThisCPU {
            FileHandle.standardError.write(Data("tfq: error: this build of tfq needs \(missing), which this CPU lacks; build it on this machine (tools/build.sh) or for any CPU (tools/build.sh --portable)\n".utf8))
            Foundation.exit(1)
        }
        var arguments = Array(CommandLine.arguments.dropFirst())
        for index in arguments.indices.reversed() where arguments[index] == "--zstd" {
            let next = index + 1 < arguments.count ? arguments[index + 1] : nil
            if next.map({ Int32($0) == nil }) ?? true { arguments.insert(String(ExportCommand.defaultZstdLevel), at: index + 1) }
        }
        do {
            var command = try parseAsRoot(arguments)
            try command.run()
        } catch let error as OptionNamingError {
            // The library names options as it stores them; here they are flags.
            exit(withError: UsageError(error.message.text(naming: flag)))
        } catch {
            exit(withError: error)
        }
    }

    /// The flag that sets the option a library message names `option` (its stored name).
    static func flag(_ option: String) -> String {
        option == "ff_dim" ? "--ff" : "--" + option.replacingOccurrences(of: "_", with: "-")
    }
}
