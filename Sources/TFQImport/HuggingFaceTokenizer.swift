import TFQFormat
import TFQModel

/// A Hugging Face `tokenizer.json` → tfq's tokenizer, keeping the file's token ids.
///
/// Two pipelines are read, the two the `tokenizers` library writes for causal language models:
/// - **byte-level BPE** (GPT-2 and its family; formats/tfq.md §10.1): no normalizer, the
///   `ByteLevel` pre-tokenizer (GPT-2's regex, no prefix space), a `BPE` model without
///   byte fallback;
/// - **SentencePiece-style BPE** (Llama 2, Mistral, TinyLlama; §10.5): a `BPE` model with
///   byte fallback, spaces turned into ▁ by a `Replace` normalizer (with `Prepend` for the
///   leading ▁) or a `Metaspace` pre-tokenizer, the BOS a `TemplateProcessing` puts first,
///   and Llama's decoder (▁ → space, byte fallback, fuse, strip one leading space).
///
/// Both: no dropout, word prefixes or suffixes, or whole-word lookups, and added tokens
/// matched as they are written. Anything else is refused with the name of the setting,
/// never tokenized differently.
public enum HuggingFaceTokenizer {
    /// tokenizer.json files of the largest vocabularies are ~20 MB.
    static let maxFileBytes = 256 << 20
    /// The most tokens a .tfq tokenizer can list: its metadata holds at most 1,000,000 JSON
    /// values (formats/tfq.md §7), and the merges and the rest need some.
    public static let maxVocabulary = 500_000

    /// Reads the `tokenizer.json` at `path` for a model of `vocabularySize` tokens (every id
    /// in the file must be below it); `endOfText`, when given, must be one of its tokens.
    /// Throws an ``ImportError`` naming the first setting or token tfq cannot follow.
    public static func read(path: String, vocabularySize: Int, endOfText: Int?) throws -> Tokenizer {
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
        let file = TokenizerJSON(json: json, fail: fail)

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
        guard try !file.flag(model, "ignore_merges", default: false) else { throw fail("BPE ignore_merges is not supported") }
        for key in ["truncation", "padding"] where !isNull(json[key]) {
            throw fail("'\(key)' changes what encoding gives and is not supported")
        }

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
        var specialIDs: [String: Int32] = [:]
        if case .array(let added)? = json["added_tokens"] {
            for token in added {
                guard case .string(let content)? = token["content"], let id = token["id"] else { throw fail("an added token has no content or id") }
                for key in ["single_word", "lstrip", "rstrip"] where try file.flag(token, key, default: false) {
                    throw fail("added token '\(content)' sets \(key), which is not supported")
                }
                let placed = try place(id, content, "added token")
                special.append(placed)
                specialIDs[content] = placed
                // Added tokens are special unless the file says otherwise.
                if try !file.flag(token, "special", default: true) { userDefined.append(placed) }
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

        if try file.flag(model, "byte_fallback", default: false) {
            let pipeline = try file.sentencePiecePipeline(specialIDs: specialIDs)
            do {
                return .sentencePiece(try SentencePieceTokenizer(
                    pieces: tokens, merges: merges, special: special, userDefined: userDefined, beginning: pipeline.beginning,
                    endOfText: endOfText.map(Int32.init), spacePrefix: pipeline.spacePrefix, splitsAtSpaces: pipeline.splitsAtSpaces))
            } catch { throw fail("\(error)") }
        }
        try file.checkByteLevelPipeline()
        let vocabulary = BPEVocabulary(tokens: tokens, special: special, userDefined: userDefined, endOfText: endOfText.map(Int32.init))
        do { return .bpe(try BPETokenizer(merges: merges, vocabulary: vocabulary, preSplit: .gpt2)) } catch { throw fail("\(error)") }
    }

    static func type(_ value: JSONValue?) -> String? {
        if case .string(let name)? = value?["type"] { return name } else { return nil }
    }

    static func isNull(_ value: JSONValue?) -> Bool { value == nil || value == .null }
}

/// The pipeline settings of one tokenizer.json: what each pipeline accepts.
private struct TokenizerJSON {
    let json: JSONValue
    let fail: (String) -> ImportError

    func type(_ value: JSONValue?) -> String? { HuggingFaceTokenizer.type(value) }
    func isNull(_ value: JSONValue?) -> Bool { HuggingFaceTokenizer.isNull(value) }

    func flag(_ value: JSONValue?, _ key: String, default fallback: Bool) throws -> Bool {
        switch value?[key] {
        case nil, .null?: return fallback
        case .bool(let set)?: return set
        default: throw fail("'\(key)' is not true or false")
        }
    }

    /// GPT-2's: no normalizer, ByteLevel with its regex and no prefix space.
    func checkByteLevelPipeline() throws {
        guard isNull(json["normalizer"]) else { throw fail("normalizer '\(type(json["normalizer"]) ?? "?")' is not supported (tfq imports GPT-2-style byte-level BPE, which has none)") }
        let preTokenizer = json["pre_tokenizer"]
        guard type(preTokenizer) == "ByteLevel" else {
            throw fail("pre_tokenizer '\(type(preTokenizer) ?? "none")' is not supported (tfq imports GPT-2-style byte-level BPE: ByteLevel, and SentencePiece-style BPE with byte_fallback)")
        }
        guard try flag(preTokenizer, "use_regex", default: true) else { throw fail("a ByteLevel pre_tokenizer without GPT-2's regex is not supported") }
        guard try !flag(preTokenizer, "add_prefix_space", default: false) else { throw fail("add_prefix_space is not supported") }
        let postProcessor = json["post_processor"]
        guard isNull(postProcessor) || type(postProcessor) == "ByteLevel" else {
            throw fail("post_processor '\(type(postProcessor) ?? "?")' adds tokens, which is not supported")
        }
        let decoder = json["decoder"]
        guard isNull(decoder) || type(decoder) == "ByteLevel" else { throw fail("decoder '\(type(decoder) ?? "?")' is not supported (ByteLevel is)") }
    }

    /// Llama's: where the ▁ prefix goes, whether words are split, and the BOS.
    func sentencePiecePipeline(specialIDs: [String: Int32]) throws -> (spacePrefix: SentencePieceTokenizer.SpacePrefix, splitsAtSpaces: Bool, beginning: Int32?) {
        let mark = JSONValue.string("\u{2581}")
        var spacePrefix: SentencePieceTokenizer.SpacePrefix? = nil, splits = false, replacesSpaces = false

        // Normalizer: Llama 2's [Prepend ▁, Replace " " → ▁], or none.
        let normalizer = json["normalizer"]
        if !isNull(normalizer) {
            var steps: [JSONValue] = [normalizer!]
            if type(normalizer) == "Sequence" {
                guard case .array(let items)? = normalizer?["normalizers"] else { throw fail("normalizer 'Sequence' has no normalizers") }
                steps = items
            }
            for (i, step) in steps.enumerated() {
                switch type(step) {
                case "Prepend" where i == 0 && step["prepend"] == mark:
                    spacePrefix = .every
                case "Replace" where step["pattern"]?["String"] == .string(" ") && step["content"] == mark && !replacesSpaces:
                    replacesSpaces = true
                default:
                    throw fail("normalizer '\(type(step) ?? "?")' is not supported here (Llama's Prepend ▁ and Replace ' ' → ▁ are)")
                }
            }
            guard replacesSpaces else { throw fail("a normalizer that does not turn spaces into ▁ is not supported") }
        }

        // Pre-tokenizer: none after that normalizer, or Metaspace.
        let preTokenizer = json["pre_tokenizer"]
        if !isNull(preTokenizer) {
            guard type(preTokenizer) == "Metaspace", !replacesSpaces else {
                throw fail("pre_tokenizer '\(type(preTokenizer) ?? "?")' is not supported with byte_fallback (Metaspace is, or none after Llama's normalizer)")
            }
            guard isNull(preTokenizer?["replacement"]) || preTokenizer?["replacement"] == mark else {
                throw fail("a Metaspace replacement other than ▁ is not supported")
            }
            switch preTokenizer?["prepend_scheme"] {
            case .string("always")?: spacePrefix = .everyUnlessSpace
            case .string("first")?: spacePrefix = .firstUnlessSpace
            case .string("never")?: spacePrefix = SentencePieceTokenizer.SpacePrefix.none
            case nil, .null?:
                // Files from before prepend_scheme: add_prefix_space.
                spacePrefix = try flag(preTokenizer, "add_prefix_space", default: true) ? .everyUnlessSpace : SentencePieceTokenizer.SpacePrefix.none
            default: throw fail("Metaspace prepend_scheme is not 'always', 'first' or 'never'")
            }
            splits = try flag(preTokenizer, "split", default: true)
            replacesSpaces = true
        }
        guard replacesSpaces else { throw fail("byte_fallback BPE without a Metaspace pre_tokenizer or Llama's normalizer is not supported (spaces would stay spaces)") }
        guard let spacePrefix, spacePrefix != .none else { throw fail("a SentencePiece-style tokenizer without the ▁ prefix is not supported") }

        // Decoder: Llama's, whose Strip takes off the space the prefix added.
        let expected: [(String, (JSONValue) -> Bool)] = [
            ("Replace", { $0["pattern"]?["String"] == mark && $0["content"] == .string(" ") }),
            ("ByteFallback", { _ in true }), ("Fuse", { _ in true }),
            ("Strip", { $0["content"] == .string(" ") && $0["start"] == .integer(1) && $0["stop"] == .integer(0) }),
        ]
        let decoder = json["decoder"]
        guard type(decoder) == "Sequence", case .array(let steps)? = decoder?["decoders"], steps.count == expected.count,
              zip(steps, expected).allSatisfy({ type($0) == $1.0 && $1.1($0) }) else {
            throw fail("decoder '\(type(decoder) ?? "none")' is not supported with byte_fallback (Llama's Replace ▁ → ' ', ByteFallback, Fuse, Strip is)")
        }

        // Post-processor: at most one special token (BOS) before the text, none after.
        var beginning: Int32? = nil
        let postProcessor = json["post_processor"]
        if !isNull(postProcessor) {
            guard type(postProcessor) == "TemplateProcessing", case .array(let single)? = postProcessor?["single"] else {
                throw fail("post_processor '\(type(postProcessor) ?? "?")' is not supported with byte_fallback (TemplateProcessing is)")
            }
            var seenText = false
            for item in single {
                if let sequence = item["Sequence"] {
                    guard sequence["id"] == .string("A"), !seenText else { throw fail("post_processor's template is not supported (one text, $A)") }
                    seenText = true
                } else if case .string(let name)? = item["SpecialToken"]?["id"] {
                    guard !seenText else { throw fail("post_processor appends '\(name)' after the text, which is not supported") }
                    guard beginning == nil else { throw fail("post_processor puts more than one token before the text, which is not supported") }
                    var id = specialIDs[name]
                    if case .array(let ids)? = postProcessor?["special_tokens"]?[name]?["ids"], ids.count == 1, case .integer(let value) = ids[0] {
                        guard id == nil || Int64(id!) == value else { throw fail("post_processor's '\(name)' is not the added token of that name") }
                        id = Int32(exactly: value)
                    }
                    guard let id else { throw fail("post_processor's '\(name)' is not an added token") }
                    beginning = id
                } else {
                    throw fail("post_processor's template is not supported (special tokens, then $A)")
                }
            }
            guard seenText else { throw fail("post_processor's template has no text ($A)") }
        }
        return (spacePrefix, splits, beginning)
    }
}
