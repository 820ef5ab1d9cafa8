#!/usr/bin/env python3
"""An independent numpy reference of tfq's models: the GPT's forward pass, loss and gradients,
and the forward pass of llama2.c's llama (below).

Written from formats/tfq.md §9 to check the Swift implementation. Everything is computed in
float64; the backward pass is written out by hand, one function per layer, next to the
layer's forward. Shapes in comments: B batch, T positions, D dim, F ff_dim, V vocab_size,
H heads, K = D / H (d_k).

    loss, logits, cache = forward(params, config, inputs, targets)
    grads = backward(cache)                    # {parameter name: d loss / d parameter}

The llama section (llama_logits, llama_generate_greedy, llama_weights_from_tfq) is a
float32 reference of llama2.c's forward pass, for models imported from llama2.c
checkpoints; see its comment.

Command line: check a case file written by the Swift tests,

    reference.py CASE.tfq [--json] [--tolerance 1e-4]

CASE.tfq holds metadata "config", every parameter under its name, `batch.inputs` and
`batch.targets` ([B, T] token ids stored as f32), and Swift's results `out.loss` (shape []),
`out.logits` [B, T, V] and `grad.NAME` for every parameter NAME. Exit status: 0 if every
relative error is within the tolerance, 1 if not (or a grad is missing), 2 if the file
cannot be used.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from dataclasses import dataclass

import numpy as np


# ---------------------------------------------------------------- configuration and names

@dataclass(frozen=True)
class Config:
    vocab_size: int
    context_length: int
    n_layers: int
    n_heads: int
    dim: int
    ff_dim: int
    activation: str
    tie_embeddings: bool
    bias: bool
    norm_eps: float

    @staticmethod
    def from_dict(d: dict) -> "Config":
        """Checks metadata "config" (§9) and returns it; ValueError naming the bad key."""
        if not isinstance(d, dict):
            raise ValueError("config is not a JSON object")
        if d.get("arch", "gpt") != "gpt":
            raise ValueError(f"config arch {d['arch']!r} is not 'gpt'")
        values = {}
        for key in ("vocab_size", "context_length", "n_layers", "n_heads", "dim", "ff_dim"):
            v = d.get(key)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"config {key} is {v!r}, not an integer >= 1")
            values[key] = v
        for key in ("tie_embeddings", "bias"):
            if not isinstance(d.get(key), bool):
                raise ValueError(f"config {key} is {d.get(key)!r}, not true or false")
            values[key] = d[key]
        if d.get("activation") not in ("relu", "gelu"):
            raise ValueError(f"config activation is {d.get('activation')!r}, not 'relu' or 'gelu'")
        eps = d.get("norm_eps")
        if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not 0 <= eps < math.inf:
            raise ValueError(f"config norm_eps is {eps!r}, not a number >= 0")
        if values["dim"] % values["n_heads"]:
            raise ValueError(f"config dim {values['dim']} is not a multiple of n_heads {values['n_heads']}")
        return Config(activation=d["activation"], norm_eps=float(eps), **values)


def parameter_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Every parameter tensor of the model, name: shape, in §9's order."""
    V, D, F = cfg.vocab_size, cfg.dim, cfg.ff_dim
    shapes = {"tok_emb": (V, D), "pos_emb": (cfg.context_length, D)}

    def linear(name, out_features, in_features):
        shapes[f"{name}.weight"] = (out_features, in_features)
        if cfg.bias:
            shapes[f"{name}.bias"] = (out_features,)

    def layernorm(name):
        shapes[f"{name}.weight"] = (D,)
        if cfg.bias:
            shapes[f"{name}.bias"] = (D,)

    for i in range(cfg.n_layers):
        layernorm(f"blocks.{i}.ln1")
        linear(f"blocks.{i}.attn.qkv", 3 * D, D)
        linear(f"blocks.{i}.attn.proj", D, D)
        layernorm(f"blocks.{i}.ln2")
        linear(f"blocks.{i}.ffn.up", F, D)
        linear(f"blocks.{i}.ffn.down", D, F)
    layernorm("ln_f")
    if not cfg.tie_embeddings:
        shapes["lm_head.weight"] = (V, D)
    return shapes


# ---------------------------------------------------------------- layers: forward and backward

def embedding_forward(tok_emb, pos_emb, inputs):
    """tok_emb [V, D], pos_emb [C, D], inputs [B, T] int -> x [B, T, D]"""
    return tok_emb[inputs] + pos_emb[:inputs.shape[1]]


def embedding_backward(dx, inputs, vocab_size, context_length):
    """dx [B, T, D] -> (d tok_emb [V, D], d pos_emb [C, D])"""
    dtok = np.zeros((vocab_size, dx.shape[-1]))
    np.add.at(dtok, inputs, dx)                    # a token used twice gets both rows' grads
    dpos = np.zeros((context_length, dx.shape[-1]))
    dpos[:dx.shape[1]] = dx.sum(axis=0)
    return dtok, dpos


def layernorm_forward(x, weight, bias, eps):
    """x [..., D] -> y [..., D]; mean and biased variance over the last dim"""
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean) * rstd
    y = xhat * weight + (0.0 if bias is None else bias)
    return y, (xhat, rstd, weight)


def layernorm_backward(dy, cache):
    """dy [..., D] -> (dx [..., D], d weight [D], d bias [D])"""
    xhat, rstd, weight = cache
    dxhat = dy * weight
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    rows = tuple(range(dy.ndim - 1))
    return dx, (dy * xhat).sum(axis=rows), dy.sum(axis=rows)


def linear_forward(x, weight, bias):
    """x [..., in], weight [out, in], bias [out] or None -> y [..., out] = x W^T + b"""
    y = x @ weight.T
    return (y if bias is None else y + bias), x


def linear_backward(dy, x, weight):
    """dy [..., out] -> (dx [..., in], d weight [out, in], d bias [out])"""
    dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    return dy @ weight, dy2.T @ x2, dy2.sum(axis=0)


def attention_forward(qkv, n_heads):
    """qkv [B, T, 3D] -> y [B, T, D]: causal softmax attention, heads concatenated in order"""
    B, T, D3 = qkv.shape
    D = D3 // 3
    K = D // n_heads

    def heads(m):  # [B, T, D] -> [B, H, T, K]; head h is columns h*K ... (h+1)*K - 1
        return m.reshape(B, T, n_heads, K).transpose(0, 2, 1, 3)

    q, k, v = heads(qkv[..., :D]), heads(qkv[..., D:2 * D]), heads(qkv[..., 2 * D:])
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(K)       # [B, H, T, T]
    causal = np.tril(np.ones((T, T), dtype=bool))              # position i sees j <= i
    scores = np.where(causal, scores, -np.inf)
    p = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p /= p.sum(axis=-1, keepdims=True)                         # [B, H, T, T]
    y = (p @ v).transpose(0, 2, 1, 3).reshape(B, T, D)
    return y, (q, k, v, p)


def attention_backward(dy, cache):
    """dy [B, T, D] -> d qkv [B, T, 3D]"""
    q, k, v, p = cache
    B, H, T, K = q.shape
    dy = dy.reshape(B, T, H, K).transpose(0, 2, 1, 3)         # [B, H, T, K]
    dp = dy @ v.transpose(0, 1, 3, 2)                          # [B, H, T, T]
    dv = p.transpose(0, 1, 3, 2) @ dy                          # [B, H, T, K]
    dscores = p * (dp - (dp * p).sum(axis=-1, keepdims=True)) / math.sqrt(K)  # masked: p = 0
    dq = dscores @ k
    dk = dscores.transpose(0, 1, 3, 2) @ q

    def merge(m):  # [B, H, T, K] -> [B, T, D]
        return m.transpose(0, 2, 1, 3).reshape(B, T, H * K)

    return np.concatenate([merge(dq), merge(dk), merge(dv)], axis=-1)


GELU_C = math.sqrt(2.0 / math.pi)


def activation_forward(name, u):
    if name == "relu":
        return np.maximum(u, 0.0)
    return 0.5 * u * (1.0 + np.tanh(GELU_C * (u + 0.044715 * u ** 3)))


def activation_backward(name, dout, u):
    if name == "relu":
        return dout * (u > 0)
    t = np.tanh(GELU_C * (u + 0.044715 * u ** 3))
    return dout * (0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * GELU_C * (1.0 + 3 * 0.044715 * u * u))


def cross_entropy_forward(logits, targets):
    """logits [B, T, V], targets [B, T] -> (mean loss in nats, probabilities [B, T, V])"""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    picked = np.take_along_axis(log_probs, targets[..., None], axis=-1)
    return -picked.mean(), np.exp(log_probs)


def cross_entropy_backward(probs, targets):
    """-> d logits [B, T, V] = (softmax - one_hot(targets)) / (B*T)"""
    dlogits = probs.copy()
    np.put_along_axis(dlogits, targets[..., None],
                      np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1.0, axis=-1)
    return dlogits / targets.size


# ---------------------------------------------------------------- transformer block

def block_forward(p, cfg: Config, i: int, x):
    """x [B, T, D] -> x [B, T, D]; p maps parameter names to float64 arrays"""
    name = f"blocks.{i}."
    a, ln1 = layernorm_forward(x, p[name + "ln1.weight"], p.get(name + "ln1.bias"), cfg.norm_eps)
    qkv, qkv_in = linear_forward(a, p[name + "attn.qkv.weight"], p.get(name + "attn.qkv.bias"))
    y, attn = attention_forward(qkv, cfg.n_heads)
    out, proj_in = linear_forward(y, p[name + "attn.proj.weight"], p.get(name + "attn.proj.bias"))
    x = x + out
    m, ln2 = layernorm_forward(x, p[name + "ln2.weight"], p.get(name + "ln2.bias"), cfg.norm_eps)
    u, up_in = linear_forward(m, p[name + "ffn.up.weight"], p.get(name + "ffn.up.bias"))  # [B, T, F]
    hidden = activation_forward(cfg.activation, u)
    out, down_in = linear_forward(hidden, p[name + "ffn.down.weight"], p.get(name + "ffn.down.bias"))
    cache = dict(ln1=ln1, qkv_in=qkv_in, attn=attn, proj_in=proj_in, ln2=ln2, up_in=up_in,
                 ffn_pre=u, down_in=down_in)
    return x + out, cache


def block_backward(dx, p, cfg: Config, i: int, cache, grads):
    """dx [B, T, D] (d loss / d block output) -> d loss / d block input; adds to grads"""
    name = f"blocks.{i}."

    def put(layer, *pairs):
        for suffix, g in pairs:
            if suffix == "bias" and not cfg.bias:
                continue
            grads[f"{name}{layer}.{suffix}"] = g

    dhidden, dw, db = linear_backward(dx, cache["down_in"], p[name + "ffn.down.weight"])
    put("ffn.down", ("weight", dw), ("bias", db))
    du = activation_backward(cfg.activation, dhidden, cache["ffn_pre"])
    dm, dw, db = linear_backward(du, cache["up_in"], p[name + "ffn.up.weight"])
    put("ffn.up", ("weight", dw), ("bias", db))
    dmid, dw, db = layernorm_backward(dm, cache["ln2"])
    put("ln2", ("weight", dw), ("bias", db))
    dx = dx + dmid                                   # residual around the feed-forward
    dy, dw, db = linear_backward(dx, cache["proj_in"], p[name + "attn.proj.weight"])
    put("attn.proj", ("weight", dw), ("bias", db))
    dqkv = attention_backward(dy, cache["attn"])
    da, dw, db = linear_backward(dqkv, cache["qkv_in"], p[name + "attn.qkv.weight"])
    put("attn.qkv", ("weight", dw), ("bias", db))
    din, dw, db = layernorm_backward(da, cache["ln1"])
    put("ln1", ("weight", dw), ("bias", db))
    return dx + din                                  # residual around the attention


# ---------------------------------------------------------------- the model

@dataclass
class ForwardCache:
    cfg: Config
    params: dict            # name: float64 array
    inputs: np.ndarray      # [B, T] int
    targets: np.ndarray     # [B, T] int
    blocks: list            # one block_forward cache per block
    ln_f: tuple
    h: np.ndarray           # [B, T, D], LayerNorm(x; ln_f)
    probs: np.ndarray       # [B, T, V]


def token_ids(ids, what: str, cfg: Config) -> np.ndarray:
    """[B, T] token ids (integers, possibly stored as floats) -> int64, checked"""
    a = np.asarray(ids)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"{what} has shape {list(a.shape)}, not [B, T] with B, T >= 1")
    if not (np.all(np.isfinite(a)) and np.all(a == np.round(a))
            and a.min() >= 0 and a.max() < cfg.vocab_size):
        raise ValueError(f"{what} holds values that are not token ids 0 ... {cfg.vocab_size - 1}")
    if a.shape[1] > cfg.context_length:
        raise ValueError(f"{what} has T = {a.shape[1]} > context_length {cfg.context_length}")
    return a.astype(np.int64)


def forward(params: dict, config, inputs, targets):
    """-> (loss: float, logits [B, T, V] float64, cache for backward)"""
    cfg = config if isinstance(config, Config) else Config.from_dict(config)
    p = {}
    for name, shape in parameter_shapes(cfg).items():
        if name not in params:
            raise ValueError(f"parameter {name} is missing")
        p[name] = np.asarray(params[name], dtype=np.float64)
        if p[name].shape != shape:
            raise ValueError(f"parameter {name} has shape {list(p[name].shape)}, not {list(shape)}")
    inputs = token_ids(inputs, "inputs", cfg)
    targets = token_ids(targets, "targets", cfg)
    if inputs.shape != targets.shape:
        raise ValueError(f"inputs {list(inputs.shape)} and targets {list(targets.shape)} differ in shape")

    x = embedding_forward(p["tok_emb"], p["pos_emb"], inputs)             # [B, T, D]
    caches = []
    for i in range(cfg.n_layers):
        x, cache = block_forward(p, cfg, i, x)
        caches.append(cache)
    h, ln_f = layernorm_forward(x, p["ln_f.weight"], p.get("ln_f.bias"), cfg.norm_eps)
    head = p["tok_emb"] if cfg.tie_embeddings else p["lm_head.weight"]   # [V, D]
    logits = h @ head.T                                                    # [B, T, V]
    loss, probs = cross_entropy_forward(logits, targets)
    return float(loss), logits, ForwardCache(cfg, p, inputs, targets, caches, ln_f, h, probs)


def backward(cache: ForwardCache) -> dict[str, np.ndarray]:
    """-> {parameter name: d loss / d parameter}, float64, for every parameter"""
    cfg, p = cache.cfg, cache.params
    grads: dict[str, np.ndarray] = {}
    dlogits = cross_entropy_backward(cache.probs, cache.targets)          # [B, T, V]
    head = p["tok_emb"] if cfg.tie_embeddings else p["lm_head.weight"]
    dh, dhead, _ = linear_backward(dlogits, cache.h, head)
    dx, dw, db = layernorm_backward(dh, cache.ln_f)
    grads["ln_f.weight"] = dw
    if cfg.bias:
        grads["ln_f.bias"] = db
    for i in reversed(range(cfg.n_layers)):
        dx = block_backward(dx, p, cfg, i, cache.blocks[i], grads)
    dtok, dpos = embedding_backward(dx, cache.inputs, cfg.vocab_size, cfg.context_length)
    if cfg.tie_embeddings:
        dtok = dtok + dhead                         # the embedding is also the output head
    else:
        grads["lm_head.weight"] = dhead
    grads["tok_emb"], grads["pos_emb"] = dtok, dpos
    return {name: grads[name] for name in parameter_shapes(cfg)}


def loss_and_grads(params: dict, config, inputs, targets):
    """-> (loss, logits [B, T, V], {parameter name: gradient})"""
    loss, logits, cache = forward(params, config, inputs, targets)
    return loss, logits, backward(cache)


# ---------------------------------------------------------------- llama: llama2.c's forward pass
#
# The llama architecture as llama2.c's run.c computes it, for tfq's llama2.c importer
# (formats/tfq.md §9, "arch": "llama"). Unlike the GPT reference above, it follows run.c's
# float32 arithmetic where the order of operations shows in the result: RMSNorm's
# expression, RoPE's float32 angles, the score division, softmax, SiLU. dtype=np.float64
# evaluates the same expressions in float64. `config` is a llama2c.Config; weights use
# llama2.c's names (tools/llama2c.py), linear weights [out, in]. Shapes in comments: T
# positions, D dim, F hidden_dim, V vocab_size, S head_size, KV kv_dim.

LLAMA_NORM_EPS = 1e-5       # run.c's constants; tfq's config states them
LLAMA_ROPE_THETA = 10000.0


def rmsnorm(x, weight, dtype=np.float32):
    """run.c: ss = sum(x²) / n + 1e-5; ss = 1 / sqrt(ss); out = weight * (ss * x)"""
    ss = (x * x).sum(axis=-1, keepdims=True, dtype=dtype) / dtype(x.shape[-1]) + dtype(LLAMA_NORM_EPS)
    ss = dtype(1) / np.sqrt(ss)
    return weight * (ss * x)


def rope_tables(config, positions, dtype=np.float32):
    """-> (cos, sin) [T, D / 2] of run.c's angles. Pair j rotates elements 2j and 2j + 1:
    head_dim = 2j % S, freq = 1 / 10000^(head_dim / S), angle = pos * freq, each step in
    float32 in run.c (powf, cosf, sinf; numpy's float32 functions may differ by an ulp)."""
    S = config.dim // config.n_heads
    head_dim = (np.arange(0, config.dim, 2) % S).astype(dtype)
    freq = dtype(1) / np.power(dtype(LLAMA_ROPE_THETA), head_dim / dtype(S))
    angle = np.asarray(positions, dtype)[:, None] * freq[None, :]
    return np.cos(angle), np.sin(angle)


def rope(v, cos, sin):
    """v [T, n] with each pair (2j, 2j + 1) rotated by angle j. Keys (n = KV) use the first
    KV / 2 angles: run.c rotates k only while i < kv_dim, with the same i % S."""
    half = v.shape[-1] // 2
    v0, v1, c, s = v[:, 0::2], v[:, 1::2], cos[:, :half], sin[:, :half]
    out = np.empty_like(v)
    out[:, 0::2] = v0 * c - v1 * s
    out[:, 1::2] = v0 * s + v1 * c
    return out


def runq_activations(x, group_size: int):
    """runq.c's quantize() of an activation, returned dequantized: per group of group_size
    along the last axis, scale = max|x| / 127 and q = round(x / scale) with C's round()
    (halves away from zero); a group of zeros stays zero (runq.c would divide 0 by 0)."""
    if x.shape[-1] % group_size:
        raise ValueError(f"activation length {x.shape[-1]} is not a multiple of group size {group_size}")
    g = x.reshape(*x.shape[:-1], -1, group_size)
    scale = np.abs(g).max(axis=-1, keepdims=True) / x.dtype.type(127)
    with np.errstate(invalid="ignore", divide="ignore"):
        v = (g / scale).astype(np.float64)          # float64: |v| + 0.5 is exact
    q = np.where(scale == 0, 0.0, np.sign(v) * np.floor(np.abs(v) + 0.5))
    return (q.astype(x.dtype) * scale).reshape(x.shape)


def two_pass_activations(x, group_size: int):
    """formats/tfq.md §8's two-pass quantization of an activation, returned dequantized: one
    pass as runq_activations, then the same rounding of what it left, x − s1·q1; the sum
    s1·q1 + s2·q2 is within s2/2 of x."""
    first = runq_activations(x, group_size)
    return first + runq_activations(x - first, group_size)


def llama_token_ids(config, tokens) -> np.ndarray:
    t = np.asarray(tokens)
    if t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"tokens must be a non-empty list of integers, got shape {list(t.shape)}")
    if t.min() < 0 or t.max() >= config.vocab_size:
        raise ValueError(f"tokens hold values that are not token ids 0 ... {config.vocab_size - 1}")
    if t.size > config.seq_len:
        raise ValueError(f"{t.size} tokens > seq_len {config.seq_len}")
    return t


def llama_logits(config, weights: dict, tokens, dtype=np.float32, activation_group=None, two_pass_layers=()):
    """-> logits [T, V] at every position of `tokens` (causal), as run.c's forward() would
    give them one position at a time. activation_group=GS also rounds every matmul's input
    as runq.c does (its weights are those of the file, dequantized: pass them); the layers
    in two_pass_layers round theirs in two passes (two_pass_activations), as tfq's runtime
    does for the weights a file lists in quantization.two_pass_activations."""
    c, t = config, llama_token_ids(config, tokens)
    w = {name: np.asarray(a, dtype) for name, a in weights.items()}
    T, S, kv_mul = t.size, c.dim // c.n_heads, c.n_heads // c.n_kv_heads
    cos, sin = rope_tables(c, np.arange(T), dtype)
    future = np.triu(np.ones((T, T), bool), 1)
    layer = None                                  # the block being computed (None: the classifier)

    def linear(x, weight):                        # W (d, n) @ x (n,) per position
        if activation_group is None:
            return x @ weight.T
        rounding = two_pass_activations if layer in two_pass_layers else runq_activations
        return rounding(x, activation_group) @ weight.T

    x = w["token_embedding_table"][t]                                        # [T, D]
    with np.errstate(over="ignore"):              # exp(-v) of a very negative v: silu(v) = 0
        for l in range(c.n_layers):
            layer = l
            xb = rmsnorm(x, w["rms_att_weight"][l], dtype)
            q = rope(linear(xb, w["wq"][l]), cos, sin)                       # [T, D]
            k = rope(linear(xb, w["wk"][l]), cos, sin)                       # [T, KV]
            v = linear(xb, w["wv"][l])                                       # [T, KV]
            heads = []
            for h in range(c.n_heads):
                kv = slice((h // kv_mul) * S, (h // kv_mul + 1) * S)        # grouped-query attention
                scores = (q[:, h * S:(h + 1) * S] @ k[:, kv].T) / np.sqrt(dtype(S))
                scores[future] = -np.inf
                p = np.exp(scores - scores.max(axis=1, keepdims=True))
                heads.append((p / p.sum(axis=1, keepdims=True)) @ v[:, kv])
            x = x + linear(np.concatenate(heads, axis=1), w["wo"][l])
            xb = rmsnorm(x, w["rms_ffn_weight"][l], dtype)
            h1, h3 = linear(xb, w["w1"][l]), linear(xb, w["w3"][l])         # [T, F]
            x = x + linear(h1 * (dtype(1) / (dtype(1) + np.exp(-h1))) * h3, w["w2"][l])
    layer = None
    x = rmsnorm(x, w["rms_final_weight"], dtype)
    return linear(x, w.get("wcls", w["token_embedding_table"]))             # [T, V]


def llama_generate_greedy(config, weights: dict, prompt_ids, n: int, dtype=np.float32,
                          activation_group=None) -> list[int]:
    """Up to n greedy tokens after prompt_ids (argmax, the first of equal maxima), as
    llama2.c's generate() with temperature 0. Like llama2.c it stops, without the token,
    when it picks BOS (1): "the BOS token delimits sequences"; EOS does not stop it. It also
    stops when the next token would need a position >= seq_len to be predicted."""
    seq, out = [int(i) for i in prompt_ids], []
    while len(out) < n and len(seq) <= config.seq_len:
        nxt = int(np.argmax(llama_logits(config, weights, seq, dtype, activation_group)[-1]))
        if nxt == 1:
            break
        seq.append(nxt)
        out.append(nxt)
    return out


# tfq's llama mapping (formats/tfq.md §9): llama2.c's weights <-> tfq tensor names.

def llama_tfq_config(config, shared_classifier: bool) -> dict:
    """The tfq metadata "config" of a llama2.c model."""
    return {"arch": "llama", "vocab_size": config.vocab_size, "context_length": config.seq_len,
            "n_layers": config.n_layers, "n_heads": config.n_heads, "n_kv_heads": config.n_kv_heads,
            "dim": config.dim, "ff_dim": config.hidden_dim, "activation": "silu",
            "tie_embeddings": shared_classifier, "bias": False, "norm_eps": LLAMA_NORM_EPS,
            "rope_theta": 10000}


def llama_tfq_tensors(weights: dict) -> list[tuple[str, np.ndarray]]:
    """llama2.c's weights as tfq's tensors, (name, array) in §9's order. The fused qkv
    weight is wq's rows, then wk's, then wv's."""
    out = [("tok_emb", weights["token_embedding_table"])]
    for i in range(len(weights["wq"])):
        b = f"blocks.{i}."
        out += [(b + "ln1.weight", weights["rms_att_weight"][i]),
                (b + "attn.qkv.weight", np.concatenate([weights["wq"][i], weights["wk"][i], weights["wv"][i]])),
                (b + "attn.proj.weight", weights["wo"][i]),
                (b + "ln2.weight", weights["rms_ffn_weight"][i]),
                (b + "ffn.gate.weight", weights["w1"][i]),
                (b + "ffn.up.weight", weights["w3"][i]),
                (b + "ffn.down.weight", weights["w2"][i])]
    out.append(("ln_f.weight", weights["rms_final_weight"]))
    if "wcls" in weights:
        out.append(("lm_head.weight", weights["wcls"]))
    return out


def llama_weights_from_tfq(path):
    """-> (llama2c.Config, weights in llama2.c's names, float32) from a tfq llama file; q8
    tensors are dequantized by tools/tfq_read.py. ValueError if the file is not a llama
    model run.c could run (norm_eps 1e-5, rope_theta 10000, silu, no biases)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import llama2c
    import tfq_read
    with tfq_read.read(path) as f:
        d = f.metadata.get("config")
        if not isinstance(d, dict) or d.get("arch") != "llama":
            raise ValueError(f"{path}: metadata config has no \"arch\": \"llama\"")
        fixed = {"activation": "silu", "bias": False, "rope_theta": LLAMA_ROPE_THETA}
        for key, value in fixed.items():
            if d.get(key) != value:
                raise ValueError(f"{path}: config {key} is {d.get(key)!r}, not {value!r}")
        if not isinstance(d.get("norm_eps"), (int, float)) or abs(d["norm_eps"] - LLAMA_NORM_EPS) > 1e-12:
            raise ValueError(f"{path}: config norm_eps is {d.get('norm_eps')!r}, not 1e-5")
        config = llama2c.Config(d["dim"], d["ff_dim"], d["n_layers"], d["n_heads"], d["n_kv_heads"],
                                d["vocab_size"], d["context_length"]).check()
        tied = d.get("tie_embeddings")
        if not isinstance(tied, bool):
            raise ValueError(f"{path}: config tie_embeddings is {tied!r}, not true or false")
        names = {e.name for e in f.entries}
        expected = {name for name, _ in llama_tfq_tensors(
            {n: np.zeros(s) for n, s in llama2c.weight_shapes(config, tied).items()})}
        if names != expected:
            extra, missing = sorted(names - expected), sorted(expected - names)
            raise ValueError(f"{path}: tensors differ from the llama mapping: missing {missing}, extra {extra}")
        D, KV = config.dim, config.kv_dim
        blocks = [{part: f.tensor(f"blocks.{i}.{part}.weight") for part in
                   ("ln1", "attn.qkv", "attn.proj", "ln2", "ffn.gate", "ffn.up", "ffn.down")}
                  for i in range(config.n_layers)]
        weights = {"token_embedding_table": f.tensor("tok_emb"),
                   "rms_att_weight": np.stack([b["ln1"] for b in blocks]),
                   "wq": np.stack([b["attn.qkv"][:D] for b in blocks]),
                   "wk": np.stack([b["attn.qkv"][D:D + KV] for b in blocks]),
                   "wv": np.stack([b["attn.qkv"][D + KV:] for b in blocks]),
                   "wo": np.stack([b["attn.proj"] for b in blocks]),
                   "rms_ffn_weight": np.stack([b["ln2"] for b in blocks]),
                   "w1": np.stack([b["ffn.gate"] for b in blocks]),
                   "w2": np.stack([b["ffn.down"] for b in blocks]),
                   "w3": np.stack([b["ffn.up"] for b in blocks]),
                   "rms_final_weight": f.tensor("ln_f.weight")}
        if not tied:
            weights["wcls"] = f.tensor("lm_head.weight")
    for name, shape in llama2c.weight_shapes(config, tied).items():
        if weights[name].shape != shape:
            raise ValueError(f"{path}: {name} has shape {list(weights[name].shape)}, not {list(shape)}")
    return config, weights


# ---------------------------------------------------------------- command line

class CaseError(Exception):
    """The case file cannot be used (exit status 2)."""


def relative_error(swift, ref) -> float:
    """||swift - ref||_2 / max(||ref||_2, 1e-30); inf if missing, misshapen or not finite"""
    if swift is None or np.shape(swift) != np.shape(ref):
        return math.inf
    err = float(np.linalg.norm(np.asarray(swift, np.float64) - ref)) / max(float(np.linalg.norm(ref)), 1e-30)
    return err if math.isfinite(err) else math.inf


def load_case(path):
    """-> (cfg, params, inputs, targets, {swift result name: array}) from a case file"""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tfq_read
    try:
        with tfq_read.read(path) as f:
            if "config" not in f.metadata:
                raise CaseError(f"{path}: metadata has no \"config\"")
            cfg = Config.from_dict(f.metadata["config"])
            names = {e.name for e in f.entries}

            def need(name):
                if name not in names:
                    raise CaseError(f"{path}: no tensor {name!r}")
                return f.tensor(name)

            params = {name: need(name) for name in parameter_shapes(cfg)}
            for name, value in params.items():
                if not np.all(np.isfinite(value)):
                    raise CaseError(f"{path}: parameter {name} holds values that are not finite")
            inputs, targets = need("batch.inputs"), need("batch.targets")
            swift = {"out.loss": need("out.loss"), "out.logits": need("out.logits")}
            for name in parameter_shapes(cfg):
                if f"grad.{name}" in names:
                    swift[f"grad.{name}"] = f.tensor(f"grad.{name}")
    except tfq_read.TFQFormatError as exc:
        raise CaseError(str(exc)) from None
    except OSError as exc:
        raise CaseError(f"{path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise CaseError(f"{path}: {exc}") from None
    if swift["out.loss"].size != 1:
        raise CaseError(f"{path}: out.loss has shape {list(swift['out.loss'].shape)}, not []")
    return cfg, params, inputs, targets, swift


def check_case(path, tolerance: float) -> dict:
    """Compares a case file's Swift results with the reference; the report as a dict."""
    cfg, params, inputs, targets, swift = load_case(path)
    try:
        loss, logits, grads = loss_and_grads(params, cfg, inputs, targets)
    except ValueError as exc:
        raise CaseError(f"{path}: {exc}") from None
    swift_loss = float(swift["out.loss"].reshape(()))
    loss_err = abs(swift_loss - loss) / max(abs(loss), 1e-30)
    errors = {"out.loss": loss_err if math.isfinite(loss_err) else math.inf,
              "out.logits": relative_error(swift["out.logits"], logits)}
    for name, g in grads.items():
        errors[f"grad.{name}"] = relative_error(swift.get(f"grad.{name}"), g)
    worst = max(errors, key=lambda n: errors[n])
    missing = [n for n in errors if n.startswith("grad.") and n not in swift]
    ok = errors[worst] <= tolerance and not missing
    if missing:
        message = f"{missing[0]} is missing" + (f" (and {len(missing) - 1} more grads)" if len(missing) > 1 else "")
    elif errors[worst] == math.inf:
        message = f"{worst}: shape differs from the reference's or values are not finite"
    elif ok:
        message = f"max relative error {errors[worst]:.3e} ({worst}) <= tolerance {tolerance:g}"
    else:
        message = f"{worst}: relative error {errors[worst]:.3e} > tolerance {tolerance:g}"
    shapes = {"out.loss": [], "out.logits": list(logits.shape),
              **{f"grad.{n}": list(g.shape) for n, g in grads.items()}}
    return dict(cfg=cfg, swift_loss=swift_loss, loss=loss, errors=errors, shapes=shapes,
                missing=missing, worst=worst, ok=ok, message=message, tolerance=tolerance,
                batch=list(np.shape(inputs)))


def _finite_or_none(x: float):
    return x if math.isfinite(x) else None


def report_json(r: dict) -> str:
    e = r["errors"]
    return json.dumps({
        "loss": {"swift": _finite_or_none(r["swift_loss"]), "reference": r["loss"],
                 "rel_error": _finite_or_none(e["out.loss"])},
        "logits_rel_error": _finite_or_none(e["out.logits"]),
        "grads": {n[5:]: _finite_or_none(v) for n, v in e.items() if n.startswith("grad.")},
        "missing_grads": [n[5:] for n in r["missing"]],
        "max_rel_error": _finite_or_none(e[r["worst"]]),
        "worst": r["worst"],
        "tolerance": r["tolerance"],
        "ok": r["ok"],
    })


def report_table(path, r: dict) -> str:
    cfg = r["cfg"]
    lines = [f"{path}: gpt {cfg.n_layers} layers, dim {cfg.dim}, {cfg.n_heads} heads, ff {cfg.ff_dim}, "
             f"vocab {cfg.vocab_size}, {cfg.activation}, tied {str(cfg.tie_embeddings).lower()}, "
             f"bias {str(cfg.bias).lower()}; batch {r['batch'][0]}x{r['batch'][1]}",
             f"loss: swift {r['swift_loss']:.9g}, reference {r['loss']:.9g}"]
    rows = [("tensor", "shape", "rel error")]
    for name, err in r["errors"].items():
        shape = "[" + ", ".join(map(str, r["shapes"][name])) + "]"
        text = "missing" if name in r["missing"] else f"{err:.3e}"
        rows.append((name, shape, text + ("" if err <= r["tolerance"] else "  <-- over")))
    w0, w1 = (max(len(row[i]) for row in rows) for i in range(2))
    lines += [f"{a.ljust(w0)}  {b.ljust(w1)}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Check a tfq case file's loss, logits and "
                                     "gradients against an independent float64 reference.")
    parser.add_argument("case", help="CASE.tfq written by the Swift tests")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--tolerance", type=float, default=1e-4,
                        help="largest relative error accepted (default 1e-4)")
    args = parser.parse_args(argv)
    if not args.tolerance >= 0:
        parser.error("--tolerance must be a number >= 0")
    try:
        r = check_case(args.case, args.tolerance)
    except CaseError as exc:
        print(f"reference: {exc}", file=sys.stderr)
        return 2
    print(report_json(r) if args.json else report_table(args.case, r))
    if r["ok"]:
        if not args.json:
            print(f"OK: {r['message']}")
        return 0
    print(f"reference: FAIL: {r['message']}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
