#!/usr/bin/env python3
"""Writes formats/testdata/decode/: five int8 models and the greedy tokens that
formats/tfq.md §11 gives for them, computed by tools/reference_decode.py in both of §11.1's
arithmetics (fused and unfused multiply-add).

    python3 tools/decode_fixtures.py --tfq .build/release/tfq [--out formats/testdata/decode]
    python3 tools/decode_fixtures.py --tfq .build/release/tfq --expected-only   # keep the trained models

The models cover what §11 describes:
- gpt-char.int8.tfq: GPT, GELU, biases, separate fp32 vocabulary tables (--embedding fp32; the classifier is
  an fp32 mad-sum¹⁶ over 65 rows, one of them after the last group of four), group size 64;
- gpt-bpe.int8.tfq: GPT, ReLU, no biases, a tied q8 table (a q8 lookup and a q8
  classifier), byte-level BPE, group size 32, both blocks in two passes;
- gpt-bpe-head.int8.tfq: the same checkpoint with one-pass blocks and a two-pass tied
  classifier (--two-pass-classifier: tok_emb listed in two_pass_activations), the table in
  groups of 16 (--table-group-size 16);
- gpt-bpe-f16.int8.tfq: gpt-bpe.int8.tfq's weights written back as f32 (tools/tfq_write.py)
  and exported again with --embedding fp16: an f16 table (an f16 lookup and an f16
  classifier) and an f16 position table, int8 blocks rounded to nearest, the first in two
  passes; derived again from gpt-bpe.int8.tfq whenever this script runs;
- llama.int8.tfq: llama2.c's architecture with random weights (tools/llama2c.py),
  grouped-query attention (4 heads, 2 kv heads), d_k = 12 (not a multiple of 8 or 16),
  group size 12 (not a multiple of 8), the first block in two passes, rotary tables.

The int8 matrices are `q8` (`--scales f32`), as committed; test_reference_decode.py runs
the same files with their scales rounded to binary16 as `q8f16`.

Training needs ../shared/data (Tiny Shakespeare, War and Peace) and is not bit-reproducible
across builds; the expected tokens are recomputed from whatever models it writes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama2c  # noqa: E402
import reference_decode  # noqa: E402
import tfq_read  # noqa: E402
import tfq_write  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data")
TOKENS = 200

# name, prompt, tokens to generate. The last case asks for more than the context holds
# (256 positions, a 5-token prompt: 252 tokens, then "context").
CASES = [
    ("gpt-char.int8.tfq", "ROMEO:\nWhat say", TOKENS),
    ("gpt-bpe.int8.tfq", "Prince Andrew looked at", TOKENS),
    ("gpt-bpe-head.int8.tfq", "Natasha said", TOKENS),
    ("gpt-bpe-f16.int8.tfq", "Pierre", TOKENS),
    ("llama.int8.tfq", "Lily saw the", TOKENS),
    ("llama.int8.tfq", "Once upon", 300),
]


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def models(tfq: str, work: str, out: str) -> None:
    shake, wp = os.path.join(work, "shake.txt"), os.path.join(work, "wp.txt")
    for source, target, size in (("tinyshakespeare.txt", shake, 300_000), ("warandpeace.txt", wp, 400_000)):
        with open(os.path.join(DATA, source), "rb") as f, open(target, "wb") as out:
            out.write(f.read(size))
    common = ["--dim", "64", "--heads", "4", "--layers", "2", "--context", "256", "--batch", "8",
              "--eval-every", "0", "--threads", "2"]
    run(tfq, "train", "--data", shake, "--out", f"{work}/char.tfq", "--ff", "256", "--activation", "gelu",
        "--steps", "1500", *common)
    run(tfq, "export", f"{work}/char.tfq", "--int8", "--accuracy", "fast", "--scales", "f32", "--embedding", "fp32", "--output", f"{out}/gpt-char.int8.tfq", "--eval-data", shake)
    run(tfq, "train", "--data", wp, "--out", f"{work}/bpe.tfq", "--tokenizer", "bpe", "--vocab-size", "512",
        "--ff", "192", "--activation", "relu", "--tie-embeddings", "--no-bias", "--steps", "1000", *common)
    run(tfq, "export", f"{work}/bpe.tfq", "--int8", "--scales", "f32", "--two-pass-layers", "2", "--group-size", "32",
        "--output", f"{out}/gpt-bpe.int8.tfq", "--eval-data", wp)
    run(tfq, "export", f"{work}/bpe.tfq", "--int8", "--scales", "f32", "--two-pass-layers", "0", "--two-pass-classifier", "--group-size", "32",
        "--table-group-size", "16", "--output", f"{out}/gpt-bpe-head.int8.tfq", "--eval-data", wp)
    config = llama2c.Config(dim=48, hidden_dim=144, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=384, seq_len=256)
    llama2c.write_checkpoint(f"{work}/llama.bin", config, llama2c.random_model(config, 11, False), 0)
    llama2c.write_tokenizer(f"{work}/tokenizer.bin", *llama2c.random_tokenizer(384, 7))
    run(tfq, "import", "llama2c", f"{work}/llama.bin", "--tokenizer", f"{work}/tokenizer.bin", "--output", f"{work}/llama.tfq")
    run(tfq, "export", f"{work}/llama.tfq", "--int8", "--scales", "f32", "--group-size", "12", "--two-pass-layers", "1",
        "--output", f"{out}/llama.int8.tfq")


def half_tables(tfq: str, out: str) -> None:
    """gpt-bpe-f16.int8.tfq from gpt-bpe.int8.tfq: dequantized to f32, exported with f16 tables."""
    with tfq_read.read(os.path.join(out, "gpt-bpe.int8.tfq")) as f, tempfile.TemporaryDirectory() as work:
        source = os.path.join(work, "bpe-f32.tfq")
        tfq_write.write(source, [(e.name, f.tensor(e.name)) for e in f.entries],
                        {"kind": "model", "config": f.metadata["config"], "tokenizer": f.metadata["tokenizer"]})
        run(tfq, "export", source, "--int8", "--scales", "f32", "--embedding", "fp16", "--group-size", "32", "--two-pass-layers", "1",
            "--output", os.path.join(out, "gpt-bpe-f16.int8.tfq"))


def expected(tfq: str, out: str) -> list[dict]:
    cases = []
    for name, prompt, n in CASES:
        path = os.path.join(out, name)
        shown = subprocess.run([tfq, "run", path, "--prompt", prompt, "-n", "1", "--json"], check=True,
                               capture_output=True, text=True).stdout
        ids = json.loads(shown)["prompt_token_ids"]
        model = reference_decode.Model(path)
        case = {"model": name, "prompt": prompt, "prompt_token_ids": ids, "n": n, "ignore_eos": True}
        for fused in (False, True):
            tokens, reason = reference_decode.generate(model, ids, n, fused, ignore_eos=True)
            case["fused" if fused else "unfused"] = tokens
            case["stop_reason"] = reason
        cases.append(case)
    return cases


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tfq", required=True, help="the tfq binary that trains, imports and exports")
    ap.add_argument("--out", default=os.path.join(ROOT, "formats", "testdata", "decode"))
    ap.add_argument("--expected-only", action="store_true",
                    help="keep the trained models: derive gpt-bpe-f16.int8.tfq again and recompute expected.json")
    args = ap.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    if not args.expected_only:
        with tempfile.TemporaryDirectory() as work:
            models(args.tfq, work, args.out)
    half_tables(args.tfq, args.out)
    cases = expected(args.tfq, args.out)
    with open(os.path.join(args.out, "expected.json"), "w") as f:
        json.dump({"about": "greedy tokens of formats/tfq.md §11 (tools/reference_decode.py); "
                            "regenerate with tools/decode_fixtures.py", "cases": cases}, f, indent=1)
        f.write("\n")
    for c in cases:
        differ = sum(a != b for a, b in zip(c["fused"], c["unfused"]))
        print(f"{c['model']}: {len(c['fused'])} tokens ({c['stop_reason']}), fused and unfused differ at {differ}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
