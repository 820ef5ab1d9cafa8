#!/usr/bin/env bash
# The main job, end to end on a default corpus: build tfq for this CPU, train a small
# character-level GPT on Debian's fortunes, export it to int8 (with its quality report),
# and generate text from it with the runtime, printing the figures a user cares about.
#
#   tools/demo.sh                   # fortunes (installed if missing)
#   TFQ_CORPUS=file.txt tools/demo.sh
#   TFQ_STEPS=2000 tools/demo.sh    # longer training
set -euo pipefail
cd "$(dirname "$0")/.."

out=${TFQ_OUT:-out}
steps=${TFQ_STEPS:-1600}
mkdir -p "$out"

corpus=${TFQ_CORPUS:-}
if [ -z "$corpus" ]; then
  if [ ! -d /usr/share/games/fortunes ]; then
    echo "== installing Debian's fortunes (the default corpus)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null 2>&1 \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fortunes >/dev/null; }
  fi
  corpus="$out/fortunes.txt"
  # The fortune files, without the '%' separators and the binary .dat indexes.
  find /usr/share/games/fortunes -maxdepth 1 -type f ! -name '*.dat' ! -name '*.u8' -print0 | sort -z \
    | xargs -0 cat | grep -av '^%$' | iconv -f utf-8 -t utf-8 -c > "$corpus"
fi
echo "== corpus: $corpus ($(wc -c < "$corpus") bytes)" >&2

echo "== building (tools/build.sh: release, host CPU)" >&2
tfq=$(tools/build.sh)

# Two blocks and a high learning rate: in the minute or so of training a 2-core machine
# has here, a shallower model sees twice the text a 4-block one would, and reaches a
# validation loss of 1.93 on fortunes (1,600 steps), where text reads as words and lines.
echo "== tfq train ($steps steps)" >&2
"$tfq" train --data "$corpus" --out "$out/model.ckpt.tfq" --steps "$steps" \
  --layers 2 --heads 4 --dim 128 --context 128 --batch 12 --activation gelu \
  --lr 8e-3 --min-lr 8e-4 --warmup 100 \
  --eval-every 200 --eval-batches 20 --checkpoint-every 400 | tee "$out/train.txt"

echo "== tfq verify (checkpoint)" >&2
"$tfq" verify "$out/model.ckpt.tfq"

echo "== tfq export --int8 (settings chosen by the accuracy target; zstd where it pays; quality measured on the validation split)" >&2
"$tfq" export "$out/model.ckpt.tfq" -o "$out/model.int8.tfq" --int8 --eval-tokens 8192 | tee "$out/export.txt"

echo "== tfq unpack (a raw copy that loads zero-copy)" >&2
"$tfq" unpack "$out/model.int8.tfq" -o "$out/model.int8.raw.tfq"

echo "== tfq inspect" >&2
"$tfq" inspect "$out/model.int8.raw.tfq" | sed -n '1,12p'

# Greedy decoding (the default) of a model this small loops on its likeliest word; sampling
# reads better.
echo "== tfq run (100 tokens, sampled: --temperature 0.8 --top-k 40 --seed 1)" >&2
status=0
"$tfq" run "$out/model.int8.raw.tfq" --prompt "The meaning of life is" -n 100 --temperature 0.8 --top-k 40 --seed 1 --stats \
  2> "$out/run.txt" || status=$?
cat "$out/run.txt" >&2
[ "$status" -eq 0 ] || exit "$status"

# The figures a user cares about, together: training speed and loss, what int8 costs in
# size and accuracy, and how fast the int8 file decodes.
echo >&2
echo "== summary" >&2
{
  echo "training:  $(grep -m1 '^steps ' "$out/train.txt")"
  echo "int8 file: $(grep -m1 '^wrote ' "$out/export.txt" | sed 's/^wrote [^:]*: //')"
  echo "int8 vs fp32 on held-out text: $(grep -m1 '^Δppl ' "$out/export.txt")"
  echo "decoding:  $(grep -m1 '^load ' "$out/run.txt")"
} >&2

echo "== done: $out/model.ckpt.tfq (checkpoint, loss curve $out/model.ckpt.tfq.loss.svg), $out/model.int8.tfq, $out/model.int8.raw.tfq" >&2
