#!/usr/bin/env bash
# Builds a libFuzzer target: the .tfq reader (.build-fuzz/fuzz-tfq-file) or the readers of
# other tools' files, safetensors and GGUF (.build-fuzz/fuzz-imports).
#
#   tools/fuzz/build.sh [tfq-file|imports]   # ASan + libFuzzer, -O, debug info
#   FUZZ_OUT=/some/dir tools/fuzz/build.sh   # another output folder
#
# swiftc compiles the target's file together with Sources/TFQFormat/*.swift (and, for
# imports, the readers and the BPE tokenizer with their `import TFQFormat`/`import TFQModel`
# lines dropped) into one module, so
# the package itself carries no sanitizer flags and no extra target. libFuzzer
# comes from the Swift toolchain's own clang runtime (usr/lib/clang/*/lib/linux/
# libclang_rt.fuzzer-<arch>.a), found by swiftc itself; nothing else needs installing beyond
# libzstd-dev, which the package already requires. lld (shipped with the toolchain) links it;
# ld.gold works too but prints a warning per ASan register-check thunk.
set -euo pipefail
cd "$(dirname "$0")/../.."

target=${1:-tfq-file}
out=${FUZZ_OUT:-.build-fuzz}
mkdir -p "$out"
case "$target" in
  tfq-file) sources=(tools/fuzz/FuzzTFQFile.swift) ;;
  imports)
    mkdir -p "$out/imports-src"
    for f in TFQImport/ImportError TFQImport/StoredFloats TFQImport/SafetensorsFile TFQImport/GGUF \
             TFQImport/HuggingFaceTokenizer TFQModel/BPETokenizer TFQModel/BPEVocabulary TFQModel/BPEPreSplit TFQModel/Heap; do
      grep -v -E '^import (TFQFormat|TFQModel)$' "Sources/$f.swift" > "$out/imports-src/$(basename "$f").swift"
    done
    sources=(tools/fuzz/FuzzImports.swift "$out"/imports-src/*.swift) ;;
  *) echo "usage: tools/fuzz/build.sh [tfq-file|imports]" >&2; exit 2 ;;
esac

# TFQFormat's one C dependency besides zstd: the SIGBUS guard for mapped files.
clang -O2 -g -fsanitize=address -c Sources/CMapGuard/map_guard.c -I Sources/CMapGuard/include -o "$out/map_guard.o"

swiftc \
  -sanitize=fuzzer,address \
  -parse-as-library \
  -O -g \
  -swift-version 5 \
  -module-name Fuzz \
  -module-cache-path "$out/module-cache" \
  -I Sources/CZstd \
  -Xcc -fmodule-map-file=Sources/CZstd/module.modulemap \
  -I Sources/CMapGuard/include \
  -Xcc -fmodule-map-file=Sources/CMapGuard/include/module.modulemap \
  -use-ld=lld \
  -lzstd \
  Sources/TFQFormat/*.swift \
  tools/fuzz/ScratchFile.swift \
  "${sources[@]}" \
  "$out/map_guard.o" \
  -o "$out/fuzz-$target"

echo "$out/fuzz-$target"
