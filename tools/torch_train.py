#!/usr/bin/env python3
"""The PyTorch side of the training benchmark: the same model and recipe as `tfq train`,
run on the same machine, so the two are compared side by side instead of against a
figure measured elsewhere.

The model is nanoGPT's (pre-LayerNorm GPT-2 blocks, tanh-GELU MLP of 4·dim, learned
positions, tied embeddings, no biases, causal attention through
`scaled_dot_product_attention`), trained as nanoGPT's CPU recipe trains it (AdamW with
weight decay on matrices only, linear warmup then cosine decay to the minimum rate,
global-norm clipping) on a char-level corpus split 90/10 like tfq's. Evaluation follows
tfq's protocol: the mean loss of --eval-batches validation batches every --eval-every
steps and at the end, and tokens/s counts the whole loop, evaluations included.

With --init CKPT it starts from a tfq checkpoint instead (`tfq train ... --steps 0` makes
one): the checkpoint's weights, vocabulary, model and training options, and the batches tfq
draws, from tfq's own sampler (xoshiro256**, ported below) in its saved state. --log writes
one line of JSON per step (val_loss too on evaluation steps), like tfq's metrics log, so the
two runs' losses can be compared step by step: any difference in the model, the optimizer or
the schedule shows as the step where they part. With --steps 0 it takes a checkpoint at any
step and only evaluates it (with --full-val, over the whole validation split), so both
trainers' models are measured by the same code.

Launched by `torchrun --nproc-per-node N` (it sets RANK, WORLD_SIZE, LOCAL_RANK) it trains on
PyTorch's distributed engine: N processes (gloo on CPU, --threads each) under
DistributedDataParallel, each drawing --batch windows of its own (torch's generator seeded
--seed + rank), their gradients averaged, so a step sees N·--batch windows; rank 0 starts
every rank from its initial weights, logs the mean loss of the ranks' batches, evaluates and
saves. (Put `--` before the script: torchrun reads options after it as abbreviations of its
own, and --log is ambiguous to it.)

With --tokenizer-json FILE it trains on the ids of a Hugging Face byte-level BPE (GPT-2's:
`--train-tokenizer N` makes one of N tokens from --data, writes FILE and exits) instead of
characters. --save-hf DIR then writes the model as transformers' GPT2LMHeadModel
(config.json, model.safetensors with GPT-2's names and Conv1D layout, zero biases, F32, and
the tokenizer.json): what `tfq import safetensors DIR` reads.

Needs torch (a CPU wheel): `pip install torch --index-url https://download.pytorch.org/whl/cpu`;
the BPE options need tokenizers and safetensors too.

    python3 tools/torch_train.py --data ../shared/data/tinyshakespeare.txt --threads 2 --json
    tfq train --data D --out start.tfq FLAGS --steps 0 && python3 tools/torch_train.py --init start.tfq --steps 2000 --log torch.jsonl
    python3 tools/torch_train.py --data D --train-tokenizer 512 --tokenizer-json tok.json
    torchrun --nproc-per-node 2 -- tools/torch_train.py --data D --tokenizer-json tok.json --threads 1 --save-hf out/
    tfq import safetensors out/ -o model.tfq
"""
import argparse
import json
import math
import os
import resource
import sys
import time

MASK64 = (1 << 64) - 1


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class Xoshiro256:
    """tfq's generator (Sources/TFQModel/Random.swift), word for word: xoshiro256** from a
    saved state of four hex words."""

    def __init__(self, words):
        self.s = [int(w, 16) for w in words]

    @staticmethod
    def seeded(seed):
        """The state tfq's Xoshiro256(seed:) starts from: four SplitMix64 outputs."""
        words, x = [], seed & MASK64
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & MASK64
            z = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
            words.append(format(z ^ (z >> 31), "x"))
        return Xoshiro256(words)

    def next(self):
        s = self.s
        result = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3]  # noqa: E702
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def starts(self, tokens, batch, length):
        """The window starts of one tfq training batch (Trainer.sample)."""
        return [self.next() % (tokens - length) for _ in range(batch)]


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="the corpus (with --init, the checkpoint's data path is the default)")
    p.add_argument("--init", help="start from this tfq checkpoint: its weights, vocabulary, options and batch sampler")
    p.add_argument("--log", help="write one JSON line per step (step, loss, lr; val_loss when evaluated) to this file")
    p.add_argument("--tokenizer-json", help="train on the ids of this Hugging Face byte-level BPE instead of characters")
    p.add_argument("--train-tokenizer", type=int, metavar="N",
                   help="train a byte-level BPE of N tokens on --data, write it to --tokenizer-json and exit")
    p.add_argument("--save-hf", metavar="DIR", help="at the end, write the model as a Hugging Face GPT2LMHeadModel")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--context", type=int, default=64)
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--beta2", type=float, default=0.99)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-every", type=int, default=250)
    p.add_argument("--eval-batches", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--json", action="store_true", help="print one JSON object with the figures")
    p.add_argument("--full-val", action="store_true",
                   help="also report the loss over the whole validation split, in windows of the context "
                        "length (as `tfq bench accuracy` measures it)")
    args = p.parse_args()
    if args.data is None and args.init is None:
        p.error("--data or --init is required")
    if (args.train_tokenizer or args.save_hf) and not args.tokenizer_json:
        p.error("--train-tokenizer and --save-hf need --tokenizer-json")
    if args.init and args.tokenizer_json:
        p.error("--init starts from a char-level tfq checkpoint; --tokenizer-json does not apply")
    if "WORLD_SIZE" in os.environ and (args.init or args.train_tokenizer):
        p.error("--init and --train-tokenizer run in one process, not under torchrun")
    return args


def load_checkpoint(args):
    """The tfq checkpoint's metadata, with its model and training options copied into args."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tfq_read
    checkpoint = tfq_read.read(args.init)
    training = checkpoint.metadata.get("training")
    if training is None or checkpoint.metadata.get("tokenizer", {}).get("type") != "char":
        sys.exit(f"torch_train.py: {args.init}: not a char-level tfq training checkpoint")
    options = training["options"]
    if options["activation"] != "gelu" or not options["tie_embeddings"] or options["bias"] or options["dropout"] \
            or checkpoint.metadata["config"]["ff_dim"] != 4 * options["dim"]:
        sys.exit(f"torch_train.py: {args.init}: this script's model is GELU with ff 4·dim, tied, without biases or dropout")
    if options["beta1"] != 0.9 or options["optimizer"] != "adamw":
        sys.exit(f"torch_train.py: {args.init}: this script trains with AdamW and beta1 0.9")
    if training["step"] != 0 and args.steps != 0:
        # Its AdamW moments and place in the schedule are not carried over; evaluating it needs neither.
        sys.exit(f"torch_train.py: {args.init}: a checkpoint at step {training['step']}; --init needs one at "
                 "step 0 (`tfq train ... --steps 0`) to train, or --steps 0 to evaluate it")
    if training.get("val_data_path"):
        sys.exit(f"torch_train.py: {args.init}: trained with --val-data; this script splits one corpus 90/10")
    for name in ("layers", "heads", "dim", "context", "batch", "lr", "min_lr", "warmup", "beta2", "weight_decay",
                 "grad_clip", "eval_batches", "seed"):
        setattr(args, name, options[name])
    args.data = args.data or training["data_path"]
    return checkpoint


# tfq's parameter names for this script's modules.
TFQ_NAMES = {"tok.weight": "tok_emb", "pos.weight": "pos_emb", "ln_f.weight": "ln_f.weight"}
TFQ_LAYERS = {"ln1": "ln1", "ln2": "ln2", "qkv": "attn.qkv", "proj": "attn.proj", "up": "ffn.up", "down": "ffn.down"}


def tfq_name(name):
    if name in TFQ_NAMES:
        return TFQ_NAMES[name]
    _, layer, module, _ = name.split(".")  # blocks.I.MODULE.weight
    return f"blocks.{layer}.{TFQ_LAYERS[module]}.weight"


def build_model(torch, vocab, args):
    nn, F = torch.nn, torch.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            d = args.dim
            self.ln1 = nn.LayerNorm(d, bias=False)
            self.qkv = nn.Linear(d, 3 * d, bias=False)
            self.proj = nn.Linear(d, d, bias=False)
            self.ln2 = nn.LayerNorm(d, bias=False)
            self.up = nn.Linear(d, 4 * d, bias=False)
            self.down = nn.Linear(4 * d, d, bias=False)

        def forward(self, x):
            b, t, d = x.shape
            q, k, v = self.qkv(self.ln1(x)).split(d, dim=2)
            shape = (b, t, args.heads, d // args.heads)
            q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).contiguous().view(b, t, d))
            return x + self.down(F.gelu(self.up(self.ln2(x)), approximate="tanh"))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = nn.Embedding(vocab, args.dim)
            self.pos = nn.Embedding(args.context, args.dim)
            self.blocks = nn.ModuleList(Block() for _ in range(args.layers))
            self.ln_f = nn.LayerNorm(args.dim, bias=False)
            for name, p in self.named_parameters():
                if p.dim() == 2:
                    residual = name.endswith("proj.weight") or name.endswith("down.weight")
                    std = 0.02 / math.sqrt(2 * args.layers) if residual else 0.02
                    nn.init.normal_(p, 0.0, std)

        def forward(self, idx, targets=None):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.ln_f(x) @ self.tok.weight.t()  # tied classifier
            return logits if targets is None else F.cross_entropy(logits.view(-1, vocab), targets.view(-1))

    return GPT()


def byte_level_bpe(size, files=(), texts=()):
    """GPT-2's pipeline in the `tokenizers` library (ByteLevel pre-tokenizer without a prefix
    space, ByteLevel decoder, <|endoftext|> as id 0, all 256 bytes): `size` tokens learned from
    the files or the texts. tools/hf_fixtures.py makes its fixtures' tokenizer with it too."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    if files:
        tokenizer.train(list(files), trainer)
    else:
        tokenizer.train_from_iterator(list(texts), trainer)
    return tokenizer


def train_tokenizer(data, size, output):
    """A byte-level BPE of `size` tokens as GPT-2's, trained on the file data, saved as output."""
    tokenizer = byte_level_bpe(size, files=[data])
    if tokenizer.get_vocab_size() != size:
        sys.exit(f"torch_train.py: {data} gave {tokenizer.get_vocab_size()} tokens, not {size} "
                 "(at least 257: the 256 bytes and <|endoftext|>)")
    tokenizer.save(output)


def save_hf(torch, model, args, directory):
    """The model as transformers' GPT2LMHeadModel: GPT-2's names, its Conv1D weights (input × output: the
    transpose of a Linear's), zeros for the biases nanoGPT does not have, the head tied to wte."""
    import shutil
    from safetensors.torch import save_file
    from tokenizers import Tokenizer
    weights = {name: p.detach().float() for name, p in model.named_parameters()}
    d, vocab = args.dim, weights["tok.weight"].shape[0]
    tensors = {"transformer.wte.weight": weights["tok.weight"], "transformer.wpe.weight": weights["pos.weight"],
               "transformer.ln_f.weight": weights["ln_f.weight"], "transformer.ln_f.bias": torch.zeros(d)}
    for i in range(args.layers):
        h, w = f"transformer.h.{i}.", {module: weights[f"blocks.{i}.{module}.weight"] for module in TFQ_LAYERS}
        for gpt2, ours in (("ln_1", "ln1"), ("ln_2", "ln2")):
            tensors[h + gpt2 + ".weight"], tensors[h + gpt2 + ".bias"] = w[ours], torch.zeros(d)
        for gpt2, ours in (("attn.c_attn", "qkv"), ("attn.c_proj", "proj"), ("mlp.c_fc", "up"), ("mlp.c_proj", "down")):
            tensors[h + gpt2 + ".weight"] = w[ours].t()  # q, k, v stacked in c_attn's columns as in qkv's rows
            tensors[h + gpt2 + ".bias"] = torch.zeros(w[ours].shape[0])
    os.makedirs(directory, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(directory, "model.safetensors"),
              metadata={"format": "pt"})
    end_of_text = Tokenizer.from_file(args.tokenizer_json).token_to_id("<|endoftext|>")
    config = {"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": vocab,
              "n_positions": args.context, "n_embd": d, "n_layer": args.layers, "n_head": args.heads, "n_inner": 4 * d,
              "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
              "bos_token_id": end_of_text, "eos_token_id": end_of_text}
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    shutil.copyfile(args.tokenizer_json, os.path.join(directory, "tokenizer.json"))


def main():
    args = parse()
    if args.train_tokenizer:
        return train_tokenizer(args.data, args.train_tokenizer, args.tokenizer_json)
    import torch
    distributed = "WORLD_SIZE" in os.environ  # launched by torchrun
    rank, world = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])) if distributed else (0, 1)
    if distributed:
        torch.distributed.init_process_group("gloo")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed + rank)  # rank 0 draws the initial weights every rank starts from

    checkpoint = load_checkpoint(args) if args.init else None
    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    if not text:
        sys.exit(f"torch_train.py: {args.data} is empty")
    if args.tokenizer_json:
        from tokenizers import Tokenizer
        tokenizer = Tokenizer.from_file(args.tokenizer_json)
        vocab, ids = tokenizer.get_vocab_size(), tokenizer.encode(text).ids
    else:
        chars = checkpoint.metadata["tokenizer"]["vocab"] if checkpoint else sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        if any(c not in index for c in set(text)):
            sys.exit(f"torch_train.py: {args.data} has characters the checkpoint's vocabulary lacks")
        vocab, ids = len(chars), [index[c] for c in text]
    data = torch.tensor(ids, dtype=torch.long)
    cut = len(data) - len(data) // 10  # tfq's split: the last 10% is validation
    train, val = data[:cut], data[cut:]
    sampler = Xoshiro256(checkpoint.metadata["training"]["sampler"]) if checkpoint else None

    def batch(split, generator=None):
        if split is train and sampler is not None:
            starts = sampler.starts(len(split), args.batch, args.context)
        else:
            starts = torch.randint(len(split) - args.context - 1, (args.batch,), generator=generator)
        x = torch.stack([split[s:s + args.context] for s in starts])
        y = torch.stack([split[s + 1:s + 1 + args.context] for s in starts])
        return x, y

    model = build_model(torch, vocab, args)
    if checkpoint:
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                parameter.copy_(torch.from_numpy(checkpoint.tensor(tfq_name(name)).copy()))
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": other, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, args.beta2))
    # DDP starts every rank from rank 0's weights and averages the gradients in backward.
    trainer = torch.nn.parallel.DistributedDataParallel(model) if distributed else model

    def rate(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        progress = min(1.0, (step - args.warmup) / max(1, args.steps - args.warmup))
        return args.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (args.lr - args.min_lr)

    @torch.no_grad()
    def evaluate():
        model.eval()
        generator = torch.Generator().manual_seed(args.seed ^ 0x5EED)  # the same batches every time
        losses = [model(*batch(val, generator)).item() for _ in range(args.eval_batches)]
        model.train()
        return sum(losses) / len(losses)

    @torch.no_grad()
    def evaluate_full():
        model.eval()
        starts = list(range(0, len(val) - args.context - 1, args.context))
        total = 0.0
        for i in range(0, len(starts), 64):
            chunk = starts[i:i + 64]
            x = torch.stack([val[s:s + args.context] for s in chunk])
            y = torch.stack([val[s + 1:s + 1 + args.context] for s in chunk])
            total += model(x, y).item() * len(chunk)
        return total / len(starts)

    log = open(args.log, "w") if args.log and rank == 0 else None
    started = time.perf_counter()
    loss = val_loss = float("nan")
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        x, y = batch(train)
        loss_tensor = trainer(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        if distributed:  # the loss of the whole step's batch: the mean of the ranks'
            loss_tensor = loss_tensor.detach().clone()
            torch.distributed.all_reduce(loss_tensor)
            loss_tensor /= world
        loss = loss_tensor.item()
        if rank != 0:
            continue
        entry = {"step": step + 1, "loss": loss, "lr": rate(step)}
        if args.eval_every > 0 and (step + 1) % args.eval_every == 0:
            val_loss = entry["val_loss"] = evaluate()  # on evaluation steps, as in tfq's metrics log
        if log:
            log.write(json.dumps(entry) + "\n")
        if not args.json and (step + 1) % 50 == 0:
            print(f"step {step + 1}/{args.steps} loss {loss:.4f}", file=sys.stderr)
    if rank != 0:
        # Wait for rank 0 to evaluate and save: tearing gloo down under a live peer aborts.
        torch.distributed.barrier()
        return torch.distributed.destroy_process_group()
    if args.eval_every == 0 or args.steps % args.eval_every != 0:
        val_loss = evaluate()
    wall = time.perf_counter() - started
    tokens = args.steps * args.batch * args.context * world
    figures = {
        "torch": torch.__version__, "threads": args.threads, "steps": args.steps,
        **({"processes": world} if distributed else {}),
        "tokens": tokens, "tokens_per_second": tokens / wall,
        "train_loss": loss, "val_loss": val_loss, "wall_seconds": wall,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.full_val:
        figures["val_loss_full"] = evaluate_full()
    if args.save_hf:
        save_hf(torch, model, args, args.save_hf)
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))
    if distributed:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
