import Foundation
// Kernel micro-benchmarks: GEMM GFLOP/s at the training shapes, printed next to the
// ceilings measured on this kind of machine (../shared/PERF-NOTES.md).
//
//   swift run -c release tfq-kernel-bench [--threads N] [--seconds S]
//   (or with tools/build.sh's flags: see BENCHMARKS.md)
import TFQKernels

var threads = ThreadPool.availableProcessors
var seconds = 1.0
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--threads": threads = Int(arguments.popFirst() ?? "") ?? threads
    case "--seconds": seconds = Double(arguments.popFirst() ?? "") ?? seconds
    default: print("usage: tfq-kernel-bench [--threads N] [--seconds S]"); exit(2)
    }
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }

/// Runs `body` repeatedly for about `seconds` and returns the median time of one call.
func measure(_ body: () -> Void) -> Double {
    body()
    var times: [Double] = []
    let start = Clock.seconds()
    while Clock.seconds() - start < seconds || times.count < 5 {
        let t0 = Clock.seconds()
        body()
        times.append(Clock.seconds() - t0)
    }
    return median(times)
}

print("GEMM (fp32), \(threads) thread(s), vector \(FloatVector.scalarCount) lanes; median of repeated runs")
print("shape (m×n×k)           form    GFLOP/s")
for counts in [1, threads].uniqued() {
    let gemm = GEMM(pool: ThreadPool(threads: counts))
    // Training shapes: nanoGPT's CPU config (rows 768 = 12×64, dim 128) and the 10.65M config.
    let shapes = [(768, 384, 128), (768, 128, 128), (768, 512, 128), (768, 128, 512), (128, 512, 768), (512, 384, 768), (512, 512, 512), (16384, 1152, 384), (16384, 384, 1536)]
    for (m, n, k) in shapes {
        let a = AlignedMemory.floats(m * k), b = AlignedMemory.floats(k * n), c = AlignedMemory.floats(m * n)
        for i in 0..<(m * k) { a[i] = Float(i % 7) * 0.1 }
        for i in 0..<(k * n) { b[i] = Float(i % 5) * 0.1 }
        for (form, av, bv) in [("A·Bᵀ", MatrixView(a, columns: k), MatrixView.transposed(b, columns: k)),
                               ("A·B", MatrixView(a, columns: k), MatrixView(b, columns: n)),
                               ("Aᵀ·B", MatrixView.transposed(a, columns: m), MatrixView(b, columns: n))] {
            let time = measure { gemm.multiply(m: m, n: n, k: k, a: av, b: bv, c: c, ldc: n, accumulate: false) }
            let gflops = 2.0 * Double(m * n * k) / time / 1e9
            print("\("\(m)×\(n)×\(k)".padding(toLength: 22, withPad: " ", startingAt: 0))  \(form.padding(toLength: 6, withPad: " ", startingAt: 0))  \(String(format: "%.1f", gflops))  (\(counts) thr)")
        }
        AlignedMemory.free(a); AlignedMemory.free(b); AlignedMemory.free(c)
    }
}
print("PERF-NOTES.md ceilings (Zen 4, AVX-512): OpenBLAS ~100 GFLOP/s on 1 thread, 140–208 on 2; FMA peak ~116 per core.")

extension Array where Element: Hashable {
    func uniqued() -> [Element] { var seen = Set<Element>(); return filter { seen.insert($0).inserted } }
}
