#!/usr/bin/env bash
# The test command: the whole suite in the portable build (no CPU flags), then again with the
# host-CPU flags so both the standard-SIMD kernels and the ISA fast paths are checked.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== portable build: swift test" >&2
swift test
echo "== host-CPU build: tools/build.sh test (scratch .build-native)" >&2
TFQ_SCRATCH=.build-native tools/build.sh test
