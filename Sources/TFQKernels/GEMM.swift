/// A read-only matrix seen through strides: element (i, j) is `base[i·rowStride + j·columnStride]`.
/// A transposed row-major matrix is the same memory with the strides swapped, so one GEMM
/// serves the three forms backpropagation needs (A·B, Aᵀ·B, A·Bᵀ).
public struct MatrixView: BitwiseCopyable {
    /// Element (0, 0).
    public var base: UnsafePointer<Float>
    /// Floats from one row to the next.
    public var rowStride: Int
    /// Floats from one column to the next.
    public var columnStride: Int

    /// A row-major `rows × columns` matrix.
    public init(_ base: UnsafePointer<Float>, columns: Int) {
        self.base = base; rowStride = columns; columnStride = 1
    }

    /// A matrix with the given strides, in floats.
    public init(_ base: UnsafePointer<Float>, rowStride: Int, columnStride: Int) {
        self.base = base; self.rowStride = rowStride; self.columnStride = columnStride
    }

    /// The transpose of a row-major matrix with `columns` columns.
    public static func transposed(_ base: UnsafePointer<Float>, columns: Int) -> MatrixView {
        MatrixView(base, rowStride: 1, columnStride: columns)
    }
}

/// A triangle of a product known to be zero (in A) or not wanted (in C), for causal
/// attention, whose weights P are lower triangular. The GEMM skips what it covers at tile
/// granularity: every result it is asked for is exact, since the skipped terms are zeros.
/// A's zeros must really be in memory: a tile the diagonal crosses still reads them.
public enum Triangle: Sendable, BitwiseCopyable {
    /// Nothing known to be zero; the whole product is wanted.
    case none
    /// A[i][p] = 0 where p > i + offset (P, or a product of it, read as A).
    case aBelowDiagonal(offset: Int)
    /// A[i][p] = 0 where p < i − offset (Pᵀ read as A).
    case aAboveDiagonal(offset: Int)
    /// Only C[i][j] with j ≤ i + offset is wanted (scores of keys a query can see); whole
    /// tiles beyond it are left as they were.
    case cBelowDiagonal(offset: Int)

    /// The k range where rows `rows` of A can be nonzero.
    @inline(__always)
    func kRange(rows: Range<Int>, k: Int) -> (Int, Int) {
        switch self {
        case .aBelowDiagonal(let offset): return (0, min(k, rows.upperBound + offset))
        case .aAboveDiagonal(let offset): return (min(k, max(0, rows.lowerBound - offset)), k)
        default: return (0, k)
        }
    }

    /// The last column of C wanted in a tile whose last row is `row`.
    @inline(__always)
    func lastColumn(row: Int, n: Int) -> Int {
        if case .cBelowDiagonal(let offset) = self { return min(n - 1, row + offset) }
        return n - 1
    }
}

/// One (column block, k block) pass of a GEMM after B is packed: everything a thread needs
/// to compute any of its row tiles (``GEMM/multiplyTile(_:tile:packA:)``). Plain values
/// and pointers only (`BitwiseCopyable` makes the compiler hold it to that): helpers copy
/// it while its owner may be rewriting it, and use the copy only if the posting was not
/// closed in between (see ``TileSharing``).
public struct TileBlock: BitwiseCopyable {
    var m: Int, n: Int, k: Int
    var a: MatrixView
    /// The block's first panel of B: `kc` rows of `nr` floats, `bRowStride` floats apart,
    /// with the next panel `panelStride` floats on (packed: `nr` and `kc·nr`; a small B read
    /// in place: its row stride and `nr`).
    var packedB: UnsafeMutablePointer<Float>
    var bRowStride: Int, panelStride: Int
    var c: UnsafeMutablePointer<Float>
    var ldc: Int
    var pc: Int, kc: Int, jc: Int
    var panels: Int
    var overwrite: Bool
    var zeros: Triangle
    /// Row tiles in the block: `multiplyTile` takes 0 ..< tiles.
    public var tiles: Int
}

/// Where a single-threaded GEMM posts the row tiles of each block so that other threads
/// can compute some of them (training's tile exchange between replicas). `run` must
/// compute every tile of `block` with ``GEMM/multiplyTile(_:tile:packA:)``, on whichever
/// threads, before it returns.
public protocol TileSharing: AnyObject {
    /// How many GEMMs may post at once, one each.
    var participants: Int { get }
    /// Computes every tile of `block` for GEMM `participant`; `packA` is the caller's scratch
    /// of ``GEMM/packedASliverFloats`` floats.
    func run(_ block: TileBlock, participant: Int, packA: UnsafeMutablePointer<Float>)
}

/// Single-precision matrix multiply, C = A·B or C += A·B, with packed panels and a
/// register-blocked SIMD microkernel (the BLIS design).
///
/// B is packed into panels `kc × nr`, contiguous in the order the microkernel reads them
/// (a small row-major B of whole panels is read where it lies instead: ``readsInPlace``).
/// A row-major A is read in place (a 6-row sliver stays in L1 across a row of panels); a
/// transposed A, and a ragged last tile, are packed into `kc × mr` slivers. The inner loop
/// is one vector load per B row, one broadcast per A row, and `mr·2` fused multiply-adds
/// into accumulators held in registers.
/// Rows of C are split across the thread pool, or, when the GEMM shares its tiles (see
/// ``TileSharing``), taken one 6-row tile at a time by whichever thread is free.
public final class GEMM: @unchecked Sendable {
    /// Rows per microkernel tile.
    public static let mr = 6
    /// Columns per microkernel tile: two vectors.
    public static let nr = 2 * FloatVector.scalarCount
    /// Rows of B per packed block (the k block).
    static let kc = 256
    /// Floats of scratch a thread needs to pack one A sliver for ``multiplyTile(_:tile:packA:)``.
    public static var packedASliverFloats: Int { kc * mr }
    /// Columns of B per packed block.
    static let nc = 64 * FloatVector.scalarCount

    /// The threads the products run on.
    public let pool: ThreadPool
    private let packedB: UnsafeMutablePointer<Float>
    private let packedA: [UnsafeMutablePointer<Float>]
    /// Where this GEMM posts its tiles for other threads to take (see ``TileSharing``);
    /// nil: the pool's threads split them evenly.
    private var sharing: (exchange: any TileSharing, participant: Int)?

    /// A GEMM on `pool`'s threads, allocating its packing buffers (one A buffer per thread) once.
    public init(pool: ThreadPool) {
        self.pool = pool
        packedB = AlignedMemory.floats(Self.kc * Self.nc)
        packedA = (0..<pool.threadCount).map { _ in AlignedMemory.floats(Self.kc * Self.mr) }
    }

    deinit {
        AlignedMemory.free(packedB)
        for buffer in packedA { AlignedMemory.free(buffer) }
    }

    /// Posts this GEMM's row tiles on `exchange` as `participant`, so that a thread with no
    /// work of its own can take some (the GEMM's pool must be a single thread, and the GEMM
    /// must run where `exchange` expects that participant's work: for training's TileExchange,
    /// inside the participant's turn of its `runParticipants`).
    /// Results are the same bit for bit: only who computes a tile changes.
    public func share(through exchange: any TileSharing, as participant: Int) {
        precondition(pool.threadCount == 1 && (0..<exchange.participants).contains(participant))
        sharing = (exchange, participant)
    }

    /// C[m × n] (with row stride ldc) = A[m × k] · B[k × n], or += when `accumulate`.
    /// `zeros` names a triangle of A known to be zero, or of C not wanted: the work it
    /// covers is skipped (see ``Triangle``).
    public func multiply(m: Int, n: Int, k: Int, a: MatrixView, b: MatrixView,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, zeros: Triangle = .none) {
        if Self.readsInPlace(b, n: n, k: k) {
            multiply(m: m, n: n, k: k, a: a, c: c, ldc: ldc, accumulate: accumulate, zeros: zeros) { jc, pc, _, _ in
                (UnsafeMutablePointer(mutating: b.base + pc * b.rowStride + jc), b.rowStride, Self.nr)
            }
            return
        }
        let packedB = self.packedB
        multiply(m: m, n: n, k: k, a: a, c: c, ldc: ldc, accumulate: accumulate, zeros: zeros) { jc, pc, kc, panels in
            pool.parallelFor(panels) { range in
                for panel in range {
                    Self.packB(b, row: pc, column: jc + panel * Self.nr, kc: kc, columns: min(Self.nr, n - jc - panel * Self.nr),
                               into: packedB + panel * kc * Self.nr)
                }
            }
            return (packedB, Self.nr, kc * Self.nr)
        }
    }

    /// Whether the microkernel reads B where it lies instead of from packed panels: a
    /// row-major B of whole panels small enough to stay in L1 across the row tiles
    /// (attention's V, K, Q and dY blocks), where packing would cost a third of the product.
    /// A larger B is packed: its rows, a power-of-two stride apart, would collide in L1.
    @inline(__always)
    static func readsInPlace(_ b: MatrixView, n: Int, k: Int) -> Bool {
        b.columnStride == 1 && n % nr == 0 && k * n <= 4096
    }

    /// C[m × b.n] (with row stride ldc) = A[m × b.k] · B, or += when `accumulate`, with B
    /// packed beforehand: the same values as ``multiply(m:n:k:a:b:c:ldc:accumulate:zeros:)``
    /// on the matrix `b` was packed from.
    public func multiply(m: Int, a: MatrixView, b: PackedMatrix,
                         c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, zeros: Triangle = .none) {
        multiply(m: m, n: b.n, k: b.k, a: a, c: c, ldc: ldc, accumulate: accumulate, zeros: zeros) { jc, pc, kc, _ in
            (b.block(jc: jc, pc: pc), Self.nr, kc * Self.nr)
        }
    }

    /// The blocked product; `panelsOfB(jc, pc, kc, panels)` returns the panels of the block
    /// of B whose columns start at `jc` and rows at `pc`: the first, the floats between its
    /// rows, and the floats between panels.
    private func multiply(m: Int, n: Int, k: Int, a: MatrixView, c: UnsafeMutablePointer<Float>, ldc: Int,
                          accumulate: Bool, zeros: Triangle,
                          panelsOfB: (_ jc: Int, _ pc: Int, _ kc: Int, _ panels: Int)
                              -> (first: UnsafeMutablePointer<Float>, rowStride: Int, panelStride: Int)) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        let tiles = (m + Self.mr - 1) / Self.mr
        var jc = 0
        while jc < n {
            let nc = min(Self.nc, n - jc)
            var pc = 0
            while pc < k {
                let kc = min(Self.kc, k - pc)
                let panels = (nc + Self.nr - 1) / Self.nr
                let b = panelsOfB(jc, pc, kc, panels)
                let block = TileBlock(m: m, n: n, k: k, a: a, packedB: b.first, bRowStride: b.rowStride, panelStride: b.panelStride,
                                      c: c, ldc: ldc, pc: pc, kc: kc, jc: jc,
                                      panels: panels, overwrite: !accumulate && pc == 0, zeros: zeros, tiles: tiles)
                if let sharing {
                    sharing.exchange.run(block, participant: sharing.participant, packA: packedA[0])
                } else {
                    let packedA = self.packedA
                    pool.run { worker in
                        let workers = self.pool.threadCount
                        for tile in (tiles * worker / workers)..<(tiles * (worker + 1) / workers) {
                            Self.multiplyTile(block, tile: tile, packA: packedA[worker])
                        }
                    }
                }
                pc += kc
            }
            jc += nc
        }
    }

    /// One row tile (`mr` rows of C) of a block: its A sliver against every panel of packed B.
    /// A tile's value does not depend on which thread computes it, or when.
    @inline(__always)
    public static func multiplyTile(_ block: TileBlock, tile: Int, packA buffer: UnsafeMutablePointer<Float>) {
        let row = tile * mr
        let rows = min(mr, block.m - row)
        let (a, pc, kc) = (block.a, block.pc, block.kc)
        // The part of this k block where the tile's rows of A can be nonzero, and the last
        // column of C asked of the tile.
        let (kBegin, kEnd) = block.zeros.kRange(rows: row..<(row + rows), k: block.k)
        let begin = max(kBegin - pc, 0), count = max(min(kEnd - pc, kc) - begin, 0)
        let lastColumn = block.zeros.lastColumn(row: row + rows - 1, n: block.n)
        // Full tiles of a row-major A are read where they lie: 6 rows × kc stay in L1 across
        // the panels. A transposed A (each k a row of memory, often a power-of-two stride
        // apart that L1 cannot hold) and the ragged last tile are packed.
        let sliver: ASliver
        if rows == mr && a.columnStride == 1 {
            sliver = ASliver(base: a.base + row * a.rowStride + pc + begin, rowStride: a.rowStride, step: 1)
        } else {
            Self.packA(a, row: row, column: pc + begin, kc: count, rows: rows, into: buffer)
            sliver = ASliver(base: buffer, rowStride: 1, step: mr)
        }
        for panel in 0..<block.panels {
            let column = block.jc + panel * nr
            if column > lastColumn { break }
            microkernel(kc: count, a: sliver, b: block.packedB + panel * block.panelStride + begin * block.bRowStride,
                        bRowStride: block.bRowStride,
                        c: block.c + row * block.ldc + column, ldc: block.ldc, rows: rows,
                        columns: min(nr, block.n - column), overwrite: block.overwrite)
        }
    }

    /// Copies B[row ..< row+kc, column ..< column+columns] into a `kc × nr` panel, zero-padded.
    @inline(__always)
    static func packB(_ b: MatrixView, row: Int, column: Int, kc: Int, columns: Int, into panel: UnsafeMutablePointer<Float>) {
        if b.columnStride == 1 && columns == nr {
            for p in 0..<kc { (panel + p * nr).update(from: b.base + (row + p) * b.rowStride + column, count: nr) }
            return
        }
        var first = 0
        if b.rowStride == 1 && columns == nr {
            // A transposed B (a weight read as Wᵀ, or attention's Kᵀ and Vᵀ): each panel
            // column is a run of memory. Eight runs are loaded and transposed in registers,
            // instead of gathering one float per load from sixteen rows.
            let out = UnsafeMutableRawPointer(panel)
            let step = b.columnStride * 4, rowBytes = nr * 4
            while first + 8 <= kc {
                for block in stride(from: 0, to: nr, by: 8) {
                    let source = UnsafeRawPointer(b.base + row + first + (column + block) * b.columnStride)
                    var r = (source.loadUnaligned(as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 2 * step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 3 * step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 4 * step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 5 * step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 6 * step, as: SIMD8<Float>.self),
                             source.loadUnaligned(fromByteOffset: 7 * step, as: SIMD8<Float>.self))
                    transpose8x8(&r)
                    let target = (first * nr + block) * 4
                    out.storeBytes(of: r.0, toByteOffset: target, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.1, toByteOffset: target + rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.2, toByteOffset: target + 2 * rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.3, toByteOffset: target + 3 * rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.4, toByteOffset: target + 4 * rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.5, toByteOffset: target + 5 * rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.6, toByteOffset: target + 6 * rowBytes, as: SIMD8<Float>.self)
                    out.storeBytes(of: r.7, toByteOffset: target + 7 * rowBytes, as: SIMD8<Float>.self)
                }
                first += 8
            }
        }
        for p in first..<kc {
            let out = panel + p * nr
            let source = b.base + (row + p) * b.rowStride + column * b.columnStride
            for j in 0..<columns { out[j] = source[j * b.columnStride] }
            for j in columns..<nr { out[j] = 0 }
        }
    }

    /// Transposes an 8 × 8 block held as eight row vectors. Splitting each pair of rows into
    /// even and odd lanes moves element (i, j) to where index bits (i, j) rotated right by
    /// one point; three rounds rotate by three, to (j, i). Even/odd splits are single
    /// instructions on NEON and two shuffles each on AVX2.
    @inline(__always)
    static func transpose8x8(_ r: inout (SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>,
                                         SIMD8<Float>, SIMD8<Float>, SIMD8<Float>, SIMD8<Float>)) {
        for _ in 0..<3 {
            let p0 = SIMD16(lowHalf: r.0, highHalf: r.1), p1 = SIMD16(lowHalf: r.2, highHalf: r.3)
            let p2 = SIMD16(lowHalf: r.4, highHalf: r.5), p3 = SIMD16(lowHalf: r.6, highHalf: r.7)
            r = (p0.evenHalf, p1.evenHalf, p2.evenHalf, p3.evenHalf, p0.oddHalf, p1.oddHalf, p2.oddHalf, p3.oddHalf)
        }
    }

    /// Copies A[row ..< row+rows, column ..< column+kc] into a `kc × mr` sliver, k-major, zero-padded.
    @inline(__always)
    static func packA(_ a: MatrixView, row: Int, column: Int, kc: Int, rows: Int, into sliver: UnsafeMutablePointer<Float>) {
        if a.rowStride == 1 && rows == mr {
            // Transposed A: the tile's six rows sit side by side at each k, copied as 4 + 2.
            let out = UnsafeMutableRawPointer(sliver)
            for p in 0..<kc {
                let source = UnsafeRawPointer(a.base + row + (column + p) * a.columnStride)
                out.storeBytes(of: source.loadUnaligned(as: SIMD4<Float>.self), toByteOffset: p * mr * 4, as: SIMD4<Float>.self)
                out.storeBytes(of: source.loadUnaligned(fromByteOffset: 16, as: SIMD2<Float>.self), toByteOffset: p * mr * 4 + 16,
                               as: SIMD2<Float>.self)
            }
            return
        }
        for i in 0..<mr {
            if i < rows {
                let source = a.base + (row + i) * a.rowStride + column * a.columnStride
                if a.columnStride == 1 {
                    for p in 0..<kc { sliver[p * mr + i] = source[p] }
                } else {
                    for p in 0..<kc { sliver[p * mr + i] = source[p * a.columnStride] }
                }
            } else {
                for p in 0..<kc { sliver[p * mr + i] = 0 }
            }
        }
    }

    /// Six rows of A as the microkernel reads them: row i of step p at
    /// `base[i·rowStride + p·step]`. A packed sliver is (1, mr); a row-major A read in
    /// place is (its row stride, 1).
    struct ASliver {
        let base: UnsafePointer<Float>
        let rowStride: Int
        let step: Int
    }

    /// The 6 × 2-vector tile: 12 accumulators in registers across the whole k loop.
    @inline(__always)
    static func microkernel(kc: Int, a: ASliver, b: UnsafePointer<Float>, bRowStride: Int,
                            c: UnsafeMutablePointer<Float>, ldc: Int, rows: Int, columns: Int, overwrite: Bool) {
        typealias V = FloatVector
        let w = V.scalarCount
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V()
        var c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V()
        let rawB = UnsafeRawPointer(b)
        let r1 = a.rowStride, r2 = 2 * a.rowStride, r3 = 3 * a.rowStride, r4 = 4 * a.rowStride, r5 = 5 * a.rowStride
        var ap = a.base
        for p in 0..<kc {
            let b0 = rawB.loadUnaligned(fromByteOffset: p * bRowStride * 4, as: V.self)
            let b1 = rawB.loadUnaligned(fromByteOffset: (p * bRowStride + w) * 4, as: V.self)
            var s = V(repeating: ap[0]); multiplyAdd(&c00, s, b0); multiplyAdd(&c01, s, b1)
            s = V(repeating: ap[r1]); multiplyAdd(&c10, s, b0); multiplyAdd(&c11, s, b1)
            s = V(repeating: ap[r2]); multiplyAdd(&c20, s, b0); multiplyAdd(&c21, s, b1)
            s = V(repeating: ap[r3]); multiplyAdd(&c30, s, b0); multiplyAdd(&c31, s, b1)
            s = V(repeating: ap[r4]); multiplyAdd(&c40, s, b0); multiplyAdd(&c41, s, b1)
            s = V(repeating: ap[r5]); multiplyAdd(&c50, s, b0); multiplyAdd(&c51, s, b1)
            ap += a.step
        }
        if rows == mr && columns == nr {
            store(c00, c01, to: c, overwrite: overwrite)
            store(c10, c11, to: c + ldc, overwrite: overwrite)
            store(c20, c21, to: c + 2 * ldc, overwrite: overwrite)
            store(c30, c31, to: c + 3 * ldc, overwrite: overwrite)
            store(c40, c41, to: c + 4 * ldc, overwrite: overwrite)
            store(c50, c51, to: c + 5 * ldc, overwrite: overwrite)
            return
        }
        // An edge tile: spill to a small buffer and copy the valid part.
        withUnsafeTemporaryAllocation(of: V.self, capacity: 2 * mr) { tile in
            tile[0] = c00; tile[1] = c01; tile[2] = c10; tile[3] = c11; tile[4] = c20; tile[5] = c21
            tile[6] = c30; tile[7] = c31; tile[8] = c40; tile[9] = c41; tile[10] = c50; tile[11] = c51
            if columns == nr {
                for i in 0..<rows { store(tile[2 * i], tile[2 * i + 1], to: c + i * ldc, overwrite: overwrite) }
                return
            }
            let values = UnsafeRawPointer(tile.baseAddress!).assumingMemoryBound(to: Float.self)
            for i in 0..<rows {
                let row = c + i * ldc
                if overwrite {
                    row.update(from: values + i * nr, count: columns)
                } else {
                    for j in 0..<columns { row[j] += values[i * nr + j] }
                }
            }
        }
    }

    @inline(__always)
    static func store(_ low: FloatVector, _ high: FloatVector, to c: UnsafeMutablePointer<Float>, overwrite: Bool) {
        let raw = UnsafeMutableRawPointer(c)
        let w = FloatVector.scalarCount * 4
        if overwrite {
            raw.storeBytes(of: low, as: FloatVector.self)
            raw.storeBytes(of: high, toByteOffset: w, as: FloatVector.self)
        } else {
            raw.storeBytes(of: raw.loadUnaligned(as: FloatVector.self) + low, as: FloatVector.self)
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: w, as: FloatVector.self) + high, toByteOffset: w, as: FloatVector.self)
        }
    }
}
