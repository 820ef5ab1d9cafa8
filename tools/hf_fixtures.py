#!/usr/bin/env python3
"""Tiny Hugging Face models for the `tfq import safetensors` tests, made by the real libraries.

CI checks tfq against `transformers` and `tokenizers` without installing torch: this script
trains a byte-level BPE (GPT-2's pipeline) with `tokenizers`, a GPT-2 and a Llama with
`transformers`, saves them as `save_pretrained` does, and records what those libraries
compute on them in each model's expected.json:

  gpt2/   GPT2LMHeadModel, tied head, weights stored F16, one model.safetensors
  llama/  LlamaForCausalLM, grouped-query attention, separate head, weights stored BF16 in
          two shards with model.safetensors.index.json
  dtypes.safetensors, dtypes.json   F32/F16/BF16 values and the f32 bits each must read as

The references are computed in float32 by the models holding exactly the stored (rounded)
values. Re-run (needs torch, transformers, tokenizers, safetensors from PyPI):

  python3 tools/hf_fixtures.py --out Tests/TFQImportTests/Fixtures/hf
"""
import argparse
import json
import os
import random
import shutil
import struct

import numpy as np
import safetensors.torch
import tokenizers
import torch
import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

VOCAB = 384
CORPUS = os.path.join(os.path.dirname(__file__), "../../shared/data/tinyshakespeare.txt")
PROMPT = "ROMEO:\nWhat light through yonder window"


def train_tokenizer(text):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([text], trainer)
    assert tok.get_vocab_size() == VOCAB
    return tok


def train(model, ids, steps, seed):
    """A few hundred AdamW steps: enough that greedy decoding is not a string of near-ties."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.tensor(ids)
    for step in range(steps):
        starts = torch.randint(0, len(data) - 65, (16,))
        batch = torch.stack([data[s:s + 65] for s in starts])
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return loss.item()


def greedy(model, prompt, count):
    """Greedy ids by full forward passes, and the smallest top-1/top-2 gap along the way."""
    ids, margin = list(prompt), float("inf")
    with torch.no_grad():
        for _ in range(count):
            logits = model(torch.tensor([ids])).logits[0, -1]
            top = torch.topk(logits, 2).values
            margin = min(margin, float(top[0] - top[1]))
            ids.append(int(torch.argmax(logits)))
    return ids[len(prompt):], margin


def tokenizer_cases(tok, text):
    rng = random.Random(1234)
    scripts = ["àéîõüçñ", "αβγδεζηθ", "абвгдеж", "日本語中文字", "हिन्दी", "٠١٢٣٤٥٦٧٨٩", "０１２３", "²³¹", "ⅫⅣ",
               "👍🏽👨‍👩‍👧", "e\u0301a\u0308", "“”‘’—…", "\u00a0\u3000\u2028"]
    cases = ["", " ", "'", "Hello world!", "it's IT'S we'll they'RE 's' ''ll", "a  b", "a\n\n b", "trailing   ",
             "\t\t x", "line\r\nnext", "no\u00a0break", "ideographic\u3000space", "sep\u2028line", "123456 7.5e-3",
             "--wait...?! ok", "hi<|endoftext|>there", "<|endoftext|><|endoftext|>", "Ⅻ²٣ numbers",
             "combining e\u0301 and é", text[:2000]]
    printable = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    for _ in range(10):
        cases.append("".join(rng.choice(printable) for _ in range(rng.randint(5, 60))))
    for _ in range(10):
        pool = "".join(scripts) + " \n'1a"
        cases.append("".join(rng.choice(pool) for _ in range(rng.randint(5, 40))))
    out = []
    for case in cases:
        ids = tok.encode(case).ids
        assert tok.decode(ids, skip_special_tokens=False) == case, repr(case)
        out.append({"text": case, "ids": ids})
    return out


def save(model, directory, dtype, tok, ids, shard_size=None):
    os.makedirs(directory, exist_ok=True)
    rounded = model.to(dtype)
    rounded.save_pretrained(directory, safe_serialization=True, **({"max_shard_size": shard_size} if shard_size else {}))
    tok.save(os.path.join(directory, "tokenizer.json"))
    reference = type(model).from_pretrained(directory, torch_dtype=torch.float32).eval()
    prompt = tok.encode(PROMPT).ids
    with torch.no_grad():
        logits = reference(torch.tensor([prompt])).logits[0]
    positions = [0, len(prompt) // 2, len(prompt) - 1]
    greedy_ids, margin = greedy(reference, prompt, 100)
    # transformers' own generate agrees with the hand loop.
    generated = reference.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=100, min_new_tokens=100,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    assert generated == greedy_ids
    assert margin > 2e-3, margin
    cfg = reference.config
    return {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
        "prompt_text": PROMPT, "prompt_ids": prompt,
        "logits": {"positions": positions, "rows": [[float(v) for v in logits[p]] for p in positions]},
        "greedy_ids": greedy_ids, "min_margin": margin,
        "tokenizer_cases": tokenizer_cases(tok, open(CORPUS, encoding="utf-8").read()),
        "config": {"model_type": cfg.model_type, "vocab_size": cfg.vocab_size},
        "training_ids": len(ids),
    }


def dtypes(out):
    tensors = {
        "f32": torch.tensor([[0.0, -0.0, 1.5, -2.25, 3.4028235e38], [1e-45, -1e-38, 0.1, 7.0, -7.5],
                             [float(i) / 3 for i in range(5)]], dtype=torch.float32),
        "f16": torch.tensor([0.0, -0.0, 65504.0, 6e-5, 1 / 3, -2.5, 6e-8], dtype=torch.float16),
        "bf16": torch.tensor([[1e30, -1e-30, 3.14159], [0.0, -1.0, 65536.0]], dtype=torch.bfloat16),
    }
    path = os.path.join(out, "dtypes.safetensors")
    safetensors.torch.save_file(tensors, path, metadata={"format": "pt"})
    expected = {}
    for name, t in tensors.items():
        wide = t.to(torch.float32).reshape(-1).numpy()
        expected[name] = {"dtype": {"f32": "F32", "f16": "F16", "bf16": "BF16"}[name], "shape": list(t.shape),
                          "bits": [int(b) for b in wide.view(np.uint32)], "values": [float(v) for v in wide]}
    with open(os.path.join(out, "dtypes.json"), "w") as f:
        json.dump(expected, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="Tests/TFQImportTests/Fixtures/hf")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(2)
    text = open(CORPUS, encoding="utf-8").read()
    tok = train_tokenizer(text)
    ids = tok.encode(text[:300_000]).ids
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    torch.manual_seed(1)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4,
                                      activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                                      bos_token_id=0, eos_token_id=0))
    loss = train(gpt2, ids, args.steps, seed=2)
    expected = save(gpt2, os.path.join(args.out, "gpt2"), torch.float16, tok, ids)
    expected["final_loss"] = loss
    with open(os.path.join(args.out, "gpt2/expected.json"), "w") as f:
        json.dump(expected, f, indent=0)
    print(f"gpt2: loss {loss:.3f}, min margin {expected['min_margin']:.4f}")

    torch.manual_seed(3)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
                                         attention_bias=False, mlp_bias=False, bos_token_id=0, eos_token_id=0))
    loss = train(llama, ids, args.steps, seed=4)
    expected = save(llama, os.path.join(args.out, "llama"), torch.bfloat16, tok, ids, shard_size="100KB")
    expected["final_loss"] = loss
    with open(os.path.join(args.out, "llama/expected.json"), "w") as f:
        json.dump(expected, f, indent=0)
    print(f"llama: loss {loss:.3f}, min margin {expected['min_margin']:.4f}")
    dtypes(args.out)


if __name__ == "__main__":
    main()
