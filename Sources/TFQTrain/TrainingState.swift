import TFQModel

/// The `training` section of a checkpoint: enough to continue the run exactly.
public struct TrainingState: Codable, Equatable, Sendable {
    /// One evaluation on the validation set, for the loss curve.
    public struct Evaluation: Codable, Equatable, Sendable {
        /// Steps completed when it was made (0: the initialized model).
        public var step: Int
        /// That step's training loss in nats per token; the validation loss when there is none yet.
        public var trainLoss: Double
        /// The mean validation loss, in nats per token.
        public var valLoss: Double
        /// The validation loss in bits per byte of text, comparable across tokenizers.
        public var valBitsPerByte: Double?
        enum CodingKeys: String, CodingKey { case step, trainLoss = "train_loss", valLoss = "val_loss", valBitsPerByte = "val_bits_per_byte" }
    }

    /// The options the run was started with; a resumed run must match them (`steps` and
    /// the evaluation and checkpoint intervals aside).
    public var options: TrainingOptions
    /// Optimizer steps completed.
    public var step = 0
    /// Tokens trained on so far.
    public var tokens = 0
    /// The batch sampler's generator, as it stands after `step` steps.
    public var sampler: Xoshiro256
    /// CRC-32 of the training text, as 8 hex digits: a resumed run must use the same data.
    public var dataCRC32: String
    /// Where the data was read from, so `tfq export` can find the validation split.
    public var dataPath: String?
    /// The validation text's path as given, or nil when validation was the end of the training text.
    public var validationPath: String?
    /// The last step's training loss, in nats per token.
    public var lastTrainLoss: Double?
    /// The last finite validation loss, in nats per token.
    public var lastValLoss: Double?
    /// The last finite validation loss in bits per byte of text.
    public var lastValBitsPerByte: Double?
    /// Every evaluation so far, in the order they were made.
    public var evaluations: [Evaluation] = []
    /// Seconds spent training, summed over resumed runs.
    public var wallSeconds: Double = 0

    enum CodingKeys: String, CodingKey {
        case options, step, tokens, sampler, evaluations
        case dataCRC32 = "data_crc32", dataPath = "data_path", validationPath = "val_data_path", lastTrainLoss = "last_train_loss", lastValLoss = "last_val_loss", lastValBitsPerByte = "last_val_bits_per_byte", wallSeconds = "wall_seconds"
    }
}
