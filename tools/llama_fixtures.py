"""The llama2.c fixtures of tfq's Swift tests, Tests/TFQImportTests/Fixtures/llama.

    python3 tools/llama2c.py fixtures --out Tests/TFQImportTests/Fixtures/llama

regenerates them byte for byte (fixed seeds; tools/test_llama2c.py checks that they do):

- tokenizer.bin: llama2c.random_tokenizer(384, TOKENIZER_SEED);
- one checkpoint per entry of CHECKPOINTS: every version, shared and separate classifiers,
  grouped-query (4 heads, 2 kv heads) and plain multi-head attention. The version 2 files
  hold the weights of a version 0 or 1 file, quantized with group size 16;
- expected.json: per checkpoint its config, the logits at every position of LOGITS_TEXT's
  tokens, and the 20 greedy tokens after PROMPT; run.c's encode and decode on cases that
  cover merges, spaces, byte fallback and multi-byte characters.

The expected numbers are computed in float64 from the files' float32 weights (version 2:
dequantized, with float activations, which runq.c would round to int8 too; for those files
the greedy tokens with runq.c's int8 activations are checked to be the same). float64 keeps
the file independent of the machine: numpy's float32 results differ in their last bits
with the CPU and BLAS, which would break the byte-for-byte regeneration. The float32
reference (reference.llama_logits) agrees with them to about 1e-6 and gives the same greedy
tokens; each greedy step's top-2 logit margin is above MIN_MARGIN, so a different float
summation order cannot change a token.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama2c  # noqa: E402
import reference  # noqa: E402

TOKENIZER_SEED = 7
VOCAB = 384
GQA = llama2c.Config(dim=16, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=VOCAB, seq_len=32)
MHA = llama2c.Config(dim=16, hidden_dim=48, n_layers=2, n_heads=4, n_kv_heads=4, vocab_size=VOCAB, seq_len=32)
GROUP = 16

# file, version, config, shared classifier, weights seed, group size. The seeds are ones
# whose greedy tokens vary, hold neither BOS nor EOS, and have clear top-2 margins.
CHECKPOINTS = (
    ("tiny-v0.bin", 0, GQA, False, 4, None),
    ("tiny-v0-shared.bin", 0, MHA, True, 25, None),
    ("tiny-v1.bin", 1, GQA, False, 7, None),
    ("tiny-v2.bin", 2, GQA, False, 7, GROUP),           # tiny-v1's weights, quantized
    ("tiny-v2-shared.bin", 2, MHA, True, 25, GROUP),    # tiny-v0-shared's weights, quantized
)

LOGITS_TEXT = "Lily saw a dog!"
PROMPT = "Lily saw the cat"
GREEDY_TOKENS = 20
MIN_MARGIN = 1e-3

ENCODE_CASES = [
    "",                                   # no dummy prefix: BOS only
    "Once upon a time",
    "Lily played with the cat and the dog.",   # several merge rounds
    "the the the",                        # the same merge at several places: leftmost first
    " ",
    "  two leading spaces",
    "trailing space ",
    "hello\nworld\n",                     # "\n" is not a piece: byte fallback <0x0A>
    "A\tB 123",
    "café",                               # é is a piece
    "naïve",                              # ï is not: its two bytes
    "жук",                                # ж is a piece, у and к are not
    "→ 😀 🙂",                             # 🙂 is not a piece: four bytes
    "中文",
]


def decode_cases(pieces) -> list[list[int]]:
    """Id sequences for run.c's decode: a leading space after BOS, raw bytes, specials."""
    index = llama2c.vocab_index(pieces)
    lily, space, a = index[b" Lily"], index[b" "], index[b"a"]
    return [
        [1, lily, index[b" and"]],        # the space after BOS goes, the next one stays
        [a, lily],                        # no BOS before: the space stays
        [1, space],                       # BOS then " ": nothing
        [1, 3 + 0x0A, a],                 # <0x0A> is the byte 0x0A
        [1, 3 + 0x00],                    # <0x00>: an empty C string
        [1, 3 + 0xC3, 3 + 0xAF],          # two byte pieces: the UTF-8 of ï
        [1, 3 + 0x20, a],                 # <0x20> after BOS is a byte, not a stripped space
        [1, 2, 0, 1],                     # the special pieces as they are
    ]


def _round(x: float) -> float:
    return float(f"{x:.7g}")


def _margins(logits: np.ndarray) -> np.ndarray:
    top2 = np.sort(logits, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def _greedy(name, config, weights, prompt_ids) -> dict:
    """The greedy tokens, checked to be the same in float64, float32 and (for int8 files)
    with runq.c's int8 activations, with every step's top-2 margin above MIN_MARGIN."""
    ids = reference.llama_generate_greedy(config, weights, prompt_ids, GREEDY_TOKENS, dtype=np.float64)
    seq = list(prompt_ids) + ids[:-1]
    margin = float(_margins(reference.llama_logits(config, weights, seq, np.float64)[len(prompt_ids) - 1:]).min())
    result = {"greedy_ids": ids, "greedy_min_margin": _round(margin)}
    problems = []
    if len(ids) != GREEDY_TOKENS or {1, 2} & set(ids):
        problems.append(f"the greedy tokens {ids} stop early or hold BOS/EOS")
    if margin <= MIN_MARGIN:
        problems.append(f"a greedy step's top-2 margin is {margin:.3g}")
    if reference.llama_generate_greedy(config, weights, prompt_ids, GREEDY_TOKENS) != ids:
        problems.append("float32 greedy tokens differ from float64's")
    if name.startswith("tiny-v2"):
        act = reference.llama_logits(config, weights, seq, np.float64, activation_group=GROUP)
        int8_margin = float(_margins(act[len(prompt_ids) - 1:]).min())
        if list(act[len(prompt_ids) - 1:].argmax(axis=-1)) != ids or int8_margin <= MIN_MARGIN:
            problems.append("runq.c's int8 activations give other greedy tokens")
        result["greedy_min_margin_int8_activations"] = _round(int8_margin)
    if problems:
        raise RuntimeError(f"{name}: {'; '.join(problems)}: choose another seed in CHECKPOINTS")
    return result


def build(out_dir) -> list[str]:
    """Writes every fixture into out_dir; -> one line per file written."""
    os.makedirs(out_dir, exist_ok=True)
    pieces, scores = llama2c.random_tokenizer(VOCAB, TOKENIZER_SEED)
    tokenizer_path = os.path.join(out_dir, "tokenizer.bin")
    llama2c.write_tokenizer(tokenizer_path, pieces, scores)
    pieces, scores, max_token_length = llama2c.read_tokenizer(tokenizer_path, VOCAB)
    logits_ids = llama2c.encode(LOGITS_TEXT, pieces, scores)
    prompt_ids = llama2c.encode(PROMPT, pieces, scores)
    written = [f"tokenizer.bin: {VOCAB} pieces"]
    doc = {
        "about": "Made by tools/llama2c.py fixtures (see tools/llama_fixtures.py). Logits and greedy "
                 "tokens are float64 evaluations of llama2.c's forward pass on each file's float32 weights; "
                 "for version 2 files on the dequantized weights with float activations (runq.c would also "
                 "round activations to int8; greedy_ids are the same with int8 activations). Each greedy "
                 "step's top-2 logit margin is at least greedy_min_margin. Logits are rounded to 7 significant "
                 "digits. Encode cases use bos=true, eos=false; a decode case prints each id after the first, "
                 "decoded with its predecessor, as run.c's generate does.",
        "tokenizer": {
            "file": "tokenizer.bin", "vocab_size": VOCAB, "max_token_length": max_token_length,
            "encode": [{"text": text, "ids": llama2c.encode(text, pieces, scores)} for text in ENCODE_CASES],
            "decode": [{"ids": ids, "bytes": list(llama2c.decode(ids, pieces))} for ids in decode_cases(pieces)],
        },
        "logits_text": LOGITS_TEXT, "logits_ids": logits_ids,
        "prompt": PROMPT, "prompt_ids": prompt_ids,
        "checkpoints": [],
    }
    for name, version, config, shared, seed, group_size in CHECKPOINTS:
        path = os.path.join(out_dir, name)
        weights = llama2c.random_model(config, seed, shared_classifier=shared)
        llama2c.write_checkpoint(path, config, weights, version, group_size)
        ckpt = llama2c.read_checkpoint(path)        # what the file holds: v2 dequantized
        logits = reference.llama_logits(config, ckpt.weights, logits_ids, np.float64)
        entry = {"file": name, "version": version, "config": vars(config).copy(),
                 "shared_classifier": shared, "group_size": group_size,
                 "logits": [[_round(x) for x in row] for row in logits.tolist()]}
        entry.update(_greedy(name, config, ckpt.weights, prompt_ids))
        doc["checkpoints"].append(entry)
        written.append(f"{name}: version {version}, {os.path.getsize(path)} bytes, "
                       f"greedy min margin {entry['greedy_min_margin']}")
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as fh:
        fh.write(_json(doc) + "\n")
    written.append("expected.json")
    return written


TWO_PASS_MODEL = "tiny-v1.two-pass.int8.tfq"
TWO_PASS_TEXT = "Lily saw a dog! The cat ran to the park."


def two_pass_expectations(model_path) -> dict:
    """The logits tfq's runtime must give for TWO_PASS_MODEL: tiny-v1.bin imported, then
    exported by `tfq export --int8 --group-size 16 --no-gptq --embedding int8 --no-zstd`, so
    its quantization.two_pass_activations lists block 0's weights. Computed in float64 from
    the file's dequantized weights, with every matmul input rounded to int8 in groups of 16:
    in two passes in block 0, in one elsewhere; and, for contrast, in one pass everywhere."""
    import tfq_read
    with tfq_read.read(model_path) as f:
        listed = f.metadata["quantization"]["two_pass_activations"]
        group = int(f.metadata["quantization"]["group_size"])
    config, weights = reference.llama_weights_from_tfq(model_path)
    layers = sorted({int(name.split(".")[1]) for name in listed})
    pieces, scores, _ = llama2c.read_tokenizer(os.path.join(os.path.dirname(model_path), "tokenizer.bin"), config.vocab_size)
    ids = llama2c.encode(TWO_PASS_TEXT, pieces, scores)
    two = reference.llama_logits(config, weights, ids, np.float64, activation_group=group, two_pass_layers=layers)
    one = reference.llama_logits(config, weights, ids, np.float64, activation_group=group)
    return {
        "about": "Made by python3 tools/llama_fixtures.py two-pass MODEL: float64 logits of the model's "
                 "dequantized weights with int8 activations, two passes in the listed blocks (logits_two_pass) "
                 "and one pass everywhere (logits_one_pass). Rounded to 7 significant digits.",
        "model": os.path.basename(model_path), "group_size": group, "two_pass_weights": listed,
        "two_pass_layers": layers, "text": TWO_PASS_TEXT, "ids": ids,
        "logits_two_pass": [[_round(x) for x in row] for row in two.tolist()],
        "logits_one_pass": [[_round(x) for x in row] for row in one.tolist()],
    }


def _json(value, indent: int = 0) -> str:
    """JSON with one line per object member and per list of lists, a list of numbers on
    one line: readable, and diffs stay small."""
    pad, end = " " * (indent + 1), " " * indent
    if isinstance(value, dict):
        members = [f"{pad}{json.dumps(k)}: {_json(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(members) + "\n" + end + "}"
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return "[\n" + ",\n".join(pad + _json(v, indent + 1) for v in value) + "\n" + end + "]"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "two-pass":
        sys.exit("usage: llama_fixtures.py two-pass MODEL   (writes two-pass.json beside MODEL)")
    doc = two_pass_expectations(sys.argv[2])
    with open(os.path.join(os.path.dirname(sys.argv[2]), "two-pass.json"), "w", encoding="utf-8") as fh:
        fh.write(_json(doc) + "\n")
