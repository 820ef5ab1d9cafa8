/* CKernels is header-only (include/): the functions inline into the Swift kernels. SwiftPM
 * needs one source file. */
#include "tfq_prefetch.h"
#include "tfq_int8.h"
#include "tfq_quantize.h"
#include "tfq_cpu.h"
