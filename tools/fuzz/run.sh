#!/usr/bin/env bash
# Runs the .tfq reader fuzzer on a corpus seeded from formats/testdata/*.tfq and zstd/*.tfq.
#
#   tools/fuzz/run.sh                          # until stopped (Ctrl-C)
#   tools/fuzz/run.sh -max_total_time=300      # any libFuzzer flags pass through
#
# Corpus: .build-fuzz/corpus (git-ignored; it grows as the fuzzer finds new paths).
# Crashes, leaks, timeouts and OOMs land in .build-fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${FUZZ_OUT:-.build-fuzz}
[ -x "$out/fuzz-tfq-file" ] || tools/fuzz/build.sh >/dev/null
mkdir -p "$out/corpus" "$out/artifacts"
cp formats/testdata/*.tfq formats/testdata/zstd/*.tfq "$out/corpus/"

exec "$out/fuzz-tfq-file" -dict=tools/fuzz/tfq.dict -artifact_prefix="$out/artifacts/" "$@" "$out/corpus"
