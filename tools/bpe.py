#!/usr/bin/env python3
"""An independent byte-level BPE: the `"bpe"` tokenizer of formats/tfq.md §10, written from
that text alone as a cross-check of tfq's Swift learner and encoder. Plain Python, no
dependencies; slow on purpose (it recounts every pair at every merge), so it stays an obvious
reading of the specification.

    import bpe
    merges = bpe.learn(data, vocab_size=512)      # §10.3: list of (left, right)
    ids = bpe.encode(data, merges)                 # §10.1
    assert bpe.decode(ids, merges) == data
    tok = bpe.load_tokenizer({"type": "bpe", "pre_split": "words", "merges": "104 101"})

Command line (reads stdin, prints ids or writes bytes, like `tfq tokenize`):

    bpe.py encode TOKENIZER      TOKENIZER: a JSON file holding the tokenizer object, or a
    bpe.py decode TOKENIZER      .tfq file (its metadata's "tokenizer", via tfq_read.py)
    bpe.py learn FILE VOCAB      prints the tokenizer object learned from FILE
"""
from __future__ import annotations

import json
import re
import sys

MAX_TOTAL_BYTES = 1 << 26  # §10.1: the tokens' byte lengths may sum to at most 2^26

# §10.2: GPT-2's pattern with byte classes. W = tab..CR and space; L = ASCII letters and
# every byte 0x80-0xFF; D = ASCII digits; O = everything else.
_W = rb"\t\n\x0b\x0c\r "
_L = rb"A-Za-z\x80-\xff"
_D = rb"0-9"
WORDS = re.compile(
    rb"'(?:[sS]|[tT]|[mM]|[dD]|[rR][eE]|[vV][eE]|[lL][lL])"
    rb"| ?[" + _L + rb"]+"
    rb"| ?[" + _D + rb"]+"
    rb"| ?[^" + _W + _L + _D + rb"]+"
    rb"|[" + _W + rb"]+(?![^" + _W + rb"])"
    rb"|[" + _W + rb"]+"
)


class BPEFormatError(ValueError):
    """A stored tokenizer that §10.1 does not allow."""


def pre_split(data: bytes, rule: str = "words") -> list[bytes]:
    """The chunks of §10.2, in order; they concatenate to `data`."""
    if rule != "words":
        raise BPEFormatError(f"unknown pre_split {rule!r}")
    chunks = WORDS.findall(data)
    assert b"".join(chunks) == data, "the pattern must tile every byte string"
    return chunks


def parse_merges(text: str) -> list[tuple[int, int]]:
    """The `merges` string of §10.1: decimal ids, single spaces, pairs."""
    if text == "":
        return []
    if not re.fullmatch(r"(0|[1-9][0-9]*)( (0|[1-9][0-9]*))*", text):
        raise BPEFormatError("merges must be decimal ids without leading zeros separated by single spaces")
    ids = [int(x) for x in text.split(" ")]
    if len(ids) % 2:
        raise BPEFormatError(f"merges has an odd number of ids ({len(ids)})")
    return [(ids[k], ids[k + 1]) for k in range(0, len(ids), 2)]


def check_merges(merges: list[tuple[int, int]]) -> None:
    """The validity rules of §10.1."""
    seen = set()
    lengths = [1] * 256
    for i, (left, right) in enumerate(merges):
        if not (0 <= left < 256 + i and 0 <= right < 256 + i):
            raise BPEFormatError(f"merge {i} ({left} {right}) refers to a token not defined before it")
        if (left, right) in seen:
            raise BPEFormatError(f"merge {i} ({left} {right}) appears twice")
        seen.add((left, right))
        lengths.append(lengths[left] + lengths[right])
        if sum(lengths) > MAX_TOTAL_BYTES:  # checked before any token's bytes are built
            raise BPEFormatError("the tokens' bytes sum to more than 2^26")


def load_tokenizer(obj: dict) -> list[tuple[int, int]]:
    """The merges of a stored tokenizer object (the metadata's `tokenizer`)."""
    if obj.get("type") != "bpe":
        raise BPEFormatError(f"not a bpe tokenizer: type {obj.get('type')!r}")
    if obj.get("pre_split") != "words":
        raise BPEFormatError(f"unknown pre_split {obj.get('pre_split')!r}")
    merges = parse_merges(obj["merges"])
    check_merges(merges)
    return merges


def format_merges(merges: list[tuple[int, int]]) -> str:
    return " ".join(f"{left} {right}" for left, right in merges)


def token_bytes(merges: list[tuple[int, int]]) -> list[bytes]:
    table = [bytes([b]) for b in range(256)]
    for left, right in merges:
        table.append(table[left] + table[right])
    return table


def encode(data: bytes, merges: list[tuple[int, int]]) -> list[int]:
    """§10.1 step by step: per chunk, merge the leftmost lowest-index pair until none is left."""
    rank = {pair: i for i, pair in enumerate(merges)}
    ids: list[int] = []
    for chunk in pre_split(data):
        tokens = list(chunk)
        while len(tokens) > 1:
            best = None
            for j in range(len(tokens) - 1):
                r = rank.get((tokens[j], tokens[j + 1]))
                if r is not None and (best is None or r < best[0]):
                    best = (r, j)
            if best is None:
                break
            r, j = best
            tokens[j:j + 2] = [256 + r]
        ids.extend(tokens)
    return ids


def decode(ids: list[int], merges: list[tuple[int, int]]) -> bytes:
    table = token_bytes(merges)
    return b"".join(table[i] for i in ids)


def learn(data: bytes, vocab_size: int) -> list[tuple[int, int]]:
    """§10.3: count chunks; repeatedly merge the most frequent adjacent pair (ties: lowest
    left id, then lowest right id), replacing it left to right in every chunk."""
    words: dict[bytes, int] = {}
    for chunk in pre_split(data):
        words[chunk] = words.get(chunk, 0) + 1
    sequences = [(list(chunk), count) for chunk, count in words.items()]
    merges: list[tuple[int, int]] = []
    while 256 + len(merges) < vocab_size:
        counts: dict[tuple[int, int], int] = {}
        for tokens, count in sequences:
            for j in range(len(tokens) - 1):
                pair = (tokens[j], tokens[j + 1])
                counts[pair] = counts.get(pair, 0) + count
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair[0], pair[1]))
        new = 256 + len(merges)
        merges.append(best)
        for tokens, _ in sequences:
            j = 0
            while j < len(tokens) - 1:
                if (tokens[j], tokens[j + 1]) == best:
                    tokens[j:j + 2] = [new]
                j += 1
    return merges


def _tokenizer_object(path: str) -> dict:
    if path.endswith(".tfq"):
        import tfq_read
        with tfq_read.read(path) as f:
            return f.metadata["tokenizer"]
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] in ("encode", "decode"):
        merges = load_tokenizer(_tokenizer_object(argv[1]))
        data = sys.stdin.buffer.read()
        if argv[0] == "encode":
            print(" ".join(map(str, encode(data, merges))))
        else:
            sys.stdout.buffer.write(decode([int(x) for x in data.split()], merges))
        return 0
    if len(argv) == 3 and argv[0] == "learn":
        with open(argv[1], "rb") as f:
            merges = learn(f.read(), int(argv[2]))
        print(json.dumps({"type": "bpe", "pre_split": "words", "merges": format_merges(merges)}))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
