import TFQFormat
import TFQModel

/// A llama2.c checkpoint, memory-mapped and checked: the three formats llama2.c writes.
///
/// - version 0 (run.c's legacy format): seven int32 (dim, hidden_dim, n_layers, n_heads,
///   n_kv_heads, vocab_size, seq_len; a negative vocab_size means a separate classifier),
///   then fp32 weights in run.c's order, including the unused RoPE tables.
/// - versions 1 and 2 (export.py): the magic "ak42", the version, the seven ints, a
///   shared-classifier byte (version 2: then the group size), padded to 256 bytes; then the
///   norms, the token embedding and each matrix kind for all layers, and the classifier
///   unless shared. Version 1 is fp32; version 2 stores the embedding and matrices as int8
///   with one fp32 scale per group of `group_size` consecutive values.
///
/// llama2.c itself trusts these sizes; here every one is checked against the file's length
/// with overflow-checked arithmetic before anything is read.
public final class Llama2cCheckpoint {
    /// The path the checkpoint was opened at.
    public let path: String
    /// The format's version: 0 (legacy), 1 or 2.
    public let version: Int
    /// The model the header describes, as tfq's llama architecture.
    public let config: ModelConfig
    /// Version 2's quantization group (0 otherwise).
    public let groupSize: Int
    private let file: MappedFile

    /// A tensor in the file: fp32 values, or int8 values with their scales (version 2).
    public enum Tensor {
        /// fp32 values, viewed in the mapping: valid while the checkpoint is.
        case f32(UnsafeBufferPointer<Float>)
        /// int8 values viewed in the mapping (valid while the checkpoint is) and one scale per
        /// group of ``Llama2cCheckpoint/groupSize`` values, each finite and ≥ 0.
        case q8(values: UnsafeBufferPointer<Int8>, scales: [Float])
    }

    /// The tensors by llama2.c's names (`token_embedding`, `rms_att.L`, `wq.L`, …, `wcls`).
    public private(set) var tensors: [String: Tensor] = [:]

    static let magic: UInt32 = 0x616B_3432  // "ak42" read as a little-endian uint32

    /// Maps `path`, reads its header and locates every tensor, checking each against the
    /// file's length; throws an ``ImportError`` naming the first problem.
    public init(path: String) throws {
        self.path = path
        file = try MappedFile.toImport(path)
        let bytes = file.bytes
        func int32(_ at: Int) throws -> Int {
            guard at + 4 <= bytes.count else { throw ImportError(path, "truncated header (\(bytes.count) bytes)") }
            return Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: Int32.self)))
        }
        // The legacy format has no magic: its first int is dim.
        let first = try int32(0)
        let header: Int, shared: Bool
        var fields: [Int]
        if UInt32(truncatingIfNeeded: first) == Self.magic {
            version = try int32(4)
            guard version == 1 || version == 2 else { throw ImportError(path, "llama2.c checkpoint version \(version) is not supported (0, 1 and 2 are)") }
            fields = try (0..<7).map { try int32(8 + 4 * $0) }
            guard bytes.count >= 256 else { throw ImportError(path, "truncated header (\(bytes.count) bytes; versions 1 and 2 have 256)") }
            let flag = bytes[36]
            guard flag <= 1 else { throw ImportError(path, "shared-classifier flag is \(flag), not 0 or 1") }
            shared = flag == 1
            groupSize = version == 2 ? try int32(37) : 0
            header = 256
        } else {
            version = 0
            fields = try (0..<7).map { try int32(4 * $0) }
            shared = fields[5] > 0
            fields[5] = abs(fields[5])
            groupSize = 0
            header = 28
        }
        let (dim, hidden, layers, heads, kvHeads, vocab, context) = (fields[0], fields[1], fields[2], fields[3], fields[4], fields[5], fields[6])
        for (name, value) in [("dim", dim), ("hidden_dim", hidden), ("n_layers", layers), ("n_heads", heads),
                              ("n_kv_heads", kvHeads), ("vocab_size", vocab), ("seq_len", context)] where value < 1 {
            throw ImportError(path, "\(name) is \(value) in the header (not a llama2.c checkpoint?)")
        }
        config = .llama(vocabSize: vocab, contextLength: context, layers: layers, heads: heads, kvHeads: kvHeads,
                        dim: dim, ffDim: hidden, tieEmbeddings: shared)
        if let problem = config.problem { throw ImportError(path, "impossible shape in the header: \(problem)") }
        if version == 2 {
            // export.py backs the group size off until it divides dim only, so groups may run
            // across rows of the hidden-dim matrices (stories42M: 1376 columns, groups of 64);
            // the importer keeps those tensors as f32, dequantized group by group.
            guard groupSize >= 1 && groupSize <= 1 << 20 else { throw ImportError(path, "group size \(groupSize) in the header") }
        }
        try locateTensors(header: header)
    }

    /// The tensors in file order, each as (name, shape, quantized).
    private var fileOrder: [(String, [Int], Bool)] {
        let c = config, d = c.dim, f = c.ffDim, kv = c.kvDim, layers = 0..<c.layers
        func each(_ name: String, _ shape: [Int], _ quantized: Bool) -> [(String, [Int], Bool)] { layers.map { ("\(name).\($0)", shape, quantized) } }
        let matrices = each("wq", [d, d], true) + each("wk", [kv, d], true) + each("wv", [kv, d], true) + each("wo", [d, d], true)
        let classifier: [(String, [Int], Bool)] = c.tieEmbeddings ? [] : [("wcls", [c.vocabSize, d], true)]
        switch version {
        case 0:
            // Built in steps: Swift 6.0 cannot type-check one long concatenation in time.
            let q = false
            var tensors: [(String, [Int], Bool)] = [("token_embedding", [c.vocabSize, d], q)]
            tensors += each("rms_att", [d], q)
            tensors += matrices.map { ($0.0, $0.1, q) }
            tensors += each("rms_ffn", [d], q)
            tensors += each("w1", [f, d], q)
            tensors += each("w2", [d, f], q)
            tensors += each("w3", [f, d], q)
            tensors += [("rms_final", [d], q), ("freq_cis_real", [c.contextLength, c.headDim / 2], q),
                        ("freq_cis_imag", [c.contextLength, c.headDim / 2], q)]
            return tensors + classifier.map { ($0.0, $0.1, q) }
        default:
            let q = version == 2
            let norms = each("rms_att", [d], false) + each("rms_ffn", [d], false) + [("rms_final", [d], false)]
            let rest = [("token_embedding", [c.vocabSize, d], true)] + matrices
                + each("w1", [f, d], true) + each("w2", [d, f], true) + each("w3", [f, d], true) + classifier
            return norms + rest.map { ($0.0, $0.1, q && $0.2) }
        }
    }

    private func locateTensors(header: Int) throws {
        let bytes = file.bytes
        var offset = header
        for (name, shape, quantized) in fileOrder {
            let (count, countOverflow) = shape.reduce((1, false)) { partial, n in
                let (product, overflow) = partial.0.multipliedReportingOverflow(by: n)
                return (product, partial.1 || overflow)
            }
            if quantized && count % groupSize != 0 {
                throw ImportError(path, "\(name) has \(count) values, not a whole number of groups of \(groupSize)")
            }
            let groups = quantized ? count / groupSize : 0
            let (valueBytes, o1) = count.multipliedReportingOverflow(by: quantized ? 1 : 4)
            let (scaleBytes, o2) = groups.multipliedReportingOverflow(by: 4)
            let (size, o3) = valueBytes.addingReportingOverflow(scaleBytes)
            let (end, o4) = offset.addingReportingOverflow(size)
            guard !(countOverflow || o1 || o2 || o3 || o4), end <= bytes.count else {
                throw ImportError(path, "truncated: \(name) \(shape) needs bytes up to \(countOverflow ? "beyond any file" : String(end)), the file has \(bytes.count)"
                                  + " (a header that does not match the weights?)")
            }
            let base = bytes.baseAddress! + offset
            if quantized {
                // Scales follow an odd number of int8 values at times: read them unaligned.
                let scales = (0..<groups).map { Float(bitPattern: UInt32(littleEndian: (base + count).loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self))) }
                if let bad = scales.firstIndex(where: { !($0.isFinite && $0 >= 0) }) {
                    throw ImportError(path, "\(name): the scale of group \(bad) is \(scales[bad]), not a finite non-negative number")
                }
                tensors[name] = .q8(values: UnsafeBufferPointer(start: base.assumingMemoryBound(to: Int8.self), count: count), scales: scales)
            } else {
                tensors[name] = .f32(UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self), count: count))
            }
            offset = end
        }
        // llama2.c ignores what follows the weights; a file with trailing bytes is most
        // likely a header that disagrees with its weights, so say so.
        guard offset == bytes.count else {
            throw ImportError(path, "\(bytes.count - offset) bytes after the last tensor: the header (dim \(config.dim), "
                              + "\(config.layers) layers, vocab \(config.vocabSize), \(config.tieEmbeddings ? "shared" : "separate") classifier) does not match the file")
        }
    }
}
