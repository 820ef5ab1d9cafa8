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

Needs torch (a CPU wheel): `pip install torch --index-url https://download.pytorch.org/whl/cpu`.

    python3 tools/torch_train.py --data ../shared/data/tinyshakespeare.txt --threads 2 --json
"""
import argparse
import json
import math
import resource
import sys
import time


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True)
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
    return p.parse_args()


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

        def forward(self, idx, targets):
            x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            logits = self.ln_f(x) @ self.tok.weight.t()  # tied classifier
            return F.cross_entropy(logits.view(-1, vocab), targets.view(-1))

    return GPT()


def main():
    args = parse()
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    with open(args.data, encoding="utf-8") as f:
        text = f.read()
    if not text:
        sys.exit(f"torch_train.py: {args.data} is empty")
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = len(data) * 9 // 10
    train, val = data[:cut], data[cut:]

    def batch(split, generator=None):
        starts = torch.randint(len(split) - args.context - 1, (args.batch,), generator=generator)
        x = torch.stack([split[s:s + args.context] for s in starts])
        y = torch.stack([split[s + 1:s + 1 + args.context] for s in starts])
        return x, y

    model = build_model(torch, len(chars), args)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                                   {"params": other, "weight_decay": 0.0}],
                                  lr=args.lr, betas=(0.9, args.beta2))

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

    started = time.perf_counter()
    loss = val_loss = float("nan")
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = rate(step)
        x, y = batch(train)
        loss_tensor = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss_tensor.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        loss = loss_tensor.item()
        if args.eval_every > 0 and (step + 1) % args.eval_every == 0:
            val_loss = evaluate()
        if not args.json and (step + 1) % 50 == 0:
            print(f"step {step + 1}/{args.steps} loss {loss:.4f}", file=sys.stderr)
    if args.eval_every == 0 or args.steps % args.eval_every != 0:
        val_loss = evaluate()
    wall = time.perf_counter() - started
    figures = {
        "torch": torch.__version__, "threads": args.threads, "steps": args.steps,
        "tokens": args.steps * args.batch * args.context,
        "tokens_per_second": args.steps * args.batch * args.context / wall,
        "train_loss": loss, "val_loss": val_loss, "wall_seconds": wall,
        "parameters": sum(p.numel() for p in model.parameters()),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }
    if args.full_val:
        figures["val_loss_full"] = evaluate_full()
    print(json.dumps(figures) if args.json else "\n".join(f"{k}: {v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
