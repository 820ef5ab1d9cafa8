// swift-tools-version:6.0
// tfq: train small transformers on a CPU, quantize them to int8, run them on small boards.
//
// Targets, with one-way dependencies:
//   tfq (CLI) → TFQExport → TFQTrain, TFQRuntime;  tfq → TFQImport → TFQModel
//   TFQTrain → TFQTrainKernels, TFQModel          (training: GPT forward/backward, the loop)
//   TFQCAPI → CTFQ, TFQRuntime → TFQModel, TFQKernels   (the C API; inference: mmap load, decode)
//   TFQModel → TFQFormat, TFQKernels              (the model description, tokenizers)
//   TFQTrainKernels → TFQKernels → CKernels;  TFQFormat → CZstd, CMapGuard
// TFQRuntime's closure holds no training code: the model description, the format, and
// the kernels inference runs (plus the layer kernels' backward halves, kept beside their
// forward ones).
// Library targets carry no unsafeFlags so the package stays consumable as a dependency;
// the fast build passes CPU flags on the command line (see tools/build.sh).
import PackageDescription

let package = Package(
    name: "tfq",
    products: [
        .executable(name: "tfq", targets: ["tfq"]),
        .library(name: "TFQRuntime", targets: ["TFQRuntime"]),
        .library(name: "tfq-c", type: .dynamic, targets: ["TFQCAPI"]),
        .library(name: "TFQFormat", targets: ["TFQFormat"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        // A SIGBUS handler scoped to tfq's file mappings: a model file truncated while in use
        // fails the call instead of killing the process.
        .target(name: "CMapGuard"),
        .target(name: "TFQFormat", dependencies: ["CZstd", "CMapGuard"]),
        // Header-only C for the kernels: a cache prefetch hint, and the int8 inner loop in ARM
        // (sdot, NEON) and AVX2 intrinsics (Swift 6.0's Builtin has no target intrinsics).
        .target(name: "CKernels"),
        // BuiltinModule gives vector conversions (int32→float, f16→f32) the stdlib does lane by lane.
        .target(name: "TFQKernels", dependencies: ["CKernels"], swiftSettings: [.enableExperimentalFeature("BuiltinModule")]),
        // What training alone needs: the optimizer, the loss, batched attention that keeps its
        // weights, embedding gradients, and the tile exchange between replicas. Layer kernels
        // used by both directions (LayerNorm, activations, GEMM) stay in TFQKernels as
        // forward/backward pairs, one file per layer.
        .target(name: "TFQTrainKernels", dependencies: ["TFQKernels"]),
        .target(name: "TFQModel", dependencies: ["TFQFormat", "TFQKernels"]),
        .target(name: "TFQTrain", dependencies: ["TFQModel", "TFQFormat", "TFQKernels", "TFQTrainKernels"]),
        .target(name: "TFQRuntime", dependencies: ["TFQModel", "TFQFormat", "TFQKernels"]),
        .target(name: "TFQExport", dependencies: ["TFQRuntime", "TFQTrain"]),
        // Checkpoints of other tools (llama2.c, Hugging Face safetensors) → .tfq.
        .target(name: "TFQImport", dependencies: ["TFQModel", "TFQFormat", "TFQKernels"]),
        // The C API's header (Sources/CTFQ/include/tfq.h; include/tfq.h links to it), which
        // TFQCAPI imports so the compiler checks the Swift implementation against it.
        .target(name: "CTFQ"),
        // The C API, built as libtfq.so by the `tfq-c` product.
        .target(name: "TFQCAPI", dependencies: ["CTFQ", "TFQRuntime"]),
        .executableTarget(
            name: "tfq",
            dependencies: [
                "TFQFormat", "TFQKernels", "TFQModel", "TFQTrain", "TFQRuntime", "TFQExport", "TFQImport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // An app that links TFQRuntime alone (tools/examples/swift).
        .executableTarget(name: "tfq-swift-example", dependencies: ["TFQRuntime"], path: "tools/examples/swift"),
        .executableTarget(name: "tfq-kernel-bench", dependencies: ["TFQKernels"], path: "Benchmarks/KernelBenchmarks"),
        .executableTarget(name: "tfq-format-bench", dependencies: ["TFQFormat"], path: "Benchmarks/FormatBenchmarks"),
        .executableTarget(name: "tfq-bpe-bench", dependencies: ["TFQModel", "TFQTrain", "TFQKernels", "TFQFormat"], path: "Benchmarks/BPEBenchmarks"),
        // What several test targets share: whether python3 has numpy.
        .target(name: "TFQTestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "TFQFormatTests", dependencies: ["TFQFormat", "TFQTestSupport"]),
        .testTarget(name: "TFQKernelsTests", dependencies: ["TFQKernels", "TFQTrainKernels", "CKernels"]),
        .testTarget(name: "TFQModelTests", dependencies: ["TFQModel", "TFQFormat"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQTrainTests", dependencies: ["TFQTrain", "TFQModel", "TFQFormat", "TFQKernels", "TFQTrainKernels", "TFQTestSupport"]),
        .testTarget(name: "TFQRuntimeTests", dependencies: ["TFQRuntime", "TFQExport", "TFQTrain"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQExportTests", dependencies: ["TFQExport", "TFQFormat", "TFQKernels"]),
        .testTarget(name: "TFQImportTests", dependencies: ["TFQImport", "TFQRuntime", "TFQExport"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQCAPITests", dependencies: ["TFQCAPI", "CTFQ", "TFQFormat"]),
        .testTarget(name: "tfqCLITests", dependencies: ["tfq", "tfq-swift-example"]),
    ],
    // Swift 6 language mode, strict concurrency, for every target.
    swiftLanguageModes: [.v6]
)
