import Foundation
// Kernel micro-benchmarks: fp32 GEMM GFLOP/s at the training shapes, int8 matvec and
// GEMM GOPS at the decode and prefill shapes, fp32 matvec GFLOP/s, each printed next to the
// ceilings measured on this kind of machine (../shared/PERF-NOTES.md).
//
//   swift run -c release tfq-kernel-bench [--threads N] [--seconds S]
//   (or with tools/build.sh's flags: see BENCHMARKS.md)
import TFQKernels

var threads = ThreadPool.availableProcessors
var seconds = 1.0
var bandwidthOnly = false
var gemmOnly = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--threads": threads = Int(arguments.popFirst() ?? "") ?? threads
    case "--seconds": seconds = Double(arguments.popFirst() ?? "") ?? seconds
    case "--bandwidth-only": bandwidthOnly = true
    case "--gemm-only": gemmOnly = true
    default: print("usage: tfq-kernel-bench [--threads N] [--seconds S] [--bandwidth-only | --gemm-only]"); exit(2)
    }
}

/// 12 independent chains of `rounds` multiply-adds each (a ← 0.001 + a × 0.999), held in
/// registers; returns their sum so that none is optimized away.
func multiplyAddChains(rounds: Int, start: Float) -> Float {
    let x = FloatVector(repeating: 0.999), y = FloatVector(repeating: 0.001)
    var a = (0..<12).map { FloatVector(repeating: Float($0) + start) }
    var (a0, a1, a2, a3, a4, a5) = (a[0], a[1], a[2], a[3], a[4], a[5])
    var (a6, a7, a8, a9, a10, a11) = (a[6], a[7], a[8], a[9], a[10], a[11])
    for _ in 0..<rounds {
        #if TFQ_FMA || arch(arm64)
        a0 = y.addingProduct(a0, x); a1 = y.addingProduct(a1, x); a2 = y.addingProduct(a2, x)
        a3 = y.addingProduct(a3, x); a4 = y.addingProduct(a4, x); a5 = y.addingProduct(a5, x)
        a6 = y.addingProduct(a6, x); a7 = y.addingProduct(a7, x); a8 = y.addingProduct(a8, x)
        a9 = y.addingProduct(a9, x); a10 = y.addingProduct(a10, x); a11 = y.addingProduct(a11, x)
        #else
        a0 = y + a0 * x; a1 = y + a1 * x; a2 = y + a2 * x; a3 = y + a3 * x; a4 = y + a4 * x; a5 = y + a5 * x
        a6 = y + a6 * x; a7 = y + a7 * x; a8 = y + a8 * x; a9 = y + a9 * x; a10 = y + a10 * x; a11 = y + a11 * x
        #endif
    }
    a = [a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11]
    return a.reduce(FloatVector(), +).sum()
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Runs `body` repeatedly for about `duration` seconds and returns the median time of one call.
func measure(for duration: Double, _ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    let start = MonotonicClock.seconds()
    while MonotonicClock.seconds() - start < duration || times.count < 5 {
        let t0 = MonotonicClock.seconds()
        body()
        times.append(MonotonicClock.seconds() - t0)
    }
    return median(times)
}

// Memory read bandwidth: the ceiling of decoding a model larger than the caches, whose
// every weight byte is read once per token (tokens/s ≤ bandwidth ÷ weight bytes).
if !gemmOnly {
    let bytes = 1 << 30
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    memset(buffer, 1, bytes)
    print("memory read bandwidth (\(bytes >> 20) MiB buffer, summed as int8 vectors; median of repeated passes)")
    for counts in [1, threads].uniqued() {
        let pool = ThreadPool(threads: counts)
        let chunks = 64, chunk = bytes / chunks
        var sink = SIMD32<UInt8>()
        let time = measure(for: seconds) {
            var partial = [SIMD32<UInt8>](repeating: .zero, count: chunks)
            partial.withUnsafeMutableBufferPointer { out in
                pool.parallelFor(chunks) { range in
                    for c in range {
                        var a = SIMD32<UInt8>(), b = SIMD32<UInt8>()
                        var offset = c * chunk
                        while offset < (c + 1) * chunk {
                            a &+= buffer.load(fromByteOffset: offset, as: SIMD32<UInt8>.self)
                            b &+= buffer.load(fromByteOffset: offset + 32, as: SIMD32<UInt8>.self)
                            offset += 64
                        }
                        out[c] = a &+ b
                    }
                }
            }
            for p in partial { sink &+= p }
        }
        print("  \(counts) thread(s): \(String(format: "%.1f", Double(bytes) / time / 1e9)) GB/s   (checksum \(sink[0]))")
    }
    buffer.deallocate()
}
if bandwidthOnly { exit(0) }

// The arithmetic ceiling: independent multiply-add chains held in registers, nothing read
// from memory. Training's GFLOP/s (`tfq train --json`) is quoted against this.
print("fp32 FMA peak: 12 independent chains of \(FloatVector.scalarCount)-lane multiply-adds per thread; median of repeated runs")
for counts in [1, threads].uniqued() {
    let pool = ThreadPool(threads: counts)
    let rounds = 1 << 20
    var sums = [Float](repeating: 0, count: counts)
    let time = measure(for: seconds) {
        sums.withUnsafeMutableBufferPointer { out in
            pool.parallelFor(counts) { range in
                for t in range { out[t] = multiplyAddChains(rounds: rounds, start: Float(t)) }
            }
        }
    }
    let flops = 2.0 * 12 * Double(FloatVector.scalarCount * rounds * counts)
    print("  \(counts) thread(s): \(String(format: "%.1f", flops / time / 1e9)) GFLOP/s   (checksum \(sums.reduce(0, +)))")
}
#if !(TFQ_FMA || arch(arm64))
print("  (this build has no FMA: -DTFQ_FMA and an FMA target CPU, as tools/build.sh sets, give the real peak)")
#endif

print("GEMM (fp32), \(threads) thread(s), vector \(FloatVector.scalarCount) lanes; median of repeated runs")
print("shape (m×n×k)           form    GFLOP/s")
for counts in [1, threads].uniqued() {
    let gemm = GEMM(pool: ThreadPool(threads: counts))
    // Training shapes: nanoGPT's CPU config (rows 768 = 12×64, dim 128; each of 2 threads
    // runs half the batch, 384 rows) and the 10.65M config (8192 rows per thread).
    let shapes = [(768, 384, 128), (768, 128, 128), (768, 512, 128), (768, 128, 512), (128, 512, 768), (512, 384, 768),
                  (384, 384, 128), (384, 128, 512), (512, 128, 384), (128, 512, 384),
                  (512, 512, 512), (16384, 1152, 384), (16384, 384, 1536), (8192, 1152, 384), (1152, 384, 8192)]
    for (m, n, k) in shapes {
        let a = AlignedMemory.floats(m * k), b = AlignedMemory.floats(k * n), c = AlignedMemory.floats(m * n)
        for i in 0..<(m * k) { a[i] = Float(i % 7) * 0.1 }
        for i in 0..<(k * n) { b[i] = Float(i % 5) * 0.1 }
        for (form, av, bv) in [("A·Bᵀ", MatrixView(a, columns: k), MatrixView.transposed(b, columns: k)),
                               ("A·B", MatrixView(a, columns: k), MatrixView(b, columns: n)),
                               ("Aᵀ·B", MatrixView.transposed(a, columns: m), MatrixView(b, columns: n))] {
            let time = measure(for: seconds) { gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: c, ldc: n, accumulate: false) }
            let gflops = 2.0 * Double(m * n * k) / time / 1e9
            print("\("\(m)×\(n)×\(k)".padding(toLength: 22, withPad: " ", startingAt: 0))  \(form.padding(toLength: 6, withPad: " ", startingAt: 0))  \(String(format: "%.1f", gflops))  (\(counts) thr)")
        }
        AlignedMemory.free(a); AlignedMemory.free(b); AlignedMemory.free(c)
    }
}
print("PERF-NOTES.md ceilings (Zen 4, AVX-512): OpenBLAS ~100 GFLOP/s on 1 thread, 140–208 on 2; FMA peak ~116 per core.")
if gemmOnly { exit(0) }

// Decode and prefill shapes: the GPT-2-shaped model (dim 384, ff 1536, vocab 65) and
// stories15M (dim 288, hidden 768, vocab 32000). rows × columns of W in y = W·x.
let decodeShapes = [(1152, 384), (384, 384), (1536, 384), (384, 1536), (864, 288), (768, 288), (288, 768), (32000, 288), (1024, 128)]
print("\nint8 × int8 → int32 (group 64, or 32 where 64 does not divide the row; interleaved 16×4 layout) and fp32 matvec; GOPS = 2·rows·columns per second")
print("shape (rows×cols)   threads  int8 matvec GOPS  int8 GEMM 128 tokens GOPS  fp32 matvec GFLOP/s  fp16 matvec GFLOP/s")
for counts in [1, threads].uniqued() {
    let pool = ThreadPool(threads: counts)
    for (rows, columns) in decodeShapes {
        let group = columns % 64 == 0 ? 64 : 32  // 288 = 9 × 32
        let padded = (rows + 15) / 16 * 16, groups = columns / group
        let values = UnsafeMutablePointer<Int8>.allocate(capacity: padded * columns)
        let scales = AlignedMemory.floats(padded * groups)
        for i in 0..<(padded * columns) { values[i] = Int8(truncatingIfNeeded: i &* 37 % 255 - 127) }
        for i in 0..<(padded * groups) { scales[i] = 0.01 }
        let matrix = Q8Matrix(values: values, scales: scales, rows: rows, columns: columns, groupSize: group)
        let tokens = 128
        let x = UnsafeMutablePointer<Int8>.allocate(capacity: tokens * columns)
        let xScales = AlignedMemory.floats(tokens * groups)
        for i in 0..<(tokens * columns) { x[i] = Int8(truncatingIfNeeded: i % 200 - 100) }
        let y = AlignedMemory.floats(tokens * rows)
        let vector = measure(for: seconds) { Q8MatMul.vector(matrix, x: x, xScales: xScales, y: y, pool: pool) }
        let batch = measure(for: seconds) { Q8MatMul.matrix(matrix, x: x, xScales: xScales, tokens: tokens, y: y, pool: pool) }
        let w = AlignedMemory.floats(rows * columns), xf = AlignedMemory.floats(columns)
        let fp32 = measure(for: seconds) { MatVec.multiply(w, rows: rows, columns: columns, x: xf, y: y, pool: pool) }
        let halves = UnsafeMutablePointer<Float16>.allocate(capacity: rows * columns)
        halves.initialize(repeating: 0.5, count: rows * columns)
        let fp16 = measure(for: seconds) { MatVec.multiply(halves, rows: rows, columns: columns, x: xf, y: y, pool: pool) }
        halves.deallocate()
        let ops = 2.0 * Double(rows * columns)
        print("\("\(rows)×\(columns)".padding(toLength: 18, withPad: " ", startingAt: 0))  \(counts)        "
              + "\(String(format: "%6.1f", ops / vector / 1e9))            \(String(format: "%6.1f", ops * Double(tokens) / batch / 1e9))"
              + "                   \(String(format: "%6.1f", ops / fp32 / 1e9))"
              + "               \(String(format: "%6.1f", ops / fp16 / 1e9))")
        values.deallocate(); x.deallocate()
        AlignedMemory.free(scales); AlignedMemory.free(xScales); AlignedMemory.free(y); AlignedMemory.free(w); AlignedMemory.free(xf)
    }
}
print("PERF-NOTES.md ceilings (Zen 4): int8 VNNI 142–196 GOPS on 1 thread, 250–334 on 2; standard SIMD types ~61; fp32 matvec 38–47 GFLOP/s.")

extension Array where Element: Hashable {
    func uniqued() -> [Element] { var seen = Set<Element>(); return filter { seen.insert($0).inserted } }
}
