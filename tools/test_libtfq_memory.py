"""libtfq when memory runs out: a session whose buffers cannot be allocated, and a model whose
zstd tensors cannot be decoded, are refused with TFQ_ERROR_OUT_OF_MEMORY and a NULL handle,
and the process goes on (before, the allocation trapped and took the host program down).

The failure is forced, not hoped for: a child process reads its own address-space size and
caps it (RLIMIT_AS) a little above that, below what the call needs; then lifts the cap and
makes the same call successfully. The models are llamas written here by the independent
writer (tools/tfq_write.py) with the tokenizer of the tiny llama2.c fixture: one with a
65,536-position context (a ~160 MB session), one whose zero weights `tfq export --zstd`
compresses to almost nothing but which decode to 96 MiB.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import tfq_read
import tfq_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "Tests", "TFQImportTests", "Fixtures", "llama", "tiny-v1.two-pass.int8.tfq")
CONTEXT = 65536

CHILD = r"""
import ctypes, json, resource, sys
lib = ctypes.CDLL(sys.argv[1])
lib.tfq_last_error.restype = ctypes.c_char_p
lib.tfq_model_open.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
lib.tfq_session_new.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_void_p)]
lib.tfq_session_free.argtypes = [ctypes.c_void_p]
lib.tfq_model_close.argtypes = [ctypes.c_void_p]
path, step = sys.argv[2].encode(), sys.argv[3]
model = ctypes.c_void_p()
if step == "session":
    assert lib.tfq_model_open(path, ctypes.byref(model)) == 0, lib.tfq_last_error()

def address_space():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))

def call():
    if step == "session":
        handle = ctypes.c_void_p(1)
        status = lib.tfq_session_new(model, 1, ctypes.byref(handle))
    else:
        handle = ctypes.c_void_p(1)
        status = lib.tfq_model_open(path, ctypes.byref(handle))
    return status, handle.value

soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (address_space() + (32 << 20), hard))
limited, handle = call()
result = {"limited": limited, "handle": handle, "message": lib.tfq_last_error().decode()}
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
result["unlimited"], handle = call()
result["unlimited_handle"] = bool(handle)
if step == "session":
    lib.tfq_session_free(handle)
else:
    model = ctypes.c_void_p(handle)
lib.tfq_model_close(model)
print(json.dumps(result))
"""


def binary():
    return os.environ.get("TFQ_BIN", os.path.join(ROOT, ".build", "release", "tfq"))


def library():
    lib = os.path.join(os.path.dirname(os.path.realpath(binary())), "libtfq-c.so")
    if not os.path.exists(lib):
        pytest.skip(f"no libtfq-c.so beside {binary()}")
    return lib


def llama(path, weights, **config):
    """The fixture's tokenizer and config with `config` changed, fp32 weights from
    `weights(name, dims)` in the shapes that config gives."""
    with tfq_read.read(FIXTURE) as source:
        metadata = dict(source.metadata)
    metadata["config"] = c = dict(metadata["config"], **config)
    metadata.pop("quantization", None)   # its two-pass list names the fixture's q8 tensors
    d, f, v, kv = c["dim"], c["ff_dim"], c["vocab_size"], c["dim"] // c["n_heads"] * c["n_kv_heads"]
    shapes = [("tok_emb", (v, d))]
    for i in range(c["n_layers"]):
        shapes += [(f"blocks.{i}.ln1.weight", (d,)), (f"blocks.{i}.attn.qkv.weight", (d + 2 * kv, d)),
                   (f"blocks.{i}.attn.proj.weight", (d, d)), (f"blocks.{i}.ln2.weight", (d,)),
                   (f"blocks.{i}.ffn.gate.weight", (f, d)), (f"blocks.{i}.ffn.up.weight", (f, d)),
                   (f"blocks.{i}.ffn.down.weight", (d, f))]
    shapes += [("ln_f.weight", (d,)), ("lm_head.weight", (v, d))]
    tfq_write.write(path, [(name, weights(name, dims)) for name, dims in shapes], metadata)


def run_child(model, step):
    done = subprocess.run([sys.executable, "-c", CHILD, library(), model, step], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_session_that_cannot_be_allocated_is_out_of_memory(tmp_path):
    model = str(tmp_path / "long.tfq")
    rng = np.random.default_rng(0)
    llama(model, lambda _, dims: rng.normal(0, 0.02, dims).astype(np.float32), context_length=CONTEXT)
    result = run_child(model, "session")
    assert result["limited"] == 9, result            # TFQ_ERROR_OUT_OF_MEMORY
    assert result["handle"] is None, result          # *session set to NULL
    needed = re.fullmatch(r"out of memory: a session of 65536 positions needs (\d+) bytes \(KV cache and scratch buffers\)",
                          result["message"])
    assert needed and int(needed.group(1)) > 150 << 20, result
    assert result["unlimited"] == 0 and result["unlimited_handle"], result


def test_tensors_that_cannot_be_decoded_are_out_of_memory(tmp_path):
    raw, packed = str(tmp_path / "zeros.tfq"), str(tmp_path / "zeros.zstd.tfq")
    llama(raw, lambda name, dims: np.full(dims, 1.0 if "ln" in name else 0.0, np.float32),
          dim=1024, n_heads=8, n_kv_heads=8, ff_dim=8192, n_layers=1)
    done = subprocess.run([binary(), "export", raw, "-o", packed, "--fp32", "--zstd"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(packed) < 1 << 20             # 96 MiB of zeros, compressed
    result = run_child(packed, "model")
    assert result["limited"] == 9, result
    assert result["handle"] is None, result
    assert re.fullmatch(re.escape(packed) + r": tensor '[a-z0-9_.]+': out of memory: cannot allocate \d+ bytes to decode it",
                        result["message"]), result
    assert result["unlimited"] == 0 and result["unlimited_handle"], result
