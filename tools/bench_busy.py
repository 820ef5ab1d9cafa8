"""Decode and prefill speed, or training speed, at 1 and 2 threads with other programs keeping
cores busy, for one or more tfq binaries side by side (e.g. main before and after a change),
alternated round by round so every binary sees the same machine.

    python3 tools/bench_busy.py --model M.int8.tfq --tfq /tmp/tfq-before --tfq .build/release/tfq \\
        --busy 1 --rounds 8
    python3 tools/bench_busy.py --train ../shared/data/tinyshakespeare.txt --tfq .build/release/tfq \\
        --busy 1 --rounds 8

With --train, each measurement is `tfq train` on that text with nanoGPT's CPU "baby" config
(BENCHMARKS.md, "Training throughput") for --steps steps, and the figure is its
tokens_per_second; the final losses are printed too, so a change that alters them shows.

The busy load is `--busy N` processes of `yes > /dev/null`, the issue's recipe, started once
for the whole run (so it is the same for every binary, whatever its version). Each
measurement is one `tfq run M --prompt P -n N --json`, as a user would run it. Prints every
round, then medians and the 2-thread / 1-thread ratio of each binary.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile


def measure(tfq, model, threads, prompt, tokens):
    out = subprocess.run([tfq, "run", model, "--prompt", prompt, "-n", str(tokens), "--threads", str(threads), "--json"],
                         capture_output=True, text=True, check=True).stdout
    figures = json.loads(out)
    return figures["prefill_tokens_per_second"], figures["decode_tokens_per_second"]


# nanoGPT's CPU "baby" config, as BENCHMARKS.md's "Training throughput" runs it.
BABY = ["--tokenizer", "char", "--layers", "4", "--heads", "4", "--dim", "128", "--context", "64", "--batch", "12",
        "--activation", "gelu", "--tie-embeddings", "--no-bias", "--lr", "1e-3", "--min-lr", "1e-4", "--warmup", "100",
        "--beta2", "0.99", "--weight-decay", "0.1", "--grad-clip", "1.0", "--eval-batches", "2", "--eval-every", "0",
        "--seed", "1337"]


def train(tfq, data, threads, steps, workdir):
    out = os.path.join(workdir, "baby.tfq")
    for name in os.listdir(workdir):
        os.remove(os.path.join(workdir, name))
    lines = subprocess.run([tfq, "train", "--data", data, "--out", out, "--steps", str(steps), "--threads", str(threads),
                            "--json"] + BABY, capture_output=True, text=True, check=True).stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    return figures["tokens_per_second"], figures["train_loss"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="an int8 model: measure decode and prefill")
    parser.add_argument("--train", metavar="TEXT", help="a text file: measure training instead")
    parser.add_argument("--steps", type=int, default=200, help="training steps per measurement (default 200)")
    parser.add_argument("--tfq", action="append", required=True, help="a tfq binary (repeat to compare several)")
    parser.add_argument("--busy", type=int, default=1, help="processes of `yes` kept running (default 1)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompt", default="Once upon a time, there was a little girl named Lily. She loved to play outside "
                        "in the park with her friends. One day, she saw a big red ball under a tree and ran to get it.")
    parser.add_argument("-n", type=int, default=128, dest="tokens")
    args = parser.parse_args()
    if (args.model is None) == (args.train is None):
        parser.error("give --model (decode and prefill) or --train (training), not both")
    threads = [int(t) for t in args.threads.split(",")]
    workdir = tempfile.mkdtemp(prefix="tfq-bench-busy-")
    if args.train:
        names = ("train",)
        def run(tfq, t):
            tokens_per_second, loss = train(tfq, args.train, t, args.steps, workdir)
            return (tokens_per_second,), f"train loss {loss:.10f}"
    else:
        names = ("prefill", "decode")
        def run(tfq, t):
            return measure(tfq, args.model, t, args.prompt, args.tokens), ""
    busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.busy)]
    results = {(tfq, t): [] for tfq in args.tfq for t in threads}
    try:
        for round in range(args.rounds):
            for tfq in args.tfq:
                for t in threads:
                    figures, note = run(tfq, t)
                    results[(tfq, t)].append(figures)
                    shown = " ".join(f"{name} {value:,.0f}" for name, value in zip(names, figures))
                    print(f"round {round + 1}: {tfq} --threads {t}: {shown} tok/s {note}", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nmedians of {args.rounds} rounds, {args.busy} busy process(es):")
    for tfq in args.tfq:
        line = []
        for t in threads:
            medians = [statistics.median(r[k] for r in results[(tfq, t)]) for k in range(len(names))]
            line.append(f"{t} thr " + " ".join(f"{name} {value:,.0f}" for name, value in zip(names, medians)))
        if 1 in threads and 2 in threads:
            ratios = [statistics.median(b[k] / a[k] for a, b in zip(results[(tfq, 1)], results[(tfq, 2)])) for k in range(len(names))]
            line.append("2 thr / 1 thr: " + " ".join(f"{name} {ratio:.2f}x" for name, ratio in zip(names, ratios))
                        + " (median of per-round ratios)")
        print(f"{tfq}: " + "; ".join(line))


if __name__ == "__main__":
    sys.exit(main())
