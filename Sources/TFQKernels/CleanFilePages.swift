#if canImport(Glibc)
import Glibc
#endif

extension ProcessMemory {
    /// Unmaps this process's read-only file mappings that hold no modified page, except those
    /// of the files in `keeping`: the pages stay in the page cache and map again on their
    /// next use (a minor fault), but leave this process's resident set.
    ///
    /// What `tfq run` does once a model is loaded. Start-up runs much code once (argument
    /// parsing, JSON, the tokenizer, the Swift runtime's set-up), and the kernel maps each
    /// touched page of a binary with its neighbours: about 7 MB of `tfq`'s text is resident
    /// after start-up, of which decoding touches about 0.3 MB. Only mappings without a
    /// private or anonymous page are dropped, so nothing written is ever lost. Best effort:
    /// errors leave mappings as they are.
    public static func releaseCleanFilePages(keeping paths: [String]) {
        let kept = Set(paths.compactMap { path -> String? in
            guard let resolved = realpath(path, nil) else { return nil }
            defer { free(resolved) }
            return String(cString: resolved)
        })
        guard let file = fopen("/proc/self/smaps", "r") else { return }
        var regions: [(start: UInt, end: UInt)] = []
        var current: (start: UInt, end: UInt)?
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, file) > 0 {
            var text = String(cString: line!)
            if text.last == "\n" { text.removeLast() }
            if let header = mapping(text) {
                current = header.readOnlyFile && !kept.contains(header.path) ? (header.start, header.end) : nil
            } else if current != nil, text.hasPrefix("Anonymous:") || text.hasPrefix("Private_Dirty:") {
                if kilobytes(text) != 0 { current = nil }
            } else if let region = current, text.hasPrefix("VmFlags:") {   // an entry's last line
                regions.append(region)
                current = nil
            }
        }
        free(line)
        fclose(file)
        for region in regions {
            _ = madvise(UnsafeMutableRawPointer(bitPattern: region.start), Int(region.end - region.start), MADV_DONTNEED)
        }
    }

    /// A smaps header line: `start-end perms offset dev inode path`.
    private static func mapping(_ line: String) -> (start: UInt, end: UInt, readOnlyFile: Bool, path: String)? {
        let fields = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
        guard fields.count >= 5, let dash = fields[0].firstIndex(of: "-"),
              let start = UInt(fields[0][..<dash], radix: 16), let end = UInt(fields[0][fields[0].index(after: dash)...], radix: 16)
        else { return nil }
        let perms = Array(fields[1].utf8)
        let path = fields.count == 6 ? String(fields[5].drop { $0 == " " }) : ""
        let readOnlyFile = perms.count == 4 && perms[0] == UInt8(ascii: "r") && perms[1] == UInt8(ascii: "-") && path.hasPrefix("/")
        return (start, end, readOnlyFile, path)
    }

    /// The number of a `Name:   N kB` line.
    private static func kilobytes(_ line: String) -> Int {
        Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
    }
}
