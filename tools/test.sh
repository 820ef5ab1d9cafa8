#!/usr/bin/env bash
# The test command. The Swift suite runs in the portable build (no CPU flags: the
# standard-SIMD kernels) and in the host-CPU build (the ISA fast paths); on x86-64 a third
# time with the AVX-512 build's 16-lane vectors and 6×32 GEMM tiles compiled for the
# baseline CPU (LLVM splits the vectors), so those paths are tested on machines without
# AVX-512 too. All are optimized builds with testing enabled: the kernels are too slow
# unoptimized for the training tests. On x86-64 with ../shared/arm64, an aarch64 build with
# Debian's Swift 6.0.3 runs a subset under qemu (tools/test_arm64.sh). Then the Python
# tools' own tests (the independent reader and the numpy reference).
set -euo pipefail
cd "$(dirname "$0")/.."

# The suites' temporary files (models, checkpoints, fixtures: each test makes its own
# directory) go in one directory, removed when this script ends however it ends.
host_tmp=${TMPDIR:-/tmp}
tests_tmp=$(mktemp -d "$host_tmp/tfq-tests.XXXXXX")
trap 'rm -rf "$tests_tmp"' EXIT
export TMPDIR=$tests_tmp

echo "== portable build: swift test -c release" >&2
swift test -c release -Xswiftc -enable-testing
echo "== host-CPU build: tools/build.sh test (scratch .build-native)" >&2
TFQ_SCRATCH=.build-native tools/build.sh test
if [ "$(uname -m)" = x86_64 ]; then
  echo "== 16-lane build for any x86-64: swift test -DTFQ_AVX512 (scratch .build-wide)" >&2
  swift test -c release -Xswiftc -enable-testing --scratch-path .build-wide -Xswiftc -DTFQ_AVX512
fi
echo "== aarch64 under qemu: tools/test_arm64.sh" >&2
TMPDIR=$host_tmp tools/test_arm64.sh   # the chroot has its own /tmp
echo "== C and Python examples of the C API, shared pages (tools/examples/run.sh)" >&2
TFQ_SCRATCH=.build-native tools/examples/run.sh
echo "== Python tools: pytest tools/" >&2
python3 -m pytest -q tools/
