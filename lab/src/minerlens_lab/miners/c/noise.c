/* Syscall-noise injection: a thread that makes cheap syscalls (getpid, nanosleep(0), clock_gettime
 * through syscall() so the vDSO cannot absorb it, a 1-byte read of /dev/null) so that they are
 * g_cfg.noise_share of all the process's syscalls. It follows the rest of the process through the
 * in-process counters: its cumulative target is share/(1-share) times what the other threads made. It
 * emits what it owes in bursts sized to keep its pacing sleeps (each a nanosleep, itself one of the
 * noise syscalls) under ~200/s, and sleeps until the next burst is due. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

static _Atomic uint64_t made;

uint64_t noise_count(void)
{
    return atomic_load_explicit(&made, memory_order_relaxed);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: not a syscall */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void emit(unsigned kind, int devnull)
{
    static const struct timespec zero = {0, 0};
    struct timespec ts;
    char byte;
    switch (kind % 4) {
    case 0:
        syscall(SYS_getpid);
        break;
    case 1:
        syscall(SYS_nanosleep, &zero, NULL);
        break;
    case 2:
        syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
        break;
    default:
        if (syscall(SYS_read, devnull, &byte, 1) < 0) {
            /* /dev/null reads return 0; errors do not matter for noise */
        }
        break;
    }
}

void *noise_main(void *arg)
{
    (void)arg;
    ml_count_register(1);
    const double k = g_cfg.noise_share / (1.0 - g_cfg.noise_share);
    int devnull = (int)syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);
    uint64_t n = 1;
    unsigned kind = 0;
    double t_prev = now_s(), rate = 0.0;
    uint64_t rest_prev = ml_count_rest();

    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        uint64_t rest = ml_count_rest();
        double t = now_s();
        if (t - t_prev >= 0.2) { /* the other threads' syscall rate, smoothed */
            double r = (double)(rest - rest_prev) / (t - t_prev);
            rate = rate == 0.0 ? r : 0.7 * rate + 0.3 * r;
            t_prev = t;
            rest_prev = rest;
        }
        /* emit in bursts of `batch`, so that the pacing sleeps stay at most ~200/s of the noise */
        double want = k * (rate > 0.5 ? rate : 0.5);
        double batch = want / 200.0 < 1.0 ? 1.0 : want / 200.0 > 256.0 ? 256.0 : want / 200.0;
        double deficit = k * (double)rest - (double)n;
        if (deficit >= batch) {
            uint64_t burst = deficit > 4096.0 ? 4096 : (uint64_t)deficit;
            for (uint64_t i = 0; i < burst; i++)
                emit(kind++, devnull);
            n += burst;
            atomic_store_explicit(&made, n, memory_order_relaxed);
            continue;
        }
        double wait = (batch - deficit) / want;
        if (wait < 0.0005)
            wait = 0.0005;
        if (wait > 1.0)
            wait = 1.0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        syscall(SYS_nanosleep, &ts, NULL);
        n++;
        atomic_store_explicit(&made, n, memory_order_relaxed);
    }
    return NULL;
}
