// Byte-level BPE: how long learning the merges takes, and how fast encoding and decoding
// run on one core, on a real text.
//
//   swift run -c release tfq-bpe-bench [--data FILE | --synthetic MB] [--vocab N,N,...] [--runs R]
//
// For each vocabulary size (default 512, 2048, 8192, 65536) on FILE (default
// ../shared/data/warandpeace.txt, 3.2 MB; or --synthetic: MB megabytes of random words of
// 1–5 syllables, the worst case for the encoder's chunk cache, since most words are rare):
//   learn     BPELearner.learn on the whole file, once (it is what `tfq train` does on the
//             training split);
//   encode    BPETokenizer.encode of the whole file, one thread, median of R runs (default 5):
//             MB/s of input, with the tokens it made and bytes per token;
//   decode    the ids back to bytes, median of R runs, checked equal to the input;
//   stored    the tokenizer through its stored JSON form and back (Tokenizer's Codable, as
//             a model load does), median of R runs, with the size of the JSON.
#if canImport(Glibc)
import Glibc
#endif
import FoundationEssentials
import TFQFormat
import TFQKernels
import TFQModel
import TFQTrain

var path = "../shared/data/warandpeace.txt"
var vocabularies = [512, 2048, 8192, 65536]
var runs = 5
var synthetic: Double? = nil
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--data": path = arguments.popFirst() ?? path
    case "--vocab": vocabularies = (arguments.popFirst() ?? "").split(separator: ",").compactMap { Int($0) }
    case "--runs": runs = max(1, Int(arguments.popFirst() ?? "") ?? runs)
    case "--synthetic": synthetic = Double(arguments.popFirst() ?? "") ?? 3
    default:
        print("usage: tfq-bpe-bench [--data FILE | --synthetic MB] [--vocab N,N,...] [--runs R]")
        exit(2)
    }
}

var text = [UInt8]()
if let megabytes = synthetic {
    let syllables = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z"]
        .flatMap { c in ["a", "e", "i", "o", "u"].map { c + $0 } } + ["th", "sh", "ch", "qu", "x", "y", "ng", "st", "tr"]
    var random = Xoshiro256(seed: 1)
    while Double(text.count) < megabytes * 1e6 {
        for _ in 0...(random.next() % 5) { text += Array(syllables[Int(random.next() % UInt64(syllables.count))].utf8) }
        text += Array([" ", " ", " ", " ", " ", " ", " ", " ", " ", ", ", ".\n"][Int(random.next() % 11)].utf8)
    }
    path = "synthetic"
} else {
    guard let file = fopen(path, "rb") else { print("tfq-bpe-bench: cannot open \(path)"); exit(1) }
    var chunk = [UInt8](repeating: 0, count: 1 << 16)
    while true {
        let n = fread(&chunk, 1, chunk.count, file)
        if n <= 0 { break }
        text += chunk[..<n]
    }
    fclose(file)
}

func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
func timed<T>(_ body: () throws -> T) rethrows -> (T, Double) {
    let start = MonotonicClock.seconds()
    let result = try body()
    return (result, MonotonicClock.seconds() - start)
}
func fixed(_ value: Double, _ digits: Int) -> String {
    let scale = pow(10.0, Double(digits))
    let scaled = Int((value * scale).rounded())
    let fraction = String(abs(scaled) % Int(scale))
    return "\(scaled / Int(scale))." + String(repeating: "0", count: digits - fraction.count) + fraction
}
func pad(_ text: String, _ width: Int) -> String { String(repeating: " ", count: max(0, width - text.count)) + text }

let megabytes = Double(text.count) / 1e6
print("\(path): \(text.count) bytes; one thread; median of \(runs) runs (learning: one run)")
print([pad("vocab", 6), pad("learn s", 8), pad("tokens", 9), pad("bytes/tok", 9), pad("encode MB/s", 11),
       pad("decode MB/s", 11), pad("stored KB", 9), pad("load ms", 8)].joined(separator: "  "))
for vocabulary in vocabularies {
    let (bpe, learnSeconds) = timed { BPELearner.learn(text, vocabularySize: vocabulary) }
    var ids: [Int32] = []
    var encodeTimes: [Double] = [], decodeTimes: [Double] = [], loadTimes: [Double] = []
    for _ in 0..<runs {
        let (encoded, seconds) = timed { bpe.encode(text) }
        ids = encoded
        encodeTimes.append(seconds)
        let (decoded, decodeSeconds) = timed { bpe.decode(ids) }
        decodeTimes.append(decodeSeconds)
        guard decoded == text else { print("tfq-bpe-bench: round trip FAILED at vocabulary \(vocabulary)"); exit(1) }
    }
    let stored = try JSONEncoder().encode(Tokenizer.bpe(bpe))
    for _ in 0..<runs {
        let (loaded, seconds) = try timed { try Tokenizer(json: JSONParser.parse(Array(stored))) }
        loadTimes.append(seconds)
        guard loaded == .bpe(bpe) else { print("tfq-bpe-bench: stored form differs"); exit(1) }
    }
    print([pad("\(bpe.vocabularySize)", 6), pad(fixed(learnSeconds, 2), 8), pad("\(ids.count)", 9),
           pad(fixed(Double(text.count) / Double(ids.count), 2), 9),
           pad(fixed(megabytes / median(encodeTimes), 1), 11), pad(fixed(megabytes / median(decodeTimes), 1), 11),
           pad("\(stored.count / 1024)", 9), pad(fixed(median(loadTimes) * 1000, 1), 8)].joined(separator: "  "))
}
