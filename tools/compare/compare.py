"""Side-by-side speed of tfq and a peer you built yourself, run in alternation so both see
the same machine state, with medians and ratios.

    # llama.cpp: a GGUF of the same shape as the tfq model (e.g. Q8_0)
    python3 tools/compare/compare.py llama-cpp --peer ~/llama.cpp/build/bin/llama-bench \\
        --peer-model model-q8_0.gguf --tfq .build/release/tfq --model model.int8.tfq --threads 1,2

    # llama2.c: `run` (fp32) or `runq` (int8) and its checkpoint of the same shape
    python3 tools/compare/compare.py llama2c --peer ~/llama2.c/runq --peer-model stories15M_q80.bin \\
        --tfq .build/release/tfq --model stories15M.int8.tfq --threads 1

No peer code is in this repository: point the script at your own builds.
"""
import argparse
import json
import re
import statistics
import subprocess
import sys


def tfq_speeds(tfq, model, threads, prompt, tokens):
    """Prefill and decode tokens/s of one `tfq bench latency` run."""
    out = subprocess.run([tfq, "bench", "latency", model, "--threads", str(threads), "--prompt-lengths", str(prompt),
                          "-n", str(tokens), "--runs", "1", "--json"], capture_output=True, text=True, check=True).stdout
    row = json.loads(out)["rows"][0]
    decode = {d["position"]: d["tokens_per_second"]["median"] for d in row["decode"]}
    return row["prompts"][0]["prefill_tokens_per_second"]["median"], decode["start"]


def llama_cpp_speeds(bench, model, threads, prompt, tokens):
    """Prefill (pp) and decode (tg) tokens/s of one llama-bench run."""
    out = subprocess.run([bench, "-m", model, "-t", str(threads), "-p", str(prompt), "-n", str(tokens), "-r", "1", "-o", "json"],
                         capture_output=True, text=True, check=True).stdout
    results = json.loads(out)
    prefill = next(r["avg_ts"] for r in results if r.get("n_prompt", 0) > 0 and r.get("n_gen", 0) == 0)
    decode = next(r["avg_ts"] for r in results if r.get("n_gen", 0) > 0 and r.get("n_prompt", 0) == 0)
    return prefill, decode


def llama2c_speeds(run, model, threads, prompt, tokens):
    """Decode tokens/s of one llama2.c run (it reports one figure for the whole generation)."""
    env = {"OMP_NUM_THREADS": str(threads)}
    completed = subprocess.run([run, model, "-n", str(tokens), "-t", "0", "-i", "Once upon a time"],
                               capture_output=True, text=True, check=True, env=env)
    match = re.search(r"achieved tok/s:\s*([0-9.]+)", completed.stderr + completed.stdout)
    if not match:
        raise RuntimeError("llama2.c did not print 'achieved tok/s'")
    return None, float(match.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("peer_kind", choices=["llama-cpp", "llama2c"])
    parser.add_argument("--peer", required=True, help="llama-bench, or llama2.c's run/runq")
    parser.add_argument("--peer-model", required=True)
    parser.add_argument("--tfq", required=True, help="the tfq binary (tools/build.sh prints its path)")
    parser.add_argument("--model", required=True, help="the .tfq model of the same shape")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--prompt", type=int, default=128)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    peer = llama_cpp_speeds if args.peer_kind == "llama-cpp" else llama2c_speeds
    print(f"{args.peer_kind} vs tfq, {args.rounds} alternating rounds, medians (tokens/s)")
    print(f"{'threads':>7}  {'measure':<8} {'peer':>10} {'tfq':>10} {'tfq/peer':>9}")
    for threads in [int(t) for t in args.threads.split(",")]:
        samples = {"peer_prefill": [], "peer_decode": [], "tfq_prefill": [], "tfq_decode": []}
        for _ in range(args.rounds):
            p_prefill, p_decode = peer(args.peer, args.peer_model, threads, args.prompt, args.tokens)
            t_prefill, t_decode = tfq_speeds(args.tfq, args.model, threads, args.prompt, args.tokens)
            if p_prefill is not None:
                samples["peer_prefill"].append(p_prefill)
            samples["peer_decode"].append(p_decode)
            samples["tfq_prefill"].append(t_prefill)
            samples["tfq_decode"].append(t_decode)
        for measure in ["prefill", "decode"]:
            if not samples[f"peer_{measure}"]:
                continue
            p, t = statistics.median(samples[f"peer_{measure}"]), statistics.median(samples[f"tfq_{measure}"])
            print(f"{threads:>7}  {measure:<8} {p:>10.1f} {t:>10.1f} {t / p:>8.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
