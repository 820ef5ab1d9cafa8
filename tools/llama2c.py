#!/usr/bin/env python3
"""llama2.c's checkpoint and tokenizer files, and its tokenizer, in numpy; independent of tfq.

Written from karpathy/llama2.c (run.c, runq.c, export.py, tokenizer.py) so that tfq's
llama2.c importer (issue #9) has an independent reader, writer and tokenizer to test
against. Every byte follows what llama2.c writes and reads; where its C code leaves a
behaviour open (duplicate vocabulary pieces, a zero quantization group), the comment says
what is done here instead.

    ckpt = llama2c.read_checkpoint("stories15M.bin")       # version 0, 1 or 2
    ckpt.config.dim, ckpt.weights["wq"].shape              # float32 arrays, llama2.c's names
    pieces, scores, _ = llama2c.read_tokenizer("tokenizer.bin", ckpt.config.vocab_size)
    ids = llama2c.encode("Once upon a time", pieces, scores)   # run.c's encode(), BOS first

Weights use run.c's names and shapes, linear weights [out, in]: token_embedding_table
[V, D], rms_att_weight [L, D], wq [L, D, D], wk and wv [L, KV, D], wo [L, D, D],
rms_ffn_weight [L, D], w1 and w3 [L, F, D], w2 [L, D, F], rms_final_weight [D], and wcls
[V, D] only when the classifier is not shared with the token embedding (V vocab_size,
D dim, F hidden_dim, L n_layers, KV kv_dim = D * n_kv_heads / n_heads).

Command line:
    llama2c.py random [--shape stories15M|stories42M|stories110M] [--dim N ...] [--version 0|1|2]
                      --out model.bin [--tokenizer-out tokenizer.bin]
    llama2c.py fixtures --out Tests/TFQImportTests/Fixtures/llama   (see llama_fixtures.py)
    llama2c.py inspect FILE                                           (a checkpoint's header)
"""
from __future__ import annotations

import argparse
import os
import string
import struct
import sys
from dataclasses import dataclass, replace

import numpy as np

MAGIC = 0x616B3432           # "ak42" as a little-endian uint32: the bytes are b"24ka"
HEADER_SIZE = 256            # versions 1 and 2: the header is zero-padded to 256 bytes
CONFIG = struct.Struct("<7i")
BOS, EOS = 1, 2              # llama's <s> and </s>; ids 3..258 are the bytes 0x00..0xFF


# ---------------------------------------------------------------- configuration and shapes

@dataclass(frozen=True)
class Config:
    """run.c's Config: the seven int32 of every header, vocab_size positive."""
    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int
    seq_len: int

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_dim(self) -> int:
        return self.dim * self.n_kv_heads // self.n_heads

    def check(self) -> "Config":
        """Self, or ValueError naming what run.c's forward pass could not use."""
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"config {name} is {value!r}, not an integer >= 1")
        if self.dim % self.n_heads:
            raise ValueError(f"config dim {self.dim} is not a multiple of n_heads {self.n_heads}")
        if self.n_heads % self.n_kv_heads:
            raise ValueError(f"config n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads}")
        if self.head_size % 2:
            raise ValueError(f"head size {self.head_size} is odd: RoPE rotates pairs")
        return self


SHAPES = {  # the TinyStories models llama2.c publishes
    "stories15M": Config(dim=288, hidden_dim=768, n_layers=6, n_heads=6, n_kv_heads=6, vocab_size=32000, seq_len=256),
    "stories42M": Config(dim=512, hidden_dim=1376, n_layers=8, n_heads=8, n_kv_heads=8, vocab_size=32000, seq_len=1024),
    "stories110M": Config(dim=768, hidden_dim=2048, n_layers=12, n_heads=12, n_kv_heads=12, vocab_size=32000, seq_len=1024),
}


def weight_shapes(c: Config, shared_classifier: bool) -> dict[str, tuple[int, ...]]:
    """Every weight, name: shape, in run.c's (version 0) order; wcls only if not shared."""
    L, D, F, KV = c.n_layers, c.dim, c.hidden_dim, c.kv_dim
    shapes = {"token_embedding_table": (c.vocab_size, D), "rms_att_weight": (L, D),
              "wq": (L, D, D), "wk": (L, KV, D), "wv": (L, KV, D), "wo": (L, D, D),
              "rms_ffn_weight": (L, D), "w1": (L, F, D), "w2": (L, D, F), "w3": (L, F, D),
              "rms_final_weight": (D,)}
    if not shared_classifier:
        shapes["wcls"] = (c.vocab_size, D)
    return shapes


LAYERED = ("rms_att_weight", "wq", "wk", "wv", "wo", "rms_ffn_weight", "w1", "w2", "w3")
# export.py's version1_export and version2_export put the small norm vectors first.
V1_ORDER = ("rms_att_weight", "rms_ffn_weight", "rms_final_weight", "token_embedding_table",
            "wq", "wk", "wv", "wo", "w1", "w2", "w3", "wcls")
V2_NORMS = ("rms_att_weight", "rms_ffn_weight", "rms_final_weight")
V2_QUANTIZED = ("token_embedding_table", "wq", "wk", "wv", "wo", "w1", "w2", "w3", "wcls")


def legacy_freq_cis(c: Config) -> tuple[np.ndarray, np.ndarray]:
    """The RoPE tables version 0 still stores ([seq_len, head_size / 2] cos and sin, as
    llama2.c's model.py computes them) although run.c has skipped them since it started
    computing RoPE on the fly."""
    hs = c.head_size
    freqs = np.float32(1.0) / np.float32(10000.0) ** (np.arange(0, hs, 2, dtype=np.float32) / np.float32(hs))
    angles = np.outer(np.arange(c.seq_len, dtype=np.float32), freqs)
    return np.cos(angles), np.sin(angles)


# ---------------------------------------------------------------- checkpoint files

@dataclass
class Checkpoint:
    config: Config
    weights: dict               # name: float32 array (version 2: dequantized)
    version: int
    group_size: int | None = None
    quantized: dict | None = None   # version 2: name: (q int8 [..., groups, gs], scales float32 [..., groups])
    freq_cis: tuple | None = None   # version 0: the legacy (real, imag) tables

    @property
    def shared_classifier(self) -> bool:
        return "wcls" not in self.weights


def quantize_q80(w, group_size: int) -> tuple[np.ndarray, np.ndarray]:
    """export.py's quantize_q80 over the flattened tensor: per group of group_size values,
    scale = max|w| / 127 and q = round(w / scale), all in float32; torch.round, like
    np.round, rounds halves to even. -> (q int8 [groups, gs], scales float32 [groups]).
    A group of zeros gets q = 0 and scale 0 (torch would cast 0/0 = NaN to int8: undefined)."""
    groups = np.asarray(w, np.float32).reshape(-1, group_size)
    scales = np.abs(groups).max(axis=1) / np.float32(127.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.round(groups / scales[:, None])
    q[scales == 0] = 0
    return q.astype(np.int8), scales


def dequantize_q80(q, scales) -> np.ndarray:
    """runq.c's dequantize: q * scale in float32, one scale per group (the last axis of q)."""
    return q.astype(np.float32) * np.asarray(scales, np.float32)[..., None]


def _layers(name: str, a: np.ndarray) -> np.ndarray:
    """A weight as a stack of the tensors export.py writes one by one (a stack of 1 unless layered)."""
    return a if name in LAYERED else a[None]


def _effective_group_size(c: Config, group_size: int) -> int:
    # export.py halves the group size until it divides dim ("BACKOFF"); the header records
    # the size it settled on. Every quantized matrix has dim as one of its two dimensions,
    # so that size divides each one's element count, the only condition export.py checks.
    # (It need not divide hidden_dim: w2's groups then run across its rows.)
    if not isinstance(group_size, int) or group_size < 1:
        raise ValueError(f"group size {group_size!r} is not an integer >= 1")
    while c.dim % group_size:
        group_size //= 2
    return group_size


def write_checkpoint(path, config: Config, weights: dict, version: int, group_size=None,
                     freq_cis=None) -> int | None:
    """Writes a llama2.c checkpoint as export.py does: version 0 (legacy_export, read by
    run.c), 1 (version1_export) or 2 (version2_export, int8, read by runq.c). The classifier
    is shared when `weights` has no "wcls". Version 0 stores `freq_cis` (default: the tables
    model.py computes). -> the group size used (version 2, after export.py's backoff) or None."""
    c = config.check()
    shared = "wcls" not in weights
    w = _checked_weights(c, weights, shared)
    if version == 0:
        real, imag = legacy_freq_cis(c) if freq_cis is None else freq_cis
        header = CONFIG.pack(c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads,
                             c.vocab_size if shared else -c.vocab_size, c.seq_len)
        order = list(weight_shapes(c, True)) + ["freq_cis_real", "freq_cis_imag"] + ([] if shared else ["wcls"])
        w = {**w, "freq_cis_real": _f32(real, (c.seq_len, c.head_size // 2), "freq_cis_real"),
             "freq_cis_imag": _f32(imag, (c.seq_len, c.head_size // 2), "freq_cis_imag")}
        chunks = [header] + [w[name] for name in order]
        used = None
    elif version == 1:
        chunks = [_versioned_header(c, 1, shared)] + [w[name] for name in V1_ORDER if name in w]
        used = None
    elif version == 2:
        used = _effective_group_size(c, 64 if group_size is None else group_size)
        chunks = [_versioned_header(c, 2, shared, used)] + [w[name] for name in V2_NORMS]
        for name in V2_QUANTIZED:
            if name not in w:
                continue
            for tensor in _layers(name, w[name]):
                q, scales = quantize_q80(tensor, used)
                chunks += [q, scales.astype("<f4")]   # each tensor: its int8 values, then its scales
    else:
        raise ValueError(f"version {version!r} is not 0, 1 or 2")
    _write_atomically(path, chunks)
    return used


def _versioned_header(c: Config, version: int, shared: bool, group_size=None) -> bytes:
    # uint32 magic, int32 version, the seven int32, uint8 shared flag, (v2) int32 group
    # size at the unaligned offset 37, zeros up to byte 256.
    header = struct.pack("<Ii", MAGIC, version) + CONFIG.pack(
        c.dim, c.hidden_dim, c.n_layers, c.n_heads, c.n_kv_heads, c.vocab_size, c.seq_len)
    header += struct.pack("<B", int(shared))
    if group_size is not None:
        header += struct.pack("<i", group_size)
    return header + bytes(HEADER_SIZE - len(header))


def _f32(a, shape, name) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != tuple(shape):
        raise ValueError(f"weight {name} has shape {list(a.shape)}, not {list(shape)}")
    return np.ascontiguousarray(a, "<f4")


def _checked_weights(c: Config, weights: dict, shared: bool) -> dict:
    shapes = weight_shapes(c, shared)
    unknown = set(weights) - set(shapes)
    if unknown:
        raise ValueError(f"unknown weights {sorted(unknown)}")
    missing = [n for n in shapes if n not in weights]
    if missing:
        raise ValueError(f"weight {missing[0]} is missing")
    return {name: _f32(weights[name], shape, name) for name, shape in shapes.items()}


def _write_atomically(path, chunks) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk if isinstance(chunk, bytes) else memoryview(np.ascontiguousarray(chunk)).cast("B"))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def checkpoint_size(c: Config, version: int, shared: bool, group_size=None) -> int:
    """The exact length of a checkpoint file; the readers accept no other."""
    shapes = weight_shapes(c, shared)
    if version == 0:
        return CONFIG.size + 4 * (sum(int(np.prod(s)) for s in shapes.values()) + c.seq_len * c.head_size)
    if version == 1:
        return HEADER_SIZE + 4 * sum(int(np.prod(s)) for s in shapes.values())
    quantized = sum(int(np.prod(s)) for n, s in shapes.items() if n in V2_QUANTIZED)
    norms = sum(int(np.prod(shapes[n])) for n in V2_NORMS)
    return HEADER_SIZE + 4 * norms + quantized + 4 * (quantized // group_size)


def read_checkpoint(path) -> Checkpoint:
    """Reads a llama2.c checkpoint of any version; ValueError naming the problem. Stricter
    than run.c, which trusts the header: the file must be exactly as long as it says.
    Versions 0 and 1 give read-only views of the file's bytes."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < CONFIG.size:
        raise ValueError(f"{path}: {len(data)} bytes, shorter than a header")
    magic, version = struct.unpack_from("<Ii", data, 0)
    if magic != MAGIC:
        # Version 0 has no magic: it starts with the config, a negative vocab_size meaning a
        # separate classifier (run.c: "hacky way of signaling unshared weights").
        version, fields = 0, list(CONFIG.unpack_from(data, 0))
        shared, group_size, offset = fields[5] > 0, None, CONFIG.size
        fields[5] = abs(fields[5])
    elif version in (1, 2):
        if len(data) < HEADER_SIZE:
            raise ValueError(f"{path}: {len(data)} bytes, shorter than the 256-byte header")
        fields = list(CONFIG.unpack_from(data, 8))
        shared = data[36] != 0                     # run.c/runq.c test the byte as a C bool
        group_size = struct.unpack_from("<i", data, 37)[0] if version == 2 else None
        offset = HEADER_SIZE
    else:
        raise ValueError(f"{path}: version {version} is not 1 or 2")
    try:
        c = Config(*fields).check()
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if version == 2 and (group_size < 1 or c.dim % group_size):
        raise ValueError(f"{path}: group size {group_size} does not divide dim {c.dim}")
    expected = checkpoint_size(c, version, shared, group_size)
    if len(data) != expected:
        raise ValueError(f"{path}: {len(data)} bytes; a version {version} file of this "
                         f"config holds {expected}")
    shapes = weight_shapes(c, shared)
    ckpt = Checkpoint(c, {}, version, group_size)

    def take(count, dtype):
        nonlocal offset
        a = np.frombuffer(data, dtype, count, offset)
        offset += a.nbytes
        return a

    if version in (0, 1):
        order = V1_ORDER if version == 1 else (*weight_shapes(c, True), "freq_cis", "wcls")
        for name in order:
            if name == "freq_cis":
                half = (c.seq_len, c.head_size // 2)
                ckpt.freq_cis = tuple(take(half[0] * half[1], "<f4").reshape(half) for _ in range(2))
            elif name in shapes:
                ckpt.weights[name] = take(int(np.prod(shapes[name])), "<f4").reshape(shapes[name])
    else:
        for name in V2_NORMS:
            ckpt.weights[name] = take(int(np.prod(shapes[name])), "<f4").reshape(shapes[name])
        ckpt.quantized = {}
        for name in V2_QUANTIZED:
            if name not in shapes:
                continue
            layers = shapes[name][0] if name in LAYERED else 1
            per_layer = int(np.prod(shapes[name])) // layers
            qs, ss = [], []
            for _ in range(layers):
                qs.append(take(per_layer, np.int8).reshape(-1, group_size))
                ss.append(take(per_layer // group_size, "<f4"))
            q, s = np.stack(qs), np.stack(ss)
            if name not in LAYERED:
                q, s = q[0], s[0]
            ckpt.quantized[name] = (q, s)
            ckpt.weights[name] = dequantize_q80(q, s).reshape(shapes[name])
    ckpt.weights = {name: ckpt.weights[name] for name in shapes}       # run.c's order
    return ckpt


# ---------------------------------------------------------------- tokenizer file

def write_tokenizer(path, pieces, scores, max_token_length=None) -> None:
    """tokenizer.bin as llama2.c's tokenizer.py writes it: uint32 max_token_length, then per
    token a float32 score, a uint32 byte length and the bytes (no terminator). The file
    does not say how many tokens it holds: readers take vocab_size from the checkpoint."""
    pieces = [bytes(p) for p in pieces]
    if len(pieces) != len(scores):
        raise ValueError(f"{len(pieces)} pieces but {len(scores)} scores")
    if max_token_length is None:
        max_token_length = max((len(p) for p in pieces), default=0)
    out = [struct.pack("<I", max_token_length)]
    for piece, score in zip(pieces, scores):
        out.append(struct.pack("<fI", score, len(piece)) + piece)
    _write_atomically(path, [b"".join(out)])


def read_tokenizer(path, vocab_size=None) -> tuple[list[bytes], list[float], int]:
    """-> (pieces, scores, max_token_length). With vocab_size, reads that many tokens and
    ignores anything after them, as run.c does; without, reads to the end of the file."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 4:
        raise ValueError(f"{path}: {len(data)} bytes, no max_token_length")
    (max_token_length,) = struct.unpack_from("<I", data, 0)
    pos, pieces, scores = 4, [], []
    while (pos < len(data)) if vocab_size is None else (len(pieces) < vocab_size):
        if pos + 8 > len(data):
            raise ValueError(f"{path}: token {len(pieces)}: the file ends inside its score/length")
        score, length = struct.unpack_from("<fI", data, pos)
        if pos + 8 + length > len(data):
            raise ValueError(f"{path}: token {len(pieces)}: {length} bytes run past the end of the file")
        pieces.append(data[pos + 8:pos + 8 + length])
        scores.append(score)
        pos += 8 + length
    return pieces, scores, max_token_length


# ---------------------------------------------------------------- the tokenizer (run.c's encode and decode)

def _c_string(piece: bytes) -> bytes:
    # run.c holds pieces as C strings: a piece with a NUL byte ends there for strcmp/printf.
    return piece.split(b"\0", 1)[0]


def vocab_index(pieces) -> dict[bytes, int]:
    """run.c's str_lookup as a dict: piece -> id. run.c sorts the vocabulary with qsort and
    searches it with bsearch, so for a piece that occurs twice it returns whichever copy the
    search lands on: not specified by C, and with glibc it depends on the vocabulary's size
    and order. Here the lowest id wins. llama's and llama2.c's tokenizers have no duplicates."""
    index: dict[bytes, int] = {}
    for i, piece in enumerate(pieces):
        index.setdefault(_c_string(piece), i)
    return index


def encode(text, pieces, scores, bos=True, eos=False, index=None) -> list[int]:
    """run.c's encode(): the token ids of `text` (str, or bytes that need not be UTF-8).
    1. BOS (1) if asked; then, if the text is not empty, the id of the piece " " (the
       sentencepiece dummy prefix: the text is read as if it started with a space).
    2. The text split into UTF-8 code points: a byte and the continuation bytes (10xxxxxx)
       after it, at most 4 bytes in all. A code point that is a piece becomes that id, else
       each of its bytes b becomes the byte-fallback id b + 3.
    3. Merges: while some adjacent pair's concatenation is a piece, replace the pair whose
       piece has the highest score, the leftmost on a tie (a strictly greater score wins).
    4. EOS (2) if asked.
    Text ends at its first NUL byte, as a C string does."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    data = _c_string(data)
    index = vocab_index(pieces) if index is None else index
    tokens = [BOS] if bos else []
    if data:
        if b" " not in index:
            raise ValueError('the vocabulary has no piece " " (run.c would emit token id -1)')
        tokens.append(index[b" "])
    i = 0
    while i < len(data):
        j = i + 1
        while j < len(data) and data[j] & 0xC0 == 0x80 and j - i < 4:
            j += 1
        point = data[i:j]
        if point in index:
            tokens.append(index[point])
        else:
            if 3 + max(point) >= len(pieces):
                raise ValueError(f"byte fallback needs ids 3..258, the vocabulary has {len(pieces)} pieces")
            tokens.extend(3 + b for b in point)
        i = j

    # The scores are float32 in the file and in run.c; -1e10 is exact in float32.
    score32 = np.asarray(scores, np.float32)
    strings = [_c_string(p) for p in pieces]
    while True:
        best_score, best_id, best_at = np.float32(-1e10), -1, -1
        for k in range(len(tokens) - 1):     # BOS takes part too, as in run.c
            merged = index.get(strings[tokens[k]] + strings[tokens[k + 1]])
            if merged is not None and score32[merged] > best_score:
                best_score, best_id, best_at = score32[merged], merged, k
        if best_at < 0:
            break
        tokens[best_at:best_at + 2] = [best_id]
    if eos:
        tokens.append(EOS)
    return tokens


_C_SPACE = b" \t\n\v\f\r"
_HEX = b"0123456789abcdefABCDEF"


def _byte_piece(piece: bytes):
    """The byte of a piece that sscanf(piece, "<0x%02hhX>", &b) == 1 accepts, else None.
    sscanf only needs "<0x" and one or two hex digits (either case): the ">" after them is
    not checked. %X also skips white space and takes a sign, which count in its width of
    2. (A "0x" prefix inside that width is not mirrored; no piece has one.)"""
    if not piece.startswith(b"<0x"):
        return None
    field = piece[3:].lstrip(_C_SPACE)[:2]
    negative = field[:1] == b"-"
    if field[:1] in (b"+", b"-"):
        field = field[1:]
    digits = b""
    for ch in field:
        if ch not in _HEX:
            break
        digits += bytes([ch])
    if not digits:
        return None
    value = int(digits, 16)
    return (-value if negative else value) & 0xFF


def decode_piece(prev_token: int, token: int, pieces) -> bytes:
    """run.c's decode(): the bytes printed for `token` after `prev_token`. After BOS a
    leading space is dropped (sentencepiece's dummy prefix); a piece "<0xNN>" is the raw
    byte NN. The byte 0x00 decodes to nothing: run.c returns it as an empty C string.
    (run.c's generate then prints through safe_printf, which also drops a one-byte piece
    that is neither printable nor white space; that filter is not applied here.)"""
    piece = _c_string(pieces[token])
    if prev_token == BOS and piece[:1] == b" ":
        piece = piece[1:]
    byte = _byte_piece(piece)
    if byte is not None:
        return bytes([byte]) if byte else b""
    return piece


def decode(ids, pieces) -> bytes:
    """What run.c's generate prints for a sequence: each id after the first, decoded with
    its predecessor (the first token, usually BOS, is never printed)."""
    return b"".join(decode_piece(a, b, pieces) for a, b in zip(ids, ids[1:]))


# ---------------------------------------------------------------- random models and tokenizers

def random_model(config: Config, seed: int, shared_classifier: bool) -> dict:
    """float32 weights drawn in run.c's order: embeddings and classifier N(0, 0.5²), so the
    logits are a few units apart; norm weights 1 + N(0, 0.1²); q, k, w1, w3 N(0, 1/D), so
    attention is far from uniform; v, o, w2 N(0, 0.25/fan_in), so the residual stream does
    not explode."""
    c = config.check()
    rng = np.random.default_rng(seed)
    D, F = c.dim, c.hidden_dim

    def normal(shape, std):
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(std)

    stds = {"token_embedding_table": 0.5, "wq": D ** -0.5, "wk": D ** -0.5, "wv": D ** -0.5,
            "wo": D ** -0.5, "w1": D ** -0.5, "w2": F ** -0.5, "w3": D ** -0.5, "wcls": 0.5}
    weights = {}
    for name, shape in weight_shapes(c, shared_classifier).items():
        if name.startswith("rms_"):
            weights[name] = np.float32(1) + normal(shape, 0.1)
        else:
            weights[name] = normal(shape, stds[name])
    return weights


# Single characters of the random tokenizer: after the 3 special and 256 byte pieces.
# "\n", "<" and ">" are left out: like llama's, a newline is the byte fallback <0x0A>.
SINGLE_CHARACTERS = (list(string.ascii_lowercase + string.ascii_uppercase + string.digits)
                     + list(".,!?'\"-:;()") + [" ", "é", "ж", "→", "😀"])

# Merges are learned on this text, so that ordinary English is merged over several rounds.
CORPUS = """Once upon a time, there was a little girl named Lily. She liked to play in the
park with her cat. The cat sat on the mat and the dog sat on the log. One day, Lily saw a
big red ball in the park. "Hello!" said the dog. They ate at the café, then the café → home.
Lily was happy and the cat was happy too. They played and played until the sun went down.
жук и ёж. 😀 the end."""


def random_tokenizer(vocab_size: int, seed: int) -> tuple[list[bytes], list[float]]:
    """A llama2.c-style vocabulary: ids 0, 1, 2 are "<unk>", "\\n<s>\\n", "\\n</s>\\n"; ids
    3..258 the byte pieces "<0x00>".."<0xFF>" (score 0, as llama's); then the single
    characters (scores -10000, -10001, ...); then merged pieces, learned BPE-style on CORPUS
    (most frequent adjacent pair within " "-prefixed words, ties broken by `seed`), then
    random concatenations if the vocabulary is still not full. Merge k scores -(k + 1):
    earlier merges win, as in sentencepiece's llama vocabulary."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    scores = [0.0] * len(pieces)
    singles = [ch.encode("utf-8") for ch in SINGLE_CHARACTERS]
    if vocab_size < len(pieces) + len(singles):
        raise ValueError(f"vocab_size {vocab_size} < {len(pieces) + len(singles)} (specials, bytes, characters)")
    pieces += singles
    scores += [-10000.0 - j for j in range(len(singles))]
    known = set(pieces)
    rng = np.random.default_rng(seed)

    def add(piece: bytes) -> None:
        scores.append(-float(len(pieces) - 258 - len(singles)))
        pieces.append(piece)
        known.add(piece)

    # Words as the dummy prefix makes them: " " + word; unknown characters split words.
    words = []
    for word in CORPUS.split():
        run = []
        for ch in " " + word:
            if ch.encode("utf-8") in known:
                run.append(ch.encode("utf-8"))
            else:
                words.append(run)
                run = []
        words.append(run)
    words = [w for w in words if len(w) > 1]
    while len(pieces) < vocab_size:
        counts: dict[tuple[bytes, bytes], int] = {}
        for w in words:
            for pair in zip(w, w[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        top = max(counts.values())
        candidates = sorted(p for p, n in counts.items() if n == top)
        a, b = candidates[rng.integers(len(candidates))]
        if a + b not in known:
            add(a + b)
        for w in words:
            k = 0
            while k < len(w) - 1:
                if w[k] == a and w[k + 1] == b:
                    w[k:k + 2] = [a + b]
                k += 1
        words = [w for w in words if len(w) > 1]
    first_merge = 259 + len(singles)
    while len(pieces) < vocab_size:
        a = pieces[rng.integers(259, len(pieces))]
        b = pieces[rng.integers(259, len(pieces))]
        if not b.startswith(b" ") and a + b not in known and len(a + b) <= 16:
            add(a + b)
    assert len(set(pieces)) == len(pieces) and len(pieces) > first_merge
    return pieces, scores


# ---------------------------------------------------------------- command line

def _random_command(args) -> int:
    base = SHAPES[args.shape] if args.shape else SHAPES["stories15M"]
    changes = {field: getattr(args, flag) for field, flag in (
        ("dim", "dim"), ("hidden_dim", "hidden"), ("n_layers", "layers"), ("n_heads", "heads"),
        ("n_kv_heads", "kv_heads"), ("vocab_size", "vocab"), ("seq_len", "seq_len")) if getattr(args, flag) is not None}
    if "n_heads" in changes and "n_kv_heads" not in changes:
        changes["n_kv_heads"] = changes["n_heads"]
    try:
        config = replace(base, **changes).check()
        weights = random_model(config, args.seed, shared_classifier=not args.separate)
        used = write_checkpoint(args.out, config, weights, args.version, args.group_size)
        if args.tokenizer_out:
            write_tokenizer(args.tokenizer_out, *random_tokenizer(config.vocab_size, args.seed))
    except ValueError as exc:
        print(f"llama2c: {exc}", file=sys.stderr)
        return 2
    params = sum(w.size for w in weights.values())
    print(f"{args.out}: version {args.version}, {params:,} parameters, {_describe(config)}, "
          f"{'separate' if args.separate else 'shared'} classifier"
          + (f", group size {used}" if used else ""))
    return 0


def _describe(c: Config) -> str:
    return (f"dim {c.dim}, hidden {c.hidden_dim}, {c.n_layers} layers, {c.n_heads} heads, "
            f"{c.n_kv_heads} kv heads, vocab {c.vocab_size}, seq_len {c.seq_len}")


def _inspect_command(args) -> int:
    try:
        ckpt = read_checkpoint(args.file)
    except (ValueError, OSError) as exc:
        print(f"llama2c: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: version {ckpt.version}, {_describe(ckpt.config)}, "
          f"{'shared' if ckpt.shared_classifier else 'separate'} classifier"
          + (f", group size {ckpt.group_size}" if ckpt.group_size else ""))
    for name, w in ckpt.weights.items():
        print(f"  {name:22} {str(list(w.shape)):18} rms {float(np.sqrt(np.mean(np.square(w, dtype=np.float64)))):.4g}")
    return 0


def _fixtures_command(args) -> int:
    import llama_fixtures  # the test data for tfq's Swift tests; needs reference.py
    for line in llama_fixtures.build(args.out):
        print(line)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="llama2.c checkpoints and tokenizers: random "
                                     "models, tfq's test fixtures, header inspection.")
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("random", help="write a random checkpoint (and tokenizer)")
    r.add_argument("--shape", choices=sorted(SHAPES), help="start from a TinyStories model's shape "
                   "(default stories15M); the flags below override it")
    for flag in ("dim", "layers", "heads", "kv-heads", "hidden", "vocab", "seq-len"):
        r.add_argument(f"--{flag}", type=int)
    share = r.add_mutually_exclusive_group()
    share.add_argument("--shared", action="store_true", help="classifier = token embedding (default)")
    share.add_argument("--separate", action="store_true", help="a separate classifier (wcls)")
    r.add_argument("--version", type=int, choices=(0, 1, 2), default=0)
    r.add_argument("--group-size", type=int, default=64, help="version 2 (export.py halves it until it divides dim)")
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--out", required=True)
    r.add_argument("--tokenizer-out")
    f = sub.add_parser("fixtures", help="regenerate the Swift tests' llama fixtures")
    f.add_argument("--out", required=True)
    i = sub.add_parser("inspect", help="print a checkpoint's header and weights")
    i.add_argument("file")
    args = parser.parse_args(argv)
    return {"random": _random_command, "fixtures": _fixtures_command, "inspect": _inspect_command}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
