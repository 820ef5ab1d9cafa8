import Foundation

/// Runs the built `tfq` executable the way a user would and captures what it prints.
enum CLI {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        /// stdout exactly as written, for binary output.
        var stdoutBytes = Data()
        /// The child was still running after the `timeout` given to `run`, and was killed.
        var timedOut = false
    }

    /// A program of the package (`tfq` by default) next to this test bundle in the build folder.
    static func executable(_ program: String = "tfq") -> URL {
        let bundle = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return bundle.deletingLastPathComponent().appendingPathComponent(program)
    }

    /// Runs `tfq arguments`. With a `timeout`, a child still running after that many seconds
    /// is killed and the result says so: for inputs that could make a broken tfq wait forever
    /// (a FIFO), so that the test fails instead of hanging. The bound is generous; a passing
    /// run never comes near it.
    @discardableResult
    static func run(_ arguments: [String], stdin: Data? = nil, environment: [String: String]? = nil,
                    timeout: Double? = nil, program: String = "tfq") throws -> Result {
        let process = Process()
        process.executableURL = executable(program)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        let exited = DispatchSemaphore(value: 0), watch = DispatchGroup()
        nonisolated(unsafe) var killed = false
        if let timeout {
            let pid = process.processIdentifier
            DispatchQueue.global().async(group: watch) {
                if exited.wait(timeout: .now() + timeout) == .timedOut {
                    killed = true
                    kill(pid, SIGKILL)
                }
            }
        }
        if let stdin { input.fileHandleForWriting.write(stdin) }
        try input.fileHandleForWriting.close()
        // Read both pipes concurrently so a chatty child never blocks on a full pipe.
        nonisolated(unsafe) var errData = Data()
        let group = DispatchGroup()
        DispatchQueue.global().async(group: group) { errData = err.fileHandleForReading.readDataToEndOfFile() }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        process.waitUntilExit()
        exited.signal()
        watch.wait()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self), stdoutBytes: outData, timedOut: killed)
    }

    /// A fresh empty directory for one test's files.
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tfq-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
