import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An output path that cannot be written is refused before any work, in one line.
@Suite struct OutputPathTests {
    /// A directory with a corpus, a FIFO and a subdirectory: outputs no command may write.
    static func unwritable() throws -> (directory: URL, corpus: String, cases: [(path: String, error: String)]) {
        let directory = try CLI.temporaryDirectory()
        let corpus = try TrainInspectVerifyTests.corpus(in: directory)
        let fifo = directory.appendingPathComponent("fifo.tfq").path
        #expect(mkfifo(fifo, 0o644) == 0)
        let subdirectory = directory.appendingPathComponent("models").path
        try FileManager.default.createDirectory(atPath: subdirectory, withIntermediateDirectories: false)
        return (directory, corpus, [
            (subdirectory, "\(subdirectory): is a directory; give a file name"),
            (fifo, "\(fifo): is not a regular file"),
            (directory.appendingPathComponent("missing/m.tfq").path, "No such file or directory"),
            (corpus + "/m.tfq", "Not a directory"),
        ])
    }

    static func expectRefused(_ result: CLI.Result, _ error: String, _ arguments: [String]) {
        #expect(result.status != 0, "\(arguments)")
        #expect(result.stderr.contains(error), "\(arguments): \(result.stderr)")
        #expect(result.stderr.trimmingCharacters(in: .newlines).split(separator: "\n").count == 1, "\(arguments): \(result.stderr)")
    }

    @Test func trainRefusesAnUnwritableOutBeforeTraining() throws {
        let (directory, corpus, cases) = try Self.unwritable()
        let before = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        for (path, error) in cases {
            let arguments = ["train", "--data", corpus, "--out", path, "--steps", "3"] + TrainInspectVerifyTests.small
            Self.expectRefused(try CLI.run(arguments), error, arguments)  // one line: no "training …" note, no progress
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == before)
        var status = stat()
        #expect(stat(directory.appendingPathComponent("fifo.tfq").path, &status) == 0 && status.st_mode & S_IFMT == S_IFIFO)
    }

    @Test func exportUnpackAndImportRefuseAnUnwritableOutput() throws {
        let (directory, _, cases) = try Self.unwritable()
        let before = try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted()
        let llama = ImportTests.fixtures
        let commands: [[String]] = [
            ["export", ExportRunTests.checkpoint, "--int8", "--eval-tokens", "200"],
            ["unpack", ExportRunTests.checkpoint],
            ["import", "llama2c", llama.appendingPathComponent("tiny-v0.bin").path, "--tokenizer", llama.appendingPathComponent("tokenizer.bin").path],
        ]
        for command in commands {
            for (path, error) in cases {
                let arguments = command + ["-o", path]
                Self.expectRefused(try CLI.run(arguments), error, arguments)
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path).sorted() == before)
    }
}
