import Foundation
import Testing
import TFQFormat
#if canImport(Glibc)
import Glibc
#endif

/// Hidden staging files that killed writers leave next to a target: the next write of that
/// target removes them, and nothing else. Ages are set with utimes and locks are taken
/// here, so nothing depends on timing.
@Suite struct StagingFilesTests {
    /// A file at `path` last modified `age` seconds ago.
    static func make(_ path: String, age: Int) throws {
        try Data("partial".utf8).write(to: URL(fileURLWithPath: path))
        let then = timeval(tv_sec: time(nil) - age, tv_usec: 0)
        #expect(utimes(path, [then, then]) == 0)
    }

    /// Holds an exclusive flock on `path` through a descriptor of its own, as a live writer
    /// in another process would (flock locks belong to the open file description).
    static func lock(_ path: String) throws -> Int32 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        try #require(descriptor >= 0)
        try #require(flock(descriptor, LOCK_EX | LOCK_NB) == 0)
        return descriptor
    }

    static func write(_ path: String) throws {
        let writer = try TFQWriter(path: path)
        try [Float](repeating: 1, count: 4).withUnsafeBufferPointer { _ = try writer.add(name: "w", shape: [4], floats: $0) }
        try writer.finish(metadata: Support.metadata)
    }

    static func listing(_ directory: URL) throws -> Set<String> {
        Set(try FileManager.default.contentsOfDirectory(atPath: directory.path))
    }

    @Test func theNextWriteRemovesOnlyStaleUnlockedStagingFilesOfItsTarget() throws {
        let directory = try Support.temporaryDirectory()
        func at(_ name: String) -> String { directory.appendingPathComponent(name).path }
        let hour = 3600
        let stale = [".m.tfq.tmp-4242-17",                 // any writer's, killed
                     ".m.tfq.staging-99",                  // an export's staged copy, before this version
                     "..m.tfq.staging-99.tmp-4242-18"]     // that copy's own writer, killed
        for name in stale { try Self.make(at(name), age: hour) }
        let kept = [".m.tfq.tmp-4243-1",        // locked: a live writer, however old
                    ".m.tfq.tmp-4244-1",        // fresh: maybe created and not yet locked
                    ".n.tfq.tmp-4245-1",        // another target
                    ".m.tfq.bak.tmp-4246-1",    // another target whose name extends this one
                    ".m.tfq.tmp-notes",         // not a staging name
                    "m.tfq.tmp-4247-1"]         // not hidden: not ours
        for name in kept { try Self.make(at(name), age: name == ".m.tfq.tmp-4244-1" ? 0 : hour) }
        try FileManager.default.createDirectory(atPath: at(".m.tfq.tmp-4248-1"), withIntermediateDirectories: false)
        let holder = try Self.lock(at(".m.tfq.tmp-4243-1"))
        defer { close(holder) }

        try Self.write(at("m.tfq"))
        #expect(try Self.listing(directory) == Set(kept + ["m.tfq", ".m.tfq.tmp-4248-1"]))
        #expect(try TFQFile(path: at("m.tfq")).tensors.map(\.name) == ["w"])
    }

    @Test func aLiveWritersFileSurvivesAnotherWriteOfTheSameTarget() throws {
        let directory = try Support.temporaryDirectory()
        let target = directory.appendingPathComponent("m.tfq").path
        let first = try TFQWriter(path: target)
        let staging = try #require(try Self.listing(directory).first { $0.hasPrefix(".m.tfq.tmp-\(getpid())-") })
        let old = timeval(tv_sec: time(nil) - 3600, tv_usec: 0)
        #expect(utimes(directory.appendingPathComponent(staging).path, [old, old]) == 0)

        try Self.write(target)  // a second writer of the same target, while the first is still open
        #expect(try Self.listing(directory) == ["m.tfq", staging])
        try [Float](repeating: 2, count: 3).withUnsafeBufferPointer { _ = try first.add(name: "v", shape: [3], floats: $0) }
        try first.finish(metadata: Support.metadata)
        #expect(try Self.listing(directory) == ["m.tfq"])
        #expect(try TFQFile(path: target).tensors.map(\.name) == ["v"])

        // A staged file (export reads it back before writing the real one) stays locked too.
        let stager = try TFQWriter(path: target)
        try [Float](repeating: 3, count: 2).withUnsafeBufferPointer { _ = try stager.add(name: "s", shape: [2], floats: $0) }
        let staged = try stager.finishStaged(metadata: Support.metadata)
        #expect(utimes(staged, [old, old]) == 0)
        try Self.write(target)
        #expect(try TFQFile(path: staged).tensors.map(\.name) == ["s"])
        stager.discard()
        #expect(try Self.listing(directory) == ["m.tfq"])
    }
}
