#!/usr/bin/env bash
# The C API as a C compiler sees it. tfq.h compiles alone as C99, C11 and C++11 with every
# warning an error; then c/api_check.c, built with -Wall -Wextra -Werror -pedantic under
# AddressSanitizer (leaks included) and UndefinedBehaviorSanitizer, calls every function of
# tfq.h on MODEL, success and error paths, frees all it made, and must exit 0 with no report.
# libtfq itself is not instrumented: ASan sees the program's memory and the libc calls
# (memcpy, strlen, malloc/free) the library makes into it, LSan every block left unfreed.
#   tools/examples/check_c_api.sh LIBDIR MODEL [PROMPT]   # LIBDIR holds libtfq.so (run.sh passes its own)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 2 ] && [ $# -le 3 ] || { echo "usage: $0 LIBDIR MODEL [PROMPT]" >&2; exit 2; }
lib=$1 model=$2 prompt=${3:-the king}
cc=${CC:-cc} cxx=${CXX:-c++}

strict=(-Wall -Wextra -Werror -pedantic)
printf '#include "tfq.h"\nint main(void) { return TFQ_OK; }\n' > "$lib/header_only.c"
for std in c99 c11; do
  "$cc" -std=$std "${strict[@]}" -Wstrict-prototypes -I include -c "$lib/header_only.c" -o "$lib/header_only.o"
done
"$cxx" -std=c++11 "${strict[@]}" -I include -x c++ -c "$lib/header_only.c" -o "$lib/header_only.o"

"$cc" -std=c11 "${strict[@]}" -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
  tools/examples/c/api_check.c -I include -L "$lib" -ltfq -Wl,-rpath,"$lib" -o "$lib/api_check"
# Any report fails the run: ASan and UBSan (no recovery) abort, LSan exits non-zero.
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$lib/api_check" "$model" "$prompt"
