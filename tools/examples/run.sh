#!/usr/bin/env bash
# Builds libtfq.so and the C example, then checks that the C and Python (ctypes) examples
# print exactly what `tfq run` prints for the same model and prompt (greedy), that tfq.h and
# a program calling all of it pass strict C compilers and the sanitizers (check_c_api.sh),
# and that two processes share a mapped model's pages.
#   tools/examples/run.sh [TFQ_SCRATCH=...]
set -euo pipefail
cd "$(dirname "$0")/../.."

tfq=$(tools/build.sh)   # builds every product, libtfq-c.so included
bin=$(dirname "$tfq")
lib="$bin/c-api"
mkdir -p "$lib"
cp "$bin/libtfq-c.so" "$lib/libtfq.so"
cc -O2 -std=c11 -Wall -Wextra -Werror -pedantic tools/examples/c/generate.c -I include -L "$lib" -ltfq -Wl,-rpath,"$lib" -o "$lib/generate"

model=Tests/TFQRuntimeTests/Fixtures/golden.int8.tfq
prompt="the king"
expected=$("$tfq" run "$model" --prompt "$prompt" -n 40 2>/dev/null)
from_c=$("$lib/generate" "$model" "$prompt" 40 2>/dev/null)
from_python=$(python3 tools/examples/python/generate.py "$lib/libtfq.so" "$model" "$prompt" 40)
[ "$from_c" = "$expected" ] || { echo "C example differs from tfq run:"; echo "$from_c"; echo "---"; echo "$expected"; exit 1; } >&2
[ "$from_python" = "$expected" ] || { echo "Python example differs from tfq run:"; echo "$from_python"; echo "---"; echo "$expected"; exit 1; } >&2
echo "examples: C and Python output equal tfq run's greedy output (2 passed, 0 failed)"

tools/examples/check_c_api.sh "$lib" "$model" "$prompt"

# Shared, not copied: a raw int8 model of a few MB, opened by two processes.
big="$lib/shared.ckpt.tfq"
corpus="$lib/corpus.txt"
python3 -c "print('the quick brown fox jumps over the lazy dog. ' * 400)" > "$corpus"
"$tfq" train --data "$corpus" --out "$big" --layers 4 --heads 4 --dim 256 --context 64 --steps 0 --eval-every 0 --eval-batches 1 >/dev/null 2>&1
"$tfq" export "$big" -o "$lib/shared.int8.tfq" --int8 --no-zstd --eval-tokens 64 >/dev/null
python3 tools/examples/python/shared_pages.py "$lib/libtfq.so" "$lib/shared.int8.tfq"
