/* Hashing threads: take the current job (they check its sequence number after every hash: a new job is
 * picked up at once, without a syscall), walk this thread's share of the nonce space, queue every hash
 * below the job's target as a share, and optionally give the CPU back (sched_yield after every N hashes
 * like XMRig's default "yield", or a sleep duty cycle like CPU-limited cryptojacking scripts). In the
 * cpuminer profile a thread works in scans - until a share, a new job or 60 s (cpuminer's LP_SCANTIME) -
 * and logs "thread N: H hashes, R khash/s" at the end of each, as cpuminer does. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "counters.h"
#include "miner.h"
#include "pow.h"

struct hash_slot {
    _Atomic uint64_t n;
    char pad[56];
};

static struct hash_slot hashes[ML_MAX_THREADS];

static double started_at;

uint64_t worker_hashes(int index)
{
    return atomic_load_explicit(&hashes[index].n, memory_order_relaxed);
}

uint64_t total_hashes(void)
{
    uint64_t n = 0;
    for (int i = 0; i < g_cfg.threads; i++)
        n += worker_hashes(i);
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double worker_rate(void)
{
    double t = now_s() - started_at;
    return started_at > 0 && t > 0 ? (double)total_hashes() / t : 0.0;
}

#define SCAN_S 60.0

struct scan {
    double start;
    uint64_t hashes;
};

static void end_scan(struct scan *sc, int index, double now)
{
    if (g_cfg.profile == ML_PROFILE_CPUMINER && sc->hashes > 0 && now > sc->start)
        ml_log("thread %d: %llu hashes, %.2f khash/s", index, (unsigned long long)sc->hashes,
               (double)sc->hashes / (now - sc->start) / 1e3);
    sc->start = now;
    sc->hashes = 0;
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    ML_SC(nanosleep(&ts, NULL));
}

void *worker_main(void *arg)
{
    int index = (int)(intptr_t)arg;
    ml_count_register(0);
    const struct ml_pow *pow = g_cfg.pow;
    ml_count(ML_SC_ARENA);
    void *tctx = pow->thread_init(index);
    if (tctx == NULL) {
        ml_log("thread %d: cannot allocate its hashing context", index);
        atomic_store(&g_stop, 1);
        return NULL;
    }
    struct ml_job job = {0};
    uint64_t seq = 0;
    uint8_t blob[ML_BLOB_MAX], hash[32], seed[32];
    int have_seed = 0, exhausted = 0;
    uint32_t nonce = 0, nonce_end = 0;
    const unsigned yield_every = g_cfg.yield_every ? g_cfg.yield_every : pow->yield_every;
    const unsigned clock_every = pow->yield_every > 1 ? 256 : 1;
    unsigned since_yield = 0, since_clock = 0;
    const double busy_slice = g_cfg.duty * g_cfg.duty_period_ms / 1e3;
    double slice_start = now_s();
    const int scans = g_cfg.profile == ML_PROFILE_CPUMINER;
    struct scan sc = {now_s(), 0};
    unsigned since_scan_clock = 0;
    if (index == 0)
        started_at = slice_start;

    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        if (job_current_seq() != seq) {
            if (!job_snapshot(&job)) {
                sleep_s(0.05);
                continue;
            }
            if (seq != 0 && scans)
                end_scan(&sc, index, now_s());
            seq = job.seq;
            if (pow->set_seed != NULL && job.has_seed && (!have_seed || memcmp(seed, job.seed, 32) != 0)) {
                pow->set_seed(job.seed);
                memcpy(seed, job.seed, 32);
                have_seed = 1;
            }
            memcpy(blob, job.blob, job.blob_len);
            uint32_t span = UINT32_MAX / (uint32_t)g_cfg.threads;
            nonce = span * (uint32_t)index;
            nonce_end = nonce + span - 1;
            exhausted = 0;
        }
        if (seq == 0 || exhausted || job.blob_len < pow->nonce_offset + 4) {
            sleep_s(0.1); /* no job yet, or this thread's nonce range is used up: wait for the next */
            continue;
        }
        blob[pow->nonce_offset] = (uint8_t)nonce;
        blob[pow->nonce_offset + 1] = (uint8_t)(nonce >> 8);
        blob[pow->nonce_offset + 2] = (uint8_t)(nonce >> 16);
        blob[pow->nonce_offset + 3] = (uint8_t)(nonce >> 24);
        pow->hash(tctx, blob, job.blob_len, hash);
        atomic_fetch_add_explicit(&hashes[index].n, 1, memory_order_relaxed);
        sc.hashes++;
        if (le64(hash + 24) < job.target) {
            stratum_queue_share(job.job_id, nonce, hash, job.diff);
            if (scans)
                end_scan(&sc, index, now_s());
        } else if (scans && ++since_scan_clock >= clock_every) {
            since_scan_clock = 0;
            double t = now_s();
            if (t - sc.start >= SCAN_S)
                end_scan(&sc, index, t);
        }
        if (nonce == nonce_end)
            exhausted = 1;
        nonce++;

        if (g_cfg.yield == ML_YIELD_SCHED && ++since_yield >= yield_every) {
            since_yield = 0;
            ML_SC(sched_yield());
        } else if (g_cfg.yield == ML_YIELD_SLEEP && ++since_clock >= clock_every) {
            since_clock = 0;
            double busy = now_s() - slice_start;
            if (busy >= busy_slice) {
                sleep_s(busy * (1.0 - g_cfg.duty) / g_cfg.duty);
                slice_start = now_s();
            }
        }
    }
    return NULL;
}
