import ArgumentParser
import FoundationEssentials
import TFQFormat

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a .tfq file's version, config, tokenizer, metadata and tensors."
    )

    @Argument(help: "The .tfq file.") var file: String
    @Flag(help: "Print one JSON object instead of tables.") var json = false

    func run() throws {
        let model = try TFQFile(path: file)
        if json {
            try printJSON(model)
        } else {
            printText(model)
        }
    }

    private func printJSON(_ model: TFQFile) throws {
        let tensors: [JSONValue] = model.tensors.map { info in
            .object([
                "name": .string(info.name), "dtype": .string(info.dtype.description),
                "shape": .array(info.shape.map { .integer(Int64($0)) }),
                "encoding": .string(info.encoding.description), "layout": .string(info.layout.description),
                "group_size": .integer(Int64(info.groupSize)), "offset": .integer(Int64(info.offset)),
                "stored_bytes": .integer(Int64(info.storedLength)), "decoded_bytes": .integer(Int64(info.decodedLength)),
                "crc32": .string(CRC32.hex(info.crc32)),
            ])
        }
        let report: JSONValue = .object([
            "file": .string(model.path),
            "format_version": .string("\(model.versionMajor).\(model.versionMinor)"),
            "file_bytes": .integer(Int64(model.fileLength)),
            "zero_copy": .bool(model.isZeroCopy),
            "metadata": .object(model.metadata),
            "tensors": .array(tensors),
        ])
        print(try JSONOutput.string(report))
    }

    private func printText(_ model: TFQFile) {
        print("file      \(model.path)")
        print("format    tfq \(model.versionMajor).\(model.versionMinor), \(model.fileLength) bytes, "
              + (model.isZeroCopy ? "all tensors raw (zero-copy load)" : "has zstd tensors (decoded at load)"))
        if let kind = model.metadata["kind"] { print("kind      \(JSONOutput.plain(kind))") }
        for section in ["config", "tokenizer", "provenance", "import", "quantization", "training", "quality", "extra"] {
            guard let value = model.metadata[section] else { continue }
            print(section)
            printSection(value, indent: "  ")
        }
        let rows = model.tensors.map { info -> [String] in
            let layout = info.dtype.isInt8 ? "\(info.layout) g\(info.groupSize)" : ""
            let ratio = Double(info.storedLength) / Double(max(1, info.decodedLength))
            return [info.name, info.dtype.description, "[" + info.shape.map(String.init).joined(separator: ", ") + "]",
                    info.encoding.description, layout, String(info.storedLength), String(info.decodedLength),
                    String(format2(ratio))]
        }
        let stored = model.tensors.reduce(0) { $0 + $1.storedLength }
        let decoded = model.tensors.reduce(0) { $0 + $1.decodedLength }
        let elements = model.tensors.reduce(0) { $0 + $1.elementCount }
        print("tensors")
        print(Table.render(header: ["name", "dtype", "shape", "encoding", "layout", "stored", "decoded", "ratio"],
                           rows: rows + [["total (\(model.tensors.count) tensors, \(elements) elements)", "", "", "", "",
                                          String(stored), String(decoded), format2(Double(stored) / Double(max(1, decoded)))]],
                           rightAligned: [5, 6, 7]))
    }

    /// Scalars on one line each; long arrays (a vocabulary) summarized.
    private func printSection(_ value: JSONValue, indent: String) {
        guard case .object(let members) = value else { print(indent + JSONOutput.plain(value)); return }
        for key in members.keys.sorted() {
            let member = members[key]!
            switch member {
            case .object:
                print("\(indent)\(key)")
                printSection(member, indent: indent + "  ")
            case .array(let items) where items.count > 16 || items.contains(where: { if case .object = $0 { return true } else { return false } }):
                print("\(indent)\(key.padding(16)) [\(items.count) items]")
            case .string(let text) where text.count > 64:
                // A BPE tokenizer's merges: hundreds of kilobytes.
                print("\(indent)\(key.padding(16)) \(text.prefix(40))… [\(text.utf8.count) bytes]")
            default:
                print("\(indent)\(key.padding(16)) \(JSONOutput.plain(member))")
            }
        }
    }
}

extension String {
    func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
