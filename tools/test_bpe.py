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
