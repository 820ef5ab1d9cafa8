import TFQFormat
import TFQModel

/// What an import wrote.
public struct ImportSummary: Sendable {
    /// The path of the model file written.
    public var output: String
    /// The imported model's configuration.
    public var config: ModelConfig
    /// The checkpoint's format version: 0, 1 or 2.
    public var version: Int
    /// The written file's length in bytes.
    public var fileBytes: Int
    /// Tensors written as q8 with the checkpoint's own values and scales (version 2).
    public var keptQuantized: [String]
    /// Version-2 tensors stored as f32 instead, with the reason.
    public var dequantized: [String: String]
}

/// llama2.c checkpoint + tokenizer.bin → .tfq (formats/tfq.md §9, the llama architecture).
///
/// Versions 0 and 1 give an fp32 model (quantize it with `tfq export --int8`); version 2
/// keeps its int8 values and scales, laid out for the runtime, where the format allows (a
/// group size that is a multiple of 4 and divides the row, and no value of −128); other
/// tensors are stored f32, dequantized exactly as llama2.c's groups say.
public enum Llama2cImporter {
    /// Converts the checkpoint at `checkpointPath`, with llama2.c's `tokenizer.bin` at
    /// `tokenizerPath`, to a .tfq model at `output`; throws an ``ImportError`` naming the file.
    public static func importCheckpoint(_ checkpointPath: String, tokenizer tokenizerPath: String, output: String) throws -> ImportSummary {
        try OutputPath.check(output)
        let checkpoint = try Llama2cCheckpoint(path: checkpointPath)
        let config = checkpoint.config
        let tokenizer = try Llama2cTokenizer.read(path: tokenizerPath, vocabSize: config.vocabSize)
        var metadata = ModelMetadata(kind: "model", config: config, tokenizer: .llama2c(tokenizer))
        let quantized = checkpoint.version == 2
        metadata.sections["import"] = .object([
            "format": .string("llama2c"),
            "version": .integer(Int64(checkpoint.version)),
            "source": .string(String(checkpointPath.split(separator: "/").last ?? "")),
        ])

        let writer = try TFQWriter(path: output)
        var summary = ImportSummary(output: output, config: config, version: checkpoint.version, fileBytes: 0, keptQuantized: [], dequantized: [:])
        func source(_ name: String) -> Llama2cCheckpoint.Tensor { checkpoint.tensors[name]! }
        /// Writes the row-wise concatenation of `parts` as `name`, of shape `shape`.
        func write(_ name: String, _ parts: [String], _ shape: [Int]) throws {
            let tensors = parts.map(source)
            let columns = shape.last!, rows = shape.count == 2 ? shape[0] : 1
            if quantized, case .q8 = tensors[0] {
                var values: [Int8] = [], scales: [Float] = []
                for case .q8(let v, let s) in tensors { values += v; scales += s }
                if let reason = unkeptReason(values: values, columns: columns, groupSize: checkpoint.groupSize) {
                    summary.dequantized[name] = reason
                    let floats = (0..<values.count).map { Float(values[$0]) * scales[$0 / checkpoint.groupSize] }
                    try floats.withUnsafeBufferPointer { _ = try writer.add(name: name, shape: shape, floats: $0) }
                } else {
                    let bytes = try values.withUnsafeBufferPointer { v in
                        try scales.withUnsafeBufferPointer { s in
                            try Q8Codec.pack(values: v, scales: s, rows: rows, cols: columns, groupSize: checkpoint.groupSize, layout: .interleaved16x4)
                        }
                    }
                    try bytes.withUnsafeBytes {
                        _ = try writer.add(name: name, dtype: .q8, shape: shape, layout: .interleaved16x4, groupSize: checkpoint.groupSize, bytes: $0)
                    }
                    summary.keptQuantized.append(name)
                }
            } else if tensors.count == 1, case .f32(let values) = tensors[0] {
                _ = try writer.add(name: name, shape: shape, floats: values)
            } else {
                var floats: [Float] = []
                for case .f32(let values) in tensors { floats += values }
                try floats.withUnsafeBufferPointer { _ = try writer.add(name: name, shape: shape, floats: $0) }
            }
        }

        let (d, f, v) = (config.dim, config.ffDim, config.vocabSize)
        try write(TensorName.tokenEmbedding, ["token_embedding"], [v, d])
        for i in 0..<config.layers {
            let p = TensorName.Block(i)
            try write(p.ln1Weight, ["rms_att.\(i)"], [d])
            try write(p.qkvWeight, ["wq.\(i)", "wk.\(i)", "wv.\(i)"], [config.qkvRows, d])
            try write(p.projWeight, ["wo.\(i)"], [d, d])
            try write(p.ln2Weight, ["rms_ffn.\(i)"], [d])
            try write(p.gateWeight, ["w1.\(i)"], [f, d])
            try write(p.upWeight, ["w3.\(i)"], [f, d])
            try write(p.downWeight, ["w2.\(i)"], [d, f])
        }
        try write(TensorName.finalNormWeight, ["rms_final"], [d])
        if !config.tieEmbeddings { try write(TensorName.separateHead, ["wcls"], [v, d]) }
        // What was actually stored: a version-2 file may have had no tensor q8 could keep.
        let kept = !summary.keptQuantized.isEmpty
        metadata.sections["quantization"] = .object([
            "scheme": .string(kept ? "q8_symmetric_grouped" : "f32"),
            "group_size": kept ? .string(String(checkpoint.groupSize)) : .null,
            "layout": .string(kept ? Q8Layout.interleaved16x4.description : "row-major"),
            "zstd_level": .integer(0),
        ])
        try writer.finish(metadata: metadata.encoded())
        summary.fileBytes = try TFQFile(path: output).fileLength
        return summary
    }

    /// Why version-2 values cannot be kept as q8, or nil if they can.
    static func unkeptReason(values: [Int8], columns: Int, groupSize: Int) -> String? {
        if columns % groupSize != 0 { return "its groups of \(groupSize) run across rows of \(columns)" }
        if groupSize % 4 != 0 { return "group size \(groupSize) is not a multiple of 4" }
        if values.contains(-128) { return "it holds the value −128, outside symmetric int8" }
        return nil
    }
}
