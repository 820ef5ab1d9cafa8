import Foundation

/// The `python3` on PATH, as the tests that run the repository's numpy tools see it.
public enum Python {
    /// Whether `python3` imports numpy: the tests that run tools/tfq_read.py or
    /// tools/reference.py are skipped without it, saying why, instead of failing.
    public static let hasNumpy: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import numpy"]
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()
}
