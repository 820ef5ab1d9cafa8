/* CTFQ holds include/tfq.h, the C API's one header, for Sources/TFQCAPI to import: the Swift
 * implementation is compiled against the declarations C callers see. SwiftPM needs one
 * source file; it also pins the layout C callers and bindings (ctypes) rely on. */
#include <stddef.h>

#include "tfq.h"

_Static_assert(sizeof(tfq_status) == 4, "tfq_status is an int-sized enum");
_Static_assert(sizeof(tfq_model_info) == 28, "tfq_model_info is seven int32_t");
_Static_assert(offsetof(tfq_sampling, top_p) == 8 && offsetof(tfq_sampling, seed) == 16 && sizeof(tfq_sampling) == 24,
               "tfq_sampling: float, int32_t, float, 4 bytes of padding, uint64_t");
