import Foundation
import Testing
import TFQFormat

@Suite struct BasicCommandTests {
    @Test func versionComesFromTheLibrary() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0)
        #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == TFQVersion.string)
    }

    @Test func helpListsTheCommand() throws {
        let result = try CLI.run(["--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("USAGE: tfq"))
    }

    @Test func unknownFlagIsAOneLineErrorAndNonZeroExit() throws {
        let result = try CLI.run(["--no-such-flag"])
        #expect(result.status != 0)
        #expect(result.stderr.contains("--no-such-flag"))
    }
}
