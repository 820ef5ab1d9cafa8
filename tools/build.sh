#!/usr/bin/env bash
# The fast build: release mode, code generated for this machine's CPU, and the compile-time
# defines that switch on the kernels' ISA paths (AVX-512 VNNI, AVX2/FMA, ARMv8.2 dot product).
#
#   tools/build.sh                 # builds .build/release/tfq
#   tools/build.sh --portable      # release build for any CPU of the architecture (no flags)
#   tools/build.sh test            # runs the test suite with the same flags
#   TFQ_SCRATCH=.build-x tools/build.sh   # another build folder
#
# A plain `swift build -c release` is correct but targets baseline x86-64 (no FMA): much slower.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
portable=0
for arg in "$@"; do
  case "$arg" in
    test) mode=test ;;
    --portable) portable=1 ;;
    *) echo "tools/build.sh: unknown argument '$arg' (expected: test, --portable)" >&2; exit 2 ;;
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
      if has avx512f && has avx512bw && has avx512_vnni; then flags+=(-Xswiftc -DTFQ_AVX512 -Xswiftc -DTFQ_AVX512VNNI); fi
      ;;
    aarch64)
      flags+=(-Xswiftc -DTFQ_FMA)
      if has asimddp; then flags+=(-Xswiftc -DTFQ_ARM_DOTPROD); fi
      ;;
  esac
fi

scratch=${TFQ_SCRATCH:-}
scratch_args=()
if [ -n "$scratch" ]; then scratch_args=(--scratch-path "$scratch"); fi

if [ "$mode" = test ]; then
  exec swift test -c release -Xswiftc -enable-testing ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"}
else
  swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"} >&2
  echo "$(swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"} --show-bin-path)/tfq"
fi
