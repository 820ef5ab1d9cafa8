/// What `tfq export` writes.
public struct ExportOptions: Sendable {
    public enum Precision: String, Sendable, CaseIterable {
        case int8, fp16, fp32
    }

    /// Scale groups along the reduction dimension: a fixed size, or one group per row.
    public enum GroupSize: Sendable, Equatable, CustomStringConvertible {
        case size(Int)
        case row

        public var description: String {
            switch self {
            case .size(let n): return String(n)
            case .row: return "row"
            }
        }

        /// The group size for a matrix with `columns` columns.
        func resolved(columns: Int) -> Int {
            switch self {
            case .size(let n): return n
            case .row: return columns
            }
        }
    }

    public var precision: Precision
    public var groupSize: GroupSize = .size(64)
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
