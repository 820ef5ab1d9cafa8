"""Tests for tools/torch_train.py's port of tfq's batch sampler, and for what --init takes
from a checkpoint and what it refuses (no torch needed).

    cd /work/main && python3 -m pytest -q tools/test_torch_train.py

The known answers are sampler states tfq saved in checkpoints of
`tfq train --data ../shared/data/tinyshakespeare.txt ... --seed 1337` (the baby config):
at step 0, and after 5 steps of 12 windows each.
"""
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train import Xoshiro256  # noqa: E402

SEED_1337 = ["b6a8a9b313caa00b", "cb7f284b67d605c9", "3440fccf54082b5a", "77026dc1feefc262"]
AFTER_60_DRAWS = ["5f602ea95ffe67f7", "9e9b4ed4b472c285", "b9441b8de16448d8", "3c5e143a47f1c12"]


def state(generator):
    return [format(word, "x") for word in generator.s]


def test_seeding_matches_tfqs_splitmix():
    assert state(Xoshiro256.seeded(1337)) == SEED_1337


def test_sixty_draws_reach_the_state_tfq_saved_after_five_batches_of_twelve():
    generator = Xoshiro256(SEED_1337)
    for _ in range(5):
        generator.starts(1_003_855, 12, 64)
    assert state(generator) == AFTER_60_DRAWS


def test_starts_stay_inside_the_tokens():
    generator = Xoshiro256.seeded(7)
    starts = [s for _ in range(200) for s in generator.starts(100, 12, 64)]
    # A window is 64 inputs and the target after them: the last one starts at 100 - 65.
    assert min(starts) == 0 and max(starts) == 100 - 65


def test_a_different_saved_state_draws_differently():
    assert Xoshiro256(SEED_1337).next() != Xoshiro256(AFTER_60_DRAWS).next()


def checkpoint(tmp_path, step=0, ff_dim=512, **options):
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
        "training": {"options": base, "step": step, "sampler": SEED_1337, "data_path": "corpus.txt"}})
    return str(path)


def load(path):
    import argparse
    import torch_train
    args = argparse.Namespace(init=path, data=None, lr=5.0, layers=1)
    torch_train.load_checkpoint(args)
    return args


def test_init_takes_the_checkpoints_options(tmp_path):
    args = load(checkpoint(tmp_path, lr=3e-4, layers=6))
    assert (args.lr, args.layers, args.min_lr, args.grad_clip, args.seed) == (3e-4, 6, 1e-4, 1.0, 1337)
    assert args.data == "corpus.txt"


def test_init_refuses_what_it_cannot_reproduce(tmp_path):
    for bad, reason in [({"step": 5}, "step 5"), ({"ff_dim": 256}, "ff 4·dim"), ({"bias": True}, "without biases"),
                        ({"optimizer": "sgd"}, "AdamW")]:
        with pytest.raises(SystemExit) as exit:
            load(checkpoint(tmp_path, **bad))
        assert reason in str(exit.value)
