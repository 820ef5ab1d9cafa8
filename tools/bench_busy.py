"""Decode and prefill speed at 1 and 2 threads with other programs keeping cores busy, for
one or more tfq binaries side by side (e.g. main before and after a change), alternated
round by round so every binary sees the same machine.

    python3 tools/bench_busy.py --model M.int8.tfq --tfq /tmp/tfq-before --tfq .build/release/tfq \\
        --busy 1 --rounds 8

The busy load is `--busy N` processes of `yes > /dev/null`, the issue's recipe, started once
for the whole run (so it is the same for every binary, whatever its version). Each
measurement is one `tfq run M --prompt P -n N --json`, as a user would run it. Prints every
round, then medians and the 2-thread / 1-thread ratio of each binary.
"""
import argparse
import json
import statistics
import subprocess
import sys


def measure(tfq, model, threads, prompt, tokens):
    out = subprocess.run([tfq, "run", model, "--prompt", prompt, "-n", str(tokens), "--threads", str(threads), "--json"],
                         capture_output=True, text=True, check=True).stdout
    figures = json.loads(out)
    return figures["prefill_tokens_per_second"], figures["decode_tokens_per_second"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--tfq", action="append", required=True, help="a tfq binary (repeat to compare several)")
    parser.add_argument("--busy", type=int, default=1, help="processes of `yes` kept running (default 1)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--prompt", default="Once upon a time, there was a little girl named Lily. She loved to play outside "
                        "in the park with her friends. One day, she saw a big red ball under a tree and ran to get it.")
    parser.add_argument("-n", type=int, default=128, dest="tokens")
    args = parser.parse_args()
    threads = [int(t) for t in args.threads.split(",")]
    busy = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(args.busy)]
    results = {(tfq, t): [] for tfq in args.tfq for t in threads}
    try:
        for round in range(args.rounds):
            for tfq in args.tfq:
                for t in threads:
                    prefill, decode = measure(tfq, args.model, t, args.prompt, args.tokens)
                    results[(tfq, t)].append((prefill, decode))
                    print(f"round {round + 1}: {tfq} --threads {t}: prefill {prefill:,.0f} decode {decode:,.0f} tok/s", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    print(f"\nmedians of {args.rounds} rounds, {args.busy} busy process(es):")
    for tfq in args.tfq:
        line = []
        for t in threads:
            prefill = statistics.median(r[0] for r in results[(tfq, t)])
            decode = statistics.median(r[1] for r in results[(tfq, t)])
            line.append(f"{t} thr prefill {prefill:,.0f} decode {decode:,.0f}")
        if 1 in threads and 2 in threads:
            ratio = lambda k: statistics.median(b[k] / a[k] for a, b in zip(results[(tfq, 1)], results[(tfq, 2)]))
            line.append(f"2 thr / 1 thr: prefill {ratio(0):.2f}x decode {ratio(1):.2f}x (median of per-round ratios)")
        print(f"{tfq}: " + "; ".join(line))


if __name__ == "__main__":
    sys.exit(main())
