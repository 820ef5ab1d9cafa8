import Foundation
import Testing
@testable import TFQFormat

/// Inputs that are not regular files: refused at open with a one-line error, never waited on
/// (a FIFO without a writer) or read forever (/dev/zero).
@Suite struct InputFileTests {
    /// Runs `body`, which opens `fifo`. If it has not returned after `bound` seconds (a
    /// blocking open waiting for a writer), opens the FIFO's write end, again and again, so the
    /// open returns and the test fails instead of hanging. Returns whether it had to.
    static func hung(openingFIFO fifo: String, bound: Double = 60, _ body: () -> Void) -> Bool {
        let done = DispatchSemaphore(value: 0), watch = DispatchGroup()
        nonisolated(unsafe) var hung = false
        DispatchQueue.global().async(group: watch) {
            guard done.wait(timeout: .now() + bound) == .timedOut else { return }
            hung = true
            repeat {
                let writer = open(fifo, O_WRONLY | O_NONBLOCK)   // succeeds once a reader waits in open
                if writer >= 0 { close(writer) }
            } while done.wait(timeout: .now() + 0.2) == .timedOut
        }
        body()
        done.signal()
        watch.wait()
        return hung
    }

    static func fifo() throws -> String {
        let path = try Support.temporaryDirectory().appendingPathComponent("f.tfq").path
        #expect(mkfifo(path, 0o600) == 0)
        return path
    }

    @Test func aFIFOIsRefusedWithoutWaitingForAWriter() throws {
        let path = try Self.fifo()
        var errors: [String] = []
        let hung = Self.hung(openingFIFO: path) {
            do { _ = try TFQFile(path: path) } catch { errors.append("\(error)") }
            do { _ = try MappedFile(path: path) } catch { errors.append("\(error)") }
            do { _ = try FileBytes.read(path) } catch { errors.append("\(error)") }
        }
        #expect(!hung, "opening a FIFO waited for a writer")
        #expect(errors == [path + ": is not a regular file (a FIFO)", path + ": is not a regular file (a FIFO)",
                           "is not a regular file (a FIFO)"])
    }

    @Test func directoriesAndDevicesAreRefused() throws {
        let directory = try Support.temporaryDirectory().path
        for (path, kind) in [(directory, "a directory"), ("/dev/zero", "a character device"), ("/dev/null", "a character device")] {
            #expect(throws: TFQFormatError(file: path, .io("is not a regular file (\(kind))"))) { try TFQFile(path: path) }
        }
        // Not /dev/zero here: a reader without the check would read it until memory runs out
        // (the CLI tests try it, in a child process with a bound).
        for (path, kind) in [(directory, "a directory"), ("/dev/null", "a character device")] {
            #expect(throws: InputFile.Error(description: "is not a regular file (\(kind))")) { try FileBytes.read(path) }
        }
        // A symbolic link is followed: what counts is the file it names.
        let link = directory + "/link.tfq", target = directory + "/target.tfq"
        try Support.writeSampleFile(at: target)
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: target)
        #expect(try TFQFile(path: link).tensors.count == 5)
    }

    @Test func aRegularFileReadsWhole() throws {
        let path = try Support.temporaryDirectory().appendingPathComponent("t.txt").path
        let bytes = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(try FileBytes.read(path) == bytes)
    }
}
