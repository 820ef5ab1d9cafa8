/// A B operand packed once into the panels ``GEMM`` multiplies, for a matrix that several
/// products read before it changes: a weight, within one training pass, read by every
/// replica. Packing is a copy, so a product from it equals the product from the matrix,
/// bit for bit; it saves the packing each of those products would do.
///
/// The panels are in the order the GEMM consumes them: column blocks of ``GEMM`` width,
/// each cut into k blocks, each a row of `kc × nr` panels.
public final class PackedMatrix: @unchecked Sendable {
    /// Rows of B (the products' inner dimension).
    public let k: Int
    /// Columns of B.
    public let n: Int
    /// `nr`-wide column panels, the last zero-padded.
    let panels: Int
    let storage: UnsafeMutablePointer<Float>

    /// Room for a `k × n` matrix; its values are undefined until ``pack(_:pool:)``.
    public init(k: Int, n: Int) {
        precondition(k > 0 && n > 0)
        self.k = k
        self.n = n
        panels = (n + GEMM.nr - 1) / GEMM.nr
        storage = AlignedMemory.floats(panels * k * GEMM.nr)
    }

    deinit { AlignedMemory.free(storage) }

    /// Where the panels of the block of columns from `jc` and rows from `pc` start: the
    /// column blocks before it hold `jc / nr` whole panels of all `k` rows, and within its
    /// own column block each earlier k block holds `pc` rows of every panel.
    @inline(__always)
    func block(jc: Int, pc: Int) -> UnsafeMutablePointer<Float> {
        let panelsHere = (min(GEMM.nc, n - jc) + GEMM.nr - 1) / GEMM.nr
        return storage + (jc / GEMM.nr) * k * GEMM.nr + panelsHere * pc * GEMM.nr
    }

    /// Jobs for ``pack(panel:of:)``: one per column panel.
    public var packingJobs: Int { panels }

    /// Packs column panel `panel` of `b` (a `k × n` matrix), in every k block: one of
    /// ``packingJobs``, so that several matrices can be packed in one parallel job.
    public func pack(panel: Int, of b: MatrixView) {
        let column = panel * GEMM.nr
        let jc = column / GEMM.nc * GEMM.nc
        let inBlock = (column - jc) / GEMM.nr
        var pc = 0
        while pc < k {
            let kc = min(GEMM.kc, k - pc)
            GEMM.packB(b, row: pc, column: column, kc: kc, columns: min(GEMM.nr, n - column),
                       into: block(jc: jc, pc: pc) + inBlock * kc * GEMM.nr)
            pc += kc
        }
    }

    /// Packs `b`, a `k × n` matrix, on `pool`'s threads.
    public func pack(_ b: MatrixView, pool: ThreadPool) {
        pool.parallelFor(panels) { range in
            for panel in range { self.pack(panel: panel, of: b) }
        }
    }
}
