import TFQModel

/// The random draws of a training run. All come from `--seed`, each from its own stream:
/// stream k is the seed's xoshiro256** sequence jumped k × 2¹²⁸ draws ahead
/// (``Xoshiro256/jumped(times:)``), so no stream can reach another's numbers, and drawing
/// more or fewer from one (another shape, another batch size) leaves the others as they were.
public enum TrainingStream: Int, CaseIterable, Sendable {
    /// The initial weights (``GPT/initialize(seed:)``).
    case initialization
    /// The training batches' window offsets; its state is saved in every checkpoint.
    case batches
    /// The validation batches: the same windows at every evaluation of a run.
    case evaluation
    /// One word mixed into every dropout mask (``GPT/dropoutKey``).
    case dropout

    /// This stream's generator for `seed`, before its first draw.
    public func generator(seed: UInt64) -> Xoshiro256 {
        Xoshiro256(seed: seed).jumped(times: rawValue)
    }
}
