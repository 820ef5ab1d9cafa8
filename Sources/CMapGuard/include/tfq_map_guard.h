#ifndef TFQ_MAP_GUARD_H
#define TFQ_MAP_GUARD_H

#include <stddef.h>

/* Turns a SIGBUS inside a registered file mapping into a flag the caller can check.
 *
 * A page of a file mapping whose file was truncated after it was mapped raises SIGBUS when
 * touched, which kills the process by default: for a library, the host app. While a range is
 * registered, the handler maps a page of zeros over the faulting page, marks the range as
 * damaged and returns, so the read that faulted completes (with zeros). The code that used
 * the mapping checks tfq_map_guard_damaged afterwards and fails the call. A SIGBUS anywhere
 * else goes to the handler that was installed before (or the default action). */

/* Registers [base, base + length). Returns a slot (≥ 0) for the calls below, or -1 when all
 * slots are taken or the handler cannot be installed (the range is then unguarded). */
int tfq_map_guard_register(const void *base, size_t length);

/* Forgets a slot. Call before unmapping the range. */
void tfq_map_guard_unregister(int slot);

/* Non-zero once a fault in the slot's range has been caught. */
int tfq_map_guard_damaged(int slot);

/* How many ranges can be registered at once. */
int tfq_map_guard_capacity(void);

#endif
