// libFuzzer target for the readers of other tools' files: SafetensorsFile and GGUFFile
// (Sources/TFQImport). Built by `tools/fuzz/build.sh imports` together with the sources of
// Sources/TFQFormat and those two readers, in one module, with -sanitize=fuzzer,address.
//
// Contract under test: whatever the bytes, opening the file (GGUF when it starts with the
// magic `GGUF`, safetensors otherwise) and reading every tensor either succeeds or throws
// ImportError, and every error is one line. A crash, a Swift runtime trap, an ASan report,
// an out-of-memory or a hang is a bug.
#if canImport(Glibc)
import Glibc
#endif

nonisolated(unsafe) private let scratch = ScratchFile()
nonisolated(unsafe) private var sink: UInt64 = 0

private func exercise(_ bytes: UnsafeRawBufferPointer) throws {
    scratch.replaceContents(with: bytes)
    if bytes.starts(with: GGUF.magic) {
        let file = try GGUFFile(path: scratch.path)
        for tensor in file.tensors.values {
            let data = file.bytes(tensor)
            precondition(data.count == tensor.type.byteCount(tensor.count), "\(tensor.name): \(data.count) bytes")
            if let first = data.first, let last = data.last { sink &+= UInt64(first) &+ UInt64(last) }
        }
        sink &+= UInt64(file.metadata.count)
    } else {
        let file = try SafetensorsFile(path: scratch.path)
        for tensor in file.tensors.values where tensor.count <= 1 << 20 {
            guard [.f32, .f16, .bf16, .f64].contains(tensor.dtype) else { continue }
            let values = try file.floats(tensor.name)
            precondition(values.count == tensor.count)
            if let first = values.first { sink &+= UInt64(first.bitPattern) }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    do {
        try exercise(UnsafeRawBufferPointer(start: data, count: size))
    } catch let error as ImportError {
        precondition(!error.description.contains("\n"), "a multi-line error: \(error)")
    } catch {
        fatalError("a reader threw something other than ImportError: \(error)")
    }
    return 0
}
