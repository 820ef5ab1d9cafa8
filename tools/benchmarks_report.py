"""Turns the JSON files tools/benchmarks.sh collects into the Markdown section of
BENCHMARKS.md (printed on stdout)."""
import datetime
import json
import os
import platform
import subprocess
import sys

work = sys.argv[1]


def load(name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)


def cpu():
    flags, model = "", ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and not model:
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            present = set(line.split(":", 1)[1].split())
            flags = " ".join(f for f in ["fma", "avx2", "avx512f", "avx512_vnni", "asimddp"] if f in present)
    return f"{model}, {os.cpu_count()} cores, {platform.machine()}, flags: {flags or 'none of fma/avx2/avx512'}"


train = load("train.json")
print(f"Generated {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC on {cpu()}.\n")
print("### Training (nanoGPT's CPU config on Tiny Shakespeare)\n")
print("| trainer | steps | tokens/s | train loss | val loss | peak RSS | wall |\n|---|---:|---:|---:|---:|---:|---:|")
runs = [("tfq", train)]
if os.path.exists(os.path.join(work, "torch.json")):
    torch_run = load("torch.json")
    runs.append((f"PyTorch {torch_run['torch']} (tools/torch_train.py)", torch_run))
for name, run in runs:
    print(f"| {name} | {run['steps']} | {run['tokens_per_second']:,.0f} | {run['train_loss']:.4f} | {run['val_loss']:.4f} | "
          f"{run['peak_rss_bytes'] / 2**20:.0f} MB | {run['wall_seconds']:.0f} s |")
if len(runs) > 1:
    print(f"\ntfq trains {train['tokens_per_second'] / runs[1][1]['tokens_per_second']:.2f}× as many tokens/s as PyTorch, one after the other on this machine.")
print()
print("![loss curves](Benchmarks/plots/loss.png)\n")

print("### int8 accuracy against fp32 (validation split, same positions)\n")
print("| group | positions | fp32 ppl | int8 ppl | Δppl | top-1 agreement | mean KL | bits/byte fp32 → int8 | greedy 64-token agreement |")
print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for g in [32, 64]:
    a = load(f"int8-g{g}.json")
    print(f"| {g} | {a['positions']} | {a['reference']['perplexity']:.4f} | {a['model']['perplexity']:.4f} | "
          f"{a['delta_perplexity_percent']:+.3f}% | {a['top1_agreement_percent']:.2f}% | {a['mean_kl']:.2e} | "
          f"{a['reference']['bits_per_byte']:.4f} → {a['model']['bits_per_byte']:.4f} | {a['greedy_agreement_percent']:.1f}% |")
export = load("export-g64.json")
print(f"\nThe int8 (group 64) file is {export['file_bytes']:,} bytes, {export['file_bytes'] / export['fp32_weight_bytes']:.2f}× the fp32 weights.\n")
print("![perplexity](Benchmarks/plots/perplexity.png)\n")

print("### Runtime latency (GPT-2 shape: 6 layers, dim 384, context 256, vocab 65), tokens/s, median of runs\n")
print("| model | threads | load ms | TTFT (shortest prompt) ms | prefill (longest prompt) | decode start | decode middle | decode end |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for name in ["int8", "fp32"]:
    report = load(f"latency-{name}.json")
    for row in report["rows"]:
        d = {x["position"]: x["tokens_per_second"]["median"] for x in row["decode"]}
        print(f"| {name} | {row['threads']} | {row['load_ms']['median']:.1f} | {row['prompts'][0]['ttft_ms']['median']:.1f} | "
              f"{row['prompts'][-1]['prefill_tokens_per_second']['median']:,.0f} | {d['start']:,.0f} | {d['middle']:,.0f} | {d['end']:,.0f} |")
print("\n![decode speed](Benchmarks/plots/decode.png)\n")

print("### Kernels (`tfq-kernel-bench --seconds 0.3`)\n")
print("```")
print(open(os.path.join(work, "kernels.txt")).read().rstrip())
print("```")

if os.path.exists(os.path.join(work, "bpe.txt")):
    print("\n### BPE tokenizer (`tfq-bpe-bench --data ../shared/data/warandpeace.txt`)\n")
    print("```")
    print(open(os.path.join(work, "bpe.txt")).read().rstrip())
    print("```")
