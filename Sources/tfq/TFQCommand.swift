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
        var parsed: ParsableCommand
        do {
            parsed = try parseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            guard code != .success else { exit(withError: error) }   // --help, --version
            FileHandle.standardError.write(Data("Error: \(oneLine(error))\n".utf8))
            Foundation.exit(code.rawValue)
        }
        do {
            var command = parsed
            try command.run()
        } catch let error as OptionNamingError {
            // The library names options as it stores them; here they are flags.
            exit(withError: UsageError(error.message.text(naming: flag)))
        } catch {
            exit(withError: error)
        }
    }

    /// A command-line error in one line: ArgumentParser's message (its lines joined), the
    /// option's help when it printed one and the message does not list the valid values,
    /// and where to look for the usage it would have printed below.
    static func oneLine(_ error: Error) -> String {
        let full = fullMessage(for: error).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let parts = message(for: error).split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("Help:") && !$0.hasPrefix("Usage:") && !$0.hasPrefix("See '") }
        var line = parts.isEmpty ? "\(error)" : parts.joined(separator: " ")
        if !line.contains("Please provide one of"), let help = full.first(where: { $0.hasPrefix("Help:") }) {
            // "Help:  --group-size <group-size>  Weights per scale group: …": the text after the option.
            let words = help.dropFirst(5).split(separator: " ", omittingEmptySubsequences: true)
            let text = words.drop { $0.hasPrefix("-") || $0.hasPrefix("<") }.joined(separator: " ")
            if !text.isEmpty { line += " — " + text }
        }
        guard let see = full.first(where: { $0.hasPrefix("See '") }), let end = see.dropFirst(5).firstIndex(of: "'") else { return line }
        return line + " (see '" + see[see.index(see.startIndex, offsetBy: 5)..<end] + "')"
    }

    /// The flag that sets the option a library message names `option` (its stored name).
    static func flag(_ option: String) -> String {
        option == "ff_dim" ? "--ff" : "--" + option.replacingOccurrences(of: "_", with: "-")
    }
}
