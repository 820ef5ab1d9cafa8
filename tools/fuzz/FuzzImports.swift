// libFuzzer target for the readers of other tools' files: SafetensorsFile, GGUFFile and
// HuggingFaceTokenizer (Sources/TFQImport). Built by `tools/fuzz/build.sh imports` together
// with the sources of Sources/TFQFormat, those readers and the BPE tokenizer they build, in
// one module, with -sanitize=fuzzer,address.
//
// Contract under test: whatever the bytes, opening the file (GGUF when it starts with the
// magic `GGUF`, a tokenizer.json when it starts with `{`, safetensors otherwise) and reading
// every tensor either succeeds or throws ImportError, and every error is one line. A
// tokenizer that loads must give back any bytes it encodes: decode(encode(x)) = x for the
// input's last 256 bytes, every id inside the vocabulary. A crash, a Swift runtime trap, an
// ASan report, an out-of-memory or a hang is a bug.
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
    } else if bytes.first == UInt8(ascii: "{") {
        // Room for both seeds' vocabularies (Tests/TFQImportTests/Fixtures/hf: gpt2 384,
        // llama-sp 512; ids past a vocabulary are padding).
        let vocabulary = 512
        let tokenizer = try HuggingFaceTokenizer.read(path: scratch.path, vocabularySize: vocabulary, endOfText: nil)
        let text = Array(bytes.suffix(256))
        let ids = try tokenizer.encode(bytes: text)
        precondition(ids.allSatisfy { $0 >= 0 && $0 < vocabulary }, "an id outside the vocabulary")
        let decoded = tokenizer.decodeBytes(ids)
        switch tokenizer {
        case .sentencePiece(let pieces):
            // The ▁ prefix of each stretch is taken off again only at the start (as
            // Hugging Face decodes), so the round trip is exact with Llama 2's prefix on
            // text without special tokens.
            let body = pieces.beginning != nil && ids.first == pieces.beginning ? ids.dropFirst() : ids[...]
            if pieces.spacePrefix == .every, !body.contains(where: pieces.special.contains) {
                precondition(decoded == text, "decode(encode(x)) differs from x")
            }
        default:
            precondition(decoded == text, "decode(encode(x)) differs from x")
        }
        sink &+= UInt64(ids.count)
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
