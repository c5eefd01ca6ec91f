/* minerlens lab miner: shared declarations.
 *
 * A multi-algorithm CPU miner built like XMRig/cpuminer: worker threads hash, one stratum client
 * thread talks newline-delimited JSON-RPC to the pool, an optional noise thread injects cheap
 * syscalls. Every syscall the miner's own code makes goes through ML_SC() so the process knows its
 * syscall rate (see counters.c).
 */
#ifndef ML_MINER_H
#define ML_MINER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ML_MAX_THREADS 64
#define ML_BLOB_MAX 128
#define ML_VERSION "0.3.0"

enum ml_yield { ML_YIELD_NONE, ML_YIELD_SCHED, ML_YIELD_SLEEP };

struct ml_pow;

struct ml_config {
    const struct ml_pow *pow;
    int threads;
    enum ml_yield yield;
    unsigned yield_every; /* hashes between two sched_yield() (0 = algorithm default) */
    double duty;          /* ML_YIELD_SLEEP: share of each period spent hashing */
    unsigned duty_period_ms;
    char pool_host[64];
    int pool_port;
    const char *login;
    const char *pass;
    double noise_share; /* 0 = no noise thread; else the share of all syscalls it makes */
    int keepalive_s;
    int print_time_s;
    int retry_pause_s;
    int huge_pages; /* try MAP_HUGETLB / MADV_HUGEPAGE */
    int rx_fast;    /* RandomX full-memory dataset (2 GiB) instead of the light 256 MiB cache */
    double run_seconds; /* exit after this long (0 = run until killed) */
    int bench;          /* hash a local job, no pool */
};

struct ml_job {
    uint64_t seq;
    char job_id[64];
    char algo[32];
    uint8_t blob[ML_BLOB_MAX];
    size_t blob_len;
    uint64_t target; /* a hash is a share when its last 8 bytes (LE) are below this */
    uint64_t diff;
    uint8_t seed[32];
    int has_seed;
};

extern struct ml_config g_cfg;
extern atomic_int g_stop;

/* job.c: the current job, published by the stratum thread and read by the workers */
void job_init(void); /* before any thread starts */
void job_publish(const struct ml_job *job);
uint64_t job_current_seq(void);
int job_snapshot(struct ml_job *out); /* 0 when there is no job yet */

/* stratum.c */
int stratum_init(void);
void *stratum_main(void *arg);
void stratum_queue_share(const char *job_id, uint32_t nonce, const uint8_t hash[32], uint64_t diff);
void stratum_counts(uint64_t *accepted, uint64_t *rejected);

/* worker.c */
void *worker_main(void *arg);
uint64_t worker_hashes(int index);

/* noise.c */
void *noise_main(void *arg);
uint64_t noise_count(void);

/* log.c */
int log_open(const char *path);
void ml_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* hex helpers (log.c) */
void hex_encode(const uint8_t *in, size_t n, char *out);
int hex_decode(const char *in, size_t hexlen, uint8_t *out, size_t outmax);

/* target arithmetic shared with the pool (XMRig's 32-bit compact target) */
uint64_t target_from_compact(uint32_t compact);
static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

#endif
