/// What `tfq export` writes.
public struct ExportOptions: Sendable {
    public enum Precision: String, Sendable, CaseIterable {
        case int8, fp16, fp32
    }

    /// Scale groups along the reduction dimension: a fixed size, one group per row, or
    /// (`auto`) 64 where it divides the row, else the largest of 32, 16, 8 and 4 that does
    /// (llama shapes like dim 288 take 32).
    public enum GroupSize: Sendable, Equatable, CustomStringConvertible {
        case size(Int)
        case row
        case auto

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
            case .auto: return [64, 32, 16, 8, 4].first { columns % $0 == 0 } ?? 64
            }
        }
    }

    public var precision: Precision
    public var groupSize: GroupSize = .auto
    /// nil writes every tensor raw (fully zero-copy to load).
    public var zstdLevel: Int32? = 3
    /// Text for the quality report; nil uses the checkpoint's validation split.
    public var evalData: String?
    public var evalTokens = 32_768
    public var threads: Int

    public init(precision: Precision, threads: Int) {
        self.precision = precision
        self.threads = threads
    }
}
