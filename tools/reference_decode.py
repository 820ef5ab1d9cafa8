#!/usr/bin/env python3
"""formats/tfq.md §11 in numpy: tfq's runtime arithmetic, bit for bit, and greedy decoding.

Written from the specification alone (section 11, and tools/tfq_read.py for the file), to
show that the spec pins down what `tfq run` computes: on int8 models its greedy tokens must
equal the runtime's exactly, however long the run (tools/test_reference_decode.py checks
200 tokens of the models in formats/testdata/decode/ against the committed tokens and
against `tfq run`).

Every value is a numpy float32 and every numpy float32 operation is the correctly rounded
binary32 one, so the code only has to keep §11's order. Two things numpy lacks are built
here: a fused multiply-add (`fma`, exact through float64 and an error term), and C's
powf/cosf/sinf, which §11.5 takes from the C library (called through ctypes).

    python3 tools/reference_decode.py MODEL.tfq --prompt-ids "1 5 9" -n 200 --fused yes
        -> one JSON line: {"token_ids": [...], "stop_reason": "length"}

--fused says which of §11.1's two multiply-adds to use: `tfq run --json` reports its own
as "fused_multiply_add".
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tfq_read  # noqa: E402

F = np.float32
F64 = np.float64


# ---------------------------------------------------------------- §11.1 operations

def fma(acc, a, b):
    """acc + a·b rounded once to binary32, elementwise. a·b is exact in float64 (24 + 24
    significant bits); the float64 sum s and its exact error e (TwoSum) give the binary32
    result: rounding s is right unless s lies exactly halfway between two binary32 values
    while e ≠ 0, and then s moved one float64 step toward e rounds right. (Results in the
    binary32 subnormal range with e ≠ 0 would need another rule; §11 never makes them.)"""
    p = np.asarray(a, F64) * np.asarray(b, F64)
    c = np.asarray(acc, F64)
    s = p + c
    bp = s - p
    e = (p - (s - bp)) + (c - bp)
    low = np.asarray(s).view(np.uint64) & np.uint64((1 << 29) - 1)
    halfway = (low == np.uint64(1 << 28)) & (e != 0)
    if np.any(halfway):
        s = np.where(halfway, np.nextafter(s, np.where(e > 0, np.inf, -np.inf)), s)
    return np.asarray(s).astype(F)


class Arithmetic:
    """§11.1's `mad`: fused in builds with FMA, unfused (product, then sum) in the others."""

    def __init__(self, fused: bool):
        self.fused = fused

    def mad(self, acc, a, b):
        if self.fused:
            return fma(acc, a, b)
        return np.asarray(acc, F) + np.asarray(a, F) * np.asarray(b, F)


def scalar_chain(values, start):
    """start ⊕ v₀ ⊕ v₁ ⊕ … left to right; arrays are summed elementwise."""
    total = start
    for v in values:
        total = total + v
    return total


def lanes(terms, width: int):
    """Lane ℓ = +0 ⊕ t_ℓ ⊕ t_{width+ℓ} ⊕ …, for terms [k·width] (np.add.accumulate adds in
    order)."""
    rows = np.vstack([np.zeros((1, width), F), terms.reshape(-1, width)])
    return np.add.accumulate(rows, axis=0)[-1]


def sum8(t):
    """§11.1's sum⁸ of a 1-D float32 array."""
    full = t.size // 8 * 8
    return scalar_chain(t[full:], scalar_chain(lanes(t[:full], 8), F(-0.0)))


def mad_sum16(W, x, ar: Arithmetic):
    """§11.1's mad-sum¹⁶ of each row of W [rows, n] with x [n], all rows at once."""
    rows, n = W.shape
    full = n // 16 * 16
    lanes = np.zeros((rows, 16), F)
    for k in range(0, full, 16):
        lanes = ar.mad(lanes, W[:, k:k + 16], x[k:k + 16])
    width = 16
    while width > 1:                               # folded in halves
        width //= 2
        lanes = lanes[:, :width] + lanes[:, width:2 * width]
    total = lanes[:, 0]
    for i in range(full, n):
        total = total + W[:, i] * x[i]
    return total


# ---------------------------------------------------------------- §11.2 elementwise functions

def bits(pattern: int):
    return np.array([pattern], np.uint32).view(F)[0]


M = F(12582912)


def exp_(x, ar: Arithmetic):
    x = np.asarray(x, F)
    low, high = bits(0xC2AE999A), bits(0x42B0999A)
    c = np.where(x < low, low, x)
    c = np.where(x > high, high, c).astype(F)
    s = ar.mad(M, c, bits(0x3FB8AA3B))
    n = s - M
    r = ar.mad(ar.mad(c, n, F(-0.693145751953125)), n, bits(0xB5BFBE8E))
    p = np.full(x.shape, F(1) / F(720), F)
    for term in (F(1) / F(120), F(1) / F(24), F(1) / F(6), F(0.5), F(1), F(1)):
        p = ar.mad(term, p, r)
    integer = np.asarray(s, F).view(np.int32) - M.view(np.int32)
    two_n = ((integer + 127) << 23).astype(np.int32).view(F)
    return np.where(x < low, F(0), p * two_n).astype(F)


def tanh_(x, ar: Arithmetic):
    x = np.asarray(x, F)
    c = np.where(x < -10, F(-10), x)
    c = np.where(x > 10, F(10), c).astype(F)
    return F(1) - F(2) / (exp_(F(2) * c, ar) + F(1))


def activation(name: str, x, ar: Arithmetic):
    if name == "relu":
        return np.where(x < 0, F(0), x).astype(F)
    if name == "gelu":
        h = F(0.5) * x
        u = ar.mad(x, bits(0x3D372713) * x * x, x)
        return ar.mad(h, h, tanh_(bits(0x3F4C422A) * u, ar))
    if name == "silu":
        return x / (F(1) + exp_(-x, ar))
    raise ValueError(f"activation {name!r} is not relu, gelu or silu")


# ---------------------------------------------------------------- §11.3 norms

def layer_norm(x, weight, bias, eps):
    d = F(x.size)
    mu = sum8(x) / d
    delta = x - mu
    s = F(1) / np.sqrt(sum8(delta * delta) / d + eps)
    y = delta * s * weight
    return y + bias if bias is not None else y


def two_lane_dot(a, b):
    """§11.3's D(a, b): two sets of eight lanes over blocks of 16 terms."""
    n = a.size
    full = n // 16 * 16
    products = (a[:full] * b[:full]).reshape(-1, 16)
    A, B = lanes(products[:, :8], 8), lanes(products[:, 8:], 8)
    total = scalar_chain(A + B, F(-0.0))
    return scalar_chain(a[full:] * b[full:], total)


def rms_norm(x, weight, eps):
    s = F(1) / np.sqrt(two_lane_dot(x, x) / F(x.size) + eps)
    return weight * (s * x)


# ---------------------------------------------------------------- §11.4 linear layers

def quantize(x, group: int):
    """One pass of §11.4: (q int64 [groups, G], s float32 [groups])."""
    g = x.reshape(-1, group)
    a = np.abs(g)
    s = np.where(np.isnan(a), F(0), a).max(axis=1) / F(127)   # a NaN is ignored by the maximum
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        inv = np.where(s == 0, F(0), F(1) / s).astype(F)
        v = (g * inv[:, None]).astype(F64)         # binary32 products; float64 rounds them exactly
    q = np.sign(v) * np.floor(np.abs(v) + 0.5)
    q = np.where(np.isnan(q), 0, np.clip(q, -127, 127))
    return q.astype(np.int64), s.astype(F)


class Linear:
    def __init__(self, f: tfq_read.TFQFile, name: str, bias, two_pass: bool):
        e = f.entry(name)
        self.name, self.bias, self.two_pass = name, bias, two_pass
        if e.dtype in tfq_read.Q8_SCALES:     # q8 or q8f16: f.q8 widens f16 scales to f32 (§6.2)
            q, scales = f.q8(name)
            self.group = e.group_size
            self.rows, cols = q.shape
            self.q = q.astype(np.int64).reshape(self.rows, cols // self.group, self.group)
            self.scales = scales
            self.W = None
        else:
            self.W = f.tensor(name)
            if two_pass:
                raise ValueError(f"{name} is listed in two_pass_activations but is not q8 or q8f16")

    def _pass(self, q, s):
        sums = np.einsum("rkg,kg->rk", self.q, q).astype(F)
        acc = np.zeros(self.rows, F)
        for k in range(sums.shape[1]):
            acc = acc + sums[:, k] * self.scales[:, k] * s[k]
        return acc

    def __call__(self, x, ar: Arithmetic):
        if self.W is not None:
            y = mad_sum16(self.W, x, ar)
        else:
            q1, s1 = quantize(x, self.group)
            y = self._pass(q1, s1)
            if self.two_pass:
                residual = x - (q1.astype(F).reshape(-1) * np.repeat(s1, self.group))
                y = y + self._pass(*quantize(residual.astype(F), self.group))
        return y + self.bias if self.bias is not None else y


# ---------------------------------------------------------------- §11.5 rotary tables

def _libm():
    lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
    for name, args in (("powf", 2), ("cosf", 1), ("sinf", 1)):
        fn = getattr(lib, name)
        fn.restype = ctypes.c_float
        fn.argtypes = [ctypes.c_float] * args
    return lib


def rotary_tables(theta: float, d_k: int, positions: int):
    lib = _libm()
    half = d_k // 2
    cos = np.empty((positions, half), F)
    sin = np.empty((positions, half), F)
    for j in range(half):
        exponent = F(2 * j) / F(d_k)
        f = F(1) / F(lib.powf(F(theta), exponent))
        for p in range(positions):
            angle = F(p) * f
            cos[p, j], sin[p, j] = lib.cosf(angle), lib.sinf(angle)
    return cos, sin


def rotate(v, heads: int, cos, sin):
    x = v.reshape(heads, -1, 2)
    x0, x1 = x[:, :, 0], x[:, :, 1]
    out = np.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], axis=-1)
    return out.reshape(-1).astype(F)


# ---------------------------------------------------------------- §11.6 the model

class Model:
    def __init__(self, path, kv_cache: str | None = None):
        self.file = f = tfq_read.read(path)
        meta = f.metadata
        c = self.config = meta["config"]
        self.arch = c.get("arch", "gpt")
        self.d, self.heads = c["dim"], c["n_heads"]
        self.kv_heads = c.get("n_kv_heads", self.heads)
        self.d_k = self.d // self.heads
        self.kv_dim = self.kv_heads * self.d_k
        self.context = c["context_length"]
        self.eps = F(c["norm_eps"])
        self.activation = c["activation"]
        two_pass = set((meta.get("quantization") or {}).get("two_pass_activations") or [])
        bias = c.get("bias", False)

        def vec(name):
            return f.tensor(name).astype(F)

        def linear(name, bias_name):
            layer = Linear(f, name, vec(bias_name) if bias and bias_name else None, name in two_pass)
            two_pass.discard(name)
            return layer

        def norm(prefix):
            return (vec(prefix + ".weight"), vec(prefix + ".bias") if bias and self.arch == "gpt" else None)

        emb = f.entry("tok_emb")
        if emb.dtype in tfq_read.Q8_SCALES:
            q, scales = f.q8("tok_emb")
            self.embedding = lambda t: (q[t].astype(F).reshape(-1, emb.group_size) * scales[t][:, None]).reshape(-1).astype(F)
        else:
            table = f.tensor("tok_emb")
            self.embedding = lambda t: table[t].copy()
        self.pos_emb = vec("pos_emb") if self.arch == "gpt" else None
        self.blocks = []
        for i in range(c["n_layers"]):
            p = f"blocks.{i}."
            block = {"ln1": norm(p + "ln1"), "ln2": norm(p + "ln2"),
                     "qkv": linear(p + "attn.qkv.weight", p + "attn.qkv.bias"),
                     "proj": linear(p + "attn.proj.weight", p + "attn.proj.bias")}
            if self.arch == "gpt":
                block["up"] = linear(p + "ffn.up.weight", p + "ffn.up.bias")
                block["down"] = linear(p + "ffn.down.weight", p + "ffn.down.bias")
            else:
                block["gate"] = linear(p + "ffn.gate.weight", None)
                block["up"] = linear(p + "ffn.up.weight", None)
                block["down"] = linear(p + "ffn.down.weight", None)
            self.blocks.append(block)
        self.ln_f = norm("ln_f")
        self.head = linear("tok_emb" if c["tie_embeddings"] else "lm_head.weight", None)
        if two_pass:
            raise ValueError(f"two_pass_activations names {sorted(two_pass)[0]}, not a linear layer of this model")
        quantized = f.entry("blocks.0.attn.qkv.weight").dtype in tfq_read.Q8_SCALES
        self.kv_cache = kv_cache or ("f16" if quantized else "f32")
        if self.arch == "llama":
            self.cos, self.sin = rotary_tables(c["rope_theta"], self.d_k, self.context)
        tok = meta["tokenizer"]
        # §11.7: llama2c stops at BOS (1), bpe and sentencepiece at their eos_id if they have one, the others never.
        self.stop_token = 1 if tok["type"] == "llama2c" else tok.get("eos_id") if tok["type"] in ("bpe", "sentencepiece") else None
        # Query head h reads key/value head h / (heads / kv_heads).
        self.kv_of_head = np.arange(self.heads) // (self.heads // self.kv_heads)

    def norm(self, x, params):
        weight, bias = params
        return layer_norm(x, weight, bias, self.eps) if self.arch == "gpt" else rms_norm(x, weight, self.eps)

    def new_cache(self):
        return [(np.zeros((self.context, self.kv_dim), F), np.zeros((self.context, self.kv_dim), F)) for _ in self.blocks]

    def step(self, token: int, p: int, cache, ar: Arithmetic):
        """The logits of `token` at position p (§11.6), its key and value stored in cache."""
        x = self.embedding(token)
        if self.pos_emb is not None:
            x = x + self.pos_emb[p]
        c = F(1) / np.sqrt(F(self.d_k))
        for block, (K, V) in zip(self.blocks, cache):
            qkv = block["qkv"](self.norm(x, block["ln1"]), ar)
            q, k, v = qkv[:self.d], qkv[self.d:self.d + self.kv_dim], qkv[self.d + self.kv_dim:]
            if self.arch == "llama":
                q = rotate(q, self.heads, self.cos[p], self.sin[p])
                k = rotate(k, self.kv_heads, self.cos[p], self.sin[p])
            if self.kv_cache == "f16":
                k, v = k.astype(np.float16).astype(F), v.astype(np.float16).astype(F)
            K[p], V[p] = k, v
            x = x + block["proj"](self.attention(q.reshape(self.heads, self.d_k), K[:p + 1], V[:p + 1], c, ar), ar)
            m = self.norm(x, block["ln2"])
            if self.arch == "gpt":
                h = activation(self.activation, block["up"](m, ar), ar)
            else:
                h = activation(self.activation, block["gate"](m, ar), ar) * block["up"](m, ar)
            x = x + block["down"](h, ar)
        return self.head(self.norm(x, self.ln_f), ar)

    def attention(self, q, K, V, c, ar: Arithmetic):
        """Every head at once: q [H, d_k], K and V [positions, kv_dim] -> [H·d_k]."""
        n, d_k = K.shape[0], self.d_k
        Kh = K.reshape(n, self.kv_heads, d_k)[:, self.kv_of_head, :]      # [n, H, d_k]
        Vh = V.reshape(n, self.kv_heads, d_k)[:, self.kv_of_head, :]
        a = np.zeros((n, self.heads), F)
        b = np.zeros((n, self.heads), F)
        i = 0
        while i + 1 < d_k:
            a = ar.mad(a, q[:, i], Kh[:, :, i])
            b = ar.mad(b, q[:, i + 1], Kh[:, :, i + 1])
            i += 2
        if i < d_k:
            a = ar.mad(a, q[:, i], Kh[:, :, i])
        scores = (a + b) * c
        e = exp_(scores - scores.max(axis=0), ar)                        # [n, H]
        full = n // 8 * 8
        total = np.zeros(self.heads, F)
        if full:
            chunks = e[:full].reshape(-1, 8, self.heads)
            chunk_sums = scalar_chain(chunks.transpose(1, 0, 2), np.full(chunks.shape[::2], -0.0, F))
            total = scalar_chain(chunk_sums, total)
        total = scalar_chain(e[full:], total)
        P = e * (F(1) / total)
        out = np.zeros((self.heads, d_k), F)
        for j in range(n):
            out = ar.mad(out, P[j][:, None], Vh[j])
        return out.reshape(-1)


# ---------------------------------------------------------------- §11.7 generation

def argmax(logits) -> int:
    """The lowest id among the largest logits; 0 when logit 0 is NaN (§11.7)."""
    if np.isnan(logits[0]):
        return 0
    return int(np.nanargmax(logits))


def generate(model: Model, prompt, n: int, fused: bool, ignore_eos: bool = False):
    """-> (tokens, stop reason) as `tfq run --prompt-ids` gives them (§11.7)."""
    if not prompt or len(prompt) >= model.context:
        raise ValueError(f"the prompt must hold 1 to {model.context - 1} tokens")
    if any(not 0 <= t < model.config["vocab_size"] for t in prompt):
        raise ValueError("the prompt holds an id outside the vocabulary")
    ar = Arithmetic(fused)
    cache = model.new_cache()
    with np.errstate(over="ignore", invalid="ignore"):
        for p, token in enumerate(prompt):
            logits = model.step(token, p, cache, ar)
        position, out = len(prompt), []
        while True:
            token = argmax(logits)
            if token == model.stop_token and not ignore_eos:
                return out, "end-of-text"
            out.append(token)
            if len(out) == n:
                return out, "length"
            if position >= model.context:
                return out, "context"
            logits = model.step(token, position, cache, ar)
            position += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("--prompt-ids", required=True, help='token ids, e.g. "1 5 9"')
    ap.add_argument("-n", type=int, default=200)
    ap.add_argument("--fused", choices=("yes", "no"), required=True, help="§11.1's multiply-add")
    ap.add_argument("--kv-cache", choices=("f16", "f32"))
    ap.add_argument("--ignore-eos", action="store_true")
    args = ap.parse_args(argv)
    try:
        prompt = [int(t) for t in args.prompt_ids.replace(",", " ").split()]
        model = Model(args.model, args.kv_cache)
        tokens, reason = generate(model, prompt, args.n, args.fused == "yes", args.ignore_eos)
    except (ValueError, KeyError, OSError, tfq_read.TFQFormatError) as e:
        print(f"reference_decode.py: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"token_ids": tokens, "stop_reason": reason}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
