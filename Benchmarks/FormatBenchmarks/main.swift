import Foundation
// Load-time benchmark of the .tfq reader: how long it takes to get a ~100 MB model's tensors
// usable, for raw and zstd files, f32 and q8, against reading the whole file into memory.
//
//   swift run -c release tfq-format-bench [--runs N] [--matrices M] [--dir PATH] [--keep]
//
// The model: M (default 24) matrices of 1024×1024 f32 weights drawn from normal(0, 0.02), as
// a trained GPT-2's are (a seeded generator, so every run writes the same bytes), written
//   f32 raw      as f32, uncompressed;
//   f32 zstd     as f32 with .zstd(level: 3) (the writer keeps plain or byte-plane zstd,
//                whichever is smaller, or raw if neither is);
//   q8 raw       quantized with Q8Codec, group 64, row-major layout, uncompressed;
//   q8 zstd      the same q8 bytes with .zstd(level: 3).
//
// Every file is read once first, so the page cache is warm and no number includes the disk.
// Then, median of N runs (default 15) of:
//   open+touch   TFQFile(path:) with default options (mmap; every invariant checked; zstd
//                tensors decoded at open; tensor CRCs not checked), then one byte read per
//                4 KiB page of every tensor, so the lazily mapped pages of raw tensors are
//                faulted in and counted: the work a loader does before it can use the weights.
//   read()       only reading the whole file into a new [UInt8] heap buffer with read(2):
//                the floor of any read-into-memory loader, before any parsing or decoding.
//   read+open    read() as above, then the same open+touch of the path, standing in for the
//                parse/decode step of a read-into-memory loader (an upper bound: it maps the
//                file again instead of parsing the buffer it just read).
#if canImport(Glibc)
import Glibc
#endif
import TFQFormat

var runs = 15
var matrices = 24
var directory: String? = nil
var keep = false
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--runs": runs = max(1, Int(arguments.popFirst() ?? "") ?? runs)
    case "--matrices": matrices = max(1, Int(arguments.popFirst() ?? "") ?? matrices)
    case "--dir": directory = arguments.popFirst()
    case "--keep": keep = true
    default:
        print("usage: tfq-format-bench [--runs N] [--matrices M] [--dir PATH] [--keep]")
        exit(2)
    }
}

// glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so in a
// loop a 27 MB buffer would come back as already-faulted heap while a 100 MB one is always fresh
// mmap'd memory. Pin the threshold: every large buffer (read() targets, decoded zstd tensors)
// is fresh memory in every run, as it is in a process that loads a model once.
// (mallopt is not in Swift's Glibc module; M_MMAP_THRESHOLD is -3 in <malloc.h>.)
if let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0) /* RTLD_DEFAULT */, "mallopt") {
    typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
    _ = unsafeBitCast(symbol, to: Mallopt.self)(-3 /* M_MMAP_THRESHOLD */, 1 << 20)
}

let rows = 1024, cols = 1024
let groupSize = 64
let pageSize = 4096

// MARK: - Helpers

func now() -> Double {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}

/// SplitMix64: small, fast, seedable; good enough to make weights that look trained.
struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    mutating func uniform() -> Double { (Double(next() >> 11) + 1) * 0x1p-53 }
}

/// `count` samples of normal(0, sigma) by Box–Muller, from `seed`.
func normalWeights(count: Int, sigma: Double, seed: UInt64) -> [Float] {
    var random = SplitMix64(state: seed)
    var out = [Float](repeating: 0, count: count)
    var index = 0
    while index < count {
        let radius = sigma * (-2 * log(random.uniform())).squareRoot()
        let angle = 2 * Double.pi * random.uniform()
        out[index] = Float(radius * cos(angle))
        if index + 1 < count { out[index + 1] = Float(radius * sin(angle)) }
        index += 2
    }
    return out
}

/// The whole file read into a new heap buffer with read(2).
func readWholeFile(_ path: String) -> [UInt8] {
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    precondition(descriptor >= 0, "cannot open \(path)")
    defer { close(descriptor) }
    var status = stat()
    precondition(fstat(descriptor, &status) == 0)
    let length = Int(status.st_size)
    return [UInt8](unsafeUninitializedCapacity: length) { buffer, initialized in
        var done = 0
        while done < length {
            let count = read(descriptor, buffer.baseAddress! + done, length - done)
            if count < 0 && errno == EINTR { continue }
            precondition(count > 0, "read failed on \(path)")
            done += count
        }
        initialized = length
    }
}

/// Opens the file and reads one byte per 4 KiB page of every tensor (and the last byte).
/// Returns a sum of the bytes read, so the reads cannot be optimized away.
func openAndTouch(_ path: String) throws -> UInt64 {
    let file = try TFQFile(path: path)
    var sum: UInt64 = 0
    for info in file.tensors {
        let bytes = file.bytes(info)
        var offset = 0
        while offset < bytes.count {
            sum &+= UInt64(bytes[offset])
            offset += pageSize
        }
        if let last = bytes.last { sum &+= UInt64(last) }
    }
    return sum
}

func fileSize(_ path: String) -> Int {
    var status = stat()
    precondition(stat(path, &status) == 0)
    return Int(status.st_size)
}

func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
    let padding = String(repeating: " ", count: max(0, width - text.count))
    return right ? padding + text : text + padding
}

// MARK: - Write the four files

let base: String = {
    if let directory { return directory }
    let temporary = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
    var template = Array("\(temporary)/tfq-format-bench-XXXXXX".utf8CString)
    guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
        print("cannot create a temporary directory in \(temporary)")
        exit(1)
    }
    return String(cString: made)
}()

struct Variant {
    let name: String
    let file: String
    let quantized: Bool
    let compression: TensorCompression
}

let variants = [
    Variant(name: "f32 raw", file: "f32_raw.tfq", quantized: false, compression: .none),
    Variant(name: "f32 zstd-3", file: "f32_zstd.tfq", quantized: false, compression: .zstd(level: 3)),
    Variant(name: "q8 raw", file: "q8_raw.tfq", quantized: true, compression: .none),
    Variant(name: "q8 zstd-3", file: "q8_zstd.tfq", quantized: true, compression: .zstd(level: 3)),
]

let names: [String] = (0..<matrices).map { index in
    let kinds = ["attn.qkv.weight", "attn.proj.weight", "ffn.up.weight", "ffn.down.weight"]
    return "blocks.\(index / kinds.count).\(kinds[index % kinds.count])"
}

print("tfq-format-bench: \(matrices) matrices of \(rows)×\(cols) f32 ~ normal(0, 0.02), \(runs) runs each, in \(base)")
let writeStart = now()
var writers: [TFQWriter] = []
for variant in variants { writers.append(try TFQWriter(path: base + "/" + variant.file)) }
var encodings: [[String: Int]] = Array(repeating: [:], count: variants.count)
for (index, name) in names.enumerated() {
    // One matrix at a time, written to all four files: the benchmark holds one matrix in memory.
    let weights = normalWeights(count: rows * cols, sigma: 0.02, seed: 0x7F0A_0000 + UInt64(index))
    let q8 = try weights.withUnsafeBufferPointer {
        try Q8Codec.encode($0, rows: rows, cols: cols, groupSize: groupSize, layout: .rowMajor)
    }
    for (slot, variant) in variants.enumerated() {
        let info: TensorInfo
        if variant.quantized {
            info = try q8.withUnsafeBytes {
                try writers[slot].add(name: name, dtype: .q8, shape: [rows, cols], layout: .rowMajor, groupSize: groupSize,
                                      bytes: $0, compression: variant.compression)
            }
        } else {
            info = try weights.withUnsafeBufferPointer {
                try writers[slot].add(name: name, shape: [rows, cols], floats: $0, compression: variant.compression)
            }
        }
        encodings[slot][info.encoding.description, default: 0] += 1
    }
}
let metadata = Array(#"{"kind":"model","extra":{"written_by":"tfq-format-bench"}}"#.utf8)
for writer in writers { try writer.finish(metadata: metadata) }
print("wrote 4 files in \(String(format: "%.1f", now() - writeStart)) s")

// MARK: - Measure

let paths = variants.map { base + "/" + $0.file }
// Warm the page cache (and check every file once, CRCs included).
for path in paths {
    _ = readWholeFile(path)
    _ = try TFQFile(path: path, options: .init(verifyChecksums: true))
}

var sink: UInt64 = 0
struct Result { let openTouch: Double; let read: Double; let readOpen: Double }
var results: [Result] = []
for path in paths {
    var openTouch: [Double] = [], reads: [Double] = [], readOpens: [Double] = []
    sink &+= try openAndTouch(path)  // untimed warm-up run
    for _ in 0..<runs {
        var start = now()
        sink &+= try openAndTouch(path)
        openTouch.append(now() - start)

        start = now()
        var buffer = readWholeFile(path)
        reads.append(now() - start)
        sink &+= UInt64(buffer[buffer.count / 2])
        buffer = []

        start = now()
        let whole = readWholeFile(path)
        sink &+= try openAndTouch(path)
        readOpens.append(now() - start)
        sink &+= UInt64(whole[whole.count - 1])
    }
    results.append(Result(openTouch: median(openTouch), read: median(reads), readOpen: median(readOpens)))
}

// MARK: - Report

let rawSize = fileSize(paths[0])
let header = [pad("variant", 11), pad("file MB", 8, right: true), pad("vs f32 raw", 11, right: true),
              pad("open+touch ms", 14, right: true), pad("read() ms", 10, right: true),
              pad("read+open ms", 13, right: true), "  tensor encodings"]
print("")
print(header.joined(separator: "  "))
for (slot, variant) in variants.enumerated() {
    let size = fileSize(paths[slot])
    let kinds = encodings[slot].sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
    let row = [pad(variant.name, 11),
               pad(String(format: "%.1f", Double(size) / 1e6), 8, right: true),
               pad(String(format: "%.3f", Double(size) / Double(rawSize)), 11, right: true),
               pad(String(format: "%.2f", results[slot].openTouch * 1e3), 14, right: true),
               pad(String(format: "%.2f", results[slot].read * 1e3), 10, right: true),
               pad(String(format: "%.2f", results[slot].readOpen * 1e3), 13, right: true),
               "  " + kinds]
    print(row.joined(separator: "  "))
}
print("")
print("median of \(runs) runs, page cache warm; MB = 10^6 bytes. open+touch: TFQFile open (mmap, checks, zstd")
print("decoded at open, no CRC check) + 1 byte per 4 KiB page of every tensor. read(): whole file into a")
print("[UInt8] only (no parsing). read+open: read() then open+touch (a stand-in for parse+decode).")
if sink == 42 { print("") }  // keeps the touched bytes observable

if !keep {
    for path in paths { unlink(path) }
    if directory == nil { rmdir(base) }
} else {
    print("files kept in \(base)")
}
