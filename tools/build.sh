#!/usr/bin/env bash
# The fast build: release mode, code generated for this machine's CPU, and the compile-time
# defines that switch on the kernels' ISA paths (AVX2/FMA, AVX-512's 16-lane vectors). ARM64
# builds get FMA; the int8 kernels there are the portable ones until NEON/sdot paths exist.
#
#   tools/build.sh                 # builds .build/release/tfq
#   tools/build.sh --portable      # release build for any CPU of the architecture (no flags)
#   tools/build.sh --static        # only the tfq CLI, with the Swift runtime linked in: a
#                                  # binary that runs on a board without a Swift install
#                                  # (and maps ~4 MB less at run time); libzstd stays shared
#   tools/build.sh test            # runs the test suite with the same flags
#   TFQ_SCRATCH=.build-x tools/build.sh   # another build folder
#
# A plain `swift build -c release` is correct but targets baseline x86-64 (no FMA): much slower.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
portable=0
static=0
for arg in "$@"; do
  case "$arg" in
    test) mode=test ;;
    --portable) portable=1 ;;
    --static) static=1 ;;
    *) echo "tools/build.sh: unknown argument '$arg' (expected: test, --portable, --static)" >&2; exit 2 ;;
  esac
done

flags=()
if [ "$portable" = 0 ]; then
  flags+=(-Xswiftc -target-cpu -Xswiftc native -Xcc -march=native)
  cpu_flags=$(grep -m1 -E '^(flags|Features)' /proc/cpuinfo 2>/dev/null || true)
  has() { [[ " $cpu_flags " == *" $1 "* ]]; }
  case "$(uname -m)" in
    x86_64)
      if has fma && has avx2; then flags+=(-Xswiftc -DTFQ_FMA -Xswiftc -DTFQ_AVX2); fi
      if has avx512f && has avx512bw; then flags+=(-Xswiftc -DTFQ_AVX512); fi
      ;;
    aarch64)
      flags+=(-Xswiftc -DTFQ_FMA)
      ;;
  esac
fi

# A static Swift runtime cannot go into the C API's shared library, so --static builds the
# CLI alone (in its own folder by default: the flag changes how every module is built).
product_args=()
if [ "$static" = 1 ]; then
  if [ "$mode" = test ]; then echo "tools/build.sh: --static builds the CLI only; it does not combine with test" >&2; exit 2; fi
  product_args=(--static-swift-stdlib --product tfq)
  TFQ_SCRATCH=${TFQ_SCRATCH:-.build-static}
fi

scratch=${TFQ_SCRATCH:-}
scratch_args=()
if [ -n "$scratch" ]; then scratch_args=(--scratch-path "$scratch"); fi

if [ "$mode" = test ]; then
  exec swift test -c release -Xswiftc -enable-testing ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"}
else
  swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${product_args[@]+"${product_args[@]}"} ${flags[@]+"${flags[@]}"} 2>&1 \
    | { grep -v "the use of .mktemp. is dangerous" || true; } >&2   # a linker note on Foundation's static library
  echo "$(swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"} --show-bin-path)/tfq"
fi
