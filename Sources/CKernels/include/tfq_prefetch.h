#ifndef TFQ_PREFETCH_H
#define TFQ_PREFETCH_H

/* A hint to start loading the cache line at `address` (prefetcht0 on x86-64, prfm pldl1keep
 * on ARM64). Swift has no prefetch of its own; this header-only function inlines into the
 * int8 kernels. */
static inline void tfq_prefetch(const void *address) { __builtin_prefetch(address, 0, 3); }

#endif
