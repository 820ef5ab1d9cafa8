import ArgumentParser
import FoundationEssentials
import TFQFormat

struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Rewrite a .tfq file with every tensor raw, so it loads zero-copy (mmap) with nothing decoded.",
        discussion: "Do this once on the device after shipping a compressed file: the result loads in milliseconds and its pages are shared between processes."
    )

    @Argument(help: "The compressed .tfq file.") var input: String
    @Option(name: .shortAndLong, help: "The raw .tfq file to write (may be the input itself).") var output: String

    func run() throws {
        try OutputPath.check(output)  // before reading and checking the whole input
        let file = try TFQFile(path: input, options: .init(verifyChecksums: true))
        let writer = try TFQWriter(path: output)
        for info in file.tensors {
            try writer.add(name: info.name, dtype: info.dtype, shape: info.shape, layout: info.layout,
                           groupSize: info.groupSize, bytes: file.bytes(info))
        }
        try writer.finish(metadata: try Self.rawMetadata(file))
        print("wrote \(output): \(file.tensors.count) tensors, all raw")
    }

    /// The metadata as it was, except that `quantization.zstd_level` says 0: the level no
    /// longer describes any tensor of the raw file.
    static func rawMetadata(_ file: TFQFile) throws -> [UInt8] {
        guard case .object(var quantization) = file.metadata["quantization"], let level = quantization["zstd_level"],
              level != .integer(0) else { return file.metadataJSON }
        quantization["zstd_level"] = .integer(0)
        var members = file.metadata
        members["quantization"] = .object(quantization)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Array(try encoder.encode(JSONValue.object(members)))
    }
}
