"""Pictures for BENCHMARKS.md, from the JSON that tfq writes:

    python3 tools/plot.py --metrics CKPT.metrics.jsonl --latency int8.json [--latency fp32.json]
                          --accuracy g32.json [--accuracy g64.json ...] --out Benchmarks/plots/

Writes loss.png (train and val loss), decode.png (decode tokens/s by position and threads)
and perplexity.png (reference vs quantized perplexity). Needs matplotlib.
"""
import argparse
import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss(path, out):
    steps, losses, val_steps, val = [], [], [], []
    with open(path) as f:
        for line in f:
            entry = json.loads(line)
            steps.append(entry["step"])
            losses.append(entry["loss"])
            if entry.get("val_loss") is not None:
                val_steps.append(entry["step"])
                val.append(entry["val_loss"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="train loss")
    ax.plot(val_steps, val, color="#d62728", marker="o", markersize=3, label="val loss")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.set_title(os.path.basename(path).replace(".metrics.jsonl", ""))
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "loss.png"), dpi=110)


def plot_decode(paths, out):
    fig, ax = plt.subplots(figsize=(7, 4))
    for path in paths:
        report = json.load(open(path))
        name = os.path.basename(report["model"])
        for row in report["rows"]:
            positions = [d["start_token"] for d in row["decode"]]
            speeds = [d["tokens_per_second"]["median"] for d in row["decode"]]
            ax.plot(positions, speeds, marker="o", label=f"{name}, {row['threads']} thread(s)")
    ax.set_xlabel("position in the context")
    ax.set_ylabel("decode tokens/s (median)")
    ax.set_title("decode speed by position and threads")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "decode.png"), dpi=110)


def plot_perplexity(paths, out):
    labels, reference, model = [], [], []
    for path in paths:
        report = json.load(open(path))
        labels.append(os.path.basename(path).replace(".json", ""))
        reference.append(report["reference"]["perplexity"])
        model.append(report["model"]["perplexity"])
    fig, ax = plt.subplots(figsize=(7, 4))
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], reference, width=0.4, label="fp32 reference")
    ax.bar([i + 0.2 for i in x], model, width=0.4, label="exported")
    low = min(reference + model)
    ax.set_ylim(low * 0.995, max(reference + model) * 1.002)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_ylabel("perplexity")
    ax.set_title("fp32 vs int8 perplexity (same positions)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "perplexity.png"), dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics")
    parser.add_argument("--latency", action="append", default=[])
    parser.add_argument("--accuracy", action="append", default=[])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    if args.metrics:
        plot_loss(args.metrics, args.out)
    if args.latency:
        plot_decode(args.latency, args.out)
    if args.accuracy:
        plot_perplexity(args.accuracy, args.out)


if __name__ == "__main__":
    main()
