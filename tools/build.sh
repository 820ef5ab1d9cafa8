#!/usr/bin/env bash
# The fast build: release mode, code generated for one CPU, and the compile-time defines that
# switch on the kernels' ISA paths. The defines follow what clang says the CPU has:
#   x86-64:  TFQ_FMA and TFQ_AVX2 (FMA + AVX2), TFQ_AVX512 (AVX-512F + BW: 16-lane vectors),
#            TFQ_AVX512VNNI (AVX-512 VNNI + VL: the int8 kernels' vpdpbusd path)
#   aarch64: TFQ_FMA always; TFQ_ARM_DOTPROD with the dot product (ARMv8.2 sdot). Without it
#            the int8 kernels use ARMv8.0 NEON widening multiplies.
#
#   tools/build.sh                     # builds .build/release/tfq for this machine's CPU
#   tools/build.sh --cpu cortex-a76    # for a named CPU (a Raspberry Pi 5; cortex-a72: a Pi 4)
#   tools/build.sh --portable          # for any CPU of the architecture (no flags, no defines)
#   tools/build.sh --static            # only the tfq CLI, with the Swift runtime linked in: a
#                                      # binary that runs on a board without a Swift install
#                                      # (and maps ~4 MB less at run time); libzstd stays shared
#   tools/build.sh --arm64 --cpu cortex-a72 [--static]
#                                      # cross-build for aarch64 on an x86-64 machine, through
#                                      # ../shared/arm64/arm64.sh (TFQ_ARM64_SH), in .build-arm64-CPU
#   tools/build.sh test [-- ARGS]      # runs the test suite with the same flags (ARGS to swift test)
#   TFQ_SCRATCH=.build-x tools/build.sh   # another build folder
#
# A plain `swift build -c release` is correct but targets the baseline CPU: much slower.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=build
portable=0
static=0
arm64=0
cpu=native
passthrough=()
while [ $# -gt 0 ]; do
  case "$1" in
    test) mode=test ;;
    --portable) portable=1 ;;
    --static) static=1 ;;
    --arm64) arm64=1 ;;
    --cpu) [ $# -ge 2 ] || { echo "tools/build.sh: --cpu needs a CPU name (e.g. cortex-a72)" >&2; exit 2; }; cpu=$2; shift ;;
    --) shift; passthrough=("$@"); break ;;
    *) echo "tools/build.sh: unknown argument '$1' (expected: test, --cpu NAME, --portable, --static, --arm64, -- ARGS)" >&2; exit 2 ;;
  esac
  shift
done

arch=$(uname -m)
if [ "$arm64" = 1 ]; then
  arch=aarch64
  if [ "$cpu" = native ] && [ "$portable" = 0 ]; then echo "tools/build.sh: --arm64 needs --cpu NAME (the board's CPU; under emulation 'native' means nothing) or --portable" >&2; exit 2; fi
  if [ "$portable" = 1 ]; then cpu=portable; fi
fi

# clang comes with every Swift toolchain (SwiftPM compiles C targets with it).
find_clang() {
  if command -v clang >/dev/null 2>&1; then command -v clang; return; fi
  local swift_bin
  swift_bin=$(dirname "$(readlink -f "$(command -v swift)")")
  [ -x "$swift_bin/clang" ] && echo "$swift_bin/clang" && return
  echo "tools/build.sh: no clang found (it comes with the Swift toolchain)" >&2; exit 1
}

# Swift 6.0 hands -target-cpu to clang as -mcpu, which clang refuses for x86-64: the fast
# x86-64 build needs Swift 6.1 or newer (ARM64 builds are fine with 6.0).
if [ "$portable" = 0 ] && [ "$arch" = x86_64 ]; then
  version=$(swift --version 2>/dev/null | sed -n 's/.*Swift version \([0-9]*\)\.\([0-9]*\).*/\1 \2/p' | head -1)
  read -r major minor <<<"${version:-0 0}"
  if [ "$major" -lt 6 ] || { [ "$major" = 6 ] && [ "$minor" -lt 1 ]; }; then
    echo "tools/build.sh: Swift $major.$minor cannot build for a named x86-64 CPU (it passes clang -mcpu, which clang refuses for x86-64); use Swift 6.1 or newer, or --portable" >&2
    exit 2
  fi
fi

flags=()
if [ "$portable" = 0 ]; then
  case "$arch" in
    x86_64) cpu_flag="-march=$cpu"; triple=x86_64-unknown-linux-gnu ;;
    aarch64) cpu_flag="-mcpu=$cpu"; triple=aarch64-unknown-linux-gnu ;;
    *) echo "tools/build.sh: no fast build for $arch; use --portable" >&2; exit 2 ;;
  esac
  macros=$("$(find_clang)" --target="$triple" "$cpu_flag" -dM -E -x c /dev/null 2>&1) \
    || { echo "tools/build.sh: clang does not know the CPU '$cpu': $(echo "$macros" | head -1)" >&2; exit 2; }
  has() { [[ "$macros" == *"#define $1 "* ]]; }
  flags+=(-Xswiftc -target-cpu -Xswiftc "$cpu" -Xcc "$cpu_flag")
  case "$arch" in
    x86_64)
      if has __FMA__ && has __AVX2__; then flags+=(-Xswiftc -DTFQ_FMA -Xswiftc -DTFQ_AVX2); fi
      if has __AVX512F__ && has __AVX512BW__; then flags+=(-Xswiftc -DTFQ_AVX512); fi
      if has __AVX2__ && has __AVX512VNNI__ && has __AVX512VL__; then flags+=(-Xswiftc -DTFQ_AVX512VNNI); fi
      ;;
    aarch64)
      flags+=(-Xswiftc -DTFQ_FMA)
      if has __ARM_FEATURE_DOTPROD; then flags+=(-Xswiftc -DTFQ_ARM_DOTPROD); fi
      ;;
  esac
fi

# A static Swift runtime cannot go into the C API's shared library, so --static builds the
# CLI alone (in its own folder by default: the flag changes how every module is built).
product_args=()
if [ "$static" = 1 ]; then
  if [ "$mode" = test ]; then echo "tools/build.sh: --static builds the CLI only; it does not combine with test" >&2; exit 2; fi
  product_args=(--static-swift-stdlib --product tfq)
  if [ "$arm64" = 0 ]; then TFQ_SCRATCH=${TFQ_SCRATCH:-.build-static}; fi
fi

if [ "$arm64" = 1 ]; then
  # The cross build runs Debian 13's Swift 6.0.3 in a chroot (see ../shared/arm64/README.md).
  tool=${TFQ_ARM64_SH:-../shared/arm64/arm64.sh}
  [ -x "$tool" ] || { echo "tools/build.sh: --arm64 needs $tool (set TFQ_ARM64_SH)" >&2; exit 1; }
  suffix=""; if [ "$static" = 1 ]; then suffix=-static; fi
  scratch=${TFQ_SCRATCH:-.build-arm64-$cpu$suffix}
  if [ "$mode" = test ]; then
    exec env ARM64_SCRATCH="$scratch" "$tool" test -c release ${flags[@]+"${flags[@]}"} ${passthrough[@]+"${passthrough[@]}"}
  fi
  ARM64_SCRATCH="$scratch" "$tool" build -c release ${product_args[@]+"${product_args[@]}"} ${flags[@]+"${flags[@]}"} ${passthrough[@]+"${passthrough[@]}"} >&2
  echo "$scratch/release/tfq"
  exit 0
fi

scratch=${TFQ_SCRATCH:-}
scratch_args=()
if [ -n "$scratch" ]; then scratch_args=(--scratch-path "$scratch"); fi

if [ "$mode" = test ]; then
  exec swift test -c release -Xswiftc -enable-testing ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"} ${passthrough[@]+"${passthrough[@]}"}
else
  swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${product_args[@]+"${product_args[@]}"} ${flags[@]+"${flags[@]}"} ${passthrough[@]+"${passthrough[@]}"} 2>&1 \
    | { grep -v "the use of .mktemp. is dangerous" || true; } >&2   # a linker note on Foundation's static library
  echo "$(swift build -c release ${scratch_args[@]+"${scratch_args[@]}"} ${flags[@]+"${flags[@]}"} --show-bin-path)/tfq"
fi
