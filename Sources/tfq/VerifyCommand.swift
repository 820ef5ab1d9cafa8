import ArgumentParser
import TFQFormat

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a .tfq file completely: structure, every checksum, every tensor decodes."
    )

    @Argument(help: "The .tfq file.") var file: String

    func run() throws {
        // Opening checks the structure and decodes every zstd tensor; verifyChecksums covers
        // every stored byte.
        let model = try TFQFile(path: file, options: .init(verifyChecksums: true))
        try checkQ8Values(model)
        let bytes = model.tensors.reduce(0) { $0 + $1.storedLength }
        print("OK \(file): tfq \(model.versionMajor).\(model.versionMinor), \(model.tensors.count) tensors, \(bytes) tensor bytes, checksums match")
    }

    /// q8 values must lie in −127…127 and scales must be finite and ≥ 0 (formats/tfq.md §7).
    private func checkQ8Values(_ model: TFQFile) throws {
        for info in model.tensors where info.dtype == .q8 {
            let bytes = model.bytes(info)
            let scalesStart = info.layout == .rowMajor ? TensorGeometry.alignUp(info.rows * info.columns)!
                                                       : Q8Codec.paddedRows(info.rows) * info.columns
            if bytes[..<scalesStart].contains(0x80) {
                throw TFQFormatError(file: model.path, tensor: info.name, .badTensor("holds the invalid int8 value -128"))
            }
            for offset in stride(from: scalesStart, to: bytes.count, by: 4) {
                let scale = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self)))
                if !scale.isFinite || scale < 0 {
                    throw TFQFormatError(file: model.path, tensor: info.name, .badTensor("has an invalid scale \(scale)"))
                }
            }
        }
    }
}
