import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// An output path that cannot be written is refused before any work, in one line; and a
/// write removes the staging files that killed runs left for the same output.
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

    @Test func exportRemovesStaleStagingFilesOfItsOutputOnly() throws {
        let directory = try CLI.temporaryDirectory()
        func at(_ name: String) -> String { directory.appendingPathComponent(name).path }
        func make(_ name: String, age: Int) throws {
            try Data("partial".utf8).write(to: URL(fileURLWithPath: at(name)))
            let then = timeval(tv_sec: time(nil) - age, tv_usec: 0)
            #expect(utimes(at(name), [then, then]) == 0)
        }
        // What `kill -9` during earlier exports of m.tfq left, an hour ago.
        for name in [".m.tfq.staging-123", "..m.tfq.staging-123.tmp-77-1", ".m.tfq.tmp-77-2"] { try make(name, age: 3600) }
        try make(".m.tfq.tmp-78-1", age: 0)         // fresh: could be a writer that has not locked it yet
        try make(".m.tfq.tmp-79-1", age: 3600)      // old but locked: a live writer
        try make(".n.tfq.staging-5", age: 3600)     // another output's
        let holder = open(at(".m.tfq.tmp-79-1"), O_RDONLY | O_CLOEXEC)
        #expect(holder >= 0 && flock(holder, LOCK_EX | LOCK_NB) == 0)
        defer { close(holder) }

        let export = try CLI.run(["export", ExportRunTests.checkpoint, "-o", at("m.tfq"), "--fp32", "--eval-tokens", "200"])
        #expect(export.status == 0, "\(export.stderr)")
        #expect(Set(try FileManager.default.contentsOfDirectory(atPath: directory.path))
                == ["m.tfq", ".m.tfq.tmp-78-1", ".m.tfq.tmp-79-1", ".n.tfq.staging-5"])
    }
}
