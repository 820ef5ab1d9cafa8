#!/usr/bin/env python3
"""An independent byte-level BPE: the `"bpe"` tokenizer of formats/tfq.md §10, written from
that text alone as a cross-check of tfq's Swift learner, encoder and importer. Plain Python,
no dependencies; slow on purpose (it recounts every pair at every merge), so it stays an
obvious reading of the specification.

    import bpe
    merges = bpe.learn(data, vocab_size=512)      # §10.3: list of (left, right)
    ids = bpe.encode(data, merges)                 # §10.1, pre-split "words"
    assert bpe.decode(ids, merges) == data
    merges = bpe.load_tokenizer({"type": "bpe", "pre_split": "words", "merges": "104 101"})

    tok = bpe.load(stored)                         # any stored form, imported ones too (1.3)
    ids = bpe.encode(data, tok)
    stored = bpe.from_hf_tokenizer_json(json.load(f), vocab_size)   # a tokenizer.json

Command line (reads stdin, prints ids or writes bytes, like `tfq tokenize`):

    bpe.py encode TOKENIZER      TOKENIZER: a JSON file holding the tokenizer object, or a
    bpe.py decode TOKENIZER      .tfq file (its metadata's "tokenizer", via tfq_read.py)
    bpe.py learn FILE VOCAB      prints the tokenizer object learned from FILE
"""
from __future__ import annotations

import json
import re
import sys
import unicodedata
from dataclasses import dataclass, field

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


# §10.4: Unicode's White_Space property. Not Python's str.isspace, which also takes
# U+001C-U+001F (bidirectional separators) as space.
WHITE_SPACE = frozenset([*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
                         0x2028, 0x2029, 0x202F, 0x205F, 0x3000])


def _byte_symbols() -> list[str]:
    """§10.1, imported vocabularies: GPT-2's bytes_to_unicode, the character of each byte."""
    kept = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    moved = iter(range(0x100, 0x144))  # the other 68 bytes, in increasing order
    return [chr(b) if b in kept else chr(next(moved)) for b in range(256)]


BYTE_SYMBOLS = _byte_symbols()
SYMBOL_BYTES = {c: b for b, c in enumerate(BYTE_SYMBOLS)}


class BPEFormatError(ValueError):
    """A stored tokenizer that §10.1 does not allow."""


def _utf8_scalar(data: bytes, i: int) -> tuple[str | None, int]:
    """The scalar starting at data[i] and its length in bytes; (None, 1) if data[i] starts
    no valid one. Python's strict decoder refuses overlong forms, surrogates and values above
    U+10FFFF, as §10.4 asks."""
    b = data[i]
    n = 1 if b < 0x80 else 2 if 0xC2 <= b <= 0xDF else 3 if 0xE0 <= b <= 0xEF else 4 if 0xF0 <= b <= 0xF4 else 0
    if n:
        try:
            return data[i:i + n].decode("utf-8"), n
        except UnicodeDecodeError:
            pass
    return None, 1


def _gpt2_class(c: str | None) -> str:
    """§10.4: W, L, N or O; an invalid byte (None) is O."""
    if c is None:
        return "O"
    if ord(c) in WHITE_SPACE:
        return "W"
    category = unicodedata.category(c)
    return "L" if category in ("Lu", "Ll", "Lt", "Lm", "Lo") else "N" if category in ("Nd", "Nl", "No") else "O"


def _gpt2_chunk_end(c: list[str | None], cls: list[str], i: int) -> int:
    """The three rules of §10.4 (those of §10.2 on scalars): where the chunk at scalar i ends."""
    n = len(c)
    if c[i] == "'":
        if i + 1 < n and c[i + 1] in ("s", "t", "m", "d"):
            return i + 2
        if i + 2 < n and (c[i + 1], c[i + 2]) in (("r", "e"), ("v", "e"), ("l", "l")):
            return i + 3
    h = i + 1 if c[i] == " " and i + 1 < n and cls[i + 1] != "W" else i
    if cls[h] != "W":
        e = h
        while e < n and cls[e] == cls[h]:
            e += 1
        return e
    e = i
    while e < n and cls[e] == "W":
        e += 1
    return e if e == n or e - i == 1 else e - 1


def _gpt2_chunks(data: bytes) -> list[bytes]:
    c: list[str | None] = []
    offsets = [0]  # offsets[k]: where scalar k starts; the last is len(data)
    while offsets[-1] < len(data):
        scalar, length = _utf8_scalar(data, offsets[-1])
        c.append(scalar)
        offsets.append(offsets[-1] + length)
    cls = [_gpt2_class(x) for x in c]
    chunks, i = [], 0
    while i < len(c):
        e = _gpt2_chunk_end(c, cls, i)
        chunks.append(data[offsets[i]:offsets[e]])
        i = e
    return chunks


def pre_split(data: bytes, rule: str = "words") -> list[bytes]:
    """The chunks of §10.2 or §10.4, in order; they concatenate to `data`."""
    if rule == "words":
        chunks = WORDS.findall(data)
    elif rule == "gpt2":
        chunks = _gpt2_chunks(data)
    else:
        raise BPEFormatError(f"unknown pre_split {rule!r}")
    assert b"".join(chunks) == data, "the rules must tile every byte string"
    return chunks


def parse_merges(text: str) -> list[tuple[int, int]]:
    """The `merges` string of §10.1: decimal ids, single spaces, pairs."""
    if not isinstance(text, str):
        raise BPEFormatError("merges must be a string")
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


@dataclass
class Tokenizer:
    """A checked `"bpe"` tokenizer, learned (ids 256 + i) or imported (its own ids)."""
    pre_split: str
    merges: list[tuple[int, int]]
    results: list[int]                # merge i makes token results[i]
    tokens: list[bytes]               # the bytes of each id (b"" for an id that is no token)
    byte_tokens: list[int]            # the token of each single byte
    special: dict[bytes, int] = field(default_factory=dict)  # special text -> id
    eos_id: int | None = None
    rank: dict[tuple[int, int], int] = field(init=False)

    def __post_init__(self):
        self.rank = {pair: i for i, pair in enumerate(self.merges)}

    @classmethod
    def learned(cls, merges: list[tuple[int, int]], pre_split: str = "words") -> "Tokenizer":
        results = [256 + i for i in range(len(merges))]
        return cls(pre_split, merges, results, token_bytes(merges), list(range(256)))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)  # Python: True is an int; JSON: true is no number


def _load_imported(obj: dict, pre_split_rule: str, merges: list[tuple[int, int]]) -> Tokenizer:
    """§10.1 "Imported vocabularies": every rule a reader checks."""
    vocab = obj["vocab"]
    if not isinstance(vocab, list) or not all(isinstance(t, str) for t in vocab):
        raise BPEFormatError("vocab must be an array of strings")
    size = len(vocab)
    special_ids = obj.get("special", [])
    if not isinstance(special_ids, list) or not all(_is_int(t) for t in special_ids):
        raise BPEFormatError("special must be an array of integers")
    if len(set(special_ids)) != len(special_ids):
        raise BPEFormatError("special ids must be distinct")
    tokens: list[bytes] = []
    special: dict[bytes, int] = {}
    for t in special_ids:
        if not 0 <= t < size:
            raise BPEFormatError(f"special id {t} is not below the vocabulary size {size}")
        if vocab[t] == "":
            raise BPEFormatError(f"special token {t} has empty text")
    is_special = set(special_ids)
    ids_of: dict[bytes, int] = {}  # the bytes of each non-special token -> its id
    for t, text in enumerate(vocab):
        if t in is_special:
            try:
                spelled = text.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800"
                raise BPEFormatError(f"special token {t} is not valid UTF-8 text") from None
            if spelled in special:  # not in the spec: two would make encoding ambiguous
                raise BPEFormatError(f"special tokens {special[spelled]} and {t} have the same text")
            special[spelled] = t
        else:
            bad = next((ch for ch in text if ch not in SYMBOL_BYTES), None)
            if bad is not None:
                raise BPEFormatError(f"token {t} {text!r}: U+{ord(bad):04X} is not a byte-level symbol")
            spelled = bytes(SYMBOL_BYTES[ch] for ch in text)
            if spelled and spelled in ids_of:
                raise BPEFormatError(f"tokens {ids_of[spelled]} and {t} spell the same bytes {spelled!r}")
            if spelled:
                ids_of[spelled] = t
        tokens.append(spelled)
    missing = [b for b in range(256) if bytes([b]) not in ids_of]
    if missing:
        raise BPEFormatError(f"no token for byte 0x{missing[0]:02X} ({len(missing)} bytes have none)")
    results, seen = [], set()
    for i, (left, right) in enumerate(merges):
        for t in (left, right):
            if not 0 <= t < size or t in is_special or tokens[t] == b"":
                raise BPEFormatError(f"merge {i} ({left} {right}): {t} is not a non-special token")
        if (left, right) in seen:
            raise BPEFormatError(f"merge {i} ({left} {right}) appears twice")
        seen.add((left, right))
        spelled = tokens[left] + tokens[right]
        if spelled not in ids_of:
            raise BPEFormatError(f"merge {i} ({left} {right}): no token spells {spelled!r}")
        results.append(ids_of[spelled])
    eos_id = obj.get("eos_id")
    if "eos_id" in obj and not (_is_int(eos_id) and 0 <= eos_id < size and tokens[eos_id] != b""):
        raise BPEFormatError(f"eos_id {eos_id!r} is not a token of the vocabulary (size {size})")
    # No 2^26 check: each token is spelled out in the metadata, which is at most 16 MiB.
    byte_tokens = [ids_of[bytes([b])] for b in range(256)]
    return Tokenizer(pre_split_rule, merges, results, tokens, byte_tokens, special, eos_id)


def load(obj: dict, vocab_size: int | None = None) -> Tokenizer:
    """A stored tokenizer object (the metadata's `tokenizer`), checked as §10.1 says; with
    `vocab_size` (the model's config.vocab_size), also that it matches."""
    kind = obj.get("type") if isinstance(obj, dict) else None
    if kind != "bpe":
        raise BPEFormatError(f"not a bpe tokenizer: type {kind!r}")
    rule = obj.get("pre_split")
    if rule not in ("words", "gpt2"):
        raise BPEFormatError(f"unknown pre_split {rule!r}")
    if "merges" not in obj:
        raise BPEFormatError("no merges")
    merges = parse_merges(obj["merges"])
    if "vocab" in obj:
        if rule != "gpt2":  # §10.1: an imported vocabulary is split as GPT-2 splits
            raise BPEFormatError(f"a vocab needs pre_split 'gpt2', not {rule!r}")
        tok = _load_imported(obj, rule, merges)
    else:
        for key in ("special", "eos_id"):
            if key in obj:
                raise BPEFormatError(f"{key} is allowed only with vocab")
        check_merges(merges)
        tok = Tokenizer.learned(merges, rule)
    if vocab_size is not None and vocab_size != len(tok.tokens):
        raise BPEFormatError(f"config.vocab_size {vocab_size} is not the tokenizer's {len(tok.tokens)} tokens")
    return tok


def load_tokenizer(obj: dict) -> list[tuple[int, int]]:
    """The merges of a stored tokenizer object learned by `tfq train`: a bare list of merges
    stands for ids 256 + i and pre-split "words", so other forms need `load`."""
    tok = load(obj)
    if "vocab" in obj or tok.pre_split != "words":
        raise BPEFormatError("not a learned \"words\" tokenizer; use load()")
    return tok.merges


def format_merges(merges: list[tuple[int, int]]) -> str:
    return " ".join(f"{left} {right}" for left, right in merges)


def token_bytes(merges: list[tuple[int, int]]) -> list[bytes]:
    table = [bytes([b]) for b in range(256)]
    for left, right in merges:
        table.append(table[left] + table[right])
    return table


def _tokenizer(tok: Tokenizer | list[tuple[int, int]]) -> Tokenizer:
    return tok if isinstance(tok, Tokenizer) else Tokenizer.learned(tok)


def _split_special(data: bytes, special: dict[bytes, int]) -> list[bytes | int]:
    """§10.1: the stretches between special texts (bytes) and the specials' ids, in order.
    Scanning left to right, the first offset where a special text starts wins, and there the
    longest text: a regex alternation tries its branches in order, longest first."""
    if not special:
        return [data] if data else []
    pattern = re.compile(b"|".join(re.escape(t) for t in sorted(special, key=len, reverse=True)))
    parts: list[bytes | int] = []
    start = 0
    for m in pattern.finditer(data):
        if m.start() > start:
            parts.append(data[start:m.start()])
        parts.append(special[m.group()])
        start = m.end()
    if start < len(data):
        parts.append(data[start:])
    return parts


def encode(data: bytes, tokenizer: Tokenizer | list[tuple[int, int]]) -> list[int]:
    """§10.1 step by step: per chunk, merge the leftmost lowest-index pair until none is left.
    `tokenizer` is a Tokenizer or a bare list of learned merges (pre-split "words")."""
    tok = _tokenizer(tokenizer)
    ids: list[int] = []
    for part in _split_special(data, tok.special):
        if isinstance(part, int):
            ids.append(part)
            continue
        for chunk in pre_split(part, tok.pre_split):
            tokens = [tok.byte_tokens[b] for b in chunk]
            while len(tokens) > 1:
                best = None
                for j in range(len(tokens) - 1):
                    r = tok.rank.get((tokens[j], tokens[j + 1]))
                    if r is not None and (best is None or r < best[0]):
                        best = (r, j)
                if best is None:
                    break
                r, j = best
                tokens[j:j + 2] = [tok.results[r]]
            ids.extend(tokens)
    return ids


def decode(ids: list[int], tokenizer: Tokenizer | list[tuple[int, int]]) -> bytes:
    tok = _tokenizer(tokenizer)
    bad = next((i for i in ids if not 0 <= i < len(tok.tokens)), None)
    if bad is not None:
        raise ValueError(f"token id {bad} is not below the vocabulary size {len(tok.tokens)}")
    return b"".join(tok.tokens[i] for i in ids)


def from_hf_tokenizer_json(obj: dict, vocab_size: int, eos_id: int | None = None) -> dict:
    """The stored form (§10.1, imported vocabularies) of a Hugging Face tokenizer.json with
    GPT-2's byte-level BPE, for a model of `vocab_size` ids. Raises ValueError for what the
    stored form cannot say (another pre-tokenizer, a normalizer, BPE options)."""
    model = obj["model"]
    if model.get("type", "BPE") != "BPE":
        raise ValueError(f"model type {model.get('type')!r} is not BPE")
    for key in ("dropout", "continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise ValueError(f"BPE option {key}={model[key]!r} has no stored form")
    if model.get("byte_fallback") or model.get("ignore_merges"):
        raise ValueError("byte_fallback and ignore_merges have no stored form")
    pre = obj.get("pre_tokenizer") or {}
    if pre.get("type") != "ByteLevel" or pre.get("add_prefix_space") or not pre.get("use_regex", True):
        raise ValueError(f"pre_tokenizer {pre!r} is not GPT-2's (ByteLevel, regex, no prefix space)")
    if obj.get("normalizer"):
        raise ValueError(f"normalizer {obj['normalizer']!r} has no stored form")
    vocab = [""] * vocab_size  # "": an id that is no token
    for text, t in model["vocab"].items():
        if not 0 <= t < vocab_size or vocab[t]:
            raise ValueError(f"token {text!r}: id {t} is out of range or taken")
        vocab[t] = text
    special = set()
    for added in obj.get("added_tokens", []):
        if added.get("single_word") or added.get("lstrip") or added.get("rstrip"):
            raise ValueError(f"added token {added['content']!r}: single_word/lstrip/rstrip have no stored form")
        t = added["id"]
        if not 0 <= t < vocab_size:
            raise ValueError(f"added token {added['content']!r}: id {t} is out of range")
        vocab[t] = added["content"]  # spelled by its text, even where model.vocab spells it too
        special.add(t)
    merges = []
    for merge in model["merges"]:
        pair = merge.split(" ") if isinstance(merge, str) else merge
        if len(pair) != 2 or any(p not in model["vocab"] for p in pair):
            raise ValueError(f"merge {merge!r} is not two tokens of the vocabulary")
        ids = (model["vocab"][pair[0]], model["vocab"][pair[1]], model["vocab"].get(pair[0] + pair[1]))
        # An added token's text is cut out before BPE runs, so a merge making or using it
        # never applies in `tokenizers`; here it could not (merges join non-special tokens).
        if not special.intersection(ids):
            merges.append(ids[:2])
    stored = {"type": "bpe", "pre_split": "gpt2", "merges": format_merges(merges), "vocab": vocab,
              "special": sorted(special)}
    if eos_id is not None:
        stored["eos_id"] = eos_id
    load(stored)  # the stored form's own checks: byte tokens, merge results...
    return stored


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
        tok = load(_tokenizer_object(argv[1]))
        data = sys.stdin.buffer.read()
        if argv[0] == "encode":
            print(" ".join(map(str, encode(data, tok))))
        else:
            sys.stdout.buffer.write(decode([int(x) for x in data.split()], tok))
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
