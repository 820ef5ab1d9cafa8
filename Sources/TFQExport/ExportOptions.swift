import TFQFormat
import TFQModel

/// What `tfq export` writes.
public struct ExportOptions: Sendable {
    /// How the weight matrices are stored.
    public enum Precision: String, Sendable, CaseIterable {
        /// int8 with per-group scales (`q8`), f16, or f32 as trained.
        case int8, fp16, fp32
    }

    /// Scale groups along the reduction dimension: a fixed size, one group per row, or
    /// (`auto`) the largest multiple of 4 up to 64 that divides the row: 64 for most
    /// shapes, 48 for llama2.c's dim 288.
    public enum GroupSize: Sendable, Equatable, CustomStringConvertible {
        /// Groups of this many values (a multiple of 4 that divides the row).
        case size(Int)
        /// One group per row.
        case row
        /// The largest multiple of 4 up to 64 that divides the row.
        case auto

        /// The size as the `quantization` metadata spells it: a number, `row` or `auto`.
        public var description: String {
            switch self {
            case .size(let n): return String(n)
            case .row: return "row"
            case .auto: return "auto"
            }
        }

        /// The group size for a matrix with `columns` columns.
        func resolved(columns: Int) -> Int {
            switch self {
            case .size(let n): return n
            case .row: return columns
            case .auto: return stride(from: 64, through: 4, by: -4).first { columns % $0 == 0 } ?? 64
            }
        }
    }

    /// How int8 export stores the vocabulary tables (`tok_emb`, and `lm_head` when untied).
    public enum EmbeddingPrecision: String, Sendable, CaseIterable {
        /// fp32 when they hold at most 1/64 of the parameters (character and byte
        /// vocabularies), fp16 up to 1/6 (small BPE vocabularies), int8 beyond.
        case auto
        /// Quantized like the other matrices.
        case int8
        /// Kept as fp32.
        case fp32
        /// Stored as fp16 (half the bytes of fp32, each weight rounded to 11 significant
        /// bits), and gpt's position table with them; the runtime widens them exactly.
        case fp16
    }

    /// How int8 export stores the group scales.
    public enum ScalePrecision: String, Sendable, CaseIterable {
        /// IEEE half precision (`q8f16`): 2 bytes a group. A scale is rounded to binary16
        /// (2⁻¹¹ of itself at most, where it is normal) and the weights are quantized with the
        /// rounded scale, each within half a step (``Q8Codec/scale(maxAbs:dtype:)``).
        case f16
        /// fp32 (`q8`): 4 bytes a group, readable by tfq files before format 1.5.
        case f32
    }

    /// How the weight matrices are stored.
    public var precision: Precision
    /// int8: how the vocabulary tables are stored.
    public var embedding: EmbeddingPrecision = .auto
    /// int8 export: the first this many blocks quantize their layers' inputs in two int8
    /// passes at run time (formats/tfq.md §8, `two_pass_activations`).
    public var twoPassLayers = 1
    /// int8: how the group scales are stored (f16: `q8f16`, f32: `q8`).
    public var scales: ScalePrecision = .f16
    /// The dtype of the int8 tensors ``scales`` makes.
    public var int8DType: DType { scales == .f16 ? .q8f16 : .q8 }
    /// int8: the scale groups of every quantized matrix (the tables' too unless ``tableGroupSize`` is set).
    public var groupSize: GroupSize = .auto
    /// int8: the vocabulary tables' group size (nil: `groupSize`). A table's rounding error
    /// enters every layer through the lookup and every logit through the head; finer groups
    /// cost 4 bytes per group.
    public var tableGroupSize: GroupSize?
    /// int8: the classifier's input is quantized in two int8 passes too (formats/tfq.md §8),
    /// at twice the head's integer work.
    public var twoPassClassifier = false
    /// int8: in every block, the layers that read a norm's output (attention's `qkv`, the
    /// feed-forward `up` and `gate`) quantize their inputs in two passes, whatever
    /// ``twoPassLayers`` says of the block. Those inputs carry most of the one-pass error;
    /// the layers hold 7/12 of a gpt block's weights (more of a llama block's), so they cost
    /// that share of every layer in two passes (BENCHMARKS.md, "Two passes where the error is").
    public var twoPassNormInputs = false
    /// int8: how the group sizes and the layers in two passes are chosen. ``Accuracy/target``
    /// (the default) sets them itself, so it refuses options that set them too.
    public var accuracy: Accuracy = .target
    /// int8 with ``Accuracy/target``: what the chosen setting's quality report must meet.
    public var target = QualityTarget()
    /// int8: choose the weights with GPTQ on calibration text (plain rounding without).
    public var gptq = true
    /// GPTQ's calibration text; nil uses the checkpoint's training split.
    public var calibrationData: String?
    /// About how many calibration tokens GPTQ reads, in windows of the context (at most 256
    /// tokens each).
    public var calibrationTokens = 16_384
    /// nil writes every tensor raw (fully zero-copy to load).
    public var zstdLevel: Int32? = 3
    /// Text for the quality report; nil uses the checkpoint's validation split.
    public var evalData: String?
    /// The most next-token predictions the quality report compares.
    public var evalTokens = 32_768
    /// Threads for calibration, GPTQ and the quality report's sessions.
    public var threads: Int

    /// Options with `precision` and `threads`, the rest at `tfq export`'s defaults.
    public init(precision: Precision, threads: Int) {
        self.precision = precision
        self.threads = threads
    }

    static let vocabularyTables: Set = [TensorName.tokenEmbedding, TensorName.separateHead]

    /// The group size of the int8 tensor `name` with `columns` columns.
    func group(for name: String, columns: Int) -> Int {
        (Self.vocabularyTables.contains(name) ? tableGroupSize ?? groupSize : groupSize).resolved(columns: columns)
    }
}
