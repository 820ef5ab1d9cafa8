/// Whole-file reads for inputs that are not .tfq files (corpora, prompts, imports).
public enum FileBytes {
    /// Every byte of the regular file at `path`; anything else (a FIFO, a directory, a
    /// device) is refused before a byte is read (``InputFile``).
    public static func read(_ path: String) throws -> [UInt8] {
        try InputFile(path: path).readAll()
    }
}
