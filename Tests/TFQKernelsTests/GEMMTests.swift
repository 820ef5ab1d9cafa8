import Foundation
import Synchronization
import Testing
@testable import TFQKernels
@testable import TFQTrainKernels

/// Deterministic values in [-1, 1).
func randomFloats(_ count: Int, seed: UInt64) -> [Float] {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    return (0..<count).map { _ in
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return Float(state >> 40) / Float(1 << 23) - 1
    }
}

@Suite struct GEMMTests {
    /// The textbook triple loop in Double: the reference.
    static func naive(m: Int, n: Int, k: Int, a: (Int, Int) -> Float, b: (Int, Int) -> Float) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n { var s = 0.0; for p in 0..<k { s += Double(a(i, p)) * Double(b(p, j)) }; c[i * n + j] = s } }
        return c
    }

    enum Form: CaseIterable { case ab, aTb, abT }

    @Test(arguments: [(1, 1, 1), (6, 32, 5), (7, 33, 300), (13, 17, 1), (64, 96, 64), (100, 513, 260), (2, 1100, 3)])
    func allThreeFormsMatchTheNaiveProduct(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        for threads in [1, 3] {
            let gemm = GEMM(pool: ThreadPool(threads: threads))
            for form in Form.allCases {
                let a = randomFloats(m * k, seed: UInt64(m * 31 + k)), b = randomFloats(k * n, seed: UInt64(n * 17 + k))
                let initial = randomFloats(m * n, seed: 5)
                for accumulate in [false, true] {
                    var c = initial
                    a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                        let av: MatrixView, bv: MatrixView
                        switch form {
                        case .ab: av = MatrixView(ap.baseAddress!, columns: k); bv = MatrixView(bp.baseAddress!, columns: n)
                        case .aTb: av = .transposed(ap.baseAddress!, columns: m); bv = MatrixView(bp.baseAddress!, columns: n)
                        case .abT: av = MatrixView(ap.baseAddress!, columns: k); bv = .transposed(bp.baseAddress!, columns: k)
                        }
                        gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: cp.baseAddress!, ldc: n, accumulate: accumulate)
                    } } }
                    let expected: [Double]
                    switch form {
                    case .ab: expected = Self.naive(m: m, n: n, k: k, a: { a[$0 * k + $1] }, b: { b[$0 * n + $1] })
                    case .aTb: expected = Self.naive(m: m, n: n, k: k, a: { a[$1 * m + $0] }, b: { b[$0 * n + $1] })
                    case .abT: expected = Self.naive(m: m, n: n, k: k, a: { a[$0 * k + $1] }, b: { b[$1 * k + $0] })
                    }
                    var worst = 0.0
                    for i in 0..<(m * n) {
                        let want = expected[i] + (accumulate ? Double(initial[i]) : 0)
                        worst = max(worst, abs(Double(c[i]) - want))
                    }
                    #expect(worst <= 1e-5 * Double(k).squareRoot() * 4, "form \(form) \(shape) threads \(threads) acc \(accumulate): \(worst)")
                }
            }
        }
    }

    /// B packed beforehand (training's weights, packed once per pass) multiplies exactly as
    /// the matrix it was packed from: across column blocks, k blocks and ragged panels, for a
    /// row-major and a transposed B, packed by several threads; packing again picks up new values.
    @Test(arguments: [(7, 33, 300), (13, 1100, 5), (6, 2100, 600), (1, 1, 1)])
    func aPackedBMultipliesLikeTheMatrix(shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        let gemm = GEMM(pool: ThreadPool(threads: 1)), packer = ThreadPool(threads: 3)
        let a = randomFloats(m * k, seed: 3)
        var b = randomFloats(k * n, seed: 4)
        let initial = randomFloats(m * n, seed: 5)
        let packed = PackedMatrix(k: k, n: n)
        for transposed in [false, true] {
            for round in 0..<2 {
                if round == 1 { b = b.map { -0.5 * $0 + 0.25 } }
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                    let av = MatrixView(ap.baseAddress!, columns: k)
                    let bv: MatrixView = transposed ? .transposed(bp.baseAddress!, columns: k) : MatrixView(bp.baseAddress!, columns: n)
                    packed.pack(bv, pool: packer)
                    for accumulate in [false, true] {
                        var direct = initial, fromPack = initial
                        direct.withUnsafeMutableBufferPointer { c in
                            gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: c.baseAddress!, ldc: n, accumulate: accumulate)
                        }
                        fromPack.withUnsafeMutableBufferPointer { c in
                            gemm.multiply(m: m, a: av, b: packed, c: c.baseAddress!, ldc: n, accumulate: accumulate)
                        }
                        #expect(direct == fromPack, "\(shape) transposed \(transposed) round \(round) accumulate \(accumulate)")
                        #expect(direct != initial)
                    }
                } }
            }
        }
    }

    /// A small row-major B of whole panels is read where it lies (attention's views of the
    /// fused qkv rows), and multiplies exactly as the same matrix packed: a view into a wider
    /// matrix, starting mid-row, with ragged row tiles, causal triangles of C and of A (whose
    /// tiles then start mid-panel), C overwritten or accumulated, on 1 or 2 threads. A B too
    /// large for L1 is packed.
    @Test func aSmallBIsReadInPlaceWithThePackedValues() {
        let (m, n, k, stride, offset) = (13, 2 * GEMM.nr, 37, 2 * GEMM.nr * 3 + 5, 3)
        #expect(GEMM.readsInPlace(MatrixView(UnsafePointer(bitPattern: 64)!, rowStride: stride, columnStride: 1), n: n, k: k))
        #expect(!GEMM.readsInPlace(MatrixView(UnsafePointer(bitPattern: 64)!, rowStride: 1, columnStride: stride), n: n, k: k))
        #expect(!GEMM.readsInPlace(MatrixView(UnsafePointer(bitPattern: 64)!, rowStride: 1024, columnStride: 1), n: 1024, k: 384))
        #expect(!GEMM.readsInPlace(MatrixView(UnsafePointer(bitPattern: 64)!, rowStride: 64, columnStride: 1), n: GEMM.nr + 1, k: 8))
        let random = randomFloats(m * k, seed: 21), wide = randomFloats(k * stride, seed: 22), initial = randomFloats(m * n, seed: 23)
        // Zero where .aAboveDiagonal(offset: 2) says A is (p < i − 2), as Pᵀ is.
        let zeroed = (0..<(m * k)).map { $0 % k < $0 / k - 2 ? 0 : random[$0] }
        let compact = (0..<k).flatMap { p in wide[(p * stride + offset)..<(p * stride + offset + n)] }
        let packed = PackedMatrix(k: k, n: n)
        compact.withUnsafeBufferPointer { packed.pack(MatrixView($0.baseAddress!, columns: n), pool: ThreadPool(threads: 1)) }
        for threads in [1, 2] {
            let gemm = GEMM(pool: ThreadPool(threads: threads))
            for zeros in [Triangle.none, .cBelowDiagonal(offset: 4), .aAboveDiagonal(offset: 2)] {
                let a: [Float]
                if case .aAboveDiagonal = zeros { a = zeroed } else { a = random }
                for accumulate in [false, true] {
                    var inPlace = initial, fromPack = initial
                    a.withUnsafeBufferPointer { ap in wide.withUnsafeBufferPointer { bp in
                        let av = MatrixView(ap.baseAddress!, columns: k)
                        inPlace.withUnsafeMutableBufferPointer { c in
                            gemm.multiply(m: m, n: n, k: k, a: av, b: MatrixView(bp.baseAddress! + offset, rowStride: stride, columnStride: 1),
                                          c: c.baseAddress!, ldc: n, accumulate: accumulate, zeros: zeros)
                        }
                        fromPack.withUnsafeMutableBufferPointer { c in
                            gemm.multiply(m: m, a: av, b: packed, c: c.baseAddress!, ldc: n, accumulate: accumulate, zeros: zeros)
                        }
                    } }
                    #expect(inPlace == fromPack, "threads \(threads) \(zeros) accumulate \(accumulate)")
                    let expected = Self.naive(m: m, n: n, k: k, a: { a[$0 * k + $1] }, b: { compact[$0 * n + $1] })
                    let i = 12, j = 16   // j ≤ i + 4: wanted under every triangle
                    #expect(abs(Double(inPlace[i * n + j]) - ((accumulate ? Double(initial[i * n + j]) : 0) + expected[i * n + j])) < 1e-4)
                }
            }
        }
    }

    /// A row-major A is read in place: a view into a wider matrix (row stride > k, starting
    /// mid-row, as attention's views of the fused qkv rows are) must multiply like a copy,
    /// across two k blocks and a ragged last tile.
    @Test func aViewIntoAWiderMatrixIsReadInPlace() {
        let (m, n, k, stride, offset) = (13, 20, 300, 311, 7)
        let wide = randomFloats(m * stride, seed: 11), b = randomFloats(k * n, seed: 12)
        var c = [Float](repeating: 0, count: m * n)
        wide.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            GEMM(pool: ThreadPool(threads: 2)).multiply(
                m: m, n: n, k: k, a: MatrixView(ap.baseAddress! + offset, rowStride: stride, columnStride: 1),
                b: MatrixView(bp.baseAddress!, columns: n), c: cp.baseAddress!, ldc: n, accumulate: false)
        } } }
        let expected = Self.naive(m: m, n: n, k: k, a: { wide[$0 * stride + offset + $1] }, b: { b[$0 * n + $1] })
        let worst = zip(c, expected).map { abs(Double($0) - $1) }.max()!
        #expect(worst <= 1e-5 * Double(k).squareRoot() * 4, "worst \(worst)")
    }

    /// Skipping a triangle of A that is zero changes nothing: the product equals, bit for
    /// bit, the full product over the same zeros (the skipped terms are exact zeros), with the
    /// diagonal crossing from the first k block into the second (k 300, blocks of 256),
    /// ragged tiles, offsets either side of the diagonal and 1 or 3 threads.
    @Test(arguments: [(-5, 0), (0, 0), (7, 1), (40, 2)])
    func skippingAZeroTriangleOfAChangesNothing(offset: Int, seedOffset: Int) {
        let (m, n, k) = (299, 40, 300)
        for threads in [1, 3] {
            let gemm = GEMM(pool: ThreadPool(threads: threads))
            for below in [true, false] {
                // A[i][p] = 0 where p > i + offset (below), or where p < i − offset.
                var a = randomFloats(m * k, seed: UInt64(91 + seedOffset))
                for i in 0..<m { for p in 0..<k where below ? p > i + offset : p < i - offset { a[i * k + p] = 0 } }
                let b = randomFloats(k * n, seed: 92), initial = randomFloats(m * n, seed: 93)
                let aT = (0..<(k * m)).map { a[($0 % m) * k + $0 / m] }   // A stored transposed: [k × m]
                for transposed in [false, true] {
                    for accumulate in [false, true] {
                        var full = initial, skipped = initial
                        let source = transposed ? aT : a
                        source.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                            let av = transposed ? MatrixView.transposed(ap.baseAddress!, columns: m) : MatrixView(ap.baseAddress!, columns: k)
                            let bv = MatrixView(bp.baseAddress!, columns: n)
                            full.withUnsafeMutableBufferPointer { cp in
                                gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: cp.baseAddress!, ldc: n, accumulate: accumulate)
                            }
                            skipped.withUnsafeMutableBufferPointer { cp in
                                gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: cp.baseAddress!, ldc: n, accumulate: accumulate,
                                              zeros: below ? .aBelowDiagonal(offset: offset) : .aAboveDiagonal(offset: offset))
                            }
                        } }
                        #expect(skipped == full, "offset \(offset) below \(below) transposed \(transposed) acc \(accumulate) threads \(threads)")
                    }
                }
            }
        }
    }

    /// With C's upper triangle unwanted, the wanted entries are the full product's, bit for
    /// bit (across two k blocks: overwritten by the first, added to by the second), and
    /// entries beyond the last tile that reaches them are not written.
    @Test(arguments: [-3, 0, 9])
    func anUnwantedTriangleOfCIsSkipped(offset: Int) {
        let (m, n, k) = (50, 70, 300)
        let a = randomFloats(m * k, seed: 94), b = randomFloats(k * n, seed: 95)
        var full = [Float](repeating: 0, count: m * n), skipped = [Float](repeating: .nan, count: m * n)
        let gemm = GEMM(pool: ThreadPool(threads: 2))
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
            let av = MatrixView(ap.baseAddress!, columns: k), bv = MatrixView.transposed(bp.baseAddress!, columns: k)
            full.withUnsafeMutableBufferPointer { gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: $0.baseAddress!, ldc: n, accumulate: false) }
            skipped.withUnsafeMutableBufferPointer {
                gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: $0.baseAddress!, ldc: n, accumulate: false, zeros: .cBelowDiagonal(offset: offset))
            }
        } }
        var wanted = 0, untouched = 0
        for i in 0..<m {
            for j in 0..<n {
                if j <= i + offset {
                    #expect(skipped[i * n + j] == full[i * n + j], "(\(i), \(j))")
                    wanted += 1
                } else if j > i + offset + GEMM.mr + GEMM.nr {
                    #expect(skipped[i * n + j].isNaN, "(\(i), \(j)) was written")
                    untouched += 1
                }
            }
        }
        #expect(wanted > 0 && untouched > 0)
    }

    @Test func strideLeavesColumnsOutsideTheOutputAlone() {
        let gemm = GEMM(pool: ThreadPool(threads: 2))
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [1, 0, 0, 1]
        var c = [Float](repeating: 9, count: 2 * 5)
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
            gemm.multiply(m: 2, n: 2, k: 2, a: MatrixView(ap.baseAddress!, columns: 2), b: MatrixView(bp.baseAddress!, columns: 2),
                          c: cp.baseAddress! + 1, ldc: 5, accumulate: false)
        } } }
        #expect(c == [9, 1, 2, 9, 9, 9, 3, 4, 9, 9])
    }

    /// GEMMs posted on a `TileExchange` give the same C bit for bit, whoever computes each
    /// tile. Participant 0 starts its GEMMs only once the others have finished small ones
    /// of their own (on GEMMs that do not share) and are waiting to help, so every tile that
    /// changes hands is one of participant 0's. Posted: the three forms, an overwrite
    /// followed by a second k block, a ragged last tile, and the three triangles.
    @Test(arguments: [2, 3])
    func sharedTilesGiveTheSameProducts(participants: Int) {
        let (m, n, k) = (131, 70, 300)
        let a = randomFloats(m * k, seed: 21), b = randomFloats(k * n, seed: 22), start = randomFloats(m * n, seed: 23)
        func products(_ gemm: GEMM, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>) {
            gemm.multiply(m: m, n: n, k: k, a: MatrixView(a, columns: k), b: .transposed(b, columns: k), c: c, ldc: n, accumulate: false)
            gemm.multiply(m: m, n: n, k: k, a: .transposed(a, columns: m), b: MatrixView(b, columns: n), c: c, ldc: n, accumulate: true)
            for zeros: Triangle in [.cBelowDiagonal(offset: 3), .aBelowDiagonal(offset: 5), .aAboveDiagonal(offset: 2)] {
                gemm.multiply(m: m, n: n, k: k, a: MatrixView(a, columns: k), b: MatrixView(b, columns: n), c: c, ldc: n,
                              accumulate: true, zeros: zeros)
            }
        }
        var expected = start
        a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in expected.withUnsafeMutableBufferPointer { cp in
            for _ in 0..<3 { products(GEMM(pool: ThreadPool(threads: 1)), ap.baseAddress!, bp.baseAddress!, cp.baseAddress!) }
        } } }
        let exchange = TileExchange(participants: participants)
        let gemms = (0..<participants).map { index in
            let gemm = GEMM(pool: ThreadPool(threads: 1))
            gemm.share(through: exchange, as: index)
            return gemm
        }
        let unshared = (0..<participants).map { _ in GEMM(pool: ThreadPool(threads: 1)) }
        let waiting = Atomic<Int>(0)
        let output = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        let scratch = (0..<participants).map { _ in UnsafeMutablePointer<Float>.allocate(capacity: 6 * n) }   // one per helper
        defer { output.deallocate(); scratch.forEach { $0.deallocate() } }
        // In each round participant 0 repeats its products (each repetition starts by
        // overwriting C, so any number of them gives the expected C) until a helper has taken
        // one of its tiles: however long the scheduler keeps the helpers off the CPU, every
        // round has tiles computed elsewhere. The bound only ends a round whose helpers never
        // help at all (a bug), which the last expectation then reports.
        for round in 0..<3 {
            exchange.beginRound()
            waiting.store(0, ordering: .sequentiallyConsistent)
            output.update(from: start, count: m * n)
            a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in
                ThreadPool(threads: participants).runOfferingWorkers { thread in
                    exchange.runParticipants(thread: thread) { participant in
                        if participant == 0 {
                            // Claimed by one thread; the others are free to claim the rest.
                            while waiting.load(ordering: .acquiring) < participants - 1 { sched_yield() }
                            let before = exchange.tilesTakenByHelpers
                            var repetitions = 0
                            repeat {
                                products(gemms[0], ap.baseAddress!, bp.baseAddress!, output)
                                repetitions += 1
                            } while exchange.tilesTakenByHelpers == before && repetitions < 20_000
                        } else {
                            unshared[participant].multiply(m: 6, n: n, k: k, a: MatrixView(ap.baseAddress!, columns: k),
                                                           b: MatrixView(bp.baseAddress!, columns: n), c: scratch[participant],
                                                           ldc: n, accumulate: false)
                            waiting.add(1, ordering: .releasing)
                        }
                    }
                }
            } }
            let same = Array(UnsafeBufferPointer(start: output, count: m * n)) == expected   // not printed whole on failure
            #expect(same, "round \(round)")
        }
        #expect(exchange.tilesTakenByHelpers > 0)
    }

    /// Many small GEMMs on every participant at once, for many rounds: postings open and
    /// close quickly while others copy and claim them. Every participant's result is checked.
    /// (How many tiles change hands is up to the scheduler, so it is not asserted here.)
    @Test func manySmallSharedGEMMsStayExact() {
        let participants = 3, rounds = 150
        let exchange = TileExchange(participants: participants)
        let gemms = (0..<participants).map { index in
            let gemm = GEMM(pool: ThreadPool(threads: 1))
            gemm.share(through: exchange, as: index)
            return gemm
        }
        let pool = ThreadPool(threads: participants)
        // Participant p multiplies (12·(p + 1) + 1) × 40 × (20 + p) matrices, so their tiles
        // and k differ, and a ragged tile is always posted.
        let shapes = (0..<participants).map { p in (m: 12 * (p + 1) + 1, n: 40, k: 20 + p) }
        let inputs = shapes.enumerated().map { p, shape in
            (randomFloats(shape.m * shape.k, seed: UInt64(40 + p)), randomFloats(shape.k * shape.n, seed: UInt64(50 + p)))
        }
        let expected = shapes.enumerated().map { p, shape in
            var c = [Float](repeating: 0, count: shape.m * shape.n)
            inputs[p].0.withUnsafeBufferPointer { ap in inputs[p].1.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                let gemm = GEMM(pool: ThreadPool(threads: 1))
                for _ in 0..<Self.products(participant: p) {
                    gemm.multiply(m: shape.m, n: shape.n, k: shape.k, a: MatrixView(ap.baseAddress!, columns: shape.k),
                                  b: MatrixView(bp.baseAddress!, columns: shape.n), c: cp.baseAddress!, ldc: shape.n, accumulate: true)
                }
            } } }
            return c
        }
        let outputs = shapes.map { UnsafeMutablePointer<Float>.allocate(capacity: $0.m * $0.n) }
        defer { outputs.forEach { $0.deallocate() } }
        var wrong = 0
        for _ in 0..<rounds {
            for (p, shape) in shapes.enumerated() { outputs[p].update(repeating: 0, count: shape.m * shape.n) }
            exchange.beginRound()
            pool.runOfferingWorkers { thread in
                exchange.runParticipants(thread: thread) { p in
                    let shape = shapes[p]
                    inputs[p].0.withUnsafeBufferPointer { ap in inputs[p].1.withUnsafeBufferPointer { bp in
                        for _ in 0..<Self.products(participant: p) {
                            gemms[p].multiply(m: shape.m, n: shape.n, k: shape.k, a: MatrixView(ap.baseAddress!, columns: shape.k),
                                              b: MatrixView(bp.baseAddress!, columns: shape.n), c: outputs[p], ldc: shape.n,
                                              accumulate: true)
                        }
                    } }
                }
            }
            for (p, shape) in shapes.enumerated()
            where Array(UnsafeBufferPointer(start: outputs[p], count: shape.m * shape.n)) != expected[p] {
                wrong += 1
            }
        }
        #expect(wrong == 0)
    }

    /// Products each participant of `manySmallSharedGEMMsStayExact` accumulates per round:
    /// unequal, so that the early finishers help.
    static func products(participant: Int) -> Int { 20 - 5 * participant }

    /// A transposed B is packed 8 × 8 through registers: every panel element must be the
    /// one a plain gather reads, for runs of k that are and are not multiples of 8, at an
    /// offset into both dimensions, and for ragged panels that take the scalar path.
    @Test(arguments: [1, 7, 8, 13, 64, 257])
    func transposedBPanelsHoldTheGatheredValues(kc: Int) {
        let (rows, columns, row, column) = (300, 70, 5, 3)   // B = Wᵀ with W [columns × rows]
        let w = randomFloats(rows * columns, seed: UInt64(kc))
        for width in [GEMM.nr, 5] {
            var panel = [Float](repeating: .nan, count: kc * GEMM.nr)
            w.withUnsafeBufferPointer { wp in
                let b = MatrixView.transposed(wp.baseAddress!, columns: rows)
                panel.withUnsafeMutableBufferPointer { GEMM.packB(b, row: row, column: column, kc: kc, columns: width, into: $0.baseAddress!) }
            }
            for p in 0..<kc {
                for j in 0..<GEMM.nr {
                    let want = j < width ? w[(column + j) * rows + row + p] : 0
                    #expect(panel[p * GEMM.nr + j] == want, "kc \(kc) width \(width) at (\(p), \(j))")
                    if panel[p * GEMM.nr + j] != want { return }
                }
            }
        }
    }
}

@Suite struct ThreadPoolTests {
    @Test func everyIndexRunsExactlyOnce() {
        for threads in [1, 2, 5] {
            let pool = ThreadPool(threads: threads)
            for count in [0, 1, 7, 1000] {
                let hits = UnsafeMutablePointer<Int>.allocate(capacity: max(1, count))
                hits.initialize(repeating: 0, count: max(1, count))
                for _ in 0..<50 { pool.parallelFor(count, grain: 3) { range in for i in range { hits[i] += 1 } } }
                #expect((0..<count).allSatisfy { hits[$0] == 50 })
                hits.deallocate()
            }
        }
    }

    /// Work that may be cut anywhere is cut into one range per thread of equal length (the
    /// last shorter), and into fewer when a range would hold less than the minimum.
    @Test func evenRangesWithAMinimum() {
        func ranges(threads: Int, count: Int, minimum: Int) -> [Range<Int>] {
            let pool = ThreadPool(threads: threads)
            let lock = NSLock()
            var seen: [Range<Int>] = []
            pool.parallelFor(count, evenlyWithAtLeast: minimum) { range in lock.lock(); seen.append(range); lock.unlock() }
            return seen.sorted { $0.lowerBound < $1.lowerBound }
        }
        #expect(ranges(threads: 2, count: 18, minimum: 7) == [0..<9, 9..<18])
        #expect(ranges(threads: 2, count: 19, minimum: 7) == [0..<10, 10..<19])
        #expect(ranges(threads: 4, count: 18, minimum: 7) == [0..<6, 6..<12, 12..<18])
        #expect(ranges(threads: 4, count: 2_000, minimum: 7) == [0..<500, 500..<1000, 1000..<1500, 1500..<2000])
        #expect(ranges(threads: 2, count: 5, minimum: 7) == [0..<5])
        #expect(ranges(threads: 2, count: 0, minimum: 7) == [])
    }

    /// A dropped pool stops and joins its threads (its workers must not keep it alive): a
    /// library user opening and closing sessions would otherwise gather threads.
    @Test func droppedPoolsEndTheirThreads() throws {
        func threads() throws -> Int { try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count }
        let before = try threads()
        for _ in 0..<40 {
            let pool = ThreadPool(threads: 4)
            var total = 0
            let lock = NSLock()
            pool.parallelFor(8) { range in lock.lock(); total += range.count; lock.unlock() }
            #expect(total == 8)
        }
        // 120 worker threads were made; other tests may run beside this one.
        let after = try threads()
        #expect(after < before + 40, "threads: \(before) before, \(after) after")
    }

    /// Thousands of short jobs of both kinds back to back on more threads than cores (so
    /// workers are often preempted): `run` runs every part once, every index is counted
    /// once, and no job is touched after its call returned.
    @Test func interleavedJobsOnAnOversubscribedPool() {
        let pool = ThreadPool(threads: 6)
        let count = 97
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        var workersSeen = 0
        for round in 0..<3000 {
            if round % 10 == 0 {
                let seen = UnsafeMutablePointer<Int>.allocate(capacity: 6)
                seen.initialize(repeating: 0, count: 6)
                pool.run { worker in seen[worker] += 1 }
                workersSeen += (0..<6).filter { seen[$0] == 1 }.count
                seen.deallocate()
            } else {
                // The body's context lives on this stack frame only for this call.
                var local = (0..<count).map { _ in 1 }
                local.withUnsafeMutableBufferPointer { buffer in
                    pool.parallelFor(count, grain: round % 4 + 1) { range in for i in range { hits[i] += buffer[i] } }
                    for i in 0..<count { buffer[i] = -1_000_000 }
                }
            }
        }
        #expect(workersSeen == 300 * 6)
        #expect((0..<count).allSatisfy { hits[$0] == 2700 })
    }

    /// Workers held back at every job, as if the scheduler kept them off their cores: the
    /// caller computes every part itself and returns without waiting for them, with the
    /// same results. (Before parts could be claimed by any thread, this hung: the caller
    /// waited for a worker that never ran.)
    @Test func jobsFinishWithoutHeldWorkers() {
        for threads in [2, 3] {
            let pool = ThreadPool(threads: threads)
            pool.holdWorkers(threads - 1)
            let count = 1000
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
            hits.initialize(repeating: 0, count: count)
            defer { hits.deallocate() }
            for round in 0..<50 {
                pool.parallelFor(count, grain: round % 5 + 1) { range in for i in range { hits[i] += 1 } }
                var parts = [Int](repeating: 0, count: threads)
                parts.withUnsafeMutableBufferPointer { parts in pool.run { part in parts[part] += 1 } }
                #expect(parts == [Int](repeating: 1, count: threads))
            }
            #expect((0..<count).allSatisfy { hits[$0] == 50 })
            #expect(pool.partsTakenByWorkers == 0)
            pool.holdWorkers(0)
        }
    }

    /// One worker of four held back: its part of every job is taken by the caller or by an
    /// idle worker, once, and jobs keep their values.
    @Test func aHeldWorkersPartIsTakenByAnotherThread() {
        let pool = ThreadPool(threads: 4)
        pool.holdWorkers(1)
        defer { pool.holdWorkers(0) }
        let count = 1000
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        for _ in 0..<200 {
            pool.parallelFor(count, evenlyWithAtLeast: 10) { range in for i in range { hits[i] += 1 } }
            var parts = [Int](repeating: 0, count: 4)
            parts.withUnsafeMutableBufferPointer { parts in pool.run { part in parts[part] += 1 } }
            #expect(parts == [1, 1, 1, 1])
        }
        #expect((0..<count).allSatisfy { hits[$0] == 200 })
    }

    /// When workers take less than half their share of a window of `helpWindow` jobs, the
    /// caller runs the next `soloJobs` alone (nothing is offered, so workers park), then
    /// offers jobs again.
    @Test func lateWorkersMakeTheCallerGoSoloForAWhile() {
        let pool = ThreadPool(threads: 2)
        pool.holdWorkers(1)
        while pool.awakeWorkers < 1 { sched_yield() }   // started; held, it never parks
        var sum = 0
        for _ in 0..<ThreadPool.helpWindow { pool.parallelFor(64, grain: 8) { range in for i in range { sum &+= i } } }
        pool.holdWorkers(0)
        // Solo jobs are never published: no worker can take a part of them, whatever the timing.
        for _ in 0..<ThreadPool.soloJobs { pool.parallelFor(64, grain: 8) { _ in } }
        #expect(pool.partsTakenByWorkers == 0)
        #expect(sum == ThreadPool.helpWindow * 2016)
        // The next job is offered again: part 0 waits until another thread has taken part 1.
        let taken = Atomic<Int>(0)
        pool.run { part in
            if part == 0 { while taken.load(ordering: .acquiring) == 0 { sched_yield() } } else { taken.store(1, ordering: .releasing) }
        }
        #expect(pool.partsTakenByWorkers == 1)
    }

    /// A job posted while the worker is parked finds it late because it was asleep, not
    /// because its core is busy: it does not count towards going solo. (Before, the first
    /// jobs of a run, posted to workers just made or parked, sent the pool solo for 256 jobs
    /// in about half the runs, a whole prompt's prefill on one thread.)
    @Test func jobsThatWakeAParkedWorkerAreNoEvidence() {
        let pool = ThreadPool(threads: 2)
        // No jobs: the worker parks after its spins, whatever the timing.
        while pool.parkedWorkers == 0 { sched_yield() }
        // This job wakes it: no evidence, whoever takes its part.
        pool.parallelFor(64, grain: 8) { _ in }
        // Held back from here (and woken if it parked again), it never parks.
        pool.holdWorkers(1)
        while pool.awakeWorkers < 1 { sched_yield() }
        let takenBefore = pool.partsTakenByWorkers
        // Every job from here finds it awake and held back, as if preempted: a full window
        // of them sends the pool solo, not one job sooner.
        for _ in 0..<(ThreadPool.helpWindow - 1) { pool.parallelFor(64, grain: 8) { _ in } }
        #expect(pool.soloJobsLeft == 0)
        pool.parallelFor(64, grain: 8) { _ in }
        #expect(pool.soloJobsLeft == ThreadPool.soloJobs)
        #expect(pool.partsTakenByWorkers == takenBefore)
        pool.holdWorkers(0)
    }

    /// Jobs too far apart for the worker to stay awake wake it each time; when it keeps
    /// coming too late to take a part (here it is never woken), a window of such jobs in a
    /// row sends the pool solo, so that waking it stops costing anything.
    @Test func aWorkerThatKeepsWakingTooLateSendsThePoolSolo() {
        let pool = ThreadPool(threads: 2)
        // Started, then parked (no jobs), whatever the timing.
        while pool.parkedWorkers == 0 { sched_yield() }
        pool.leavesWorkersAsleep = true
        for _ in 0..<(ThreadPool.helpWindow - 1) { pool.parallelFor(64, grain: 8) { _ in } }
        #expect(pool.soloJobsLeft == 0)
        pool.parallelFor(64, grain: 8) { _ in }
        #expect(pool.soloJobsLeft == ThreadPool.soloJobs)
        #expect(pool.partsTakenByWorkers == 0)
        pool.leavesWorkersAsleep = false
    }

    /// A job of `runOfferingWorkers` is offered to the workers even while the pool runs its
    /// other jobs alone: its part 0 waits until another thread has taken part 1 (a job that
    /// ran its parts one after another on the caller would never return).
    @Test func jobsOfferedToWorkersWhileTheCallerIsSolo() {
        let pool = ThreadPool(threads: 2)
        pool.holdWorkers(1)
        while pool.awakeWorkers < 1 { sched_yield() }   // started; held, it never parks
        for _ in 0..<ThreadPool.helpWindow { pool.parallelFor(64, grain: 8) { _ in } }
        pool.holdWorkers(0)
        // Solo from here on, for `soloJobs` jobs: a plain job is never published.
        pool.parallelFor(64, grain: 8) { _ in }
        #expect(pool.partsTakenByWorkers == 0)
        let taken = Atomic<Int>(0)
        pool.runOfferingWorkers { part in
            if part == 0 { while taken.load(ordering: .acquiring) == 0 { sched_yield() } } else { taken.store(1, ordering: .releasing) }
        }
        #expect(pool.partsTakenByWorkers == 1)
    }

    /// A thread that comes to a `TileExchange` round after every participant was claimed
    /// only helps, and one thread alone runs every participant in turn: each participant
    /// runs exactly once, whichever threads come.
    @Test func participantsAreClaimedOnceByWhicheverThreadComes() {
        let exchange = TileExchange(participants: 3)
        for threads in [1, 3] {
            let pool = ThreadPool(threads: threads)
            pool.holdWorkers(threads - 1)   // as if the scheduler kept every worker off its core
            var runs = [Int](repeating: 0, count: 3)
            runs.withUnsafeMutableBufferPointer { runs in
                exchange.beginRound()
                pool.run { thread in exchange.runParticipants(thread: thread) { runs[$0] += 1 } }
            }
            #expect(runs == [1, 1, 1])
            #expect(pool.partsTakenByWorkers == 0)
            pool.holdWorkers(0)
        }
    }
}
