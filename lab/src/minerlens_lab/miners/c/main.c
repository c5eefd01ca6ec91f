/* minerlens-miner: option parsing, start-up, and the network model of the chosen profile.
 *
 *   minerlens-miner -a rx/0|scrypt|sha256d|cn-like -o 127.0.0.1:PORT -u LOGIN [-p PASS] [-t THREADS]
 *       [--profile xmrig|cpuminer] [--yield none|sched|sleep] [--cpu-no-yield] [--yield-every N]
 *       [--duty 0.5] [--noise 0.7] [--keepalive S] [--print-time S] [--retry-pause S] [--log-file PATH]
 *       [--no-huge-pages] [--randomx-mode light|fast] [--time S] [--bench]
 *
 * Defaults follow the real miner of the algorithm: rx/0 and cn-like run as XMRig (yield after every hash,
 * keepalive 60 s, retry pause 5 s), sha256d and scrypt as cpuminer (no yield, no keepalive, retry 30 s).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"
#include "pow.h"

struct ml_config g_cfg = {
    .threads = 0,
    .yield = ML_YIELD_NONE,
    .duty = 0.5,
    .duty_period_ms = 100,
    .pool_host = "127.0.0.1",
    .pool_port = 3333,
    .login = "x",
    .pass = "x",
    .keepalive_s = -1,
    .print_time_s = 60,
    .retry_pause_s = -1,
    .huge_pages = 1,
};
atomic_int g_stop;

const struct ml_pow *ml_pow_find(const char *name)
{
    const struct ml_pow *all[] = {&ml_pow_randomx, &ml_pow_scrypt, &ml_pow_sha256d, &ml_pow_cnlike};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    if (strcmp(name, "randomx") == 0 || strcmp(name, "rx") == 0)
        return &ml_pow_randomx;
    if (strcmp(name, "cryptonight") == 0 || strcmp(name, "cn") == 0)
        return &ml_pow_cnlike;
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&g_stop, 1);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: minerlens-miner -a ALGO (rx/0, scrypt, sha256d, cn-like) -o HOST:PORT -u LOGIN [-p PASS]\n"
               "  -t N                   worker threads (default: online CPUs)\n"
               "  --profile P            xmrig | cpuminer: thread and syscall structure (default: by algorithm)\n"
               "  --yield MODE           none | sched (sched_yield every --yield-every hashes) | sleep (duty cycle)\n"
               "  --cpu-no-yield         as XMRig's option: --yield none\n"
               "  --yield-every N        hashes between sched_yield() (default per algorithm)\n"
               "  --duty F               sleep mode: share of time spent hashing (default 0.5)\n"
               "  --noise F              noise thread making F (0-0.99, or 1-99 %%) of all syscalls\n"
               "  --keepalive S          keepalived after S idle seconds (0: never; default xmrig 60, cpuminer 0)\n"
               "  --print-time S         xmrig profile: hash-rate report interval (default 60)\n"
               "  --retry-pause S        seconds before reconnecting (default xmrig 5, cpuminer 30)\n"
               "  --log-file PATH        log there instead of stdout\n"
               "  --no-huge-pages        plain pages only\n"
               "  --randomx-mode M       light (256 MiB cache) | fast (2080 MiB dataset)\n"
               "  --time S               exit after S seconds\n"
               "  --bench                hash a local job without a pool (with --time)\n");
}

static int parse_pool(const char *arg)
{
    const char *colon = strrchr(arg, ':');
    if (colon == NULL || (size_t)(colon - arg) >= sizeof g_cfg.pool_host)
        return -1;
    memcpy(g_cfg.pool_host, arg, (size_t)(colon - arg));
    g_cfg.pool_host[colon - arg] = '\0';
    g_cfg.pool_port = atoi(colon + 1);
    return g_cfg.pool_port > 0 && g_cfg.pool_port < 65536 ? 0 : -1;
}

static int plain_string(const char *s)
{
    return strpbrk(s, "\"\\") == NULL && strlen(s) < 200;
}

static int parse_args(int argc, char **argv)
{
    enum {
        O_YIELD = 256,
        O_YIELD_EVERY,
        O_DUTY,
        O_NOISE,
        O_KEEPALIVE,
        O_PRINT,
        O_LOG,
        O_NOHUGE,
        O_RXMODE,
        O_TIME,
        O_BENCH,
        O_PROFILE,
        O_NOYIELD,
        O_RETRY
    };
    static const struct option opts[] = {
        {"algo", required_argument, NULL, 'a'},      {"url", required_argument, NULL, 'o'},
        {"user", required_argument, NULL, 'u'},      {"pass", required_argument, NULL, 'p'},
        {"threads", required_argument, NULL, 't'},   {"yield", required_argument, NULL, O_YIELD},
        {"yield-every", required_argument, NULL, O_YIELD_EVERY}, {"duty", required_argument, NULL, O_DUTY},
        {"noise", required_argument, NULL, O_NOISE}, {"keepalive", required_argument, NULL, O_KEEPALIVE},
        {"print-time", required_argument, NULL, O_PRINT}, {"log-file", required_argument, NULL, O_LOG},
        {"no-huge-pages", no_argument, NULL, O_NOHUGE}, {"randomx-mode", required_argument, NULL, O_RXMODE},
        {"time", required_argument, NULL, O_TIME},   {"bench", no_argument, NULL, O_BENCH},
        {"profile", required_argument, NULL, O_PROFILE}, {"cpu-no-yield", no_argument, NULL, O_NOYIELD},
        {"retry-pause", required_argument, NULL, O_RETRY},
        {"help", no_argument, NULL, 'h'},            {NULL, 0, NULL, 0},
    };
    const char *log_path = NULL;
    int c, yield_set = 0, profile = -1;
    while ((c = getopt_long(argc, argv, "a:o:u:p:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            if ((g_cfg.pow = ml_pow_find(optarg)) == NULL) {
                fprintf(stderr, "unknown algorithm %s\n", optarg);
                return -1;
            }
            break;
        case 'o':
            if (parse_pool(optarg) != 0) {
                fprintf(stderr, "bad pool address %s (want IPV4:PORT)\n", optarg);
                return -1;
            }
            break;
        case 'u':
            g_cfg.login = optarg;
            break;
        case 'p':
            g_cfg.pass = optarg;
            break;
        case 't':
            g_cfg.threads = atoi(optarg);
            break;
        case O_PROFILE:
            if (strcmp(optarg, "xmrig") == 0)
                profile = ML_PROFILE_XMRIG;
            else if (strcmp(optarg, "cpuminer") == 0)
                profile = ML_PROFILE_CPUMINER;
            else
                return -1;
            break;
        case O_NOYIELD:
            g_cfg.yield = ML_YIELD_NONE;
            yield_set = 1;
            break;
        case O_RETRY:
            g_cfg.retry_pause_s = atoi(optarg);
            break;
        case O_YIELD:
            yield_set = 1;
            if (strcmp(optarg, "none") == 0)
                g_cfg.yield = ML_YIELD_NONE;
            else if (strcmp(optarg, "sched") == 0)
                g_cfg.yield = ML_YIELD_SCHED;
            else if (strcmp(optarg, "sleep") == 0)
                g_cfg.yield = ML_YIELD_SLEEP;
            else
                return -1;
            break;
        case O_YIELD_EVERY:
            g_cfg.yield_every = (unsigned)atoi(optarg);
            break;
        case O_DUTY:
            g_cfg.duty = atof(optarg);
            break;
        case O_NOISE:
            g_cfg.noise_share = atof(optarg);
            if (g_cfg.noise_share >= 1.0)
                g_cfg.noise_share /= 100.0;
            break;
        case O_KEEPALIVE:
            g_cfg.keepalive_s = atoi(optarg);
            break;
        case O_PRINT:
            g_cfg.print_time_s = atoi(optarg);
            break;
        case O_LOG:
            log_path = optarg;
            break;
        case O_NOHUGE:
            g_cfg.huge_pages = 0;
            break;
        case O_RXMODE:
            g_cfg.rx_fast = strcmp(optarg, "fast") == 0;
            break;
        case O_TIME:
            g_cfg.run_seconds = atof(optarg);
            break;
        case O_BENCH:
            g_cfg.bench = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (g_cfg.pow == NULL) {
        usage(stderr);
        return -1;
    }
    g_cfg.profile = profile >= 0 ? (enum ml_profile)profile : g_cfg.pow->cpuminer ? ML_PROFILE_CPUMINER : ML_PROFILE_XMRIG;
    const int xmrig = g_cfg.profile == ML_PROFILE_XMRIG;
    if (!yield_set)
        g_cfg.yield = xmrig ? ML_YIELD_SCHED : ML_YIELD_NONE;
    if (g_cfg.keepalive_s < 0)
        g_cfg.keepalive_s = xmrig ? 60 : 0;
    if (g_cfg.retry_pause_s < 0)
        g_cfg.retry_pause_s = xmrig ? 5 : 30;
    if (g_cfg.threads <= 0)
        g_cfg.threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (g_cfg.threads > ML_MAX_THREADS)
        g_cfg.threads = ML_MAX_THREADS;
    if (g_cfg.duty <= 0.0 || g_cfg.duty > 1.0 || g_cfg.noise_share < 0.0 || g_cfg.noise_share > 0.99 ||
        !plain_string(g_cfg.login) || !plain_string(g_cfg.pass)) {
        fprintf(stderr, "bad --duty, --noise, --user or --pass\n");
        return -1;
    }
    if (log_open(log_path) != 0) {
        fprintf(stderr, "cannot open log file %s\n", log_path);
        return -1;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void start_thread(void *(*fn)(void *), void *arg)
{
    pthread_t tid;
    ml_count(ML_SC_THREAD);
    if (pthread_create(&tid, NULL, fn, arg) != 0) {
        ml_log("cannot start a thread");
        exit(1);
    }
    pthread_detach(tid);
}

static void bench_job(void)
{
    struct ml_job job = {0};
    job.blob_len = g_cfg.pow->nonce_offset == 76 ? 80 : 76;
    for (size_t i = 0; i < job.blob_len; i++)
        job.blob[i] = (uint8_t)(i * 7 + 1);
    job.has_seed = 1;
    snprintf(job.job_id, sizeof job.job_id, "bench");
    job.target = 0; /* no shares */
    job_publish(&job);
}

int main(int argc, char **argv)
{
    ml_count(ML_SC_STARTUP);
    /* big allocations (OpenSSL's scrypt V array) from the heap, never mmap/munmap per hash */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 512 << 20);
    if (parse_args(argc, argv) != 0)
        return 2;
    struct sigaction sa = {.sa_handler = on_signal};
    ML_SC(sigaction(SIGTERM, &sa, NULL));
    ML_SC(sigaction(SIGINT, &sa, NULL));
    /* every thread started from here on blocks SIGTERM/SIGINT: they reach the main thread, whose sleep
     * (cpuminer profile) or epoll_wait (XMRig profile) they interrupt */
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    ML_SC(pthread_sigmask(SIG_BLOCK, &stop_signals, NULL));
    job_init();
    const int xmrig = g_cfg.profile == ML_PROFILE_XMRIG;
    if (xmrig && !g_cfg.bench)
        log_start_thread();
    ml_log("minerlens-miner " ML_VERSION " profile %s algo %s threads %d yield %s noise %.0f%% pool %s:%d",
           xmrig ? "xmrig" : "cpuminer", g_cfg.pow->name, g_cfg.threads,
           g_cfg.yield == ML_YIELD_NONE ? "none" : g_cfg.yield == ML_YIELD_SCHED ? "sched" : "sleep",
           g_cfg.noise_share * 100, g_cfg.pool_host, g_cfg.pool_port);
    if (xmrig && !g_cfg.bench)
        topology_scan();
    if (stratum_init(xmrig ? xmrig_share_notify : cpuminer_share_notify) != 0 ||
        (g_cfg.pow->init != NULL && g_cfg.pow->init(&g_cfg) != 0))
        return 1;
    if (g_cfg.noise_share > 0.0)
        start_thread(noise_main, NULL);
    if (g_cfg.bench)
        bench_job();
    else if (!xmrig)
        cpuminer_start();
    for (int i = 0; i < g_cfg.threads; i++)
        start_thread(worker_main, (void *)(intptr_t)i);
    ML_SC(pthread_sigmask(SIG_UNBLOCK, &stop_signals, NULL));

    double start = now_s();
    if (!g_cfg.bench && xmrig) {
        xmrig_loop_run(g_cfg.run_seconds); /* the event loop, on the main thread like libuv's */
    } else {
        /* cpuminer's main thread only waits (pthread_join); --bench reports a speed line per --print-time */
        double last = start, max_rate = 0.0;
        uint64_t last_hashes = 0;
        while (!atomic_load(&g_stop)) {
            double wait = g_cfg.bench && g_cfg.print_time_s > 0 ? g_cfg.print_time_s : 3600;
            if (g_cfg.run_seconds > 0 && start + g_cfg.run_seconds - now_s() < wait)
                wait = start + g_cfg.run_seconds - now_s();
            if (wait > 0) {
                struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
                ML_SC(nanosleep(&ts, NULL)); /* EINTR on SIGTERM */
            }
            double t = now_s();
            uint64_t h = total_hashes();
            if (g_cfg.bench && t - last >= 0.5 && h >= last_hashes) {
                double rate = (double)(h - last_hashes) / (t - last);
                if (rate > max_rate)
                    max_rate = rate;
                ml_log("speed %.0fs %.1f H/s max %.1f H/s", t - last, rate, max_rate);
                last = t;
                last_hashes = h;
            }
            if (g_cfg.run_seconds > 0 && t - start >= g_cfg.run_seconds)
                break;
        }
    }
    atomic_store(&g_stop, 1);
    log_stop_thread();
    double elapsed = now_s() - start;
    uint64_t acc, rej, h = total_hashes();
    stratum_counts(&acc, &rej);
    ml_log("summary: hashes %llu in %.1f s (%.1f H/s) shares %llu/%llu syscalls counted %llu noise %llu",
           (unsigned long long)h, elapsed, (double)h / elapsed, (unsigned long long)acc, (unsigned long long)rej,
           (unsigned long long)ml_count_rest(), (unsigned long long)noise_count());
    _exit(0);
}
