#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The hidden files a write of target `T` stages in T's directory before renaming into place,
/// and the removal of those a killed process left behind.
///
/// Policy: a writer holds an exclusive `flock` on its staging file from creation until it is
/// renamed or removed; the kernel drops the lock when the process dies, even on `kill -9`.
/// Before writing `T`, a writer removes a staging file of `T` only if (1) its name is exactly
/// one of T's staging patterns, (2) `flock(LOCK_EX | LOCK_NB)` on it is granted, so no live
/// process holds it, and (3) it was last modified at least ``staleAge`` seconds ago. Files
/// of other targets, foreign names, and anything it cannot open or lock are left alone.
enum StagingFiles {
    /// Why an age at all, when the lock says who is live: a writer creates its file and then
    /// locks it, two calls apart, and the legacy export staging files (below) were never
    /// locked while an older tfq measured them. A minute is far longer than the
    /// create-to-lock gap, and the leftovers of a killed run go at the next write after it.
    static let staleAge: Int = 60

    /// A new staging name for `target`: `.NAME.tmp-PID-RANDOM` next to it.
    static func newName(for target: OutputPath) -> String {
        "\(target.directory).\(target.name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    }

    /// Whether `file` (a name in T's directory) is a staging file of the target named `name`:
    /// `.NAME.tmp-PID-N` (every writer), or what exports before this one left,
    /// `.NAME.staging-N` and its own writer's `..NAME.staging-N.tmp-PID-N`.
    static func isStagingName(_ file: String, of name: String) -> Bool {
        func digits(_ text: Substring) -> Bool { !text.isEmpty && text.allSatisfy { $0.isASCII && $0.isNumber } }
        func pidAndNumber(_ text: Substring) -> Bool {
            let parts = text.split(separator: "-", omittingEmptySubsequences: false)
            return parts.count == 2 && digits(parts[0]) && digits(parts[1])
        }
        let current = ".\(name).tmp-", legacy = ".\(name).staging-"
        if file.hasPrefix(current) { return pidAndNumber(file.dropFirst(current.count)) }
        if file.hasPrefix(legacy) { return digits(file.dropFirst(legacy.count)) }
        if file.hasPrefix("." + legacy) {
            let rest = file.dropFirst(legacy.count + 1)
            guard let dot = rest.firstIndex(of: ".") else { return false }
            return digits(rest[..<dot]) && rest[dot...].hasPrefix(".tmp-") && pidAndNumber(rest[dot...].dropFirst(5))
        }
        return false
    }

    /// Takes the staging lock on a file this process just created (see the type's policy).
    /// A file system without `flock` leaves it unlocked: other writers then fail to lock it
    /// too, and leave it alone.
    static func lock(_ descriptor: Int32) {
        _ = flock(descriptor, LOCK_EX | LOCK_NB)
    }

    /// Removes `target`'s stale staging files (the type's policy); returns their names.
    /// Best effort: a file that cannot be listed, opened or locked stays.
    @discardableResult
    static func removeStale(of target: OutputPath, now: time_t = time(nil)) -> [String] {
        guard !target.name.isEmpty, let directory = opendir(target.directoryToOpen) else { return [] }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if isStagingName(name, of: target.name) { names.append(name) }
        }
        closedir(directory)
        return names.filter { removeIfStale(target.directory + $0, now: now) }
    }

    private static func removeIfStale(_ path: String, now: time_t) -> Bool {
        // O_NOFOLLOW: a symlink under a staging name is not ours; O_NONBLOCK: nor is a FIFO.
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }  // also releases the lock, after the unlink
        var opened = stat(), named = stat()
        guard fstat(descriptor, &opened) == 0, opened.st_mode & S_IFMT == S_IFREG,
              now - opened.st_mtim.tv_sec >= staleAge,
              flock(descriptor, LOCK_EX | LOCK_NB) == 0,
              // Still the same file under that name, now that no one else can hold it.
              lstat(path, &named) == 0, named.st_dev == opened.st_dev, named.st_ino == opened.st_ino
        else { return false }
        return unlink(path) == 0
    }
}
