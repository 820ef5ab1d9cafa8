#define _GNU_SOURCE
#include "tfq_map_guard.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* A fixed table, so the handler only reads atomics: no locks, no allocation, nothing that is
 * unsafe in a signal handler. A slot is free while its length is 0. */
#define SLOTS 256
#define CLAIMED ((size_t)-1)

struct slot {
    _Atomic uintptr_t base;
    _Atomic size_t length;
    _Atomic int damaged;
};

static struct slot slots[SLOTS];
static struct sigaction previous;
static uintptr_t page_size;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;
static int installed;

static void forward(int signo, siginfo_t *info, void *context) {
    /* sa_handler and sa_sigaction share storage: test for SIG_DFL and SIG_IGN first. */
    if (previous.sa_handler == SIG_DFL || previous.sa_handler == SIG_IGN) {
        /* The default action, as without this handler (ignoring SIGBUS would loop on a fault):
         * pending until this handler returns, then it ends the process, whether the signal
         * came from a fault or from another process. */
        signal(SIGBUS, SIG_DFL);
        raise(SIGBUS);
    } else if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(signo, info, context);
    } else {
        previous.sa_handler(signo);
    }
}

static void on_sigbus(int signo, siginfo_t *info, void *context) {
    /* Only a nonexistent page of a mapping (BUS_ADRERR) is ours to mend: an alignment fault
     * would fault again on the zero page, and a signal sent by a process has no address. */
    if (info->si_code != BUS_ADRERR) { forward(signo, info, context); return; }
    uintptr_t address = (uintptr_t)info->si_addr;
    for (int i = 0; i < SLOTS; i++) {
        size_t length = atomic_load(&slots[i].length);
        if (length == 0 || length == CLAIMED) continue;
        uintptr_t base = atomic_load(&slots[i].base);
        if (address < base || address - base >= length) continue;
        void *start = (void *)(address & ~(page_size - 1));
        if (mmap(start, page_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED) break;
        atomic_store(&slots[i].damaged, 1);
        return;
    }
    forward(signo, info, context);
}

static void install(void) {
    page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigbus;
    action.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&action.sa_mask);
    installed = sigaction(SIGBUS, &action, &previous) == 0;
}

int tfq_map_guard_register(const void *base, size_t length) {
    if (length == 0) return -1;
    pthread_once(&install_once, install);
    if (!installed) return -1;
    for (int i = 0; i < SLOTS; i++) {
        size_t expected = 0;
        /* Claim the slot with a placeholder length so no other thread takes it, then publish
         * the real range; the handler ignores a claimed slot until its length is written. */
        if (!atomic_compare_exchange_strong(&slots[i].length, &expected, CLAIMED)) continue;
        atomic_store(&slots[i].damaged, 0);
        atomic_store(&slots[i].base, (uintptr_t)base);
        atomic_store(&slots[i].length, length);
        return i;
    }
    return -1;
}

void tfq_map_guard_unregister(int slot) {
    if (slot < 0 || slot >= SLOTS) return;
    /* Hidden from the handler first, freed for reuse last. */
    atomic_store(&slots[slot].length, CLAIMED);
    atomic_store(&slots[slot].base, 0);
    atomic_store(&slots[slot].length, 0);
}

int tfq_map_guard_damaged(int slot) {
    if (slot < 0 || slot >= SLOTS) return 0;
    return atomic_load(&slots[slot].damaged);
}

int tfq_map_guard_capacity(void) { return SLOTS; }
