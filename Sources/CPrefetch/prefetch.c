/* CPrefetch is header-only (include/tfq_prefetch.h); SwiftPM needs one source file. */
#include "tfq_prefetch.h"
