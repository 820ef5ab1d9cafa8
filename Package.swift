// swift-tools-version:6.0
// tfq: train small transformers on a CPU, quantize them to int8, run them on small boards.
//
// Targets, with one-way dependencies:
//   tfq (CLI) → TFQTrain / TFQRuntime → TFQModel / TFQFormat → TFQKernels, CZstd
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
        .target(name: "TFQModel", dependencies: ["TFQFormat", "TFQKernels"]),
        .target(name: "TFQTrain", dependencies: ["TFQModel"]),
        .target(name: "TFQRuntime", dependencies: ["TFQModel", "TFQFormat", "TFQKernels"]),
        .target(name: "TFQExport", dependencies: ["TFQRuntime", "TFQTrain"]),
        // Checkpoints of other tools (llama2.c, Hugging Face safetensors) → .tfq.
        .target(name: "TFQImport", dependencies: ["TFQModel", "TFQFormat", "TFQKernels"]),
        // The C API (include/tfq.h), built as libtfq.so by the `tfq-c` product.
        .target(name: "TFQCAPI", dependencies: ["TFQRuntime"]),
        .executableTarget(
            name: "tfq",
            dependencies: [
                "TFQFormat", "TFQKernels", "TFQModel", "TFQTrain", "TFQRuntime", "TFQExport", "TFQImport",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "tfq-kernel-bench", dependencies: ["TFQKernels"], path: "Benchmarks/KernelBenchmarks"),
        .executableTarget(name: "tfq-format-bench", dependencies: ["TFQFormat"], path: "Benchmarks/FormatBenchmarks"),
        .executableTarget(name: "tfq-bpe-bench", dependencies: ["TFQModel", "TFQTrain", "TFQKernels", "TFQFormat"], path: "Benchmarks/BPEBenchmarks"),
        .testTarget(name: "TFQFormatTests", dependencies: ["TFQFormat"]),
        .testTarget(name: "TFQKernelsTests", dependencies: ["TFQKernels", "CKernels"]),
        .testTarget(name: "TFQModelTests", dependencies: ["TFQModel", "TFQFormat"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQTrainTests", dependencies: ["TFQTrain", "TFQFormat"]),
        .testTarget(name: "TFQRuntimeTests", dependencies: ["TFQRuntime", "TFQExport", "TFQTrain"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQExportTests", dependencies: ["TFQExport", "TFQFormat", "TFQKernels"]),
        .testTarget(name: "TFQImportTests", dependencies: ["TFQImport", "TFQRuntime", "TFQExport"], exclude: ["Fixtures"]),
        .testTarget(name: "TFQCAPITests", dependencies: ["TFQCAPI"]),
        .testTarget(name: "tfqCLITests", dependencies: ["tfq"]),
    ],
    swiftLanguageModes: [.v5]
)
