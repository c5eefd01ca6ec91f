/* Syscall-noise pacing, shared by the miner's noise thread (noise.c) and the XMRig noise companion
 * (xmrig/c/noise_companion.c, built with -I on this directory): cheap syscalls made so that they are a
 * given share of all the syscalls of the process (or of the process pair). The injector follows the rest's
 * syscall count: its cumulative target is share/(1-share) times what the rest made. It emits what it owes
 * in bursts sized to keep its pacing sleeps (each a nanosleep, itself one of the noise syscalls) under
 * ~200/s, and sleeps until the next burst is due. */
#ifndef ML_NOISE_PACING_H
#define ML_NOISE_PACING_H

#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static inline double noise_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO: not a syscall */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One noise syscall, the `kind`-th of the rotation: getpid, nanosleep(0), clock_gettime through syscall()
 * (so the vDSO cannot absorb it), a 1-byte read of /dev/null (`devnull`). Exactly one syscall. */
static inline void noise_emit(unsigned kind, int devnull)
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

/* One pacing sleep of `wait_s` seconds (a nanosleep syscall: it counts as noise). */
static inline void noise_sleep(double wait_s)
{
    struct timespec ts = {(time_t)wait_s, (long)((wait_s - (double)(time_t)wait_s) * 1e9)};
    syscall(SYS_nanosleep, &ts, NULL);
}

struct noise_pacer {
    double k;          /* noise syscalls owed per syscall of the rest: share / (1 - share) */
    double max_wait_s; /* longest pacing sleep */
    double t_prev;     /* when the rest's rate was last measured */
    double rate;       /* the rest's syscall rate, smoothed (0: not measured yet) */
    uint64_t rest_prev;
};

static inline struct noise_pacer noise_pacer(double share, double max_wait_s, uint64_t rest)
{
    struct noise_pacer p = {share / (1.0 - share), max_wait_s, noise_now_s(), 0.0, rest};
    return p;
}

/* Given the rest's syscall count so far and the noise's (`made`): how many noise syscalls to emit now (a
 * burst), or 0 with `*wait_s` set to how long to sleep before the next burst is due. */
static inline uint64_t noise_pace(struct noise_pacer *p, uint64_t rest, uint64_t made, double *wait_s)
{
    double t = noise_now_s();
    if (t - p->t_prev >= 0.2) { /* the rest's syscall rate, smoothed */
        double r = (double)(rest - p->rest_prev) / (t - p->t_prev);
        p->rate = p->rate == 0.0 ? r : 0.7 * p->rate + 0.3 * r;
        p->t_prev = t;
        p->rest_prev = rest;
    }
    /* emit in bursts of `batch`, so that the pacing sleeps stay at most ~200/s of the noise */
    double want = p->k * (p->rate > 0.5 ? p->rate : 0.5);
    double batch = want / 200.0 < 1.0 ? 1.0 : want / 200.0 > 256.0 ? 256.0 : want / 200.0;
    double deficit = p->k * (double)rest - (double)made;
    if (deficit >= batch)
        return deficit > 4096.0 ? 4096 : (uint64_t)deficit;
    double wait = (batch - deficit) / want;
    *wait_s = wait < 0.0005 ? 0.0005 : wait > p->max_wait_s ? p->max_wait_s : wait;
    return 0;
}

#endif
