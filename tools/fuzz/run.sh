#!/usr/bin/env bash
# Runs a fuzzer: the .tfq reader on a corpus seeded from formats/testdata, or (imports) the
# safetensors, GGUF and tokenizer.json readers on a corpus seeded from the Hugging Face
# fixtures' dtypes file and GPT-2 tokenizer.json, and a small GGUF written by the `gguf`
# package (when it is installed).
#
#   tools/fuzz/run.sh                              # the .tfq reader, until stopped (Ctrl-C)
#   tools/fuzz/run.sh imports -max_total_time=300  # any libFuzzer flags pass through
#
# Corpus: .build-fuzz/corpus[-imports] (git-ignored; it grows as the fuzzer finds new paths).
# Crashes, leaks, timeouts and OOMs land in .build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=tfq-file
case "${1:-}" in tfq-file|imports) target=$1; shift ;; esac
out=${FUZZ_OUT:-.build-fuzz}
[ -x "$out/fuzz-$target" ] || tools/fuzz/build.sh "$target" >/dev/null
mkdir -p "$out/artifacts"
if [ "$target" = tfq-file ]; then
  corpus="$out/corpus"
  mkdir -p "$corpus"
  cp formats/testdata/*.tfq formats/testdata/zstd/*.tfq "$corpus/"
  exec "$out/fuzz-tfq-file" -dict=tools/fuzz/tfq.dict -artifact_prefix="$out/artifacts/" "$@" "$corpus"
fi
corpus="$out/corpus-imports"
mkdir -p "$corpus"
cp Tests/TFQImportTests/Fixtures/hf/dtypes.safetensors "$corpus/"
cp Tests/TFQImportTests/Fixtures/hf/gpt2/tokenizer.json "$corpus/seed-tokenizer.json"
cp Tests/TFQImportTests/Fixtures/hf/llama-sp/tokenizer-prepend.json "$corpus/seed-sp-tokenizer.json"
python3 - "$corpus/seed.gguf" <<'PY' || echo "no gguf package: no GGUF seed" >&2
import sys
import numpy as np
import gguf
w = gguf.GGUFWriter(sys.argv[1], "llama")
w.add_uint32("llama.block_count", 1)
w.add_array("tokenizer.ggml.tokens", ["a", "b"])
w.add_float32("llama.rope.freq_base", 10000.0)
w.add_tensor("f32", np.arange(8, dtype=np.float32).reshape(2, 4))
w.add_tensor("q8", gguf.quants.quantize(np.linspace(-1, 1, 64, dtype=np.float32).reshape(2, 32), gguf.GGMLQuantizationType.Q8_0),
             raw_dtype=gguf.GGMLQuantizationType.Q8_0)
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
PY
exec "$out/fuzz-imports" -dict=tools/fuzz/imports.dict -artifact_prefix="$out/artifacts/" "$@" "$corpus"
