import TFQModel

/// The `training` section of a checkpoint: enough to continue the run exactly.
public struct TrainingState: Codable, Equatable, Sendable {
    public struct Evaluation: Codable, Equatable, Sendable {
        public var step: Int
        public var trainLoss: Double
        public var valLoss: Double
        /// The validation loss in bits per byte of text, comparable across tokenizers.
        public var valBitsPerByte: Double?
        enum CodingKeys: String, CodingKey { case step, trainLoss = "train_loss", valLoss = "val_loss", valBitsPerByte = "val_bits_per_byte" }
    }

    public var options: TrainingOptions
    /// Optimizer steps completed.
    public var step = 0
    public var tokens = 0
    /// The batch sampler's generator, as it stands after `step` steps.
    public var sampler: Xoshiro256
    public var dataCRC32: String
    /// Where the data was read from, so `tfq export` can find the validation split.
    public var dataPath: String?
    public var validationPath: String?
    public var lastTrainLoss: Double?
    public var lastValLoss: Double?
    public var lastValBitsPerByte: Double?
    public var evaluations: [Evaluation] = []
    /// Seconds spent training, summed over resumed runs.
    public var wallSeconds: Double = 0

    enum CodingKeys: String, CodingKey {
        case options, step, tokens, sampler, evaluations
        case dataCRC32 = "data_crc32", dataPath = "data_path", validationPath = "val_data_path", lastTrainLoss = "last_train_loss", lastValLoss = "last_val_loss", lastValBitsPerByte = "last_val_bits_per_byte", wallSeconds = "wall_seconds"
    }
}
