"""tools/bpe.py, the independent BPE of formats/tfq.md §10, against the files tfq's Swift
learner and encoder wrote (Tests/TFQModelTests/Fixtures/bpe), and on its own."""
import json
import os
import random
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import bpe  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "TFQModelTests", "Fixtures", "bpe")


def fixture(name, mode="r"):
    with open(os.path.join(FIXTURES, name), mode) as f:
        return f.read()


@pytest.fixture(scope="module")
def merges():
    return bpe.load_tokenizer(json.loads(fixture("tokenizer.json")))


def test_learner_reproduces_the_swift_merges(merges):
    # Swift learned tokenizer.json from corpus.bin at 512 tokens, with incremental counts;
    # this recounts every pair at every merge, from §10.3's text.
    assert len(merges) == 256
    assert bpe.learn(fixture("corpus.bin", "rb"), 512) == merges


def test_encoder_reproduces_the_swift_ids(merges):
    cases = json.loads(fixture("cases.json"))
    assert len(cases) >= 15
    names = {case["name"] for case in cases}
    assert {"empty", "invalid utf-8", "all bytes", "space run", "long word"} <= names
    for case in cases:
        data = bytes.fromhex(case["hex"])
        assert bpe.encode(data, merges) == case["ids"], case["name"]
        assert bpe.decode(case["ids"], merges) == data, case["name"]


def test_pre_split_examples_of_the_spec():
    examples = {
        b"Hello world!": [b"Hello", b" world", b"!"],
        b"don't stop": [b"don", b"'t", b" stop"],
        b"a   b": [b"a", b"  ", b" b"],
        b"x\n\ny": [b"x", b"\n", b"\n", b"y"],
        b"1805, 3.14": [b"1805", b",", b" 3", b".", b"14"],
        "café au".encode(): ["café".encode(), b" au"],
        b"\xff\x41": [b"\xff\x41"],
        b"I'LL we'Re": [b"I", b"'LL", b" we", b"'Re"],
        b"trail  ": [b"trail", b"  "],
        b"": [],
    }
    for data, chunks in examples.items():
        assert bpe.pre_split(data) == chunks, data


def test_round_trip_of_random_bytes(merges):
    rng = random.Random(5)
    for trial in range(300):
        if trial % 3 == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(400)))
        elif trial % 3 == 1:
            data = "".join(rng.choice(["the", " ", "\n", "'s", "é", "日", "😀", "--", "42"]) for _ in range(rng.randrange(100))).encode()
        else:
            data = bytes(rng.choice(b"ab \n'\xff\xc3") for _ in range(rng.randrange(300)))
        ids = bpe.encode(data, merges)
        assert all(0 <= i < 256 + len(merges) for i in ids)
        assert bpe.decode(ids, merges) == data


def test_stored_form_is_strict():
    assert bpe.parse_merges("104 101 256 108") == [(104, 101), (256, 108)]
    assert bpe.parse_merges("") == []
    assert bpe.format_merges([(104, 101), (256, 108)]) == "104 101 256 108"
    for bad in ["104  101", " 104 101", "104 101 ", "104 0101", "104 -1", "104 101 256", "a b"]:
        with pytest.raises(bpe.BPEFormatError):
            bpe.parse_merges(bad)
    for bad in [[(256, 1)], [(104, 101), (257, 1)], [(104, 101), (104, 101)]]:
        with pytest.raises(bpe.BPEFormatError):
            bpe.check_merges(bad)
    doubling = [(97, 97)] + [(255 + i, 255 + i) for i in range(1, 40)]
    with pytest.raises(bpe.BPEFormatError):
        bpe.check_merges(doubling)
    with pytest.raises(bpe.BPEFormatError):
        bpe.load_tokenizer({"type": "bpe", "pre_split": "gpt2", "merges": ""})


def test_ties_and_overlaps_as_the_spec_says():
    assert bpe.learn(b"ab cd", 259) == [(32, 99), (97, 98), (256, 100)]
    assert bpe.learn(b"aaaa b aaa", 1000) == [(97, 97), (32, 98), (32, 256), (256, 256), (258, 97)]
    merges = [(97, 97)]
    assert bpe.encode(b"aaa", merges) == [256, 97]


# Imported vocabularies (§10.1, since 1.3) and pre-split "gpt2" (§10.4).

HF_FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "TFQImportTests", "Fixtures", "hf")


def gpt2_split(text):
    return [chunk.decode() for chunk in bpe.pre_split(text.encode(), "gpt2")]


def test_gpt2_pre_split_hand_worked():
    examples = {
        "it's IT'S": ["it", "'s", " IT", "'", "S"],  # contractions are lower case only
        "we'RE they're ?'s": ["we", "'", "RE", " they", "'re", " ?'", "s"],
        "Hello world!": ["Hello", " world", "!"],
        "a   b": ["a", "  ", " b"],
        "x\n\ny": ["x", "\n", "\n", "y"],
        "\t\t x": ["\t\t", " x"],
        "trail  ": ["trail", "  "],
        "no\u00a0break": ["no", "\u00a0", "break"],  # NBSP is White_Space (a letter byte in "words")
        "a\u3000\u3000b": ["a", "\u3000", "\u3000", "b"],
        "1\u2028\u2028": ["1", "\u2028\u2028"],
        "a\u0085 b": ["a", "\u0085", " b"],  # NEL is White_Space...
        "a\x1cb \x1f": ["a", "\x1c", "b", " \x1f"],  # ...U+001C-U+001F are not (str.isspace says they are)
        "Ⅻ²٣ 12": ["Ⅻ²٣", " 12"],  # Nl, No, Nd: one number run
        "e\u0301x \u0301\u0308": ["e", "\u0301", "x", " \u0301\u0308"],  # combining marks are other
        "¡hola “q”": ["¡", "hola", " “", "q", "”"],
        "日本語 😀😀": ["日本語", " 😀😀"],
        "": [],
    }
    for text, chunks in examples.items():
        assert gpt2_split(text) == chunks, text


def test_gpt2_pre_split_of_invalid_utf8():
    # Each byte that starts no valid scalar is a scalar of class other.
    examples = {
        b"ab\xff\xfe cd": [b"ab", b"\xff\xfe", b" cd"],
        b"caf\xc3\xa9\xff": ["café".encode(), b"\xff"],  # "words" would make this one letter run
        b"\xe2\x82x": [b"\xe2\x82", b"x"],  # a sequence cut short
        b"a\xc0\xafb": [b"a", b"\xc0\xaf", b"b"],  # overlong "/"
        b"a\xed\xa0\x80b": [b"a", b"\xed\xa0\x80", b"b"],  # a surrogate
        b"a\xf4\x90\x80\x80b": [b"a", b"\xf4\x90\x80\x80", b"b"],  # above U+10FFFF
        b" \xff!": [b" \xff!"],
        b"'\xffs": [b"'\xff", b"s"],
        b"\x80": [b"\x80"],
    }
    for data, chunks in examples.items():
        assert bpe.pre_split(data, "gpt2") == chunks, data


def test_gpt2_pre_split_matches_tokenizers_library():
    # Optional: the library itself, on random text, when it is installed.
    pre_tokenizers = pytest.importorskip("tokenizers.pre_tokenizers")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    palette = list("aZ1 '\t\n\r\x0b\x0c\x1c\x1f\x85\xa0\u1680\u2000\u200a\u200b\u2028\u2029\u202f\u205f"
                   "\u3000\u180e\ufeffsStTmMdDrReEvVlL?!.-²¹ⅣⅫ٣\u0301éß中😀\u00ad¡“\u0903\u093f")
    rng = random.Random(11)
    for _ in range(2000):
        text = "".join(rng.choice(palette) for _ in range(rng.randrange(25)))
        expected = [bytes(bpe.SYMBOL_BYTES[c] for c in piece) for piece, _ in byte_level.pre_tokenize_str(text)]
        assert bpe.pre_split(text.encode(), "gpt2") == expected, repr(text)


def test_byte_level_symbols():
    assert len(set(bpe.BYTE_SYMBOLS)) == 256
    assert bpe.BYTE_SYMBOLS[0x21] == "!" and bpe.BYTE_SYMBOLS[0xFF] == "ÿ"
    moved = {0x00: "\u0100", 0x0A: "Ċ", 0x20: "Ġ", 0x7F: "\u0121", 0xA0: "ł", 0xAD: "Ń"}
    assert all(bpe.BYTE_SYMBOLS[b] == c for b, c in moved.items())


A, B, C, SPACE = 0x61 + 1, 0x62 + 1, 0x63 + 1, 0x20 + 1  # byte b is token b + 1 in imported()


def imported(vocab_at=None, **changes):
    """A small imported vocabulary: id 0 the special <s>, byte b at id b + 1, then merged
    tokens, an unused id and more specials. Merges are not in order of definition.
    `vocab_at` replaces some tokens' spellings, `changes` other keys."""
    s = bpe.BYTE_SYMBOLS
    vocab = ["<s>"] + s + ["ab", "abc", "bc", "", "<s>x", s[0x20] + "a", "s>y"]
    #        0         1-256  257   258    259  260  261    262            263
    for t, text in (vocab_at or {}).items():
        vocab[t] = text
    stored = {"type": "bpe", "pre_split": "gpt2", "vocab": vocab, "special": [0, 261, 263], "eos_id": 0,
              "merges": bpe.format_merges([(257, C), (A, B), (B, C), (SPACE, A)])}
    stored.update(changes)
    return stored


def test_imported_encoding_as_the_spec_says():
    tok = bpe.load(imported(), vocab_size=264)
    assert tok.eos_id == 0 and tok.results == [258, 257, 259, 262]
    cases = {
        b"abc": [258],  # (a b) then (ab c), whose index is lower
        b"bcab": [259, 257],  # the lowest index first: (a b), then (b c)
        b" abc": [SPACE, 258],  # (a b) before (Ġ a): Ġa is never made
        b" ab": [SPACE, 257],
        b"a<s>x<s>b": [A, 261, 0, B],  # longest special at the same offset
        b"<s>y": [0, ord("y") + 1],  # the leftmost special, though s>y is longer
        b"xs>y": [ord("x") + 1, 263],
        b"ab<s": [257, ord("<") + 1, ord("s") + 1],
        b"\xff": [0xFF + 1],
        b"": [],
    }
    for data, ids in cases.items():
        assert bpe.encode(data, tok) == ids, data
        assert bpe.decode(ids, tok) == data, data
    assert bpe.decode([0, 260, 258, 261], tok) == b"<s>abc<s>x"  # 260 is no token: nothing
    for ids in ([264], [-1]):
        with pytest.raises(ValueError):
            bpe.decode(ids, tok)


def test_imported_merges_apply_one_at_a_time():
    # Merge 0 uses the result of merge 1. The leftmost (a b) first makes (ab a) appear, which
    # then goes before the second (a b): "aba" "b", as the tokenizers library gives too.
    # Replacing every (a b) in one pass (§10.1's remark, true for learned merges) gives "ab" "ab".
    s = bpe.BYTE_SYMBOLS
    tok = bpe.load({"type": "bpe", "pre_split": "gpt2", "vocab": s + ["ab", "aba"],
                    "merges": f"256 {0x61} {0x61} {0x62}"})
    assert bpe.encode(b"abab", tok) == [257, 0x62]


def test_imported_round_trip_of_random_bytes():
    tok = bpe.load(imported())
    rng = random.Random(3)
    for _ in range(300):
        pieces = [b"a", b"b", b"c", b" ", b"<s>", b"s>y", b"x", b"\xff", "é".encode(), b"'s"]
        data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(30)))
        ids = bpe.encode(data, tok)
        assert 260 not in ids and bpe.decode(ids, tok) == data


def test_imported_stored_form_is_checked():
    bpe.load(imported())
    bad = {  # the change, and what the error must say
        "a character that is not a byte-level symbol": ({"vocab_at": {257: "a b"}}, r"U\+0020 is not a byte"),
        "a character past U+0143": ({"vocab_at": {257: "a\u0144"}}, r"U\+0144 is not a byte"),
        "a missing byte token": ({"vocab_at": {0x41 + 1: ""}}, "no token for byte 0x41"),
        "a byte token that is special": ({"special": [0x41 + 1]}, "no token for byte 0x41"),
        "duplicate spellings": ({"vocab_at": {259: "ab"}}, "tokens 257 and 259 spell the same bytes"),
        "a merge whose result is not in the vocab": ({"merges": f"{B} {A}"}, "no token spells b'ba'"),
        "a merge of a special token": ({"merges": f"0 {B}"}, "0 is not a non-special token"),
        "a merge of an id that is no token": ({"merges": f"260 {B}"}, "260 is not a non-special token"),
        "a merge of an id out of range": ({"merges": f"264 {B}"}, "264 is not a non-special token"),
        "a pair twice": ({"merges": f"{B} {C} {B} {C}"}, "appears twice"),
        "bad merges text": ({"merges": f"{B}  {C}"}, "single spaces"),
        "special out of range": ({"special": [0, 264]}, "264 is not below the vocabulary size 264"),
        "special negative": ({"special": [-1]}, "-1 is not below"),
        "special twice": ({"special": [0, 0]}, "distinct"),
        "special with no text": ({"special": [260]}, "260 has empty text"),
        "special not an integer": ({"special": ["0"]}, "array of integers"),
        "special a boolean": ({"special": [True]}, "array of integers"),
        "special not an array": ({"special": 0}, "array of integers"),
        "two specials with one text": ({"vocab_at": {263: "<s>"}}, "0 and 263 have the same text"),
        "a special that is not UTF-8": ({"vocab_at": {263: "\ud800"}}, "263 is not valid UTF-8"),
        "eos_id out of range": ({"eos_id": 264}, "eos_id 264"),
        "eos_id negative": ({"eos_id": -1}, "eos_id -1"),
        "eos_id not an integer": ({"eos_id": "0"}, "eos_id '0'"),
        "eos_id an id that is no token": ({"eos_id": 260}, "eos_id 260"),
        "eos_id null": ({"eos_id": None}, "eos_id None"),
        "vocab not strings": ({"vocab_at": {259: 7}}, "array of strings"),
        "unknown pre_split": ({"pre_split": "gpt4"}, "unknown pre_split 'gpt4'"),
    }
    for change, message in bad.values():
        with pytest.raises(bpe.BPEFormatError, match=message):
            bpe.load(imported(**change))
    with pytest.raises(bpe.BPEFormatError):
        bpe.load(imported(), vocab_size=300)  # config.vocab_size must be the vocab's length
    for key, value in [("special", []), ("eos_id", 0)]:  # with vocab only
        with pytest.raises(bpe.BPEFormatError):
            bpe.load({"type": "bpe", "pre_split": "words", "merges": "", key: value})
    # A learned tokenizer may use the gpt2 pre-split; a bare merge list cannot say so.
    learned = bpe.load({"type": "bpe", "pre_split": "gpt2", "merges": "104 101"}, vocab_size=257)
    assert learned.pre_split == "gpt2" and learned.results == [256]


def added_token(t, content, special=True):
    return {"id": t, "content": content, "special": special, "single_word": False, "lstrip": False, "rstrip": False}


def hf_json(merges, added=()):
    s = bpe.BYTE_SYMBOLS
    vocab = {c: i for i, c in enumerate(sorted(s))}
    for token in ["Ġt", "he", "Ġthe"]:
        vocab[token] = len(vocab)
    return {"model": {"type": "BPE", "vocab": vocab, "merges": merges},
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
            "normalizer": None, "added_tokens": list(added)}


def test_converter_from_tokenizer_json():
    added = [added_token(259, "<|endoftext|>")]
    obj = hf_json(["Ġ t", "h e", "Ġt he"], added)
    stored = bpe.from_hf_tokenizer_json(obj, 262, eos_id=259)
    as_pairs = hf_json([["Ġ", "t"], ["h", "e"], ["Ġt", "he"]], added)
    assert stored == bpe.from_hf_tokenizer_json(as_pairs, 262, eos_id=259)
    vocab = obj["model"]["vocab"]
    assert stored["vocab"][:256] == sorted(bpe.BYTE_SYMBOLS)
    assert stored["vocab"][256:] == ["Ġt", "he", "Ġthe", "<|endoftext|>", "", ""]
    assert stored["special"] == [259] and stored["eos_id"] == 259 and stored["pre_split"] == "gpt2"
    assert stored["merges"] == f"{vocab['Ġ']} {vocab['t']} {vocab['h']} {vocab['e']} 256 257"
    tok = bpe.load(stored, vocab_size=262)
    assert bpe.encode(b"the the<|endoftext|>", tok) == [vocab["t"], 257, 258, 259]
    for change in [{"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "use_regex": True}},
                   {"normalizer": {"type": "NFC"}}]:
        with pytest.raises(ValueError):
            bpe.from_hf_tokenizer_json({**obj, **change}, 262)
    with pytest.raises(ValueError):
        bpe.from_hf_tokenizer_json({**obj, "model": {**obj["model"], "ignore_merges": True}}, 262)
    with pytest.raises(ValueError):
        bpe.from_hf_tokenizer_json(obj, 259)  # ids past vocab_size
    with pytest.raises(ValueError):
        bpe.from_hf_tokenizer_json(hf_json(["Ġ x"]), 262)  # "Ġx" is not in the vocab


def test_converter_drops_merges_of_added_tokens():
    # "he" made an added token: its text is cut out before BPE, so the merges that make it
    # or use it never apply (tokenizers gives the same ids).
    added = [added_token(257, "he", special=False)]
    obj = hf_json(["Ġ t", "h e", "Ġt he"], added)
    vocab = obj["model"]["vocab"]
    stored = bpe.from_hf_tokenizer_json(obj, 259)
    assert stored["special"] == [257] and stored["merges"] == f"{vocab['Ġ']} {vocab['t']}"
    assert bpe.encode(b"the the", bpe.load(stored)) == [vocab["t"], 257, 256, 257]


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_tokenizers_library_fixtures(model):
    # Made by the tokenizers library (tools/hf_fixtures.py); converted here from tokenizer.json
    # with nothing but §10.1's description of the stored form.
    folder = os.path.join(HF_FIXTURES, model)
    names = ["tokenizer.json", "expected.json", "config.json"]
    if not all(os.path.exists(os.path.join(folder, name)) for name in names):
        pytest.skip(f"no fixture {folder}/{{{','.join(names)}}} (made by tools/hf_fixtures.py)")
    loaded = {}
    for name in names:
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            loaded[name] = json.load(f)
    vocab_size = loaded["config.json"]["vocab_size"]
    tok = bpe.load(bpe.from_hf_tokenizer_json(loaded["tokenizer.json"], vocab_size), vocab_size=vocab_size)
    expected = loaded["expected.json"]
    cases = expected["tokenizer_cases"] + [{"text": expected["prompt_text"], "ids": expected["prompt_ids"]}]
    assert len(cases) >= 10
    for case in cases:
        data = case["text"].encode()
        assert bpe.encode(data, tok) == case["ids"], case["text"]
        assert bpe.decode(case["ids"], tok) == data, case["text"]
