import Testing
@testable import TFQKernels

/// The int8 kernels against plain scalar arithmetic: the activation quantizer against
/// `Float.rounded()` (ties away from zero), the matrix products against integer sums done
/// one product at a time in Double.
@Suite struct Q8KernelTests {
    /// Values that include exact ties after scaling: multiples of max/254 land on k + ½.
    static func activations(_ count: Int, seed: UInt64) -> [Float] {
        var x = randomFloats(count, seed: seed).map { $0 * 3 }
        for i in stride(from: 0, to: count, by: 7) { x[i] = Float(i % 5 - 2) * 0.5 }   // 0, ±0.5, ±1
        if count > 12 { x[3] = -0; x[5] = 1.5; x[11] = -2.5 }
        return x
    }

    static func referenceQuantize(_ x: [Float], groupSize: Int) -> (values: [Int8], scales: [Float]) {
        var values = [Int8](), scales = [Float]()
        for g in 0..<(x.count / groupSize) {
            let group = x[(g * groupSize)..<((g + 1) * groupSize)]
            let scale = (group.map { abs($0) }.filter { !$0.isNaN }.max() ?? 0) / 127
            let inverse: Float = scale == 0 ? 0 : 1 / scale
            scales.append(scale)
            values += group.map { v in
                let r = (v * inverse).rounded()
                return r.isNaN ? 0 : Int8(max(-127, min(127, r)))
            }
        }
        return (values, scales)
    }

    @Test(arguments: [4, 12, 32, 48, 64])
    func quantizerMatchesScalarRounding(groupSize: Int) {
        for (seed, groups) in [(1, 1), (2, 5), (3, 17)] {
            var x = Self.activations(groupSize * groups, seed: UInt64(seed))
            if groups > 2 { for i in groupSize..<(2 * groupSize) { x[i] = 0 } }   // an all-zero group
            // Exact ties: with max 127·0.25, x = (k + ½)·0.25 scales to k + ½.
            x[0] = 127 * 0.25; x[1] = 2.5 * 0.25; x[2] = -3.5 * 0.25; x[3] = 0.5 * 0.25
            let expected = Self.referenceQuantize(x, groupSize: groupSize)
            var values = [Int8](repeating: 99, count: x.count), scales = [Float](repeating: -1, count: groups)
            x.withUnsafeBufferPointer { xp in values.withUnsafeMutableBufferPointer { vp in scales.withUnsafeMutableBufferPointer { sp in
                ActivationQuantizer.quantize(xp.baseAddress!, count: x.count, groupSize: groupSize,
                                             values: vp.baseAddress!, scales: sp.baseAddress!)
            } } }
            #expect(scales == expected.scales)
            #expect(values == expected.values, "group \(groupSize), \(groups) groups")
            #expect(values[1] == 3 && values[2] == -4 && values[3] == 1, "ties round away from zero")
        }
    }

    /// Groups at the edges of §11.4: NaNs, quiet and signalling (ignored by the maximum,
    /// quantized to 0), an infinity (s = inf, so 1/s = 0 and every value 0), values so small
    /// that 1/s overflows (clamped to ±127, zeros 0), smaller still (s rounds to 0: all 0), and
    /// negative zeros. One pass and two, every group size the runtime meets, against the
    /// scalar rule; nothing is written past the values.
    @Test(arguments: [4, 12, 32, 48, 64])
    func quantizerEdgeGroupsFollowTheRule(groupSize: Int) {
        let groups = 6, count = groupSize * groups
        var x = Self.activations(count, seed: 77)
        x[1] = .nan; x[2] = .signalingNaN
        x[groupSize + 2] = .infinity; x[groupSize + 3] = -1
        for i in (2 * groupSize)..<(3 * groupSize) { x[i] = Float(i % 3 - 1) * 1e-38 }    // 1/s overflows
        x[2 * groupSize] = 1e-38; x[2 * groupSize + 1] = 2e-40; x[2 * groupSize + 2] = -3e-39; x[2 * groupSize + 3] = 0
        for i in (3 * groupSize)..<(4 * groupSize) { x[i] = -0.0 }
        for i in (5 * groupSize)..<(6 * groupSize) { x[i] = Float(i % 5 - 2) * 1e-44 }   // s = max/127 rounds to 0
        let first = Self.referenceQuantize(x, groupSize: groupSize)
        #expect(first.scales[0] > 0 && first.scales[1] == .infinity && first.scales[3] == 0 && first.scales[5] == 0)
        #expect(first.values[1] == 0 && first.values[2] == 0 && first.values[groupSize + 3] == 0)
        #expect(1 / first.scales[2] == .infinity && first.values[(2 * groupSize)..<(2 * groupSize + 4)] == [127, 127, -127, 0])
        #expect(x[(5 * groupSize)..<(6 * groupSize)].contains { $0 != 0 } && first.values[(5 * groupSize)...].allSatisfy { $0 == 0 })
        // 8 bytes beyond what each call should write, to catch a store that runs over.
        var one = [Int8](repeating: 99, count: count + 8), oneScales = [Float](repeating: -1, count: groups)
        var two = [Int8](repeating: 99, count: 2 * count + 8), twoScales = [Float](repeating: -1, count: 2 * groups)
        x.withUnsafeBufferPointer { xp in
            ActivationQuantizer.quantize(xp.baseAddress!, count: count, groupSize: groupSize, values: &one, scales: &oneScales)
            ActivationQuantizer.quantizeTwoPass(xp.baseAddress!, count: count, groupSize: groupSize, values: &two, scales: &twoScales)
        }
        #expect(Array(one[..<count]) == first.values && oneScales.map(\.bitPattern) == first.scales.map(\.bitPattern))
        #expect(Array(two[..<count]) == first.values && Array(twoScales[..<groups]).map(\.bitPattern) == first.scales.map(\.bitPattern))
        let residual = (0..<count).map { x[$0] - Float(first.values[$0]) * first.scales[$0 / groupSize] }
        let second = Self.referenceQuantize(residual, groupSize: groupSize)
        #expect(Array(two[count..<(2 * count)]) == second.values, "second pass, group \(groupSize)")
        #expect(Array(twoScales[groups...]).map(\.bitPattern) == second.scales.map(\.bitPattern))
        #expect(one[count...].allSatisfy { $0 == 99 } && two[(2 * count)...].allSatisfy { $0 == 99 })
    }

    /// A random int8 matrix in the interleaved-16×4 layout (rows padded to 16), with the same
    /// values row-major for the reference.
    struct Packed {
        let rowMajor: [Int8], scalesRowMajor: [Float]
        let values: UnsafeMutablePointer<Int8>, scales: UnsafeMutablePointer<Float>
        let matrix: Q8Matrix

        init(rows: Int, columns: Int, groupSize: Int, seed: UInt64) {
            let groups = columns / groupSize, blocks = (rows + 15) / 16
            rowMajor = randomFloats(rows * columns, seed: seed).map { Int8(($0 * 127).rounded()) }
            scalesRowMajor = randomFloats(rows * groups, seed: seed + 1).map { abs($0) * 0.01 + 1e-4 }
            values = .allocate(capacity: blocks * 16 * columns); values.initialize(repeating: 0, count: blocks * 16 * columns)
            scales = .allocate(capacity: blocks * 16 * groups); scales.initialize(repeating: 0, count: blocks * 16 * groups)
            for r in 0..<rows {
                let block = r / 16, lane = r % 16
                for c in 0..<columns { values[block * 16 * columns + (c / 4) * 64 + lane * 4 + c % 4] = rowMajor[r * columns + c] }
                for g in 0..<groups { scales[(block * groups + g) * 16 + lane] = scalesRowMajor[r * groups + g] }
            }
            matrix = Q8Matrix(values: values, scales: scales, rows: rows, columns: columns, groupSize: groupSize)
        }

        func expected(x: [Int8], xScales: [Float], tokens: Int) -> [Double] {
            let (rows, columns, groupSize) = (matrix.rows, matrix.columns, matrix.groupSize)
            let groups = columns / groupSize
            var y = [Double](repeating: 0, count: tokens * rows)
            for t in 0..<tokens { for r in 0..<rows { for g in 0..<groups {
                var sum = 0
                for c in (g * groupSize)..<((g + 1) * groupSize) { sum += Int(rowMajor[r * columns + c]) * Int(x[t * columns + c]) }
                y[t * rows + r] += Double(sum) * Double(scalesRowMajor[r * groups + g]) * Double(xScales[t * groups + g])
            } } }
            return y
        }

        func free() { values.deallocate(); scales.deallocate() }
    }

    @Test(arguments: [(16, 64, 64), (37, 96, 32), (5, 48, 48), (130, 1536, 64), (24, 288, 48)])
    func matrixProductsMatchIntegerSums(shape: (Int, Int, Int)) {
        let (rows, columns, groupSize) = shape
        let w = Packed(rows: rows, columns: columns, groupSize: groupSize, seed: UInt64(rows * 7 + columns))
        defer { w.free() }
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            // 45 tokens of the 1536-column shape: more activation groups than the VNNI
            // path's offsets keep on the stack (Q8MatMul.withOffsets).
            for tokens in [1, 3, 4, 9, 45] {
                // Extreme activations too: ±127 everywhere in one token.
                var x = randomFloats(tokens * columns, seed: UInt64(tokens)).map { Int8(($0 * 127).rounded()) }
                if tokens > 1 { for c in 0..<columns { x[columns + c] = c % 2 == 0 ? 127 : -127 } }
                let xScales = randomFloats(tokens * w.matrix.groups, seed: 9).map { abs($0) * 0.02 + 1e-3 }
                let expected = w.expected(x: x, xScales: xScales, tokens: tokens)
                var y = [Float](repeating: .nan, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in xScales.withUnsafeBufferPointer { sp in y.withUnsafeMutableBufferPointer { yp in
                    if tokens == 1 {
                        Q8MatMul.vector(w.matrix, x: xp.baseAddress!, xScales: sp.baseAddress!, y: yp.baseAddress!, pool: pool)
                    } else {
                        Q8MatMul.matrix(w.matrix, x: xp.baseAddress!, xScales: sp.baseAddress!, tokens: tokens, y: yp.baseAddress!, pool: pool)
                    }
                } } }
                var worst = 0.0, largest = 0.0
                for i in 0..<y.count { worst = max(worst, abs(Double(y[i]) - expected[i])); largest = max(largest, abs(expected[i])) }
                #expect(worst <= 1e-5 * max(largest, 1e-3), "\(shape) tokens \(tokens) threads \(threads): \(worst) of \(largest)")
            }
        }
    }

    /// f16 scales (`q8f16`) are widened exactly where they are used: one-pass and two-pass
    /// products, decode and prefill, and the table lookup give the same bits as f32 scales
    /// holding the same values.
    @Test(arguments: [(37, 96, 32), (5, 48, 48), (130, 384, 64)])
    func halfScalesGiveTheBitsOfTheirFloats(shape: (Int, Int, Int)) {
        let (rows, columns, groupSize) = shape
        let w = Packed(rows: rows, columns: columns, groupSize: groupSize, seed: 77)
        defer { w.free() }
        let count = (rows + 15) / 16 * 16 * (columns / groupSize)
        let halves = UnsafeMutablePointer<Float16>.allocate(capacity: count)
        defer { halves.deallocate() }
        for i in 0..<count { halves[i] = Float16(w.scales[i]); w.scales[i] = Float(halves[i]) }
        let h = Q8Matrix(values: w.values, halfScales: halves, rows: rows, columns: columns, groupSize: groupSize)
        let pool = ThreadPool(threads: 2)
        for tokens in [1, 3, 5] {
            let x = randomFloats(2 * tokens * columns, seed: UInt64(tokens)).map { Int8(($0 * 127).rounded()) }
            let xScales = randomFloats(2 * tokens * h.groups, seed: 5).map { abs($0) * 0.02 + 1e-3 }
            func products(_ m: Q8Matrix, twoPass: Bool) -> [UInt32] {
                var y = [Float](repeating: .nan, count: tokens * rows)
                x.withUnsafeBufferPointer { xp in xScales.withUnsafeBufferPointer { sp in y.withUnsafeMutableBufferPointer { yp in
                    let (x, s, y) = (xp.baseAddress!, sp.baseAddress!, yp.baseAddress!)
                    switch (tokens, twoPass) {
                    case (1, false): Q8MatMul.vector(m, x: x, xScales: s, y: y, pool: pool)
                    case (1, true): Q8MatMul.vectorTwoPass(m, x: x, xScales: s, y: y, pool: pool)
                    case (_, false): Q8MatMul.matrix(m, x: x, xScales: s, tokens: tokens, y: y, pool: pool)
                    case (_, true): Q8MatMul.matrixTwoPass(m, x: x, xScales: s, tokens: tokens, y: y, pool: pool)
                    }
                } } }
                return y.map(\.bitPattern)
            }
            for twoPass in [false, true] {
                let half = products(h, twoPass: twoPass)
                #expect(half == products(w.matrix, twoPass: twoPass), "\(shape) tokens \(tokens) two-pass \(twoPass)")
                #expect(!half.contains(Float.nan.bitPattern))
            }
        }
        var fromHalves = [Float](repeating: .nan, count: columns), fromFloats = fromHalves
        for r in [0, rows / 2, rows - 1] {
            h.dequantizeRow(r, into: &fromHalves)
            w.matrix.dequantizeRow(r, into: &fromFloats)
            #expect(fromHalves.map(\.bitPattern) == fromFloats.map(\.bitPattern), "row \(r)")
            #expect(fromHalves[0] == Float(w.rowMajor[r * columns]) * w.scalesRowMajor[r * (columns / groupSize)].roundedToHalf)
        }
    }

    /// Two passes: q₁ is exactly the one-pass result; q₂ is the scalar rounding of the
    /// residual; together they rebuild x to within half the second scale.
    @Test(arguments: [4, 12, 32, 64])
    func twoPassQuantizerRebuildsWithinHalfTheSecondScale(groupSize: Int) {
        let groups = 5, count = groupSize * groups
        var x = Self.activations(count, seed: UInt64(groupSize))
        for i in groupSize..<(2 * groupSize) { x[i] = 0 }   // an all-zero group: both scales 0
        var values = [Int8](repeating: 99, count: 2 * count), scales = [Float](repeating: -1, count: 2 * groups)
        x.withUnsafeBufferPointer { xp in values.withUnsafeMutableBufferPointer { vp in scales.withUnsafeMutableBufferPointer { sp in
            ActivationQuantizer.quantizeTwoPass(xp.baseAddress!, count: count, groupSize: groupSize,
                                                values: vp.baseAddress!, scales: sp.baseAddress!)
        } } }
        let first = Self.referenceQuantize(x, groupSize: groupSize)
        #expect(Array(values[..<count]) == first.values && Array(scales[..<groups]) == first.scales)
        let residual = (0..<count).map { x[$0] - Float(first.values[$0]) * first.scales[$0 / groupSize] }
        let second = Self.referenceQuantize(residual, groupSize: groupSize)
        #expect(Array(values[count...]) == second.values && Array(scales[groups...]) == second.scales)
        #expect(scales[1] == 0 && scales[groups + 1] == 0 && values[groupSize] == 0 && values[count + groupSize] == 0)
        for i in 0..<count {
            let g = i / groupSize
            #expect(scales[groups + g] <= scales[g] / 254 * 1.0001)
            let rebuilt = Double(scales[g]) * Double(values[i]) + Double(scales[groups + g]) * Double(values[count + i])
            #expect(abs(rebuilt - Double(x[i])) <= Double(scales[groups + g]) * 0.5001 + 1e-12, "element \(i)")
        }
    }

    /// The two-pass products against integer sums in Double, and prefill (`matrixTwoPass`)
    /// against decode (`vectorTwoPass`) token by token, bit for bit.
    @Test(arguments: [(37, 96, 32), (130, 384, 64)])
    func twoPassProductsMatchIntegerSumsAndEachOther(shape: (Int, Int, Int)) {
        let (rows, columns, groupSize) = shape
        let w = Packed(rows: rows, columns: columns, groupSize: groupSize, seed: UInt64(rows + columns))
        defer { w.free() }
        let groups = w.matrix.groups
        for threads in [1, 2] {
            let pool = ThreadPool(threads: threads)
            for tokens in [1, 2, 3, 5] {
                // Per token: q₁ then q₂, as quantizeTwoPass lays them out.
                let x = randomFloats(2 * tokens * columns, seed: UInt64(tokens + 40)).map { Int8(($0 * 127).rounded()) }
                let xScales = randomFloats(2 * tokens * groups, seed: 11).map { abs($0) * 0.02 + 1e-3 }
                let passes = w.expected(x: x, xScales: xScales, tokens: 2 * tokens)
                var prefill = [Float](repeating: .nan, count: tokens * rows), decode = prefill
                x.withUnsafeBufferPointer { xp in xScales.withUnsafeBufferPointer { sp in
                    prefill.withUnsafeMutableBufferPointer { yp in
                        Q8MatMul.matrixTwoPass(w.matrix, x: xp.baseAddress!, xScales: sp.baseAddress!, tokens: tokens,
                                               y: yp.baseAddress!, pool: pool)
                    }
                    decode.withUnsafeMutableBufferPointer { yp in
                        for t in 0..<tokens {
                            Q8MatMul.vectorTwoPass(w.matrix, x: xp.baseAddress! + 2 * t * columns, xScales: sp.baseAddress! + 2 * t * groups,
                                                   y: yp.baseAddress! + t * rows, pool: pool)
                        }
                    }
                } }
                #expect(prefill == decode, "\(shape) tokens \(tokens) threads \(threads)")
                var worst = 0.0, largest = 0.0
                for t in 0..<tokens {
                    for r in 0..<rows {
                        let expected = passes[2 * t * rows + r] + passes[(2 * t + 1) * rows + r]
                        worst = max(worst, abs(Double(prefill[t * rows + r]) - expected)); largest = max(largest, abs(expected))
                    }
                }
                #expect(worst <= 1e-5 * max(largest, 1e-3), "\(shape) tokens \(tokens): \(worst) of \(largest)")
            }
        }
    }
}

private extension Float {
    var roundedToHalf: Float { Float(Float16(self)) }
}
