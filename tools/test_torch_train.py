"""Tests for tools/torch_train.py's port of tfq's batch sampler, and for what --init takes
from a checkpoint and what it refuses (no torch needed); then, with torch, transformers,
tokenizers and safetensors, for its BPE tokenizer, its --save-hf layout (transformers' own
GPT2LMHeadModel computes the model's logits) and a two-process torchrun run.

    cd /work/main && python3 -m pytest -q tools/test_torch_train.py

The known answers are sampler states tfq saved in checkpoints of
`tfq train --data ../shared/data/tinyshakespeare.txt ... --seed 1337` (the baby config):
at step 0, and after 5 steps of 12 windows each. The step-0 state is the batch stream, the
seed's sequence jumped 2^128 draws ahead; the jump is checked here against the generator's
transition matrix raised to that power, computed from the update rule alone.
"""
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import MASK64, Xoshiro256, rotl  # noqa: E402

SEED_1337 = ["b6a8a9b313caa00b", "cb7f284b67d605c9", "3440fccf54082b5a", "77026dc1feefc262"]
BATCHES_1337 = ["8a58f719aed54015", "d2eb58900c38a97f", "5defb58444c84672", "70a01c1be21a5a90"]
AFTER_60_DRAWS = ["6d37b4ea950091e0", "22194c968d3fc3dc", "b5397712aa128347", "63a90089e08deadd"]


def state(generator):
    return [format(word, "x") for word in generator.s]


def test_seeding_matches_tfqs_splitmix():
    assert state(Xoshiro256.seeded(1337)) == SEED_1337


def jumped_2_to_the_128(words):
    """The state 2^128 draws after `words`, without the authors' jump polynomial: the state
    update is linear over GF(2), so its 256x256 matrix (columns: the images of the unit
    states, as 256-bit integers) is squared 128 times and applied to the state."""
    def update(v):
        s = [(v >> (64 * i)) & MASK64 for i in range(4)]
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]  # noqa: E702
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return s[0] | s[1] << 64 | s[2] << 128 | s[3] << 192

    def apply(columns, v):
        result = 0
        while v:
            low = v & -v
            result ^= columns[low.bit_length() - 1]
            v ^= low
        return result

    columns = [update(1 << j) for j in range(256)]
    for _ in range(128):
        columns = [apply(columns, c) for c in columns]
    v = apply(columns, sum(int(w, 16) << (64 * i) for i, w in enumerate(words)))
    return [format((v >> (64 * i)) & MASK64, "x") for i in range(4)]


def test_tfqs_batch_stream_is_the_seed_jumped_2_to_the_128_draws():
    assert jumped_2_to_the_128(SEED_1337) == BATCHES_1337


def test_sixty_draws_reach_the_state_tfq_saved_after_five_batches_of_twelve():
    generator = Xoshiro256(BATCHES_1337)
    for _ in range(5):
        generator.starts(1_003_855, 12, 64)
    assert state(generator) == AFTER_60_DRAWS


def test_starts_stay_inside_the_tokens():
    generator = Xoshiro256.seeded(7)
    starts = [s for _ in range(200) for s in generator.starts(100, 12, 64)]
    # A window is 64 inputs and the target after them: the last one starts at 100 - 65.
    assert min(starts) == 0 and max(starts) == 100 - 65


def test_a_different_saved_state_draws_differently():
    assert Xoshiro256(BATCHES_1337).next() != Xoshiro256(AFTER_60_DRAWS).next()


def checkpoint(tmp_path, step=0, ff_dim=512, val_data_path=None, **options):
    """A metadata-only stand-in for `tfq train ... --steps 0`: what load_checkpoint reads."""
    import numpy as np
    import tfq_write
    base = {"activation": "gelu", "tie_embeddings": True, "bias": False, "dropout": 0, "beta1": 0.9, "optimizer": "adamw",
            "layers": 4, "heads": 4, "dim": 128, "context": 64, "batch": 12, "lr": 1e-3, "min_lr": 1e-4, "warmup": 100,
            "beta2": 0.99, "weight_decay": 0.1, "grad_clip": 1.0, "eval_batches": 20, "seed": 1337}
    base.update(options)
    path = tmp_path / "start.tfq"
    tfq_write.write(path, [("tok_emb", np.zeros((2, 2), dtype=np.float32))], {
        "kind": "checkpoint", "config": {"ff_dim": ff_dim}, "tokenizer": {"type": "char", "vocab": ["a"]},
        "training": {"options": base, "step": step, "sampler": BATCHES_1337, "data_path": "corpus.txt",
                     **({"val_data_path": val_data_path} if val_data_path else {})}})
    return str(path)


def load(path, steps=2000):
    import argparse
    import torch_train
    args = argparse.Namespace(init=path, data=None, lr=5.0, layers=1, steps=steps)
    torch_train.load_checkpoint(args)
    return args


def test_init_takes_the_checkpoints_options(tmp_path):
    args = load(checkpoint(tmp_path, lr=3e-4, layers=6))
    assert (args.lr, args.layers, args.min_lr, args.grad_clip, args.seed) == (3e-4, 6, 1e-4, 1.0, 1337)
    assert args.data == "corpus.txt"


def test_init_refuses_what_it_cannot_reproduce(tmp_path):
    for bad, reason in [({"step": 5}, "step 5"), ({"ff_dim": 256}, "ff 4·dim"), ({"bias": True}, "without biases"),
                        ({"optimizer": "sgd"}, "AdamW"), ({"val_data_path": "val.txt"}, "--val-data")]:
        with pytest.raises(SystemExit) as exit:
            load(checkpoint(tmp_path, **bad))
        assert reason in str(exit.value)


def test_a_trained_checkpoint_can_be_evaluated_with_steps_0(tmp_path):
    assert load(checkpoint(tmp_path, step=2000), steps=0).layers == 4


SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_train.py")


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A corpus (the README) and a byte-level BPE of 300 tokens made from it by --train-tokenizer."""
    for name in ("torch", "transformers", "tokenizers", "safetensors"):
        pytest.importorskip(name)
    directory = tmp_path_factory.mktemp("bpe")
    corpus, tokenizer = directory / "corpus.txt", directory / "tokenizer.json"
    with open(os.path.join(os.path.dirname(SCRIPT), "..", "README.md"), encoding="utf-8") as f:
        corpus.write_text(f.read(), encoding="utf-8")
    subprocess.run([sys.executable, SCRIPT, "--data", str(corpus), "--train-tokenizer", "300",
                    "--tokenizer-json", str(tokenizer)], check=True)
    return corpus, tokenizer


def test_train_tokenizer_is_gpt2s_byte_level_bpe(bpe):
    from tokenizers import Tokenizer
    tokenizer = Tokenizer.from_file(str(bpe[1]))
    assert tokenizer.get_vocab_size() == 300 and tokenizer.token_to_id("<|endoftext|>") == 0
    text = "ROMEO: naïve — 'tis\n\n  done"
    assert tokenizer.decode(tokenizer.encode(text).ids) == text


def test_save_hf_is_a_gpt2lmheadmodel_computing_the_same_logits(bpe, tmp_path):
    import argparse
    import safetensors
    import torch
    import torch_train
    from transformers import GPT2LMHeadModel
    args = argparse.Namespace(layers=2, heads=4, dim=32, context=16, tokenizer_json=str(bpe[1]))
    torch.manual_seed(0)
    model = torch_train.build_model(torch, 300, args)
    with torch.no_grad():  # larger than the initial weights, norms not all ones: a misplaced tensor shows
        for parameter in model.parameters():
            parameter.normal_(1.0 if parameter.dim() == 1 else 0.0, 0.3)
    torch_train.save_hf(torch, model, args, str(tmp_path))
    with safetensors.safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        shapes = {name: list(f.get_slice(name).get_shape()) for name in f.keys()}
    assert shapes["transformer.h.1.attn.c_attn.weight"] == [32, 96]
    assert shapes["transformer.h.1.mlp.c_proj.weight"] == [128, 32]
    assert shapes["transformer.h.0.attn.c_attn.bias"] == [96] and len(shapes) == 4 + 12 * 2
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["n_positions"], config["n_inner"], config["eos_token_id"]) == (16, 128, 0)
    hf = GPT2LMHeadModel.from_pretrained(str(tmp_path)).eval()
    ids = torch.randint(0, 300, (3, 16))
    with torch.no_grad():
        ours, theirs = model(ids), hf(ids).logits
    assert ours.abs().max() > 1 and (ours - theirs).abs().max() < 1e-4


def test_torchrun_trains_on_two_processes_and_rank_0_saves(bpe, tmp_path):
    import torch.distributed
    if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
        pytest.skip("torch.distributed has no gloo here")
    corpus, tokenizer = bpe
    out, log = tmp_path / "hf", tmp_path / "log.jsonl"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--", SCRIPT,
                          "--data", str(corpus), "--tokenizer-json", str(tokenizer), "--layers", "1", "--dim", "32",
                          "--heads", "2", "--context", "16", "--batch", "2", "--steps", "3", "--eval-every", "2",
                          "--eval-batches", "2", "--threads", "1", "--json", "--log", str(log), "--save-hf", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    figures = json.loads(run.stdout)  # one line: rank 0's
    assert (figures["processes"], figures["tokens"]) == (2, 3 * 2 * 2 * 16)
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["step"], "val_loss" in e) for e in entries] == [(1, False), (2, True), (3, False)]
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "tokenizer.json"]
