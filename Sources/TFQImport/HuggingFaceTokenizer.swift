import TFQFormat
import TFQModel

/// A Hugging Face `tokenizer.json` → tfq's byte-level BPE (formats/tfq.md §10.1), keeping
/// the file's token ids.
///
/// What is read is GPT-2's pipeline, which the `tokenizers` library writes for every
/// byte-level BPE: no normalizer, the `ByteLevel` pre-tokenizer (GPT-2's regex, no prefix
/// space), a `BPE` model without dropout, word prefixes or suffixes, byte fallback or
/// whole-word lookups, and added tokens matched as they are written. Anything else is
/// refused with the name of the setting, never tokenized differently.
public enum HuggingFaceTokenizer {
    /// tokenizer.json files of the largest vocabularies are ~20 MB.
    static let maxFileBytes = 256 << 20
    /// The most tokens a .tfq tokenizer can list: its metadata holds at most 1,000,000 JSON
    /// values (formats/tfq.md §7), and the merges and the rest need some.
    public static let maxVocabulary = 500_000

    public static func read(path: String, vocabularySize: Int, endOfText: Int?) throws -> BPETokenizer {
        func fail(_ problem: String) -> ImportError { ImportError(path, problem) }
        guard vocabularySize <= maxVocabulary else {
            throw fail("a vocabulary of \(vocabularySize) tokens is more than a .tfq file's metadata holds (\(maxVocabulary))")
        }
        let bytes: [UInt8]
        do {
            let file = try InputFile(path: path)
            guard file.length <= Self.maxFileBytes else { throw fail("\(file.length) bytes is too large for a tokenizer.json") }
            bytes = try file.readAll()
        } catch let error as InputFile.Error { throw fail(error.description) }
        let json: JSONValue
        do { json = try JSONParser.parse(bytes, maxValues: 1 << 24) } catch { throw fail("not valid JSON: \(error)") }
        guard case .object = json else { throw fail("not a JSON object") }

        func type(_ value: JSONValue?) -> String? {
            if case .string(let name)? = value?["type"] { return name } else { return nil }
        }
        func isNull(_ value: JSONValue?) -> Bool { value == nil || value == .null }
        func flag(_ value: JSONValue?, _ key: String, default fallback: Bool) throws -> Bool {
            switch value?[key] {
            case nil, .null?: return fallback
            case .bool(let set)?: return set
            default: throw fail("'\(key)' is not true or false")
            }
        }

        guard isNull(json["normalizer"]) else { throw fail("normalizer '\(type(json["normalizer"]) ?? "?")' is not supported (tfq imports GPT-2-style byte-level BPE, which has none)") }
        let preTokenizer = json["pre_tokenizer"]
        guard type(preTokenizer) == "ByteLevel" else {
            throw fail("pre_tokenizer '\(type(preTokenizer) ?? "none")' is not supported (tfq imports GPT-2-style byte-level BPE: ByteLevel)")
        }
        guard try flag(preTokenizer, "use_regex", default: true) else { throw fail("a ByteLevel pre_tokenizer without GPT-2's regex is not supported") }
        guard try !flag(preTokenizer, "add_prefix_space", default: false) else { throw fail("add_prefix_space is not supported") }
        let postProcessor = json["post_processor"]
        guard isNull(postProcessor) || type(postProcessor) == "ByteLevel" else {
            throw fail("post_processor '\(type(postProcessor) ?? "?")' adds tokens, which is not supported")
        }
        for key in ["truncation", "padding"] where !isNull(json[key]) {
            throw fail("'\(key)' changes what encoding gives and is not supported")
        }
        let decoder = json["decoder"]
        guard isNull(decoder) || type(decoder) == "ByteLevel" else { throw fail("decoder '\(type(decoder) ?? "?")' is not supported (ByteLevel is)") }

        let model = json["model"]
        guard type(model) == "BPE" || (model?["type"] == nil && model?["merges"] != nil) else {
            throw fail("model '\(type(model) ?? "none")' is not supported (BPE is)")
        }
        if let dropout = model?["dropout"], !isNull(dropout), dropout != .integer(0), dropout != .number(0) {
            throw fail("BPE dropout is not supported")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if case .string(let text)? = model?[key], !text.isEmpty { throw fail("BPE \(key) '\(text)' is not supported") }
        }
        guard try !flag(model, "byte_fallback", default: false) else { throw fail("BPE byte_fallback is not supported (byte-level vocabularies need none)") }
        guard try !flag(model, "ignore_merges", default: false) else { throw fail("BPE ignore_merges is not supported") }

        // Ids → spellings, with the added tokens.
        guard case .object(let vocab)? = model?["vocab"] else { throw fail("model.vocab is not an object") }
        var tokens = [String](repeating: "", count: vocabularySize)
        func place(_ id: JSONValue, _ spelling: String, _ what: String) throws -> Int32 {
            guard case .integer(let value) = id, value >= 0 else { throw fail("\(what) '\(spelling)' has no token id") }
            guard value < Int64(vocabularySize) else { throw fail("\(what) '\(spelling)' has id \(value), outside the model's vocabulary of \(vocabularySize)") }
            guard tokens[Int(value)].isEmpty || tokens[Int(value)] == spelling else {
                throw fail("id \(value) is both '\(tokens[Int(value)])' and '\(spelling)'")
            }
            guard !spelling.isEmpty else { throw fail("\(what) \(value) is empty") }
            tokens[Int(value)] = spelling
            return Int32(value)
        }
        var idOf: [String: Int32] = [:]
        for (spelling, id) in vocab { idOf[spelling] = try place(id, spelling, "token") }
        var special: [Int32] = [], userDefined: [Int32] = []
        if case .array(let added)? = json["added_tokens"] {
            for token in added {
                guard case .string(let content)? = token["content"], let id = token["id"] else { throw fail("an added token has no content or id") }
                for key in ["single_word", "lstrip", "rstrip"] where try flag(token, key, default: false) {
                    throw fail("added token '\(content)' sets \(key), which is not supported")
                }
                let placed = try place(id, content, "added token")
                special.append(placed)
                // Added tokens are special unless the file says otherwise.
                if try !flag(token, "special", default: true) { userDefined.append(placed) }
            }
        } else if !isNull(json["added_tokens"]) {
            throw fail("added_tokens is not an array")
        }

        guard case .array(let mergeItems)? = model?["merges"] else { throw fail("model.merges is not an array") }
        var merges: [BPETokenizer.Merge] = []
        merges.reserveCapacity(mergeItems.count)
        for (i, item) in mergeItems.enumerated() {
            // "a b" (tokenizers before 0.20) or ["a", "b"].
            let parts: [String]
            switch item {
            case .string(let text): parts = text.split(separator: " ", omittingEmptySubsequences: false).map(String.init)
            case .array(let pair) where pair.count == 2: parts = pair.compactMap { if case .string(let s) = $0 { s } else { nil } }
            default: parts = []
            }
            guard parts.count == 2, let left = idOf[parts[0]], let right = idOf[parts[1]] else {
                throw fail("merge \(i) is not two tokens of the vocabulary")
            }
            merges.append(.init(left, right))
        }
        if let endOfText {
            guard endOfText >= 0, endOfText < vocabularySize, !tokens[endOfText].isEmpty else {
                throw fail("the end-of-text id \(endOfText) is not a token")
            }
        }
        let vocabulary = BPEVocabulary(tokens: tokens, special: special, userDefined: userDefined, endOfText: endOfText.map(Int32.init))
        do { return try BPETokenizer(merges: merges, vocabulary: vocabulary, preSplit: .gpt2) } catch { throw fail("\(error)") }
    }
}
