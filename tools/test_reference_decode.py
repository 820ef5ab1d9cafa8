"""formats/tfq.md §11 against tfq's runtime: tools/reference_decode.py, written from the spec,
must give `tfq run`'s greedy tokens and libtfq's logits bit for bit on the int8 models of
formats/testdata/decode (GPT with fp32 and q8 vocabulary tables, llama, two-pass layers).

The binaries: TFQ_BIN (default .build/release/tfq, the portable build: unfused
multiply-adds) and, when built, .build-native/release/tfq (the host-CPU build: fused on a
CPU with FMA); libtfq-c.so next to each.
"""
import contextlib
import ctypes
import functools
import json
import os
import subprocess
from fractions import Fraction

import numpy as np
import pytest

import reference_decode as ref
import tfq_read
import tfq_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DECODE = os.path.join(ROOT, "formats", "testdata", "decode")
with open(os.path.join(DECODE, "expected.json")) as _f:
    CASES = json.load(_f)["cases"]
IDS = [f"{c['model']}-{c['n']}" for c in CASES]


def binaries():
    found = []
    for path in (os.environ.get("TFQ_BIN", os.path.join(ROOT, ".build/release/tfq")),
                 os.path.join(ROOT, ".build-native/release/tfq")):
        if os.path.exists(path) and os.path.realpath(path) not in [os.path.realpath(p) for p in found]:
            found.append(path)
    return found


def run_json(binary, case):
    out = subprocess.run([binary, "run", os.path.join(DECODE, case["model"]), "--prompt-ids",
                          " ".join(map(str, case["prompt_token_ids"])), "-n", str(case["n"]), "--ignore-eos", "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@pytest.fixture(scope="module")
def models():
    return {name: ref.Model(os.path.join(DECODE, name)) for name in sorted({c["model"] for c in CASES})}


# ---------------------------------------------------------------- the reference alone

@pytest.mark.parametrize("fused", [False, True], ids=["unfused", "fused"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_reference_gives_the_committed_tokens(models, case, fused):
    tokens, reason = ref.generate(models[case["model"]], case["prompt_token_ids"], case["n"], fused, ignore_eos=True)
    assert tokens == case["fused" if fused else "unfused"]
    assert reason == case["stop_reason"]


def test_cases_cover_the_spec(models):
    """What the fixtures exercise, so that a regenerated set keeps covering it."""
    char, bpe, llama = models["gpt-char.int8.tfq"], models["gpt-bpe.int8.tfq"], models["llama.int8.tfq"]
    assert char.head.W is not None and char.config["vocab_size"] % 4 != 0          # fp32 classifier, a row after the fours
    assert bpe.head.W is None and bpe.config["tie_embeddings"] and bpe.head.two_pass is False
    assert all(layer.two_pass for b in bpe.blocks for layer in (b["qkv"], b["proj"], b["up"], b["down"]))
    head = models["gpt-bpe-head.int8.tfq"]
    assert head.head.two_pass and head.head.group == 16 and not any(b["qkv"].two_pass for b in head.blocks)
    half = models["gpt-bpe-f16.int8.tfq"]
    assert {half.file.entry(n).dtype for n in ("tok_emb", "pos_emb")} == {"f16"} and half.head.W is not None
    assert half.blocks[0]["qkv"].two_pass and not half.blocks[1]["qkv"].two_pass and half.head.two_pass is False
    assert llama.arch == "llama" and llama.kv_heads < llama.heads and llama.d_k % 8 and llama.blocks[0]["qkv"].group % 8
    assert llama.blocks[0]["qkv"].two_pass and not llama.blocks[1]["qkv"].two_pass
    assert {m.kv_cache for m in models.values()} == {"f16"}
    assert [c["stop_reason"] for c in CASES].count("context") == 1
    assert all(len(c["fused"]) >= 200 or c["stop_reason"] == "context" for c in CASES)


def test_fma_rounds_once():
    a, b = np.float32(1 + 2**-23), np.float32(1 - 2**-23)
    assert ref.fma(np.float32(-1), a, b) == np.float32(-(2**-46))
    assert ref.Arithmetic(False).mad(np.float32(-1), a, b) == 0
    # (1 + 2⁻²³) − 2⁻²⁴(1 + 2⁻²³)(1 − 2⁻²³) = 1 + 2⁻²⁴ + 2⁻⁷⁰: just above the midpoint of 1 and
    # 1 + 2⁻²³. Rounded to float64 first it is the midpoint, and ties to even give 1.
    acc, a, b = np.float32(1 + 2**-23), np.float32(-(2**-24) * (1 + 2**-23)), np.float32(1 - 2**-23)
    assert np.float32(np.float64(acc) + np.float64(a) * np.float64(b)) == 1
    assert ref.fma(acc, a, b) == np.float32(1 + 2**-23)
    rng = np.random.default_rng(5)
    for _ in range(3):
        a, b, c = (rng.standard_normal(10000).astype(np.float32) for _ in range(3))
        exact = [float(np.float32(fraction_fma(*t))) for t in zip(a.tolist(), b.tolist(), c.tolist())]
        assert np.array_equal(ref.fma(c, a, b), np.array(exact, np.float32))


def test_quantize_edge_groups():
    """§11.4 at its edges, the groups Q8KernelTests.quantizerEdgeGroupsFollowTheRule gives the
    runtime: a NaN is ignored by the maximum and quantized to 0; an infinite maximum makes
    1/s = 0; a maximum between ~9e-44 and ~3.7e-37 makes 1/s infinite, so non-zero values
    clamp to ±127; below that s rounds to 0; negative zeros give a zero scale."""
    x = np.array([1, np.nan, -2, 0.5, np.inf, -1, 0, 0, 1e-38, 2e-40, -3e-39, 0, -0.0, -0.0, -0.0, -0.0,
                  1e-44, -2e-44, 0, 1e-44], np.float32)
    q, s = ref.quantize(x, 4)
    assert q.tolist() == [[64, 0, -127, 32], [0, 0, 0, 0], [127, 127, -127, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert s[0] == np.float32(2) / np.float32(127) and s[1] == np.inf and s[3] == 0 and s[4] == 0   # 2e-44/127 rounds to 0
    assert s[2] < np.float32(2.0**-128)                  # so 1/s overflows


def fraction_fma(a, b, c):
    return binary32(Fraction(a) * Fraction(b) + Fraction(c))


def binary32(exact):
    """The binary32 value nearest the Fraction `exact` (ties to even), as a float: the
    float64 rounding's binary32 value or one of its neighbours (it may have rounded twice)."""
    near = np.float32(float(exact))
    candidates = {float(near), float(np.nextafter(near, np.float32(np.inf))), float(np.nextafter(near, np.float32(-np.inf)))}
    return min(candidates, key=lambda v: (abs(Fraction(v) - exact), np.float32(v).view(np.uint32) & 1))


def test_changing_one_rule_changes_the_tokens(models):
    """The committed tokens pin part of the arithmetic down: a binary32 KV cache instead of
    §11.6's binary16 takes at least one fixture (the llama, at token 17) on another path
    within 200 tokens. The logits tests below are the bit-for-bit check."""
    changed = 0
    for case in (c for c in CASES if c["stop_reason"] == "length"):
        other = ref.Model(os.path.join(DECODE, case["model"]), kv_cache="f32")
        tokens, _ = ref.generate(other, case["prompt_token_ids"], case["n"], False, ignore_eos=True)
        changed += tokens != case["unfused"]
    assert changed >= 1


# ---------------------------------------------------------------- against tfq

@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_tfq_run_gives_the_specs_tokens(case):
    found = binaries()
    if not found:
        pytest.skip("no tfq binary built")
    for binary in found:
        out = run_json(binary, case)
        expected = case["fused" if out["fused_multiply_add"] else "unfused"]
        assert out["prompt_token_ids"] == case["prompt_token_ids"]
        assert out["token_ids"] == expected, binary
        assert out["stop_reason"] == case["stop_reason"]
        assert out["kv_cache"] == "f16"


@functools.lru_cache(maxsize=None)
def libraries():
    """(libtfq-c.so, whether its build fuses) for each binary found."""
    found = []
    for binary in binaries():
        lib = os.path.join(os.path.dirname(os.path.realpath(binary)), "libtfq-c.so")
        if os.path.exists(lib):
            found.append((lib, run_json(binary, CASES[0])["fused_multiply_add"]))
    return tuple(found)


@contextlib.contextmanager
def libtfq_session(lib_path, model_path, vocab):
    """A one-thread libtfq session on `model_path`; yields evaluate(tokens) -> the logits
    of the last token (a copy)."""
    lib = ctypes.CDLL(lib_path)
    handle, session = ctypes.c_void_p(), ctypes.c_void_p()
    assert lib.tfq_model_open(model_path.encode(), ctypes.byref(handle)) == 0
    try:
        assert lib.tfq_session_new(handle, 1, ctypes.byref(session)) == 0
        logits = (ctypes.c_float * vocab)()

        def evaluate(tokens):
            assert lib.tfq_session_eval(session, (ctypes.c_int32 * len(tokens))(*tokens), len(tokens), logits, vocab) == 0
            return np.ctypeslib.as_array(logits).copy()
        yield evaluate
    finally:
        lib.tfq_session_free(session)
        lib.tfq_model_close(handle)


def assert_same_bits(got, expected, where):
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32)), \
        f"{where}: {np.count_nonzero(got != expected)} logits differ"


@pytest.mark.parametrize("model", ["gpt-char.int8.tfq", "gpt-bpe.int8.tfq", "gpt-bpe-head.int8.tfq", "gpt-bpe-f16.int8.tfq",
                                   "llama.int8.tfq"])
def test_logits_are_the_specs_bit_for_bit(models, model):
    """libtfq's logits after the prompt (one batched evaluation) and after each of 60 decode
    steps equal the reference's in every bit."""
    found = libraries()
    if not found:
        pytest.skip("no libtfq-c.so built")
    case = next(c for c in CASES if c["model"] == model)
    m = models[model]
    vocab = m.config["vocab_size"]
    prompt = case["prompt_token_ids"]
    for path, fused in found:
        with libtfq_session(path, os.path.join(DECODE, model), vocab) as evaluate, np.errstate(over="ignore"):
            got = evaluate(prompt)
            ar, cache = ref.Arithmetic(fused), m.new_cache()
            for p, token in enumerate(prompt):
                expected = m.step(token, p, cache, ar)
            for step in range(60):
                assert_same_bits(got, expected, f"{path} ({'fused' if fused else 'unfused'}), step {step}")
                token = ref.argmax(expected)
                got, expected = evaluate([token]), m.step(token, len(prompt) + step, cache, ar)


@pytest.mark.parametrize("model", ["gpt-char.int8.tfq", "llama.int8.tfq"])
def test_f32_decode_steps_are_the_specs_bit_for_bit(models, model, tmp_path):
    """§11 also gives an f32 model's decode step (mad-sum¹⁶ for every linear layer, a
    binary32 cache): the fixture's weights dequantized into an f32 file (tools/tfq_write.py),
    fed one token at a time."""
    found = libraries()
    if not found:
        pytest.skip("no libtfq-c.so built")
    source = models[model].file
    path = str(tmp_path / "f32.tfq")
    tfq_write.write(path, [(e.name, source.tensor(e.name)) for e in source.entries],
                    {"kind": "model", "config": source.metadata["config"], "tokenizer": source.metadata["tokenizer"]})
    m = ref.Model(path)
    assert m.kv_cache == "f32" and m.head.W is not None
    vocab = m.config["vocab_size"]
    for lib_path, fused in found:
        with libtfq_session(lib_path, path, vocab) as evaluate, np.errstate(over="ignore"):
            ar, cache, token = ref.Arithmetic(fused), m.new_cache(), 3
            for position in range(40):
                expected = m.step(token, position, cache, ar)
                assert_same_bits(evaluate([token]), expected, f"{lib_path}, position {position}")
                token = ref.argmax(expected)


# ---------------------------------------------------------------- q8f16 (format 1.5)

def with_f16_scales(source: str, out: str, dtype: str) -> None:
    """source's tensors, raw, with every q8 tensor's scales rounded to binary16: stored as
    q8f16 (dtype "q8f16") or as the same values in f32 (dtype "q8"). The scales keep their
    stored order (§6.2: only z differs between the two dtypes), so either layout is kept."""
    from test_tfq_read import Q8, Q8F16, RAW, T, build  # the byte-level writer of tfq_read's tests
    codes = {"f32": 1, "f16": 2, "q8": Q8}
    tensors = []
    with tfq_read.read(source) as f:
        for e in f.entries:
            data = f.decoded_bytes(e.name)
            if e.dtype != "q8":
                tensors.append(T(e.name, codes[e.dtype], e.shape, data, RAW))
                continue
            rows, cols, groups, padded = tfq_read.q8_geometry(e.shape, e.group_size)
            scales_at = tfq_read.align64(rows * cols) if e.layout == 0 else padded * cols
            scales = np.frombuffer(data, "<f4", offset=scales_at).astype("<f2")
            stored = scales if dtype == "q8f16" else scales.astype("<f4")
            tensors.append(T(e.name, Q8F16 if dtype == "q8f16" else Q8, e.shape,
                             data[:scales_at] + stored.tobytes(), RAW, e.layout, e.group_size))
        metadata = f.metadata
    with open(out, "wb") as fh:
        fh.write(build(tensors, metadata, version=(1, 5)))


@pytest.mark.parametrize("model", ["gpt-bpe.int8.tfq", "llama.int8.tfq"])
def test_q8f16_runs_as_q8_with_widened_scales(model, tmp_path):
    """§6.2: a q8f16 scale is widened to f32 and then used as q8's is. The fixture with its
    scales rounded to binary16, once as q8f16 and once as q8 holding the same values, gives
    the same logits in every bit (tied q8 table and two-pass layers in gpt-bpe, llama's
    grouped-query attention), and the binary16 KV cache of int8 models."""
    half, full = str(tmp_path / "half.tfq"), str(tmp_path / "full.tfq")
    with_f16_scales(os.path.join(DECODE, model), half, "q8f16")
    with_f16_scales(os.path.join(DECODE, model), full, "q8")
    a, b = ref.Model(half), ref.Model(full)
    assert a.file.entry("blocks.0.attn.qkv.weight").dtype == "q8f16" and a.file.version == (1, 5)
    assert b.file.entry("blocks.0.attn.qkv.weight").dtype == "q8"
    assert a.kv_cache == b.kv_cache == "f16"
    assert a.blocks[0]["qkv"].two_pass == b.blocks[0]["qkv"].two_pass
    assert a.blocks[0]["qkv"].scales.dtype == np.float32
    np.testing.assert_array_equal(a.blocks[0]["qkv"].scales, b.blocks[0]["qkv"].scales)
    case = next(c for c in CASES if c["model"] == model)
    for fused in (False, True):
        ar = ref.Arithmetic(fused)
        caches = a.new_cache(), b.new_cache()
        with np.errstate(over="ignore", invalid="ignore"):
            for p, token in enumerate(case["prompt_token_ids"] + [5, 9, 2, 7]):
                la, lb = a.step(token, p, caches[0], ar), b.step(token, p, caches[1], ar)
                assert_same_bits(la, lb, f"{model} ({'fused' if fused else 'unfused'}), position {p}")
    tokens, _ = ref.generate(a, case["prompt_token_ids"], 12, False, ignore_eos=True)
    assert tokens == ref.generate(b, case["prompt_token_ids"], 12, False, ignore_eos=True)[0]


@pytest.mark.parametrize("model", ["gpt-bpe.int8.tfq", "llama.int8.tfq"])
def test_tfq_run_gives_the_specs_tokens_on_q8f16(model, tmp_path):
    """tfq run on the q8f16 form of a fixture gives §11's tokens (the reference's). Skipped
    for binaries built before format 1.5, which refuse dtype code 4."""
    found = binaries()
    if not found:
        pytest.skip("no tfq binary built")
    path = str(tmp_path / "half.tfq")
    with_f16_scales(os.path.join(DECODE, model), path, "q8f16")
    case = next(c for c in CASES if c["model"] == model)
    m, ran = ref.Model(path), 0
    for binary in found:
        out = subprocess.run([binary, "run", path, "--prompt-ids", " ".join(map(str, case["prompt_token_ids"])),
                              "-n", "40", "--ignore-eos", "--json"], capture_output=True, text=True)
        if out.returncode != 0 and "dtype code 4" in out.stderr:
            continue  # a binary from before 1.5
        assert out.returncode == 0, out.stderr
        got = json.loads(out.stdout)
        tokens, _ = ref.generate(m, case["prompt_token_ids"], 40, got["fused_multiply_add"], ignore_eos=True)
        assert got["token_ids"] == tokens, binary
        assert got["kv_cache"] == "f16"
        ran += 1
    if not ran:
        pytest.skip("every tfq binary found predates q8f16 (unknown dtype code 4)")
