#include "counters.h"

#include <stdatomic.h>

#define SLOTS 72

struct slot {
    _Atomic uint64_t n;
    char pad[56];
};

static struct slot slots[SLOTS];
static atomic_int next_slot = 1; /* slot 0: the main thread and threads beyond SLOTS */
static _Thread_local int my_slot = 0;
static _Thread_local int is_noise = 0;

void ml_count_register(int noise_thread)
{
    int s = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
    my_slot = s < SLOTS ? s : 0;
    is_noise = noise_thread;
}

void ml_count(unsigned n)
{
    if (is_noise)
        return; /* the noise thread keeps its own tally (noise.c) */
    atomic_fetch_add_explicit(&slots[my_slot].n, n, memory_order_relaxed);
}

uint64_t ml_count_rest(void)
{
    uint64_t total = 0;
    for (int i = 0; i < SLOTS; i++)
        total += atomic_load_explicit(&slots[i].n, memory_order_relaxed);
    return total;
}
