"""Tests for tools/reference.py (the numpy reference of the GPT model) and tools/tfq_write.py.

    cd /work/main && python3 -m pytest -q tools/test_reference.py

- the vectorized forward pass agrees with a naive per-position loop written from
  formats/tfq.md §9, and with known values;
- the hand-written backward pass agrees with finite differences of the forward pass, for
  relu and gelu, tied and untied embeddings, with and without biases;
- tfq_write produces tfq's bytes, and reference.py's command line accepts a case file
  whose Swift results are right and names the tensor that is wrong.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfq_read  # noqa: E402
import tfq_write  # noqa: E402
from reference import Config, backward, forward, loss_and_grads, parameter_shapes  # noqa: E402

TOOLS = Path(__file__).parent
TESTDATA = TOOLS.parent / "formats" / "testdata"
VARIANTS = [(act, tie, bias) for act in ("relu", "gelu") for tie in (False, True) for bias in (True, False)]


def tiny_config(activation="gelu", tie=False, bias=True, **changes):
    cfg = dict(arch="gpt", vocab_size=7, context_length=8, n_layers=2, n_heads=2, dim=8,
               ff_dim=12, activation=activation, tie_embeddings=tie, bias=bias, norm_eps=1e-5)
    return {**cfg, **changes}


def random_params(cfg: dict, rng) -> dict:
    """Weights large enough that attention, LayerNorm and the activations are far from trivial."""
    params = {}
    for name, shape in parameter_shapes(Config.from_dict(cfg)).items():
        if name.endswith(("ln1.weight", "ln2.weight", "ln_f.weight")):
            params[name] = 1.0 + 0.3 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            params[name] = 0.3 * rng.standard_normal(shape)
        elif name in ("tok_emb", "pos_emb"):
            params[name] = rng.standard_normal(shape)
        else:
            params[name] = rng.standard_normal(shape) / math.sqrt(shape[1]) * 1.5
    return params


def random_batch(cfg: dict, rng, B=2, T=5):
    inputs = rng.integers(0, cfg["vocab_size"], (B, T))
    targets = rng.integers(0, cfg["vocab_size"], (B, T))
    return inputs, targets


# ------------------------------------------------------------------ forward pass

def naive_forward(params, c, inputs, targets):
    """The forward pass position by position and head by head, straight from §9."""
    D, H = c["dim"], c["n_heads"]
    K = D // H
    p = {n: np.asarray(v, np.float64) for n, v in params.items()}

    def ln(x, name):
        mu = sum(x) / D
        var = sum((xj - mu) ** 2 for xj in x) / D
        b = p[name + ".bias"] if c["bias"] else np.zeros(D)
        return np.array([(x[j] - mu) / math.sqrt(var + c["norm_eps"]) * p[name + ".weight"][j] + b[j]
                         for j in range(D)])

    def lin(name, x):
        y = p[name + ".weight"] @ x
        return y + p[name + ".bias"] if c["bias"] else y

    def act(z):
        if c["activation"] == "relu":
            return np.array([max(zj, 0.0) for zj in z])
        return np.array([0.5 * zj * (1 + math.tanh(math.sqrt(2 / math.pi) * (zj + 0.044715 * zj ** 3)))
                         for zj in z])

    B, T = inputs.shape
    logits = np.zeros((B, T, c["vocab_size"]))
    total = 0.0
    for b in range(B):
        xs = [p["tok_emb"][inputs[b, t]] + p["pos_emb"][t] for t in range(T)]
        for i in range(c["n_layers"]):
            qkv = [lin(f"blocks.{i}.attn.qkv", ln(x, f"blocks.{i}.ln1")) for x in xs]
            ys = []
            for t in range(T):
                y = []
                for h in range(H):
                    q = qkv[t][h * K:(h + 1) * K]
                    scores = [q @ qkv[s][D + h * K:D + (h + 1) * K] / math.sqrt(K) for s in range(t + 1)]
                    weights = [math.exp(sc - max(scores)) for sc in scores]
                    y.extend(sum(w / sum(weights) * qkv[s][2 * D + h * K:2 * D + (h + 1) * K]
                                 for s, w in enumerate(weights)))
                ys.append(np.array(y))
            xs = [x + lin(f"blocks.{i}.attn.proj", y) for x, y in zip(xs, ys)]
            xs = [x + lin(f"blocks.{i}.ffn.down", act(lin(f"blocks.{i}.ffn.up", ln(x, f"blocks.{i}.ln2"))))
                  for x in xs]
        head = p["tok_emb"] if c["tie_embeddings"] else p["lm_head.weight"]
        for t in range(T):
            z = head @ ln(xs[t], "ln_f")
            logits[b, t] = z
            total += math.log(sum(math.exp(zj - z.max()) for zj in z)) + z.max() - z[targets[b, t]]
    return total / (B * T), logits


@pytest.mark.parametrize("activation,tie,bias", VARIANTS)
def test_forward_matches_naive_loop(activation, tie, bias):
    cfg = tiny_config(activation, tie, bias)
    rng = np.random.default_rng(1)
    params = random_params(cfg, rng)
    inputs, targets = random_batch(cfg, rng)
    loss, logits, _ = forward(params, cfg, inputs, targets)
    naive_loss, naive_logits = naive_forward(params, cfg, inputs, targets)
    assert abs(loss - naive_loss) < 1e-12
    np.testing.assert_allclose(logits, naive_logits, rtol=0, atol=1e-12)


def test_forward_known_values():
    cfg = tiny_config(tie=True)
    rng = np.random.default_rng(2)
    params = random_params(cfg, rng)
    inputs, targets = random_batch(cfg, rng, B=3, T=8)
    # A zero head gives uniform predictions: loss = log V.
    zero_head = {**params, "ln_f.weight": np.zeros(8), "ln_f.bias": np.zeros(8)}
    assert forward(zero_head, cfg, inputs, targets)[0] == pytest.approx(math.log(7), abs=1e-15)
    # Causal: changing the last token changes nothing before it; sequences are independent.
    _, logits, _ = forward(params, cfg, inputs, targets)
    changed = inputs.copy()
    changed[0, -1] = (changed[0, -1] + 1) % 7
    _, logits2, _ = forward(params, cfg, changed, targets)
    np.testing.assert_array_equal(logits2[:, :-1], logits[:, :-1])
    np.testing.assert_array_equal(logits2[1:], logits[1:])
    assert np.abs(logits2[0, -1] - logits[0, -1]).max() > 1e-3
    _, single, _ = forward(params, cfg, inputs[1:2, :4], targets[1:2, :4])
    np.testing.assert_allclose(single[0], logits[1, :4], rtol=0, atol=1e-13)


def test_forward_rejects_bad_inputs():
    cfg = tiny_config()
    params = random_params(cfg, np.random.default_rng(3))
    ids = np.zeros((1, 3))
    for bad, text in [(np.full((1, 3), 7.0), "token ids"), (np.full((1, 3), 0.5), "token ids"),
                      (np.zeros((1, 9)), "context_length"), (np.zeros(3), "shape")]:
        with pytest.raises(ValueError, match=text):
            forward(params, cfg, bad, bad)
    with pytest.raises(ValueError, match="blocks.1.ffn.up.bias"):
        forward({k: v for k, v in params.items() if k != "blocks.1.ffn.up.bias"}, cfg, ids, ids)
    with pytest.raises(ValueError, match="n_heads"):
        forward(params, tiny_config(n_heads=3), ids, ids)


# ------------------------------------------------------------------ gradients

def relu_masks(cache):
    return [blk["ffn_pre"] > 0 for blk in cache.blocks]


def finite_difference(params, cfg, inputs, targets, name, index, base_masks, h=1e-4):
    """Fourth-order central difference of the loss in params[name][index], or None if a
    relu changes sides within the stencil (the loss is not smooth there)."""
    values = {}
    for step in (-2, -1, 1, 2):
        shifted = params[name].copy()
        shifted[index] += step * h
        loss, _, cache = forward({**params, name: shifted}, cfg, inputs, targets)
        if cfg["activation"] == "relu" and any(
                np.any(m != b) for m, b in zip(relu_masks(cache), base_masks)):
            return None
        values[step] = loss
    return (8 * (values[1] - values[-1]) - (values[2] - values[-2])) / (12 * h)


@pytest.mark.parametrize("activation,tie,bias", VARIANTS)
def test_gradients_match_finite_differences(activation, tie, bias):
    cfg = tiny_config(activation, tie, bias)
    rng = np.random.default_rng(10 + VARIANTS.index((activation, tie, bias)))
    params = random_params(cfg, rng)
    inputs, targets = random_batch(cfg, rng)
    T = inputs.shape[1]
    _, _, cache = forward(params, cfg, inputs, targets)
    grads = backward(cache)
    assert list(grads) == list(parameter_shapes(Config.from_dict(cfg)))
    assert ("lm_head.weight" in grads) == (not tie)
    assert any(n.endswith(".bias") for n in grads) == bias
    np.testing.assert_array_equal(grads["pos_emb"][T:], 0.0)  # positions never used
    checked = 0
    for name, grad in grads.items():
        assert grad.shape == params[name].shape and grad.dtype == np.float64
        rows = T if name == "pos_emb" else grad.shape[0]
        flat = rng.choice(rows * grad[0].size, size=min(8, rows * grad[0].size), replace=False)
        numeric, analytic = [], []
        for index in (np.unravel_index(i, grad.shape) for i in flat):
            fd = finite_difference(params, cfg, inputs, targets, name, index, relu_masks(cache))
            if fd is not None:
                numeric.append(fd)
                analytic.append(grad[index])
        assert len(numeric) >= len(flat) // 2, f"{name}: too many samples on a relu kink"
        checked += len(numeric)
        numeric, analytic = np.array(numeric), np.array(analytic)
        err = np.linalg.norm(numeric - analytic) / max(np.linalg.norm(analytic), 1e-6)
        assert err < 1e-6, f"{name}: relative error {err:.2e}\n fd {numeric}\n analytic {analytic}"
    assert checked >= 6 * len(grads)


def test_tied_gradient_sums_lookup_and_head():
    cfg = tiny_config(tie=True)
    rng = np.random.default_rng(4)
    params = random_params(cfg, rng)
    inputs, targets = random_batch(cfg, rng)
    tied = loss_and_grads(params, cfg, inputs, targets)[2]["tok_emb"]
    untied_cfg = tiny_config(tie=False)
    untied = loss_and_grads({**params, "lm_head.weight": params["tok_emb"]}, untied_cfg, inputs, targets)[2]
    np.testing.assert_allclose(tied, untied["tok_emb"] + untied["lm_head.weight"], rtol=1e-13, atol=1e-15)


# ------------------------------------------------------------------ tfq_write

@pytest.mark.skipif(not (TESTDATA / "f32_raw.tfq").exists(), reason="formats/testdata not present")
def test_writer_reproduces_tfq_bytes():
    expected = (TESTDATA / "f32_raw.tfq").read_bytes()
    with tfq_read.read(TESTDATA / "f32_raw.tfq") as f:
        tensors = [(e.name, f.tensor(e.name)) for e in f.entries]
        metadata = f.metadata
    assert tfq_write.encode(tensors, metadata) == expected


def test_writer_round_trip(tmp_path):
    rng = np.random.default_rng(5)
    tensors = [("scalar", np.float32(-2.5)), ("m", rng.standard_normal((3, 5)).astype(np.float32)),
               ("é.cube", rng.standard_normal((2, 1, 65)))]
    path = tmp_path / "t.tfq"
    tfq_write.write(path, tensors, {"config": {"dim": 8}, "extra": {"a": "ü"}})
    with tfq_read.read(path) as f:
        f.verify()
        assert f.metadata == {"config": {"dim": 8}, "extra": {"a": "ü"}}
        assert [e.name for e in f.entries] == ["scalar", "m", "é.cube"]
        assert all(e.offset % 64 == 0 for e in f.entries)
        for name, value in tensors:
            np.testing.assert_array_equal(f.tensor(name), np.asarray(value, np.float32))
    with pytest.raises(ValueError, match="twice"):
        tfq_write.encode([("a", [1.0]), ("a", [2.0])])
    with pytest.raises(ValueError, match="dim"):
        tfq_write.encode([("a", np.zeros((2, 0)))])


# ------------------------------------------------------------------ command line

PERTURBED = "blocks.1.attn.qkv.weight"


def write_case(path, cfg, seed=6, edit=None):
    """A case file as the Swift test writes it, with the reference's own results as the
    'Swift' results (computed from the f32 parameters, stored as f32)."""
    rng = np.random.default_rng(seed)
    params = {n: v.astype(np.float32) for n, v in random_params(cfg, rng).items()}
    inputs, targets = random_batch(cfg, rng, B=2, T=6)
    loss, logits, grads = loss_and_grads(params, cfg, inputs, targets)
    tensors = dict(params)
    tensors.update({"batch.inputs": inputs.astype(np.float32), "batch.targets": targets.astype(np.float32),
                    "out.loss": np.array(loss, np.float32), "out.logits": logits})
    tensors.update({f"grad.{n}": g for n, g in grads.items()})
    if edit:
        edit(tensors)
    tfq_write.write(path, list(tensors.items()), {"kind": "reference-case", "config": cfg})
    return path


def run_cli(*args):
    return subprocess.run([sys.executable, str(TOOLS / "reference.py"), *map(str, args)],
                          capture_output=True, text=True)


@pytest.mark.parametrize("tie", [False, True])
def test_cli_accepts_matching_case(tmp_path, tie):
    cfg = tiny_config("gelu" if tie else "relu", tie, bias=not tie)
    path = write_case(tmp_path / "case.tfq", cfg)
    table = run_cli(path)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "grad.tok_emb" in table.stdout and "OK" in table.stdout
    assert ("grad.lm_head.weight" in table.stdout) == (not tie)
    out = run_cli(path, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is True and doc["max_rel_error"] < 1e-6
    assert set(doc["grads"]) == set(parameter_shapes(Config.from_dict(cfg)))
    assert doc["loss"]["rel_error"] < 1e-6 and doc["logits_rel_error"] < 1e-6
    assert doc["loss"]["swift"] == pytest.approx(doc["loss"]["reference"], rel=1e-6)


def test_cli_names_a_wrong_gradient(tmp_path):
    def perturb(tensors):
        tensors[f"grad.{PERTURBED}"] = tensors[f"grad.{PERTURBED}"] * (1 + 1e-3)
    path = write_case(tmp_path / "case.tfq", tiny_config(), edit=perturb)
    out = run_cli(path)
    assert out.returncode == 1
    assert f"grad.{PERTURBED}" in out.stderr and "FAIL" in out.stderr
    out = run_cli(path, "--json")
    assert out.returncode == 1 and f"grad.{PERTURBED}" in out.stderr
    doc = json.loads(out.stdout)
    assert doc["ok"] is False and doc["worst"] == f"grad.{PERTURBED}"
    assert doc["max_rel_error"] == pytest.approx(1e-3, rel=1e-3)
    assert all(v < 1e-6 for n, v in doc["grads"].items() if n != PERTURBED)
    assert run_cli(path, "--tolerance", "2e-3").returncode == 0


def test_cli_missing_or_nan_gradient_fails(tmp_path):
    missing = write_case(tmp_path / "missing.tfq", tiny_config(),
                         edit=lambda t: t.pop("grad.blocks.0.ffn.down.bias"))
    out = run_cli(missing, "--json")
    assert out.returncode == 1 and "grad.blocks.0.ffn.down.bias is missing" in out.stderr
    doc = json.loads(out.stdout)
    assert doc["missing_grads"] == ["blocks.0.ffn.down.bias"] and doc["ok"] is False

    def nan(tensors):
        tensors["out.logits"] = np.full_like(tensors["out.logits"], np.nan)
    out = run_cli(write_case(tmp_path / "nan.tfq", tiny_config(), edit=nan))
    assert out.returncode == 1 and "out.logits" in out.stderr


@pytest.mark.parametrize("edit,text", [
    (lambda t: t.pop("batch.inputs"), "'batch.inputs'"),
    (lambda t: t.pop("blocks.0.ln2.weight"), "'blocks.0.ln2.weight'"),
    (lambda t: t.pop("out.loss"), "'out.loss'"),
    (lambda t: t.update({"batch.targets": np.full((2, 6), 9.0)}), "targets"),
    (lambda t: t.update({"ln_f.weight": np.ones(5)}), "ln_f.weight"),
])
def test_cli_unusable_case(tmp_path, edit, text):
    out = run_cli(write_case(tmp_path / "case.tfq", tiny_config(), edit=edit))
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and text in out.stderr


def test_cli_unusable_file(tmp_path):
    garbage = tmp_path / "garbage.tfq"
    garbage.write_bytes(b"not a tfq file")
    no_config = tmp_path / "no_config.tfq"
    tfq_write.write(no_config, [("x", [1.0])], {"kind": "model"})
    bad_config = tmp_path / "bad_config.tfq"
    tfq_write.write(bad_config, [("x", [1.0])], {"config": tiny_config(activation="tanh")})
    for path, text in [(garbage, "garbage.tfq"), (tmp_path / "absent.tfq", "absent.tfq"),
                       (no_config, "config"), (bad_config, "activation")]:
        out = run_cli(path)
        assert out.returncode == 2 and out.stderr.count("\n") == 1 and text in out.stderr, out.stderr
