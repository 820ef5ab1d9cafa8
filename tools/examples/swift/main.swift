// An app that uses only the TFQRuntime library product: it links no training, export or
// import code. tfqCLITests checks that it prints what `tfq run` prints.
//
//     tfq-swift-example MODEL.tfq [PROMPT] [TOKENS]
#if canImport(Glibc)
@preconcurrency import Glibc  // stderr is a mutable C global
#endif
import TFQRuntime

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    fputs("usage: tfq-swift-example MODEL.tfq [PROMPT] [TOKENS]\n", stderr)
    exit(2)
}
do {
    let model = try Model(path: arguments[1])
    let session = try Session(model: model, threads: 1)
    let prompt = try model.tokenizer.encode(arguments.count > 2 ? arguments[2] : "")
    let count = arguments.count > 3 ? Int(arguments[3]) ?? 20 : 20
    var ids: [Int32] = []
    let reason = try session.generate(prompt: prompt.isEmpty ? [0] : prompt, maxTokens: count) { id, text in
        ids.append(id)
        print(text, terminator: "")
        return true
    }
    print("")
    fputs("\(ids.count) tokens, stopped: \(reason.rawValue)\n", stderr)
} catch {
    fputs("tfq-swift-example: \(error)\n", stderr)
    exit(1)
}
