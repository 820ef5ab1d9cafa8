#!/usr/bin/env bash
# Builds the libFuzzer target for the .tfq reader: .build-fuzz/fuzz-tfq-file
#
#   tools/fuzz/build.sh                      # ASan + libFuzzer, -O, debug info
#   FUZZ_OUT=/some/dir tools/fuzz/build.sh   # another output folder
#
# swiftc compiles tools/fuzz/FuzzTFQFile.swift together with Sources/TFQFormat/*.swift into
# one module, so the package itself carries no sanitizer flags and no extra target. libFuzzer
# comes from the Swift toolchain's own clang runtime (usr/lib/clang/*/lib/linux/
# libclang_rt.fuzzer-<arch>.a), found by swiftc itself; nothing else needs installing beyond
# libzstd-dev, which the package already requires. lld (shipped with the toolchain) links it;
# ld.gold works too but prints a warning per ASan register-check thunk.
set -euo pipefail
cd "$(dirname "$0")/../.."

out=${FUZZ_OUT:-.build-fuzz}
mkdir -p "$out"

# TFQFormat's one C dependency besides zstd: the SIGBUS guard for mapped files.
clang -O2 -g -fsanitize=address -c Sources/CMapGuard/map_guard.c -I Sources/CMapGuard/include -o "$out/map_guard.o"

swiftc \
  -sanitize=fuzzer,address \
  -parse-as-library \
  -O -g \
  -swift-version 5 \
  -module-name FuzzTFQ \
  -module-cache-path "$out/module-cache" \
  -I Sources/CZstd \
  -Xcc -fmodule-map-file=Sources/CZstd/module.modulemap \
  -I Sources/CMapGuard/include \
  -Xcc -fmodule-map-file=Sources/CMapGuard/include/module.modulemap \
  -use-ld=lld \
  -lzstd \
  Sources/TFQFormat/*.swift \
  tools/fuzz/FuzzTFQFile.swift \
  "$out/map_guard.o" \
  -o "$out/fuzz-tfq-file"

echo "$out/fuzz-tfq-file"
