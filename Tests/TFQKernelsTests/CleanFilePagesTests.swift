import Foundation
import Testing
import TFQKernels

/// ProcessMemory.releaseCleanFilePages: clean read-only file mappings leave the resident set
/// and read back the same; kept files and written pages stay.
@Suite struct CleanFilePagesTests {
    /// Rss of the mapping that starts at `base`, from /proc/self/smaps, in kB.
    static func residentKB(at base: UnsafeRawPointer) throws -> Int {
        // /proc files report a size of 0: read until the end.
        let handle = try #require(FileHandle(forReadingAtPath: "/proc/self/smaps"))
        defer { try? handle.close() }
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        let start = String(UInt(bitPattern: base), radix: 16)
        var inside = false
        for line in smaps.split(separator: "\n") {
            if line.contains("-") && line.split(separator: " ").count >= 5 && line.first?.isHexDigit == true {
                inside = line.hasPrefix(start + "-")
            } else if inside && line.hasPrefix("Rss:") {
                return Int(line.split(separator: " ", omittingEmptySubsequences: true)[1])!
            }
        }
        Issue.record("no mapping at \(start)")
        return -1
    }

    static func checksum(_ p: UnsafeRawPointer, _ count: Int) -> Int {
        var sum = 0
        for i in stride(from: 0, to: count, by: 512) { sum = sum &* 31 &+ Int(p.load(fromByteOffset: i, as: UInt8.self)) }
        return sum
    }

    @Test func cleanPagesLeaveAndReadBackTheSame() throws {
        let size = 4 << 20
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("clean-pages-\(UUID().uuidString)").path
        defer { unlink(path) }
        try Data((0..<size).map { UInt8(truncatingIfNeeded: $0 * 7 + $0 / 4096) }).write(to: URL(fileURLWithPath: path))
        let fd = open(path, O_RDONLY)
        #expect(fd >= 0)
        defer { close(fd) }
        let clean = try #require(mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0))
        defer { munmap(clean, size) }
        // A private mapping whose first page was written, then made read-only (like RELRO).
        let written = try #require(mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0))
        defer { munmap(written, size) }
        written.storeBytes(of: 0xAB, as: UInt8.self)
        #expect(mprotect(written, size, PROT_READ) == 0)
        let expected = Self.checksum(clean, size)
        #expect(Self.checksum(written, size) != expected)   // reads every page (and differs in byte 0)
        #expect(try Self.residentKB(at: clean) >= 4000)
        ProcessMemory.releaseCleanFilePages(keeping: [path])
        #expect(try Self.residentKB(at: clean) >= 4000, "a kept file stays mapped")

        ProcessMemory.releaseCleanFilePages(keeping: [])
        #expect(try Self.residentKB(at: clean) == 0)
        #expect(try Self.residentKB(at: written) >= 4000, "a mapping with a written page is left alone")
        #expect(written.load(as: UInt8.self) == 0xAB)
        #expect(Self.checksum(clean, size) == expected, "the pages read back the same")
    }
}
