/* minerlens lab miner: shared declarations.
 *
 * A multi-algorithm CPU miner with the thread and syscall structure of one of two real miners
 * (--profile): XMRig (an event loop on the main thread - epoll, eventfd wake-ups, 500 ms / 1 s timers,
 * socket read/write - and a log thread writing with pwrite64, like libuv's thread pool) or cpuminer
 * (a stratum thread polling the socket, a work-I/O thread sending shares, per-scan log lines written
 * directly). Worker threads hash; an optional noise thread injects cheap syscalls. Every syscall the
 * miner's own code makes goes through ML_SC() so the process knows its syscall rate (see counters.c).
 */
#ifndef ML_MINER_H
#define ML_MINER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ML_MAX_THREADS 64
#define ML_BLOB_MAX 128
#define ML_VERSION "0.4.0"

enum ml_yield { ML_YIELD_NONE, ML_YIELD_SCHED, ML_YIELD_SLEEP };
enum ml_profile { ML_PROFILE_XMRIG, ML_PROFILE_CPUMINER };

struct ml_pow;

struct ml_config {
    const struct ml_pow *pow;
    enum ml_profile profile;
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

/* stratum.c: the protocol and the share queue, shared by both network models */
struct ml_share {
    char job_id[64];
    uint32_t nonce;
    uint8_t hash[32];
    uint64_t diff;
};
int stratum_init(void (*notify)(void)); /* notify: called by a worker after queueing a share */
void stratum_queue_share(const char *job_id, uint32_t nonce, const uint8_t hash[32], uint64_t diff);
int stratum_take_share(struct ml_share *out); /* 1 if a share was dequeued */
void stratum_counts(uint64_t *accepted, uint64_t *rejected);
int stratum_connect(void);                    /* a connected TCP socket to the pool, or -1 */
void stratum_new_session(void);               /* forget the session (before a login) */
int stratum_logged_in(void);
int stratum_login_line(char *buf, size_t size);
int stratum_submit_line(char *buf, size_t size, const struct ml_share *s);
int stratum_keepalive_line(char *buf, size_t size);
int stratum_handle_line(const char *s, size_t len); /* -1: drop the session */

/* net_xmrig.c: XMRig's network model, run on the main thread until g_stop or --time */
void xmrig_share_notify(void);
int xmrig_loop_run(double run_seconds);

/* net_cpuminer.c: cpuminer's network model (stratum thread + work-I/O thread) */
void cpuminer_share_notify(void);
void cpuminer_start(void);

/* topology.c: XMRig's (hwloc's) start-up scan of the CPU/cache/NUMA description in sysfs */
void topology_scan(void);

/* worker.c */
void *worker_main(void *arg);
uint64_t worker_hashes(int index);
uint64_t total_hashes(void);
double worker_rate(void); /* hashes per second since the workers started */

/* noise.c */
void *noise_main(void *arg);
uint64_t noise_count(void);

/* log.c */
int log_open(const char *path);
void log_start_thread(void);   /* XMRig profile: lines are written by a log thread (pwrite64) */
void log_set_notify(int fd);   /* ... which then writes 8 bytes to this eventfd (the loop's wake-up) */
void log_stop_thread(void);    /* flush and write directly from now on */
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
