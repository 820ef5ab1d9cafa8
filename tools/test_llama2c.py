"""Tests for tools/llama2c.py (llama2.c's files and tokenizer), the llama section of
tools/reference.py, and the fixtures of tools/llama_fixtures.py.

    cd /work/main && python3 -m pytest -q tools/test_llama2c.py

- checkpoints of versions 0, 1 and 2 round-trip, with byte offsets and file sizes checked
  against arithmetic written out here, and int8 errors within half a scale;
- the tokenizer file round-trips; encode and decode agree with cases worked out by hand;
- the float32 llama forward pass agrees with a plain float64 one (position by position,
  RoPE with complex numbers); grouped-query attention equals multi-head attention with
  repeated key/value heads;
- the fixtures regenerate byte for byte, and agree with the float32 reference;
- end to end, when a tfq binary with `tfq import` exists: each fixture imported and run
  greedily gives the reference's tokens and the checkpoint's weights.
"""
import json
import math
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama2c  # noqa: E402
import llama_fixtures  # noqa: E402
import tfq_write  # noqa: E402
from llama2c import Config, decode, decode_piece, encode  # noqa: E402
from reference import (llama_generate_greedy, llama_logits, llama_tfq_config,  # noqa: E402
                       llama_tfq_tensors, llama_weights_from_tfq, rope_tables, runq_activations,
                       two_pass_activations)

TOOLS = Path(__file__).parent
ROOT = TOOLS.parent
FIXTURES = ROOT / "Tests" / "TFQImportTests" / "Fixtures" / "llama"

GQA = Config(dim=16, hidden_dim=32, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=300, seq_len=12)
MHA = Config(dim=16, hidden_dim=32, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=300, seq_len=12)
MQA = Config(dim=32, hidden_dim=48, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=270, seq_len=10)


def numel(shape):
    return int(np.prod(shape))


# ------------------------------------------------------------------ checkpoints

@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("shared", [False, True])
def test_checkpoint_round_trip(tmp_path, version, shared):
    weights = llama2c.random_model(GQA, seed=3, shared_classifier=shared)
    path = tmp_path / "model.bin"
    used = llama2c.write_checkpoint(path, GQA, weights, version, group_size=16 if version == 2 else None)
    ckpt = llama2c.read_checkpoint(path)
    assert (ckpt.config, ckpt.version, ckpt.shared_classifier) == (GQA, version, shared)
    assert list(ckpt.weights) == list(llama2c.weight_shapes(GQA, shared))
    assert ckpt.group_size == used == (16 if version == 2 else None)
    for name, w in weights.items():
        assert ckpt.weights[name].dtype == np.float32 and ckpt.weights[name].shape == w.shape
        if version < 2:
            np.testing.assert_array_equal(ckpt.weights[name], w, err_msg=name)
        elif name.startswith("rms_"):
            np.testing.assert_array_equal(ckpt.weights[name], w, err_msg=name)  # norms stay f32
        else:
            q, s = ckpt.quantized[name]
            assert q.dtype == np.int8 and q.shape[-1] == 16
            np.testing.assert_array_equal(ckpt.weights[name], llama2c.dequantize_q80(q, s).reshape(w.shape))
    if version == 0:
        real, imag = llama2c.legacy_freq_cis(GQA)
        np.testing.assert_array_equal(ckpt.freq_cis[0], real)
        np.testing.assert_array_equal(ckpt.freq_cis[1], imag)
        # model.py's table: cos/sin(pos * 10000^(-2j / head_size)), [seq_len, head_size / 2]
        assert real.shape == (12, 2)
        assert real[5, 1] == pytest.approx(math.cos(5 * 10000 ** (-2 / 4)), rel=1e-6)
    else:
        assert ckpt.freq_cis is None


def expected_size(c: Config, version: int, shared: bool, gs=None) -> int:
    """The file size, written out from export.py's writers."""
    L, D, F, V, KV = c.n_layers, c.dim, c.hidden_dim, c.vocab_size, c.dim * c.n_kv_heads // c.n_heads
    matrices = [V * D] + [L * D * D, L * KV * D, L * KV * D, L * D * D, L * F * D, L * D * F, L * F * D] \
        + ([] if shared else [V * D])
    norms = 2 * L * D + D
    if version == 0:
        return 7 * 4 + 4 * (sum(matrices) + norms + 2 * c.seq_len * (D // c.n_heads) // 2)
    if version == 1:
        return 256 + 4 * (sum(matrices) + norms)
    return 256 + 4 * norms + sum(m + 4 * (m // gs) for m in matrices)


@pytest.mark.parametrize("version", [0, 1, 2])
@pytest.mark.parametrize("shared", [False, True])
def test_file_size_is_the_header_arithmetic(tmp_path, version, shared):
    for c in (GQA, MQA):
        path = tmp_path / "m.bin"
        llama2c.write_checkpoint(path, c, llama2c.random_model(c, 1, shared), version, 16)
        assert path.stat().st_size == expected_size(c, version, shared, 16)
        assert llama2c.checkpoint_size(c, version, shared, 16) == expected_size(c, version, shared, 16)
    # The published stories15M.bin (version 0, shared classifier): 60,816,028 bytes.
    assert expected_size(llama2c.SHAPES["stories15M"], 0, True) == 60_816_028


def f32_at(data: bytes, offset: int, count: int) -> np.ndarray:
    return np.frombuffer(data, "<f4", count, offset)


def test_version0_byte_layout(tmp_path):
    w = llama2c.random_model(GQA, 2, shared_classifier=False)
    path = tmp_path / "v0.bin"
    llama2c.write_checkpoint(path, GQA, w, 0)
    data = path.read_bytes()
    L, D, F, V, KV = 2, 16, 32, 300, 8
    # 7 int32, vocab_size negative: a separate classifier follows the legacy RoPE tables.
    assert struct.unpack_from("<7i", data, 0) == (16, 32, 2, 4, 2, -300, 12)
    at = 28
    for name, n in [("token_embedding_table", V * D), ("rms_att_weight", L * D), ("wq", L * D * D),
                    ("wk", L * KV * D), ("wv", L * KV * D), ("wo", L * D * D), ("rms_ffn_weight", L * D),
                    ("w1", L * F * D), ("w2", L * D * F), ("w3", L * F * D), ("rms_final_weight", D)]:
        np.testing.assert_array_equal(f32_at(data, at, n), w[name].ravel(), err_msg=name)
        at += 4 * n
    at += 2 * 4 * 12 * (4 // 2)               # freq_cis_real and _imag: [seq_len, head_size / 2] each
    np.testing.assert_array_equal(f32_at(data, at, V * D), w["wcls"].ravel())
    assert at + 4 * V * D == len(data)
    shared = tmp_path / "v0s.bin"
    llama2c.write_checkpoint(shared, GQA, {k: v for k, v in w.items() if k != "wcls"}, 0)
    assert struct.unpack_from("<7i", shared.read_bytes(), 0)[5] == 300


@pytest.mark.parametrize("shared", [False, True])
def test_version1_byte_layout(tmp_path, shared):
    w = llama2c.random_model(GQA, 4, shared_classifier=shared)
    path = tmp_path / "v1.bin"
    llama2c.write_checkpoint(path, GQA, w, 1)
    data = path.read_bytes()
    assert data[:4] == b"24ka"                 # uint32 0x616b3432, little-endian
    assert struct.unpack_from("<i7iB", data, 4) == (1, 16, 32, 2, 4, 2, 300, 12, int(shared))
    assert data[37:256] == bytes(219)
    at = 256
    for name in ("rms_att_weight", "rms_ffn_weight", "rms_final_weight", "token_embedding_table",
                 "wq", "wk", "wv", "wo", "w1", "w2", "w3") + (() if shared else ("wcls",)):
        np.testing.assert_array_equal(f32_at(data, at, w[name].size), w[name].ravel(), err_msg=name)
        at += 4 * w[name].size
    assert at == len(data)


@pytest.mark.parametrize("shared", [False, True])
def test_version2_byte_layout(tmp_path, shared):
    w = llama2c.random_model(GQA, 5, shared_classifier=shared)
    path = tmp_path / "v2.bin"
    llama2c.write_checkpoint(path, GQA, w, 2, group_size=8)
    data = path.read_bytes()
    assert data[:4] == b"24ka"
    assert struct.unpack_from("<i7iB", data, 4) == (2, 16, 32, 2, 4, 2, 300, 12, int(shared))
    assert struct.unpack_from("<i", data, 37) == (8,)      # group size, unaligned
    assert data[41:256] == bytes(215)
    at = 256
    for name in ("rms_att_weight", "rms_ffn_weight", "rms_final_weight"):
        np.testing.assert_array_equal(f32_at(data, at, w[name].size), w[name].ravel())
        at += 4 * w[name].size
    # Then each tensor export.py lists, one per layer: its int8 values, then its scales.
    tensors = [("token_embedding_table", w["token_embedding_table"])]
    for name in ("wq", "wk", "wv", "wo", "w1", "w2", "w3"):
        tensors += [(f"{name}[{l}]", w[name][l]) for l in range(2)]
    if not shared:
        tensors.append(("wcls", w["wcls"]))
    for name, t in tensors:
        n = t.size
        q = np.frombuffer(data, np.int8, n, at)
        s = f32_at(data, at + n, n // 8)
        groups = t.reshape(-1, 8)
        np.testing.assert_array_equal(s, np.abs(groups).max(axis=1) / np.float32(127), err_msg=name)
        np.testing.assert_array_equal(q, np.round(groups / s[:, None]).astype(np.int8).ravel(), err_msg=name)
        at += n + 4 * (n // 8)
    assert at == len(data)


def test_version2_quantization_error_within_half_a_scale(tmp_path):
    w = llama2c.random_model(MQA, 6, shared_classifier=False)
    path = tmp_path / "v2.bin"
    llama2c.write_checkpoint(path, MQA, w, 2, group_size=16)
    ckpt = llama2c.read_checkpoint(path)
    for name, (q, s) in ckpt.quantized.items():
        original = w[name].reshape(q.shape).astype(np.float64)
        error = np.abs(original - ckpt.weights[name].reshape(q.shape))
        half = s[..., None].astype(np.float64) / 2
        assert np.all(error <= half * (1 + 1e-6) + 1e-12), name
        assert np.all(np.abs(q).max(axis=-1) == 127), name    # every group reaches +-127
        assert q.min() >= -127


def test_quantize_q80_rounds_halves_to_even_like_torch():
    w = np.array([127, 62.5, 0.5, -2.5, 1.5, -127, 3.25, 0], np.float32)   # scale 1
    q, s = llama2c.quantize_q80(w, 8)
    assert s.tolist() == [1.0]
    assert q.ravel().tolist() == [127, 62, 0, -2, 2, -127, 3, 0]
    q, s = llama2c.quantize_q80(np.zeros(4, np.float32), 4)   # a zero group: zeros, no NaN
    assert q.tolist() == [[0, 0, 0, 0]] and s.tolist() == [0.0]


def test_version2_group_size_backs_off_like_export(tmp_path):
    c = Config(dim=48, hidden_dim=64, n_layers=1, n_heads=4, n_kv_heads=4, vocab_size=260, seq_len=4)
    path = tmp_path / "v2.bin"
    assert llama2c.write_checkpoint(path, c, llama2c.random_model(c, 1, True), 2, group_size=64) == 16
    assert llama2c.read_checkpoint(path).group_size == 16
    # A hidden size the group size does not divide is still legal (export.py only checks
    # dim): groups then run across rows of w2, as in stories42M with group size 64.
    c = Config(dim=16, hidden_dim=24, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=260, seq_len=4)
    llama2c.write_checkpoint(path, c, llama2c.random_model(c, 1, True), 2, group_size=16)
    q, _ = llama2c.read_checkpoint(path).quantized["w2"]
    assert q.shape == (1, 16 * 24 // 16, 16)


def test_read_rejects_damaged_files(tmp_path):
    path = tmp_path / "m.bin"
    llama2c.write_checkpoint(path, GQA, llama2c.random_model(GQA, 1, True), 2, 16)
    data = path.read_bytes()
    cases = {
        "short": data[:-1],
        "long": data + b"\0",
        "version": data[:4] + struct.pack("<i", 3) + data[8:],
        "heads": data[:20] + struct.pack("<i", 3) + data[24:],     # n_heads 3 does not divide dim
        "group": data[:37] + struct.pack("<i", 5) + data[41:],
        "header": data[:20],
    }
    messages = {"short": "bytes", "long": "bytes", "version": "version 3", "heads": "n_heads",
                "group": "group size 5", "header": "shorter"}
    for name, bad in cases.items():
        p = tmp_path / f"{name}.bin"
        p.write_bytes(bad)
        with pytest.raises(ValueError, match=messages[name]):
            llama2c.read_checkpoint(p)


def test_write_rejects_bad_weights(tmp_path):
    w = llama2c.random_model(GQA, 1, False)
    with pytest.raises(ValueError, match="wk"):
        llama2c.write_checkpoint(tmp_path / "m.bin", GQA, {**w, "wk": w["wq"]}, 0)
    with pytest.raises(ValueError, match="unknown"):
        llama2c.write_checkpoint(tmp_path / "m.bin", GQA, {**w, "bias": w["wq"]}, 0)
    with pytest.raises(ValueError, match="version"):
        llama2c.write_checkpoint(tmp_path / "m.bin", GQA, w, 3)
    with pytest.raises(ValueError, match="n_kv_heads"):
        Config(16, 32, 1, 4, 3, 300, 8).check()
    assert not list(tmp_path.iterdir())


# ------------------------------------------------------------------ tokenizer file

def test_tokenizer_file_round_trip_and_bytes(tmp_path):
    path = tmp_path / "tok.bin"
    llama2c.write_tokenizer(path, [b"<unk>", b" a", b"\xc3\xa9"], [0.0, -1.5, -2.25])
    assert path.read_bytes() == (struct.pack("<I", 5) + struct.pack("<fI", 0.0, 5) + b"<unk>"
                                 + struct.pack("<fI", -1.5, 2) + b" a" + struct.pack("<fI", -2.25, 2) + b"\xc3\xa9")
    assert llama2c.read_tokenizer(path) == ([b"<unk>", b" a", b"\xc3\xa9"], [0.0, -1.5, -2.25], 5)
    # run.c reads vocab_size tokens and ignores what follows; a short file is an error.
    assert llama2c.read_tokenizer(path, 2) == ([b"<unk>", b" a"], [0.0, -1.5], 5)
    with pytest.raises(ValueError, match="token 3"):
        llama2c.read_tokenizer(path, 4)
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="token 2"):
        llama2c.read_tokenizer(path)


# ------------------------------------------------------------------ encode and decode

def hand_vocab(extra):
    """Specials, the 256 byte pieces, then `extra` as (piece, score)."""
    pieces = [b"<unk>", b"\n<s>\n", b"\n</s>\n"] + [b"<0x%02X>" % b for b in range(256)]
    scores = [0.0] * len(pieces)
    for piece, score in extra:
        pieces.append(piece.encode("utf-8"))
        scores.append(score)
    return pieces, scores


# ids 259 ...: " " a b c ab " a" abc " ab" aa " aa" é
PIECES, SCORES = hand_vocab([(" ", -100), ("a", -101), ("b", -102), ("c", -103), ("ab", -1),
                             (" a", -2), ("abc", -0.5), (" ab", -3), ("aa", -1), (" aa", -4), ("é", -105)])
ID = {p: i for i, p in enumerate(PIECES)}


def ids(*pieces):
    return [ID[p.encode("utf-8")] for p in pieces]


@pytest.mark.parametrize("text,expected", [
    # [" ", a, b] -> ab (-1) beats " a" (-2) -> [" ", ab] -> " ab" (-3)
    ("ab", ["\n<s>\n", " ab"]),
    # [" ", a, b, c] -> ab -> [" ", ab, c]: abc (-0.5) beats " ab" (-3) -> [" ", abc]; " abc" is no piece
    ("abc", ["\n<s>\n", " ", "abc"]),
    # [" ", a, a, a]: aa at 1 and at 2 tie, the leftmost wins -> [" ", aa, a] -> [" aa", a]
    ("aaa", ["\n<s>\n", " aa", "a"]),
    # the pieces' scores decide, not their position: " a" (-2) before nothing else
    ("a", ["\n<s>\n", " a"]),
    ("ba", ["\n<s>\n", " ", "b", "a"]),
    # é is a piece and merges with nothing
    ("aé", ["\n<s>\n", " a", "é"]),
])
def test_encode_hand_worked(text, expected):
    assert encode(text, PIECES, SCORES) == ids(*expected)


def test_encode_bos_eos_empty_and_nul():
    assert encode("", PIECES, SCORES) == [1]                       # no dummy prefix
    assert encode("", PIECES, SCORES, bos=False) == []
    assert encode("", PIECES, SCORES, eos=True) == [1, 2]
    assert encode("ab", PIECES, SCORES, bos=False, eos=True) == ids(" ab") + [2]
    assert encode(b"ab\0c", PIECES, SCORES) == encode("ab", PIECES, SCORES)   # a C string


def test_encode_byte_fallback():
    space = ID[b" "]
    assert encode("ñ", PIECES, SCORES) == [1, space, 0xC3 + 3, 0xB1 + 3]
    assert encode("a\n", PIECES, SCORES) == [1, ID[b" a"], 0x0A + 3]
    assert encode("😀", PIECES, SCORES) == [1, space] + [b + 3 for b in "😀".encode()]
    # Bytes that are not UTF-8: a code point is a byte and at most 3 continuation bytes
    # after it, so five continuation bytes are looked up as 4 + 1, and fall back.
    assert encode(b"\x80" * 5, PIECES, SCORES) == [1, space] + [0x80 + 3] * 5
    assert encode(b"\xc3", PIECES, SCORES) == [1, space, 0xC3 + 3]
    # é split by a stray lead byte: \xc3 \xc3\xa9 -> fallback, then the piece é
    assert encode(b"\xc3\xc3\xa9", PIECES, SCORES) == [1, space, 0xC3 + 3, ID["é".encode()]]


def test_encode_duplicates_missing_space_and_scores():
    # A piece twice: the lowest id (run.c's bsearch may return either).
    pieces, scores = hand_vocab([(" ", -1), ("a", -1), (" a", -5), (" a", -0.1)])
    assert encode("a", pieces, scores) == [1, 261]
    # Equal scores of different pieces: the leftmost pair, since only a greater score wins.
    pieces, scores = hand_vocab([(" ", -9), ("x", -9), ("y", -9), (" x", -1), ("xy", -1)])
    assert encode("xy", pieces, scores) == [1, 262, 261]
    # A score at or below -1e10 never merges (run.c's best_score starts there).
    pieces, scores = hand_vocab([(" ", -9), ("x", -9), (" x", -1e10)])
    assert encode("x", pieces, scores) == [1, 259, 260]
    with pytest.raises(ValueError, match='" "'):
        encode("a", *hand_vocab([("a", 0.0)]))


def test_decode_piece():
    pieces, _ = hand_vocab([(" a", 0), ("<0x41>", 0), ("<0xff>", 0), ("<0x4>", 0), ("<0x41", 0),
                            ("<0xZZ>", 0), (" <0x42>", 0), ("<0x 7>", 0), ("<0x-1>", 0)])
    a, big_a, ff, four, open_, zz, spaced, ws, minus = range(259, 268)
    assert decode_piece(1, a, pieces) == b"a"            # after BOS the leading space goes
    assert decode_piece(5, a, pieces) == b" a"
    assert decode_piece(1, 3 + 0x41, pieces) == b"A"     # <0x41>
    assert decode_piece(1, 3 + 0x0A, pieces) == b"\n"
    assert decode_piece(1, 3 + 0x00, pieces) == b""      # an empty C string
    assert decode_piece(1, 3 + 0xFF, pieces) == b"\xff"
    # What sscanf("<0x%02hhX>") accepts: either case, one digit, no ">", white space, a sign.
    assert [decode_piece(7, i, pieces) for i in (big_a, ff, four, open_, ws, minus)] == \
        [b"A", b"\xff", b"\x04", b"A", b"\x07", b"\xff"]
    assert decode_piece(7, zz, pieces) == b"<0xZZ>"
    assert decode_piece(1, spaced, pieces) == b"B" and decode_piece(7, spaced, pieces) == b" <0x42>"
    assert decode_piece(1, 1, pieces) == b"\n<s>\n"
    assert decode([1, a, a, 3 + 0x21], pieces) == b"a a!"


def test_random_tokenizer_shape():
    pieces, scores = llama2c.random_tokenizer(400, seed=3)
    assert len(pieces) == len(scores) == 400 and len(set(pieces)) == 400
    assert pieces[:3] == [b"<unk>", b"\n<s>\n", b"\n</s>\n"]
    assert pieces[3] == b"<0x00>" and pieces[3 + 0x0A] == b"<0x0A>" and pieces[258] == b"<0xFF>"
    chars = [c.encode() for c in llama2c.SINGLE_CHARACTERS]
    assert pieces[259:259 + len(chars)] == chars and b"\n" not in pieces
    merged = pieces[259 + len(chars):]
    assert len(set(scores[259 + len(chars):])) == len(merged)           # distinct scores
    assert sum(p.startswith(b" ") and len(p) > 1 for p in merged) >= 10
    assert all(p.decode("utf-8") for p in pieces)                       # valid UTF-8
    text = "Lily and the cat played in the park."
    tokens = encode(text, pieces, scores)
    assert len(tokens) < len(text) // 2                                 # merges happen
    assert llama2c.random_tokenizer(400, seed=3) == (pieces, scores)
    big, _ = llama2c.random_tokenizer(2000, seed=3)                     # filled past the corpus
    assert len(set(big)) == 2000 and big[:259 + len(chars)] == pieces[:259 + len(chars)]


@pytest.mark.parametrize("text", llama_fixtures.ENCODE_CASES + ["Hello, world!", "  ", "x\n\n y"])
def test_decode_inverts_encode(text):
    pieces, scores = llama2c.random_tokenizer(384, llama_fixtures.TOKENIZER_SEED)
    tokens = encode(text, pieces, scores)
    assert decode(tokens, pieces) == text.encode("utf-8")   # the dummy prefix is dropped again


# ------------------------------------------------------------------ the llama forward pass

def naive_llama(c: Config, weights, tokens, act=None):
    """llama2.c's forward pass position by position with a KV cache, in float64, RoPE as
    complex multiplication; act, if given, is applied to every matmul input."""
    p = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    S = c.dim // c.n_heads
    act = act or (lambda x: x)

    def norm(x, g):
        return g * x / math.sqrt(float(np.mean(x * x)) + 1e-5)

    def rotate(vec, pos):
        z = vec[0::2] + 1j * vec[1::2]
        pair_in_head = np.arange(z.size) % (S // 2)
        z = z * np.exp(1j * pos * 10000.0 ** (-2.0 * pair_in_head / S))
        return np.stack([z.real, z.imag], axis=-1).reshape(-1)

    keys = [[] for _ in range(c.n_layers)]
    values = [[] for _ in range(c.n_layers)]
    out = []
    for pos, token in enumerate(tokens):
        x = p["token_embedding_table"][token].copy()
        for l in range(c.n_layers):
            xb = act(norm(x, p["rms_att_weight"][l]))
            keys[l].append(rotate(p["wk"][l] @ xb, pos))
            values[l].append(p["wv"][l] @ xb)
            q = rotate(p["wq"][l] @ xb, pos)
            y = np.zeros(c.dim)
            for h in range(c.n_heads):
                g = h * c.n_kv_heads // c.n_heads
                scores = [q[h * S:(h + 1) * S] @ k[g * S:(g + 1) * S] / math.sqrt(S) for k in keys[l]]
                e = [math.exp(s - max(scores)) for s in scores]
                y[h * S:(h + 1) * S] = sum(ei / sum(e) * v[g * S:(g + 1) * S] for ei, v in zip(e, values[l]))
            x = x + p["wo"][l] @ act(y)
            xb = act(norm(x, p["rms_ffn_weight"][l]))
            a, b = p["w1"][l] @ xb, p["w3"][l] @ xb
            x = x + p["w2"][l] @ act(a / (1 + np.exp(-a)) * b)
        x = act(norm(x, p["rms_final_weight"]))
        out.append(p.get("wcls", p["token_embedding_table"]) @ x)
    return np.array(out)


@pytest.mark.parametrize("config,shared", [(GQA, False), (MHA, True), (MQA, False)])
def test_llama_logits_match_naive_float64(config, shared):
    w = llama2c.random_model(config, 7, shared)
    tokens = np.random.default_rng(8).integers(0, config.vocab_size, config.seq_len)
    naive = naive_llama(config, w, tokens)
    logits = llama_logits(config, w, tokens)
    assert logits.dtype == np.float32 and logits.shape == (config.seq_len, config.vocab_size)
    scale = np.abs(naive).max()
    assert 1 < scale < 100
    np.testing.assert_allclose(logits, naive, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(llama_logits(config, w, tokens, np.float64), naive, rtol=0, atol=1e-12 * scale)


def runq_round(x, gs):
    """runq.c's quantize written out (in float64): per group scale = max|x| / 127,
    q = C's round(x / scale), and back: q * scale."""
    out = np.empty_like(x)
    for start in range(0, x.size, gs):
        group = x[start:start + gs]
        scale = max(abs(v) for v in group) / 127
        for i, v in enumerate(group):
            out[start + i] = math.copysign(math.floor(abs(v / scale) + 0.5), v) * scale
    return out


def test_llama_logits_with_runq_activations():
    w = llama2c.random_model(GQA, 9, False)
    tokens = [1, 50, 7, 299, 3]
    naive = naive_llama(GQA, w, tokens, act=lambda x: runq_round(x, 8))
    ours = llama_logits(GQA, w, tokens, np.float64, activation_group=8)
    np.testing.assert_allclose(ours, naive, rtol=0, atol=1e-9)
    assert np.abs(ours - llama_logits(GQA, w, tokens, np.float64)).max() > 1e-4   # it does round
    x = np.array([127, 62.5, -62.5, 0.5, -0.5, 1.49, 0, 3], np.float32)
    assert runq_activations(x, 8).tolist() == [127, 63, -63, 1, -1, 1, 0, 3]      # halves away from 0
    assert runq_activations(np.zeros(4, np.float32), 4).tolist() == [0, 0, 0, 0]


def test_grouped_query_attention_is_multi_head_with_repeated_kv_heads():
    w = llama2c.random_model(GQA, 10, False)
    S, kv_mul = 4, 2
    mha = dict(w)
    for name in ("wk", "wv"):   # head h reads kv head h // kv_mul: repeat its rows for every h
        mha[name] = np.stack([np.concatenate([w[name][l][(h // kv_mul) * S:(h // kv_mul + 1) * S]
                                              for h in range(4)]) for l in range(2)])
    tokens = [1, 20, 30, 40, 50, 60]
    np.testing.assert_allclose(llama_logits(GQA, w, tokens, np.float64),
                               llama_logits(MHA, mha, tokens, np.float64), rtol=1e-12, atol=1e-12)
    # With n_kv_heads == n_heads the reference is plain multi-head attention.
    np.testing.assert_allclose(llama_logits(MHA, mha, tokens, np.float64), naive_llama(MHA, mha, tokens),
                               rtol=0, atol=1e-12)


def test_rope_angles_and_causality():
    c = Config(dim=8, hidden_dim=8, n_layers=1, n_heads=2, n_kv_heads=2, vocab_size=260, seq_len=8)
    cos, sin = rope_tables(c, [3])
    # head size 4: pairs 0..3 sit at head_dim 0, 2, 0, 2 -> freq 1, 1/100, 1, 1/100
    np.testing.assert_allclose(cos[0], np.cos([3, 0.03, 3, 0.03]), rtol=1e-6)
    np.testing.assert_allclose(sin[0], np.sin([3, 0.03, 3, 0.03]), rtol=1e-6)
    assert cos.dtype == np.float32
    w = llama2c.random_model(GQA, 11, True)
    full = llama_logits(GQA, w, [1, 5, 9, 200, 7], np.float64)
    np.testing.assert_allclose(llama_logits(GQA, w, [1, 5, 9], np.float64), full[:3], rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="token ids"):
        llama_logits(GQA, w, [1, 300])
    with pytest.raises(ValueError, match="seq_len"):
        llama_logits(GQA, w, [1] * 13)


def test_greedy_generation():
    w = llama2c.random_model(GQA, 12, False)
    prompt = [1, 100, 101]
    out = llama_generate_greedy(GQA, w, prompt, 5)
    seq = list(prompt)
    for token in out:
        assert token == int(np.argmax(llama_logits(GQA, w, seq)[-1]))
        seq.append(token)
    assert len(out) == 5
    # The context ends it: the last token is predicted at position seq_len - 1.
    assert len(llama_generate_greedy(GQA, w, prompt, 100)) == GQA.seq_len - len(prompt) + 1
    # BOS ends it, as in llama2.c: make BOS's classifier row dominate the first token's.
    first = out[0]
    bos_wins = {**w, "wcls": w["wcls"].copy()}
    bos_wins["wcls"][1] = 3 * w["wcls"][first]
    assert llama_logits(GQA, w, prompt)[-1][first] > 0
    assert llama_generate_greedy(GQA, bos_wins, prompt, 5) == []


# ------------------------------------------------------------------ tfq's llama mapping

@pytest.mark.parametrize("shared", [False, True])
def test_tfq_mapping_round_trip(tmp_path, shared):
    w = llama2c.random_model(GQA, 13, shared)
    tensors = llama_tfq_tensors(w)
    by_name = dict(tensors)
    qkv = by_name["blocks.1.attn.qkv.weight"]
    assert qkv.shape == (16 + 2 * 8, 16)
    np.testing.assert_array_equal(qkv[:16], w["wq"][1])
    np.testing.assert_array_equal(qkv[16:24], w["wk"][1])
    np.testing.assert_array_equal(qkv[24:], w["wv"][1])
    np.testing.assert_array_equal(by_name["blocks.0.ffn.gate.weight"], w["w1"][0])
    np.testing.assert_array_equal(by_name["blocks.0.ffn.up.weight"], w["w3"][0])
    assert ("lm_head.weight" in by_name) == (not shared)
    path = tmp_path / "m.tfq"
    tfq_write.write(path, tensors, {"kind": "model", "config": llama_tfq_config(GQA, shared)})
    config, back = llama_weights_from_tfq(path)
    assert config == GQA and list(back) == list(w)
    for name in w:
        np.testing.assert_array_equal(back[name], w[name], err_msg=name)


def test_tfq_mapping_rejects_other_models(tmp_path):
    w = llama2c.random_model(GQA, 14, True)
    cfg = llama_tfq_config(GQA, True)
    for change, text in [({"arch": "gpt"}, "arch"), ({"rope_theta": 500000}, "rope_theta"),
                         ({"norm_eps": 1e-6}, "norm_eps"), ({"activation": "gelu"}, "activation"),
                         ({"tie_embeddings": False}, "lm_head")]:
        path = tmp_path / "m.tfq"
        tfq_write.write(path, llama_tfq_tensors(w), {"config": {**cfg, **change}})
        with pytest.raises(ValueError, match=text):
            llama_weights_from_tfq(path)


# ------------------------------------------------------------------ command line

def run_tool(*args):
    return subprocess.run([sys.executable, str(TOOLS / "llama2c.py"), *map(str, args)],
                          capture_output=True, text=True)


def test_cli_random_and_inspect(tmp_path):
    out, tok = tmp_path / "m.bin", tmp_path / "t.bin"
    r = run_tool("random", "--dim", 16, "--layers", 1, "--heads", 2, "--hidden", 32, "--vocab", 400,
                 "--seq-len", 8, "--separate", "--version", 2, "--group-size", 64, "--out", out,
                 "--tokenizer-out", tok)
    assert r.returncode == 0, r.stderr
    assert "group size 16" in r.stdout and "separate" in r.stdout
    ckpt = llama2c.read_checkpoint(out)
    assert ckpt.config == Config(16, 32, 1, 2, 2, 400, 8) and not ckpt.shared_classifier
    assert len(llama2c.read_tokenizer(tok)[0]) == 400
    r = run_tool("inspect", out)
    assert r.returncode == 0 and "version 2" in r.stdout and "wcls" in r.stdout
    r = run_tool("random", "--heads", 5, "--out", out)
    assert r.returncode == 2 and "n_heads" in r.stderr


def test_shapes_of_the_stories_models():
    params = {name: sum(numel(s) for s in llama2c.weight_shapes(c, True).values())
              for name, c in llama2c.SHAPES.items()}
    assert params["stories15M"] == 15_191_712
    assert 41e6 < params["stories42M"] < 42e6 and 109e6 < params["stories110M"] < 111e6


# ------------------------------------------------------------------ the Swift tests' fixtures

def test_fixtures_regenerate_byte_for_byte(tmp_path):
    llama_fixtures.build(tmp_path)
    made = sorted(p.name for p in tmp_path.iterdir())
    swift_made = {llama_fixtures.TWO_PASS_MODEL, "two-pass.json"}   # an export by tfq, and its expectations
    assert made == sorted(p.name for p in FIXTURES.iterdir() if p.name not in swift_made), "the fixture files differ"
    for name in made:
        assert (tmp_path / name).read_bytes() == (FIXTURES / name).read_bytes(), \
            f"{name} differs: run python3 tools/llama2c.py fixtures --out {FIXTURES.relative_to(ROOT)}"
    assert sum((FIXTURES / n).stat().st_size for n in made) < 400_000


def test_fixtures_agree_with_the_float32_reference():
    doc = json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))
    pieces, scores, _ = llama2c.read_tokenizer(FIXTURES / "tokenizer.bin", doc["tokenizer"]["vocab_size"])
    for case in doc["tokenizer"]["encode"]:
        assert encode(case["text"], pieces, scores) == case["ids"]
    for case in doc["tokenizer"]["decode"]:
        assert list(decode(case["ids"], pieces)) == case["bytes"]
    assert len(doc["checkpoints"]) == 5
    for entry in doc["checkpoints"]:
        ckpt = llama2c.read_checkpoint(FIXTURES / entry["file"])
        assert vars(ckpt.config) == entry["config"] and ckpt.version == entry["version"]
        assert ckpt.shared_classifier == entry["shared_classifier"] and ckpt.group_size == entry["group_size"]
        logits = llama_logits(ckpt.config, ckpt.weights, doc["logits_ids"])
        expected = np.array(entry["logits"])
        np.testing.assert_allclose(logits, expected, rtol=0, atol=1e-5 * np.abs(expected).max())
        greedy = llama_generate_greedy(ckpt.config, ckpt.weights, doc["prompt_ids"], 20)
        assert greedy == entry["greedy_ids"] and entry["greedy_min_margin"] > 1e-3
    assert doc["prompt_ids"] == encode(doc["prompt"], pieces, scores)


# ------------------------------------------------------------------ end to end, with tfq

def find_tfq():
    candidates = [os.environ["TFQ_BIN"]] if os.environ.get("TFQ_BIN") else \
        [ROOT / ".build-native" / "release" / "tfq", ROOT / ".build" / "release" / "tfq"]
    for path in candidates:
        if os.path.isfile(path) and os.access(path, os.X_OK):
            try:
                help_ = subprocess.run([str(path), "import", "llama2c", "--help"], capture_output=True,
                                       text=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                continue
            # An older tfq answers with its top-level help (and status 0): look for the command's.
            if help_.returncode == 0 and "USAGE: tfq import" in help_.stdout:
                return str(path)
    return None


@pytest.fixture(scope="module")
def tfq():
    path = find_tfq()
    if path is None:
        pytest.skip("no tfq binary with `tfq import llama2c` (set TFQ_BIN, or build .build-native or .build)")
    return path


CHECKPOINT_FILES = [c[0] for c in llama_fixtures.CHECKPOINTS]


def expected_doc() -> dict:
    return json.loads((FIXTURES / "expected.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def imported(tfq, tmp_path_factory):
    """name -> the fixture checkpoint imported by `tfq import llama2c`, once per module."""
    out = tmp_path_factory.mktemp("imported")
    models = {}
    for name in CHECKPOINT_FILES:
        model = out / (name + ".tfq")
        r = subprocess.run([tfq, "import", "llama2c", str(FIXTURES / name), "--tokenizer",
                            str(FIXTURES / "tokenizer.bin"), "-o", str(model)],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, f"tfq import llama2c {name}: {r.stderr}"
        models[name] = model
    return models


def tfq_run(tfq, model, prompt, n):
    r = subprocess.run([tfq, "run", str(model), "--prompt", prompt, "-n", str(n), "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_tfq_import_keeps_weights_config_and_tokenizer(imported, name):
    ckpt = llama2c.read_checkpoint(FIXTURES / name)   # version 2: the dequantized values
    config, weights = llama_weights_from_tfq(imported[name])
    assert config == ckpt.config and list(weights) == list(ckpt.weights)
    for w, value in weights.items():
        np.testing.assert_array_equal(value, ckpt.weights[w], err_msg=w)

    import tfq_read
    with tfq_read.read(imported[name]) as f:
        meta = f.metadata
    expected_config = llama_tfq_config(ckpt.config, ckpt.shared_classifier)
    assert set(meta["config"]) == set(expected_config)
    for key, value in expected_config.items():
        if isinstance(value, float):     # norm_eps may come back as a float32's decimal
            assert meta["config"][key] == pytest.approx(value, rel=1e-6), key
        else:
            assert meta["config"][key] == value, key
    pieces, scores, _ = llama2c.read_tokenizer(FIXTURES / "tokenizer.bin", ckpt.config.vocab_size)
    tok = meta["tokenizer"]
    assert (tok["type"], tok["bos_id"], tok["eos_id"]) == ("llama2c", 1, 2)
    assert tok["pieces"] == [p.decode("utf-8") for p in pieces]
    assert np.array_equal(np.float32(tok["scores"]), np.float32(scores))


@pytest.mark.parametrize("name", CHECKPOINT_FILES)
def test_tfq_run_greedy_matches_the_reference(tfq, imported, name):
    doc = expected_doc()
    entry = next(e for e in doc["checkpoints"] if e["file"] == name)
    result = tfq_run(tfq, imported[name], doc["prompt"], 20)
    assert result["prompt_token_ids"] == doc["prompt_ids"]
    assert result["token_ids"] == entry["greedy_ids"]


@pytest.mark.parametrize("text", [t for t in llama_fixtures.ENCODE_CASES if t])  # "" prompts "\n"
def test_tfq_encodes_like_run_c(tfq, imported, text):
    case = next(c for c in expected_doc()["tokenizer"]["encode"] if c["text"] == text)
    assert tfq_run(tfq, imported["tiny-v0.bin"], text, 1)["prompt_token_ids"] == case["ids"]


def test_two_pass_activations_rebuild_within_half_the_second_scale():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 64)) * np.array([1, 10, 0.01])[:, None]
    x[1, :16] = 0                                           # a zero group: zeros, no NaN
    got = two_pass_activations(x, 16)
    first = runq_activations(x, 16)
    g = (x - first).reshape(3, 4, 16)
    s2 = np.abs(g).max(axis=-1, keepdims=True) / 127
    assert np.all(np.abs(got - x).reshape(3, 4, 16) <= s2 / 2 + 1e-15)
    assert np.all(got[1, :16] == 0)
    assert np.abs(got - x).max() < np.abs(first - x).max() / 100


def test_two_pass_expectations_are_the_reference():
    """two-pass.json (the Swift test's expectations for the committed two-pass export) is
    what tools/reference.py computes from that file, and the two roundings differ enough
    for the Swift test to tell which one the runtime did."""
    doc = json.loads((FIXTURES / "two-pass.json").read_text(encoding="utf-8"))
    fresh = llama_fixtures.two_pass_expectations(str(FIXTURES / llama_fixtures.TWO_PASS_MODEL))
    assert {k: v for k, v in fresh.items() if not k.startswith("logits")} == \
        {k: v for k, v in doc.items() if not k.startswith("logits")}
    two, one = np.array(doc["logits_two_pass"]), np.array(doc["logits_one_pass"])
    np.testing.assert_allclose(fresh["logits_two_pass"], two, rtol=0, atol=1e-5 * np.abs(two).max())
    np.testing.assert_allclose(fresh["logits_one_pass"], one, rtol=0, atol=1e-5 * np.abs(one).max())
    assert doc["two_pass_layers"] == [0] and len(doc["two_pass_weights"]) == 5
    assert np.abs(two - one).max() > 0.01 * np.abs(two).max()
