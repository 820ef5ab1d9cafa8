import TFQFormat
import TFQModel

extension Llama2cTokenizer {
    /// Reads llama2.c's `tokenizer.bin`: an int32 max_token_length, then per token a float32
    /// score, an int32 length and the piece's bytes. llama2.c reads `vocabSize` entries and
    /// trusts every length; here each is checked against the file.
    public static func read(path: String, vocabSize: Int) throws -> Llama2cTokenizer {
        guard vocabSize >= minimumVocabularySize else {
            throw ImportError(path, "the model has \(vocabSize) tokens; a llama2.c vocabulary has at least \(minimumVocabularySize) (BOS, EOS, 256 bytes)")
        }
        // Mapped, not read: a wrong path (a checkpoint, /dev/zero) costs nothing up front.
        let file: MappedFile
        do { file = try MappedFile(path: path, minimumLength: 1) } catch let error as TFQFormatError {
            if case .io(let why) = error.problem { throw ImportError(path, why) }
            throw ImportError(path, "truncated at max_token_length (the file is empty)")
        }
        let bytes = file.bytes
        var offset = 0
        func int32(_ what: String) throws -> Int32 {
            guard offset + 4 <= bytes.count else {
                throw ImportError(path, "truncated at \(what) (byte \(offset) of \(bytes.count)); the model has \(vocabSize) tokens")
            }
            defer { offset += 4 }
            return Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self))
        }
        let maxLength = Int(try int32("max_token_length"))
        guard maxLength >= 1 && maxLength <= 1 << 16 else { throw ImportError(path, "max_token_length \(maxLength) is out of range (not a tokenizer.bin?)") }
        var pieces: [[UInt8]] = [], scores: [Float] = []
        pieces.reserveCapacity(vocabSize); scores.reserveCapacity(vocabSize)
        for id in 0..<vocabSize {
            let score = Float(bitPattern: UInt32(bitPattern: try int32("the score of token \(id)")))
            guard score.isFinite else { throw ImportError(path, "token \(id) has a score that is not finite") }
            let length = Int(try int32("the length of token \(id)"))
            guard length >= 0 && length <= maxLength else {
                throw ImportError(path, "token \(id) has length \(length), outside 0…max_token_length (\(maxLength))")
            }
            guard offset + length <= bytes.count else { throw ImportError(path, "truncated inside token \(id)") }
            let piece = Array(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)]))
            offset += length
            // Pieces are stored as JSON text in the .tfq.
            guard String(validating: piece, as: UTF8.self) != nil else { throw ImportError(path, "token \(id) is not valid UTF-8") }
            pieces.append(piece)
            scores.append(score)
        }
        guard offset == bytes.count else {
            throw ImportError(path, "holds more than the model's \(vocabSize) tokens: is it this model's tokenizer?")
        }
        return Llama2cTokenizer(pieces: pieces, scores: scores)
    }
}
