#!/usr/bin/env bash
# Llama decode speed on the stories15M and stories110M shapes, int8, with the memory
# bandwidth that bounds the larger one. Weights are random (tools/llama2c.py): speed does not
# depend on their values. "decode from position 1" with -n 128 is the mean rate of the first
# 128 generated tokens, the figure llama.cpp's `llama-bench -n 128` reports.
#
#   tools/bench_llama.sh [WORKDIR]      # default /tmp/tfq-llama-bench (about 700 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/tfq-llama-bench}
mkdir -p "$work"
tfq=$(TFQ_SCRATCH=${TFQ_SCRATCH:-.build-native} tools/build.sh | tail -1)
bench="$(dirname "$tfq")/tfq-kernel-bench"

# Any text will do for the export's quality report (the weights are random, so the
# accuracy target means nothing for them: the fast settings, as for a model that meets it).
if [ -f ../shared/data/tinyshakespeare.txt ]; then head -c 100000 ../shared/data/tinyshakespeare.txt > "$work/eval.txt"
else python3 -c "print('Once upon a time, there was a little dog. ' * 2000)" > "$work/eval.txt"; fi

for shape in stories15M stories110M; do
  if [ ! -f "$work/$shape.int8.tfq" ]; then
    python3 tools/llama2c.py random --shape "$shape" --shared --version 0 --seed 1 \
      --out "$work/$shape.bin" --tokenizer-out "$work/tokenizer.bin" >/dev/null
    "$tfq" import llama2c "$work/$shape.bin" --tokenizer "$work/tokenizer.bin" -o "$work/$shape.tfq" >/dev/null
    "$tfq" export "$work/$shape.tfq" --int8 --accuracy fast --no-zstd --eval-data "$work/eval.txt" --eval-tokens 1024 \
      -o "$work/$shape.int8.tfq" >/dev/null
  fi
  echo "== $shape int8 ($(stat -c %s "$work/$shape.int8.tfq") bytes)"
  "$tfq" bench latency "$work/$shape.int8.tfq" --prompt-lengths 16 -n 128 --runs 5
done
echo "== memory read bandwidth"
"$bench" --bandwidth-only
