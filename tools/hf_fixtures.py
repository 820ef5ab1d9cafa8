#!/usr/bin/env python3
"""Tiny Hugging Face models for the `tfq import safetensors` tests, made by the real libraries.

CI checks tfq against `transformers` and `tokenizers` without installing torch: this script
trains a byte-level BPE (GPT-2's pipeline) with `tokenizers`, a GPT-2 and a Llama with
`transformers`, saves them as `save_pretrained` does, and records what those libraries
compute on them in each model's expected.json:

  gpt2/   GPT2LMHeadModel, tied head, weights stored F16, one model.safetensors
  llama/  LlamaForCausalLM, grouped-query attention, separate head, weights stored BF16 in
          several shards with model.safetensors.index.json
  llama-sp/  LlamaForCausalLM with a SentencePiece BPE (byte fallback) trained by `sentencepiece`
          and converted to tokenizer.json by `transformers`' LlamaTokenizer (Metaspace "first",
          BOS first), weights F16; tokenizer-prepend.json (Llama 2's own pipeline: Prepend and
          Replace normalizers), tokenizer-always.json (Metaspace "always") and tokenizer-split.json
          (Metaspace "always" with split) are the same vocabulary in the other pipelines
  dtypes.safetensors, dtypes.json   F32/F16/BF16 values and the f32 bits each must read as

The references are computed in float32 by the models holding exactly the stored (rounded)
values. The output is the same bytes on every run with the same library versions (recorded in
expected.json). Re-run (needs torch, transformers, tokenizers, safetensors, sentencepiece and protobuf from PyPI):

  python3 tools/hf_fixtures.py --out Tests/TFQImportTests/Fixtures/hf
"""
import argparse
import copy
import io
import json
import math
import os
import random
import shutil

import numpy as np
import safetensors.torch
import sentencepiece
import tokenizers
import torch
import transformers
from tokenizers import pre_tokenizers
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, LlamaTokenizer

from torch_train import byte_level_bpe

VOCAB = 384
SP_VOCAB = 512
CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../shared/data/tinyshakespeare.txt")
# 18 ids. Along both models' greedy paths top-1 and top-2 stay over 4e-3 apart, so tfq's different
# float summation order cannot flip a token (many short lines come within 2e-3).
PROMPT = "MENENIUS:\nI will not stay to hear."
STEPS, BATCH, CONTEXT = 300, 16, 64


def train_tokenizer(text):
    tok = byte_level_bpe(VOCAB, texts=[text])
    assert tok.get_vocab_size() == VOCAB
    assert set(pre_tokenizers.ByteLevel.alphabet()) <= set(tok.get_vocab()), "a byte has no token"
    return tok


def train_sentencepiece(text, directory):
    """A SentencePiece BPE with byte fallback, made by `sentencepiece` as Llama's was, and the
    tokenizer.json `transformers` converts it to (LlamaTokenizer: Metaspace "first", BOS first)."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()[:20000]), model_writer=model, vocab_size=SP_VOCAB, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, split_digits=True, add_dummy_prefix=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        num_threads=1, minloglevel=2)
    scratch = directory + ".spm"
    os.makedirs(scratch)
    with open(os.path.join(scratch, "tokenizer.model"), "wb") as f:
        f.write(model.getvalue())
    LlamaTokenizer.from_pretrained(scratch, legacy=False, add_bos_token=True).save_pretrained(scratch)
    tok = tokenizers.Tokenizer.from_file(os.path.join(scratch, "tokenizer.json"))
    shutil.rmtree(scratch)
    assert tok.get_vocab_size() == SP_VOCAB and all(f"<0x{b:02X}>" in tok.get_vocab() for b in range(256))
    return tok


def pipeline_variants(tok):
    """The same vocabulary in the pipelines other Llama-family files use."""
    base = json.loads(tok.to_str())
    mark = "\u2581"
    prepend = copy.deepcopy(base)
    prepend["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": mark}, {"type": "Replace", "pattern": {"String": " "}, "content": mark}]}
    prepend["pre_tokenizer"] = None
    always = copy.deepcopy(base)
    always["pre_tokenizer"]["prepend_scheme"] = "always"
    split = copy.deepcopy(always)
    split["pre_tokenizer"]["split"] = True
    return {name: tokenizers.Tokenizer.from_str(json.dumps(value))
            for name, value in [("prepend", prepend), ("always", always), ("split", split)]}


def train(model, ids, seed, vocab=VOCAB):
    """A few hundred AdamW steps: enough that greedy decoding is not a string of near-ties."""
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    data = torch.tensor(ids)
    losses = []
    for _ in range(STEPS):
        starts = torch.randint(0, len(data) - CONTEXT - 1, (BATCH,))
        batch = torch.stack([data[s:s + CONTEXT + 1] for s in starts])
        logits = model(batch[:, :-1]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), batch[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    final = sum(losses[-20:]) / 20
    assert final < math.log(vocab) - 2, final
    return {"steps": STEPS, "batch": [BATCH, CONTEXT], "lr": 3e-3, "first_loss": losses[0], "final_loss": final,
            "uniform_loss": math.log(vocab)}


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


def case_texts(text):
    scripts = ["caf\u00e9 na\u00efve \u00c5ngstr\u00f6m", "\u03b1\u03b2\u03b3 \u0394\u03b5\u03bb\u03c6\u03bf\u03af",
               "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440", "\u65e5\u672c\u8a9e\u3068\u4e2d\u6587",
               "\u0939\u093f\u0928\u094d\u0926\u0940 \u092d\u093e\u0937\u093e", "\u0660\u0661\u0662 \uff11\uff12\uff13",
               "x\u00b2+y\u00b3 \u216b o'clock", "\U0001f468\u200d\U0001f469\u200d\U0001f467 ok \U0001f44d\U0001f3fd",
               "e\u0301 a\u0308\u0323", "no\u00a0break", "ideographic\u3000space", "sep\u2028line"]
    cases = ["", " ", "'", "Hello world!", "it's", "IT'S", "we'll", "they'RE", "'s'", "''ll", "I'd've DON'T",
             "a  b", "a\n\n b", "trailing   ", "\t\t x", "line\r\nnext", "123456 7.5e-3", "--wait...?! ok;;",
             "hi<|endoftext|>there", "<|endoftext|><|endoftext|>"] + scripts + [text[:2000]]
    rng = random.Random(1234)
    printable = [chr(c) for c in range(32, 127)] + ["\n", "\t"]
    pool = "".join(scripts) + " \n'1a"
    for _ in range(5):
        cases.append("".join(rng.choice(printable) for _ in range(rng.randint(5, 60))))
        cases.append("".join(rng.choice(pool) for _ in range(rng.randint(5, 40))))
    return cases


def tokenizer_cases(tok, text):
    out = []
    for case in case_texts(text):
        ids = tok.encode(case).ids
        assert tok.decode(ids, skip_special_tokens=False) == case, repr(case)
        out.append({"text": case, "ids": ids})
    return out


def sentencepiece_cases(tok, text):
    """Ids as `tokenizers` encodes, and the text it decodes them to after the leading BOS (with the
    special tokens' text): a SentencePiece-style tokenizer does not give every text back."""
    extra = ["<s>", "</s>", "<unk>", "hi</s>there", "<s>hello", "a<s> b", " leading", "  two", "end ",
             "\u2581mark \u2581\u2581", "tab\there", "x\u2581", "\ufffd\U0010ffff", "A" * 100]
    out = []
    for case in case_texts(text).copy() + extra:
        case = case.replace("<|endoftext|>", "</s>")
        ids = tok.encode(case).ids
        assert ids[0] == 1, ids
        out.append({"text": case, "ids": ids, "decoded": tok.decode(ids[1:], skip_special_tokens=False)})
    return out


def fixture(model, directory, dtype, tok, text, shard_size=None, cases=tokenizer_cases):
    """Saves `model` rounded to `dtype`, loads it back in float32 and records what it computes."""
    os.makedirs(directory)
    sharding = {"max_shard_size": shard_size} if shard_size else {}
    model.to(dtype).save_pretrained(directory, safe_serialization=True, **sharding)
    tok.save(os.path.join(directory, "tokenizer.json"))
    reference = type(model).from_pretrained(directory, dtype=torch.float32).eval()
    prompt = tok.encode(PROMPT).ids
    assert 8 <= len(prompt) <= 20, len(prompt)
    with torch.no_grad():
        logits = reference(torch.tensor([prompt])).logits[0]
    positions = [0, len(prompt) // 2, len(prompt) - 1]
    greedy_ids, margin = greedy(reference, prompt, 100)
    # transformers' own generate (cached keys and values) agrees with the hand loop.
    generated = reference.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=100, min_new_tokens=100,
                                   eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    assert generated == greedy_ids
    assert margin > 2e-3, margin
    c = reference.config
    return {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "tokenizers": tokenizers.__version__, "safetensors": safetensors.__version__},
        "prompt_text": PROMPT, "prompt_ids": prompt,
        "logits": {"positions": positions, "rows": [[float(v) for v in logits[p]] for p in positions]},
        "greedy_ids": greedy_ids, "min_margin": margin,
        "tokenizer_cases": cases(tok, text),
        "config": {"model_type": c.model_type, "vocab_size": c.vocab_size, "dim": c.hidden_size,
                   "layers": c.num_hidden_layers, "heads": c.num_attention_heads,
                   "kv_heads": getattr(c, "num_key_value_heads", c.num_attention_heads),
                   "hidden": getattr(c, "intermediate_size", None) or 4 * c.hidden_size,
                   "context": c.max_position_embeddings, "tied": c.tie_word_embeddings,
                   "stored_dtype": {torch.float16: "F16", torch.bfloat16: "BF16"}[dtype],
                   "bos": c.bos_token_id, "eos": c.eos_token_id},
    }


def write_json(path, value):
    """JSON broken over lines down to containers of plain values, so each logits row, id list and
    tokenizer case is one line: readable diffs without one number per line."""
    def children(v):
        return list(v.values()) if isinstance(v, dict) else v if isinstance(v, list) else []

    def flat(v):
        return not any(isinstance(x, (dict, list)) for x in children(v))

    def dump(v, depth):
        if flat(v) or (isinstance(v, dict) and all(map(flat, children(v)))):
            return json.dumps(v)
        keys = [f"{json.dumps(k)}: " for k in v] if isinstance(v, dict) else [""] * len(v)
        pad = "\n" + " " * (depth + 1)
        body = ("," + pad).join(k + dump(x, depth + 1) for k, x in zip(keys, children(v)))
        opening, closing = "{}" if isinstance(v, dict) else "[]"
        return opening + pad + body + "\n" + " " * depth + closing

    with open(path, "w") as f:
        f.write(dump(value, 0) + "\n")


def dtypes(out):
    tensors = {
        "f32": torch.tensor([[0.0, -0.0, 1.5, -2.25, 3.4028235e38], [1e-45, -1e-38, 0.1, 7.0, -7.5],
                             [float(i) / 3 for i in range(5)]], dtype=torch.float32),
        "f16": torch.tensor([0.0, -0.0, 65504.0, 6e-5, 1 / 3, -2.5, 6e-8], dtype=torch.float16),
        "bf16": torch.tensor([[1e30, -1e-30, 3.14159], [0.0, -1.0, 65536.0]], dtype=torch.bfloat16),
    }
    safetensors.torch.save_file(tensors, os.path.join(out, "dtypes.safetensors"), metadata={"format": "pt"})
    expected = {}
    for name, t in tensors.items():
        wide = t.to(torch.float32).reshape(-1).numpy()
        expected[name] = {"dtype": name.upper(), "shape": list(t.shape),
                          "bits": [int(b) for b in wide.view(np.uint32)], "values": [float(v) for v in wide]}
    write_json(os.path.join(out, "dtypes.json"), expected)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="Tests/TFQImportTests/Fixtures/hf")
    parser.add_argument("--corpus", default=CORPUS)
    args = parser.parse_args()
    torch.set_num_threads(2)
    transformers.utils.logging.disable_progress_bar()
    text = open(args.corpus, encoding="utf-8").read()
    tok = train_tokenizer(text)
    ids = tok.encode(text[:300_000]).ids
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    torch.manual_seed(1)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=128, n_embd=64, n_layer=2, n_head=4,
                                      activation_function="gelu_new", layer_norm_epsilon=1e-5, tie_word_embeddings=True,
                                      bos_token_id=0, eos_token_id=0))
    torch.manual_seed(3)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, hidden_act="silu",
                                         attention_bias=False, mlp_bias=False, bos_token_id=0, eos_token_id=0))
    # 100 KB shards split the Llama's 283 KB of BF16 into three files.
    for name, model, seed, dtype, shards in [("gpt2", gpt2, 2, torch.float16, None),
                                             ("llama", llama, 4, torch.bfloat16, "100KB")]:
        training = train(model, ids, seed)
        expected = fixture(model, os.path.join(args.out, name), dtype, tok, text, shards)
        expected["training"] = training
        write_json(os.path.join(args.out, name, "expected.json"), expected)
        print(f"{name}: loss {training['first_loss']:.3f} -> {training['final_loss']:.3f}, "
              f"min margin {expected['min_margin']:.4f}")

    sp_dir = os.path.join(args.out, "llama-sp")
    sp = train_sentencepiece(text, sp_dir)
    sp_ids = sp.encode(text[:300_000]).ids
    torch.manual_seed(5)
    llama_sp = LlamaForCausalLM(LlamaConfig(vocab_size=SP_VOCAB, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False,
                                            hidden_act="silu", attention_bias=False, mlp_bias=False, bos_token_id=1,
                                            eos_token_id=2))
    training = train(llama_sp, sp_ids, 6, SP_VOCAB)
    expected = fixture(llama_sp, sp_dir, torch.float16, sp, text, cases=sentencepiece_cases)
    expected["training"] = training
    expected["tokenizer_variants"] = {}
    for name, variant in pipeline_variants(sp).items():
        variant.save(os.path.join(sp_dir, f"tokenizer-{name}.json"))
        expected["tokenizer_variants"][name] = sentencepiece_cases(variant, text)
    write_json(os.path.join(sp_dir, "expected.json"), expected)
    print(f"llama-sp: loss {training['first_loss']:.3f} -> {training['final_loss']:.3f}, "
          f"min margin {expected['min_margin']:.4f}")
    dtypes(args.out)


if __name__ == "__main__":
    main()
