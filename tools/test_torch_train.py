"""Tests for tools/torch_train.py's port of tfq's batch sampler (no torch needed).

    cd /work/main && python3 -m pytest -q tools/test_torch_train.py

The known answers are sampler states tfq saved in checkpoints of
`tfq train --data ../shared/data/tinyshakespeare.txt ... --seed 1337` (the baby config):
at step 0, and after 5 steps of 12 windows each.
"""
import os
import sys

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
