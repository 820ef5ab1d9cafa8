import Foundation
import Testing
@testable import TFQKernels
@testable import TFQTrainKernels

/// Finite-difference checks of every backward kernel: for a random projection
/// L = Σ r·f(x), the analytic ∂L/∂x must match (L(x + h) − L(x − h)) / 2h.
@Suite struct GradientCheckTests {
    static let pool = ThreadPool(threads: 2)

    /// Compares `analytic` with central differences of `loss` at a sample of indices of `x`.
    static func check(_ what: String, x: inout [Float], analytic: [Float], step: Float = 1e-2, tolerance: Double = 2e-3,
                      loss: ([Float]) -> Double) {
        var worst = 0.0
        let stride = max(1, x.count / 60)
        for i in Swift.stride(from: 0, to: x.count, by: stride) {
            let saved = x[i]
            x[i] = saved + step; let plus = loss(x)
            x[i] = saved - step; let minus = loss(x)
            x[i] = saved
            let numeric = (plus - minus) / Double(2 * step)
            let error = abs(numeric - Double(analytic[i])) / max(1, abs(numeric))
            worst = max(worst, error)
        }
        #expect(worst < tolerance, "\(what): worst relative error \(worst)")
    }

    static func project(_ y: [Float], _ r: [Float]) -> Double { zip(y, r).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    @Test(arguments: [true, false])
    func layerNorm(withBias: Bool) {
        let rows = 5, dim = 19
        var x = randomFloats(rows * dim, seed: 1).map { $0 * 3 + 0.5 }
        var w = randomFloats(dim, seed: 2), b = randomFloats(dim, seed: 3)
        let r = randomFloats(rows * dim, seed: 4)
        func run(_ x: [Float], _ w: [Float], _ b: [Float]) -> (y: [Float], mean: [Float], rstd: [Float]) {
            var y = [Float](repeating: 0, count: rows * dim), mean = [Float](repeating: 0, count: rows), rstd = mean
            b.withUnsafeBufferPointer { bp in
                LayerNorm.forward(x: x, weight: w, bias: withBias ? bp.baseAddress : nil, y: &y, mean: &mean, rstd: &rstd,
                                  rows: rows, dim: dim, eps: 1e-5, pool: Self.pool)
            }
            return (y, mean, rstd)
        }
        let f = run(x, w, b)
        var dx = [Float](repeating: 0, count: rows * dim), dw = [Float](repeating: 0, count: dim), db = dw
        var scratch = [Float](repeating: 0, count: 2 * 2 * dim)
        db.withUnsafeMutableBufferPointer { dbp in
            LayerNorm.backward(dy: r, x: x, weight: w, mean: f.mean, rstd: f.rstd, dx: &dx, dWeight: &dw,
                               dBias: withBias ? dbp.baseAddress : nil, rows: rows, dim: dim, scratch: &scratch, pool: Self.pool)
        }
        Self.check("LayerNorm dx", x: &x, analytic: dx) { Self.project(run($0, w, b).y, r) }
        Self.check("LayerNorm dweight", x: &w, analytic: dw) { Self.project(run(x, $0, b).y, r) }
        if withBias { Self.check("LayerNorm dbias", x: &b, analytic: db) { Self.project(run(x, w, $0).y, r) } }
    }

    @Test(arguments: Activation.allCases)
    func activation(_ activation: Activation) {
        // Away from ReLU's kink, where the derivative is undefined.
        var x = randomFloats(200, seed: 5).map { $0 * 4 }.map { abs($0) < 0.05 ? $0 + 0.2 : $0 }
        let r = randomFloats(200, seed: 6)
        func run(_ x: [Float]) -> [Float] { var y = x; activation.forward(x, &y, count: x.count, pool: Self.pool); return y }
        var dx = [Float](repeating: 0, count: 200)
        activation.backward(r, x: x, dx: &dx, count: 200, pool: Self.pool)
        Self.check("\(activation)", x: &x, analytic: dx, step: 1e-3) { Self.project(run($0), r) }
        // Training's forward keeps R'(x) for a one-multiply backward: the same values, bit for
        // bit. 199 values: 24 vectors and a scalar tail of 7, whose elements stay untouched.
        var kept = x, y = [Float](repeating: .nan, count: 200)
        activation.forwardKeepingDerivative(&kept, &y, count: 199, pool: Self.pool)
        var dxKept = [Float](repeating: .nan, count: 200)
        activation.backward(r, derivative: kept, dx: &dxKept, count: 199, pool: Self.pool)
        #expect(Array(y.prefix(199)) == Array(run(x).prefix(199)) && y[199].isNaN)
        #expect(Array(dxKept.prefix(199)) == Array(dx.prefix(199)) && dxKept[199].isNaN && kept[199] == x[199])
        if activation == .relu { #expect(run([-1, 0, 2]) == [0, 0, 2]) }
        if activation == .gelu { #expect(abs(run([1])[0] - 0.841_192) < 1e-5) }
    }

    /// Whole (one block of rows) and in blocks of 2 or 16 rows, so the blocked causal
    /// products and their accumulation across blocks are checked too. At length 40 the GEMMs
    /// skip whole tiles of the causal triangle (6-row tiles, 16-column panels); outputs and
    /// buffers start as NaN, so anything left unwritten, or read where it was skipped, shows.
    @Test(arguments: [(5, 64), (5, 2), (40, 64), (40, 16)])
    func causalAttention(length: Int, rowBlock: Int) {
        let attention = CausalAttention(batch: 2, length: length, heads: 2, dim: 8, rowBlock: rowBlock)
        let gemms = CausalAttention.gemms(threads: Self.pool.threadCount)
        let rows = 2 * length
        var qkv = randomFloats(rows * 24, seed: 7)
        let r = randomFloats(rows * 8, seed: 8)
        func run(_ qkv: [Float]) -> (y: [Float], p: [Float]) {
            var y = [Float](repeating: .nan, count: rows * 8), p = [Float](repeating: .nan, count: attention.probabilityCount)
            attention.forward(qkv: qkv, y: &y, probabilities: &p, gemms: gemms, pool: Self.pool)
            return (y, p)
        }
        let f = run(qkv)
        #expect(f.y.allSatisfy { $0.isFinite } && f.p.allSatisfy { $0.isFinite })
        var dqkv = [Float](repeating: .nan, count: rows * 24)
        var scratch = [Float](repeating: .nan, count: Self.pool.threadCount * attention.scratchPerThread)
        attention.backward(dy: r, qkv: qkv, probabilities: f.p, dqkv: &dqkv, scratch: &scratch, gemms: gemms, pool: Self.pool)
        #expect(dqkv.allSatisfy { $0.isFinite })
        Self.check("attention dqkv", x: &qkv, analytic: dqkv) { Self.project(run($0).y, r) }
        // Causality: changing the last position's key and value leaves earlier outputs alone.
        var changed = qkv
        for c in 8..<24 { changed[(length - 1) * 24 + c] += 1 }
        #expect(Array(run(changed).y[0..<((length - 1) * 8)]) == Array(f.y[0..<((length - 1) * 8)]))
        // The weights: each row sums to 1 over the positions it sees and is 0 beyond.
        for row in 0..<(2 * 2 * length) {
            let i = row % length, weights = f.p[(row * length)..<(row * length + length)]
            #expect(abs(weights.prefix(i + 1).reduce(0, +) - 1) < 1e-5)
            #expect(weights.dropFirst(i + 1).allSatisfy { $0 == 0 })
        }
    }

    @Test func softmaxCrossEntropy() {
        let rows = 4, vocab = 11
        var logits = randomFloats(rows * vocab, seed: 9).map { $0 * 5 }
        let targets: [Int32] = [3, 0, 10, -1]
        func run(_ logits: [Float]) -> (loss: Double, probabilities: [Float]) {
            var p = logits, losses = [Float](repeating: 0, count: rows)
            let loss = CrossEntropy.forward(logits: &p, targets: targets, rows: rows, vocab: vocab, losses: &losses, pool: Self.pool)
            return (loss / 3, p)
        }
        var d = run(logits).probabilities
        CrossEntropy.backward(probabilities: &d, targets: targets, rows: rows, vocab: vocab, scale: 1.0 / 3, pool: Self.pool)
        Self.check("cross-entropy dlogits", x: &logits, analytic: d, step: 1e-3) { run($0).loss }
        // Uniform logits: the loss is log(vocab).
        #expect(abs(run([Float](repeating: 0.3, count: rows * vocab)).loss - 2.397_895_273) < 1e-5)  // 3·log(11) / 3
    }

    @Test func embeddingScatterAddsRepeatedIds() {
        let ids: [Int32] = [2, 0, 2, 1, 2, 2]
        let dim = 3, length = 3
        let dx = (0..<18).map(Float.init)
        var dTokens = [Float](repeating: 0, count: 3 * dim), dPositions = [Float](repeating: 0, count: length * dim)
        Embedding.backward(dx: dx, ids: ids, dTokens: &dTokens, dPositions: &dPositions, rows: 6, length: length, dim: dim, pool: Self.pool)
        // Rows 0, 2, 4, 5 have id 2; row 1 id 0; row 3 id 1. Positions repeat every 3 rows.
        let expectedTokens: [Float] = [3, 4, 5, 9, 10, 11, 33, 37, 41]
        let expectedPositions: [Float] = [9, 11, 13, 15, 17, 19, 21, 23, 25]
        #expect(dTokens == expectedTokens)
        #expect(dPositions == expectedPositions)
        var x = [Float](repeating: 0, count: 18)
        let table = (0..<9).map(Float.init), positions = [Float](repeating: 100, count: 9)
        Embedding.forward(ids: ids, tokenTable: table, positionTable: positions, x: &x, rows: 6, length: length, dim: dim, pool: Self.pool)
        #expect(Array(x[0..<6]) == [106, 107, 108, 100, 101, 102])
    }

    @Test func adamWMatchesTheFormula() {
        var p: [Float] = [1, -2], m: [Float] = [0.1, 0], v: [Float] = [0.01, 0]
        let g: [Float] = [0.5, -1]
        Optimizer.adamW(parameters: &p, gradients: g, m: &m, v: &v, count: 2, learningRate: 0.1, beta1: 0.9, beta2: 0.99,
                        epsilon: 1e-8, weightDecay: 0.1, step: 2, pool: Self.pool)
        let m0 = 0.9 * 0.1 + 0.1 * 0.5, v0 = 0.99 * 0.01 + 0.01 * 0.25
        let expected0 = 1 - 0.1 * ((m0 / (1 - 0.81)) / ((v0 / (1 - 0.9801)).squareRoot() + 1e-8) + 0.1 * 1)
        #expect(abs(Double(p[0]) - expected0) < 1e-6)
        #expect(abs(Double(m[1]) - (-0.1)) < 1e-7 && abs(Double(v[1]) - 0.01) < 1e-7)
        var q: [Float] = [1, 2]
        Optimizer.sgd(parameters: &q, gradients: [10, -10], count: 2, learningRate: 0.01, pool: Self.pool)
        #expect(q == [0.9, 2.1])
        #expect(abs(Optimizer.norm([3, 4], count: 2, pool: Self.pool) - 5) < 1e-12)

        // A length that takes the vector path and a tail, against the scalar formula in Double.
        let n = 2 * 1024 + 19
        let g2 = randomFloats(n, seed: 21), m2 = randomFloats(n, seed: 22).map { $0 * 0.1 }
        let v2 = randomFloats(n, seed: 23).map { $0 * $0 * 0.01 }, p2 = randomFloats(n, seed: 24)
        var p3 = p2, m3 = m2, v3 = v2
        Optimizer.adamW(parameters: &p3, gradients: g2, m: &m3, v: &v3, count: n, learningRate: 0.01, beta1: 0.9, beta2: 0.95,
                        epsilon: 1e-8, weightDecay: 0.1, step: 3, pool: Self.pool)
        var worst = 0.0
        for i in 0..<n {
            let mi = 0.9 * Double(m2[i]) + 0.1 * Double(g2[i]), vi = 0.95 * Double(v2[i]) + 0.05 * Double(g2[i]) * Double(g2[i])
            let update = (mi / (1 - 0.729)) / ((vi / (1 - 0.857375)).squareRoot() + 1e-8)
            let expected = Double(p2[i]) - 0.01 * (update + 0.1 * Double(p2[i]))
            worst = max(worst, abs(Double(p3[i]) - expected), abs(Double(m3[i]) - mi), abs(Double(v3[i]) - vi))
        }
        #expect(worst < 1e-5, "\(worst)")
    }

    /// Clipping folded into the update: a gradient scale gives, bit for bit, the update of
    /// gradients scaled beforehand (what the trainer did in a pass of its own).
    @Test func aGradientScaleEqualsScalingTheGradientsFirst() {
        let n = 1024 + 13, factor: Float = 0.37
        let g = randomFloats(n, seed: 31), scaled = g.map { $0 * factor }
        let m0 = randomFloats(n, seed: 32).map { $0 * 0.1 }, v0 = randomFloats(n, seed: 33).map { $0 * $0 * 0.01 }
        let p0 = randomFloats(n, seed: 34)
        var (p1, m1, v1) = (p0, m0, v0), (p2, m2, v2) = (p0, m0, v0)
        Optimizer.adamW(parameters: &p1, gradients: g, m: &m1, v: &v1, count: n, learningRate: 0.01, beta1: 0.9, beta2: 0.95,
                        epsilon: 1e-8, weightDecay: 0.1, step: 4, gradientScale: factor, pool: Self.pool)
        Optimizer.adamW(parameters: &p2, gradients: scaled, m: &m2, v: &v2, count: n, learningRate: 0.01, beta1: 0.9, beta2: 0.95,
                        epsilon: 1e-8, weightDecay: 0.1, step: 4, pool: Self.pool)
        #expect(p1 == p2 && m1 == m2 && v1 == v2)
        #expect(p1 != p0)
        var q1 = p0, q2 = p0
        Optimizer.sgd(parameters: &q1, gradients: g, count: n, learningRate: 0.1, gradientScale: factor, pool: Self.pool)
        Optimizer.sgd(parameters: &q2, gradients: scaled, count: n, learningRate: 0.1, pool: Self.pool)
        #expect(q1 == q2 && q1 != p0)
    }

    /// The trainer's one AdamW job over the whole buffer, in segments with their own weight
    /// decay, gives what one call per segment gives, bit for bit: segments of ragged lengths
    /// move where the eight-wide loop hands over to the tail, and chunks of the job straddle
    /// them. Zero-length segments are allowed.
    @Test func oneAdamWJobOverSegmentsMatchesOneCallPerSegment() {
        let segments: [(count: Int, weightDecay: Float)] = [(1_029, 0.1), (3, 0), (0, 0.1), (2_050, 0.1), (131, 0), (5, 0.2)]
        let n = segments.reduce(0) { $0 + $1.count }
        let g = randomFloats(n, seed: 41), p0 = randomFloats(n, seed: 42)
        let m0 = randomFloats(n, seed: 43).map { $0 * 0.1 }, v0 = randomFloats(n, seed: 44).map { $0 * $0 * 0.01 }
        for pool in [Self.pool, ThreadPool(threads: 3)] {
            var (p1, m1, v1) = (p0, m0, v0), (p2, m2, v2) = (p0, m0, v0)
            Optimizer.adamW(parameters: &p1, gradients: g, m: &m1, v: &v1, segments: segments, learningRate: 0.01, beta1: 0.9,
                            beta2: 0.95, epsilon: 1e-8, step: 3, gradientScale: 0.5, pool: pool)
            var offset = 0
            for segment in segments {
                p2.withUnsafeMutableBufferPointer { p in m2.withUnsafeMutableBufferPointer { m in v2.withUnsafeMutableBufferPointer { v in
                    g.withUnsafeBufferPointer { g in
                        Optimizer.adamW(parameters: p.baseAddress! + offset, gradients: g.baseAddress! + offset, m: m.baseAddress! + offset,
                                        v: v.baseAddress! + offset, count: segment.count, learningRate: 0.01, beta1: 0.9, beta2: 0.95,
                                        epsilon: 1e-8, weightDecay: segment.weightDecay, step: 3, gradientScale: 0.5, pool: ThreadPool(threads: 1))
                    }
                } } }
                offset += segment.count
            }
            #expect(p1 == p2 && m1 == m2 && v1 == v2)
            #expect(zip(p1, p0).filter { $0 != $1 }.count == n)
        }
    }

    /// `norm`'s `prepare` runs once on every chunk, before the chunk is read: a pass that
    /// writes the values there measures what it wrote.
    @Test func theNormMeasuresWhatPrepareWrote() {
        let n = 3 * 256 + 77
        let target = randomFloats(n, seed: 35)
        for threads in [1, 3] {
            var values = [Float](repeating: 0, count: n)
            var visits = [Int](repeating: 0, count: n)
            let norm = values.withUnsafeMutableBufferPointer { buffer in
                visits.withUnsafeMutableBufferPointer { seen in
                    Optimizer.norm(buffer.baseAddress!, count: n, pool: ThreadPool(threads: threads)) { chunk in
                        for i in chunk { buffer[i] = target[i]; seen[i] += 1 }
                    }
                }
            }
            #expect(visits.allSatisfy { $0 == 1 })
            #expect(values == target)
            #expect(norm == Optimizer.norm(target, count: n, pool: ThreadPool(threads: threads)))
            #expect(abs(norm - target.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()) < 1e-4)
        }
    }
}

@Suite struct FastMathTests {
    @Test func expAndTanhMatchLibm() {
        var worstExp: Float = 0, worstTanh: Float = 0
        for i in -4000...4000 {
            let x = Float(i) * 0.0217
            let e = FastMath.exp(x)
            worstExp = max(worstExp, abs(e - Foundation.exp(x)) / Foundation.exp(x))
            let t = FastMath.tanh(SIMD8<Float>(repeating: x / 8))[0]
            worstTanh = max(worstTanh, abs(t - Foundation.tanh(x / 8)))
        }
        #expect(worstExp < 1e-6)
        #expect(worstTanh < 5e-7)
        #expect(FastMath.exp(-100) == 0)
        #expect(FastMath.exp(0) == 1)
    }

    /// The clamps, the underflow to 0 and ReLU's rule, lane by lane: a NaN compares false
    /// everywhere, so it stays NaN (and ReLU's slope there is 1), and ReLU keeps −0.
    @Test func edgesFollowTheirRules() {
        let x = SIMD8<Float>(-.infinity, -87.4, -87.3, 0, 88.3, 200, .infinity, .nan)
        let e = FastMath.exp(x)
        #expect(e[0] == 0 && e[1] == 0 && e[2] > 0 && e[3] == 1 && e[5] == e[4] && e[6] == e[4] && e[4].isFinite && e[7].isNaN)
        let t = FastMath.tanh(SIMD8<Float>(-.infinity, -10, -30, 0, 10, 30, .infinity, .nan))
        #expect(t[0] == t[1] && t[2] == t[1] && t[3] == 0 && t[5] == t[4] && t[6] == t[4] && t[4] == -t[1] && t[7].isNaN)
        let values: [Float] = [-1, -0.0, 0, 1, .nan, -.infinity, .infinity, -1e-45, 3, -3]
        var y = [Float](repeating: 7, count: values.count), slope = y
        let pool = ThreadPool(threads: 1)
        Activation.relu.forward(values, &y, count: values.count, pool: pool)
        #expect(y.map(\.bitPattern) == ([0, -0.0, 0, 1, .nan, 0, .infinity, 0, 3, 0] as [Float]).map(\.bitPattern))
        Activation.relu.backward([Float](repeating: 1, count: values.count), x: values, dx: &slope, count: values.count, pool: pool)
        #expect(slope == [0, 0, 0, 1, 1, 0, 1, 0, 1, 0])
    }

    /// Softmax takes its maximum eight lanes at a time, and attention's folds the score
    /// scale into the same pass: both give, bit for bit, what the scalar maximum and a
    /// separate scaling pass gave (formats/tfq.md §11 fixes the sum's order, not the
    /// maximum's), for every length up to 70, with ties, signed zeros and large spreads.
    @Test func softmaxMatchesTheScalarMaximumAndASeparateScale() {
        func reference(_ input: [Float], scale: Float?) -> [Float] {
            var row = input.map { x in scale.map { x * $0 } ?? x }
            var maximum = -Float.infinity
            for x in row { maximum = max(maximum, x) }
            var total: Float = 0, j = 0
            while j + 8 <= row.count {
                let e = FastMath.exp(SIMD8<Float>(row[j..<(j + 8)]) - SIMD8(repeating: maximum))
                for l in 0..<8 { row[j + l] = e[l] }
                total += e.sum()
                j += 8
            }
            while j < row.count { let e = FastMath.exp(row[j] - maximum); row[j] = e; total += e; j += 1 }
            let inverse = 1 / total
            return row.map { $0 * inverse }
        }
        let values = randomFloats(70 * 70, seed: 31)
        for count in 1...70 {
            var input = values[((count - 1) * 70)...].prefix(count).map { $0 * Float(count % 7 + 1) * 3 }
            if count > 3 { input[count / 2] = input.max()!; input[1] = -0.0; input[2] = 0 }
            let scale: Float = 0.176_776_7
            var plain = input, scaled = input
            plain.withUnsafeMutableBufferPointer { Softmax.inPlace($0.baseAddress!, count: count) }
            scaled.withUnsafeMutableBufferPointer { Softmax.inPlace($0.baseAddress!, count: count, scale: scale) }
            #expect(plain.map(\.bitPattern) == reference(input, scale: nil).map(\.bitPattern), "count \(count)")
            #expect(scaled.map(\.bitPattern) == reference(input, scale: scale).map(\.bitPattern), "count \(count) scaled")
            #expect(abs(scaled.reduce(0, +) - 1) < 1e-5)
        }
    }
}
