#!/usr/bin/env bash
# The aarch64 part of the test command, on an x86-64 machine: tfq cross-built with Debian 13's
# Swift 6.0.3 and its tests run under qemu, through ../shared/arm64/arm64.sh (TFQ_ARM64_SH;
# its README says what it sets up and what emulation cannot tell). One build, for a Cortex-A72
# (ARMv8.0, a Raspberry Pi 4: NEON int8 kernels), run on two emulated cores:
#   cortex-a72   the kernel, format, runtime, C API, import and golden-output tests; an
#                instruction this core lacks (sdot) would stop the run
#   neoverse-n1  ARMv8.2 with the dot product: the kernel tests again, which now also check
#                the sdot path (compiled into every ARM64 build, called where the CPU has it)
# Under emulation the whole suite takes ~20 min, so CI runs that subset. A build for the dot product
# (tools/build.sh --arm64 --cpu cortex-a76 test) differs only in which int8 path it inlines.
#
#   tools/test_arm64.sh          # the subset (sets the trees up first if missing: ~6 min)
#   tools/test_arm64.sh --all    # the whole suite (~20 min)
set -euo pipefail
cd "$(dirname "$0")/.."

tool=${TFQ_ARM64_SH:-../shared/arm64/arm64.sh}
skip() { echo "tools/test_arm64.sh: skipped: $*" >&2; exit 0; }
[ "$(uname -m)" = x86_64 ] || skip "this is $(uname -m); the host builds above tested it natively"
[ -x "$tool" ] || skip "no $tool (set TFQ_ARM64_SH)"
[ "$(id -u)" = 0 ] || skip "$tool needs root (chroot, mounts, binfmt)"

all=0
for arg in "$@"; do
  case "$arg" in
    --all) all=1 ;;
    *) echo "tools/test_arm64.sh: unknown argument '$arg' (expected: --all)" >&2; exit 2 ;;
  esac
done

work=${ARM64_WORK:-/var/cache/tfq-arm64}
if [ ! -d "$work/trixie-arm64" ] || [ ! -d "$work/trixie-amd64" ]; then
  echo "== aarch64: setting up the Debian 13 trees in $work (once, ~6 min, ~5 GB)" >&2
  # The setup downloads Debian packages: a machine that cannot is a gap in this machine,
  # not a failing test. Once the trees exist, every build or test failure fails the run.
  "$tool" setup || skip "could not set up the trees in $work (network? disk?); see above"
fi
export ARM64_JOBS=${ARM64_JOBS:-$(nproc)}

# Golden outputs are in RuntimeTests (the committed int8 fixture), TFQCAPITests and
# TFQImportTests (llama2.c checkpoints against run.c's tokens, two-pass layers included).
subset='TFQKernelsTests|TFQFormatTests|TFQRuntimeTests|TFQCAPITests|TFQImportTests|LoadingTests|ExportRunTests'
# Left to the x86-64 runs and --all: the runtime tests that first train their fixture model
# (150 steps: ~4.5 min under qemu) and the mutation fuzzer.
slow='RuntimeTests[./](fp32RuntimeMatchesTheTrainingModel|prefillThenDecode|int8StaysCloseToFp32|halfKVCache|int8AccuracyChoices|badTwoPassLists|threadCountDoesNotChange|int8FileIsUnderAThird|everyGroupSize|fp16RoundTrips|sessionErrorsAreTyped|exportRejectsBadInput|halfPrecisionTables|halfTablesRefuse)|AccuracyTargetTests[./]theFirstSetting|mutationFuzz'

build=(tools/build.sh --arm64 --cpu cortex-a72 test --)
if [ "$all" = 1 ]; then
  echo "== aarch64 (Cortex-A72 build, NEON int8 kernels): the whole suite under qemu" >&2
  QEMU_CPU=cortex-a72 "${build[@]}"
  exit 0
fi
echo "== aarch64 (Cortex-A72 build, NEON int8 kernels) on a Cortex-A72: kernel, format, runtime, C API, import, golden-output tests" >&2
QEMU_CPU=cortex-a72 "${build[@]}" --filter "$subset" --skip "$slow"
echo "== aarch64, the same build on a Neoverse-N1 (dot product): kernel tests, sdot path included" >&2
QEMU_CPU=neoverse-n1 "${build[@]}" --skip-build --filter 'TFQKernelsTests'
