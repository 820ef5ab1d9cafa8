#!/usr/bin/env bash
# The test command. The Swift suite runs twice: in the portable build (no CPU flags: the
# standard-SIMD kernels) and in the host-CPU build (the ISA fast paths). Both are optimized
# builds with testing enabled: the kernels are too slow unoptimized for the training tests.
# Then the Python tools' own tests (the independent reader and the numpy reference).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== portable build: swift test -c release" >&2
swift test -c release -Xswiftc -enable-testing
echo "== host-CPU build: tools/build.sh test (scratch .build-native)" >&2
TFQ_SCRATCH=.build-native tools/build.sh test
echo "== C and Python examples of the C API, shared pages (tools/examples/run.sh)" >&2
TFQ_SCRATCH=.build-native tools/examples/run.sh
echo "== Python tools: pytest tools/" >&2
python3 -m pytest -q tools/
