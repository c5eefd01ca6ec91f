/* Syscall-noise injection: a thread that makes cheap syscalls (getpid, nanosleep(0), clock_gettime
 * through syscall() so the vDSO cannot absorb it, a 1-byte read of /dev/null) so that they are
 * g_cfg.noise_share of all the process's syscalls. It follows the rest of the process through the
 * in-process counters: its cumulative target is share/(1-share) times what the other threads made. It
 * emits what it owes in bursts sized to keep its pacing sleeps (each a nanosleep, itself one of the
 * noise syscalls) under ~200/s, and sleeps until the next burst is due (noise_pacing.h). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"
#include "noise_pacing.h"

static _Atomic uint64_t made;

uint64_t noise_count(void)
{
    return atomic_load_explicit(&made, memory_order_relaxed);
}

void *noise_main(void *arg)
{
    (void)arg;
    ml_count_register(1);
    int devnull = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
    uint64_t n = 1;
    unsigned kind = 0;
    struct noise_pacer pacer = noise_pacer(g_cfg.noise_share, 1.0, ml_count_rest());

    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        double wait = 0.0;
        uint64_t burst = noise_pace(&pacer, ml_count_rest(), n, &wait);
        if (burst > 0) {
            for (uint64_t i = 0; i < burst; i++)
                noise_emit(kind++, devnull);
            n += burst;
            atomic_store_explicit(&made, n, memory_order_relaxed);
            continue;
        }
        noise_sleep(wait);
        n++;
        atomic_store_explicit(&made, n, memory_order_relaxed);
    }
    return NULL;
}
