/* The stratum protocol (XMRig's JSON-RPC dialect, one JSON object per line) and the share queue, shared by
 * both network models (net_xmrig.c, net_cpuminer.c); no I/O of its own except connect().
 *
 *   -> {"id":1,"jsonrpc":"2.0","method":"login","params":{"login":..,"pass":..,"agent":..,"algo":[..]}}
 *   <- {"id":1,"jsonrpc":"2.0","error":null,"result":{"id":SESSION,"job":{..},"status":"OK"}}
 *   <- {"jsonrpc":"2.0","method":"job","params":{"blob":..,"job_id":..,"target":..,"algo":..,"seed_hash":..}}
 *   -> {"id":N,"jsonrpc":"2.0","method":"submit","params":{"id":SESSION,"job_id":..,"nonce":..,"result":..}}
 *   -> {"id":N,"jsonrpc":"2.0","method":"keepalived","params":{"id":SESSION}}
 *
 * Workers queue shares (a spinlock: no syscall) and call the network model's notify hook. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "json.h"
#include "miner.h"
#include "pow.h"

#define QUEUE_LEN 256
#define PENDING_LEN 1024
#define MAX_TOKENS 128

struct pending {
    int id;
    uint64_t diff;
    double sent;
};

static struct ml_share queue[QUEUE_LEN];
static unsigned q_head, q_tail;
static pthread_spinlock_t q_lock;
static void (*share_notify)(void);
static atomic_ullong accepted, rejected;

static int next_id = 1, login_id;
static char session[128];
static struct pending pending[PENDING_LEN];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int stratum_init(void (*notify)(void))
{
    share_notify = notify;
    return pthread_spin_init(&q_lock, PTHREAD_PROCESS_PRIVATE);
}

void stratum_counts(uint64_t *acc, uint64_t *rej)
{
    *acc = atomic_load(&accepted);
    *rej = atomic_load(&rejected);
}

void stratum_queue_share(const char *job_id, uint32_t nonce, const uint8_t hash[32], uint64_t diff)
{
    pthread_spin_lock(&q_lock);
    if (q_tail - q_head < QUEUE_LEN) {
        struct ml_share *s = &queue[q_tail % QUEUE_LEN];
        snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
        s->nonce = nonce;
        memcpy(s->hash, hash, 32);
        s->diff = diff;
        q_tail++;
    }
    pthread_spin_unlock(&q_lock);
    if (share_notify != NULL)
        share_notify();
}

int stratum_take_share(struct ml_share *out)
{
    pthread_spin_lock(&q_lock);
    int have = q_head != q_tail;
    if (have)
        *out = queue[q_head++ % QUEUE_LEN];
    pthread_spin_unlock(&q_lock);
    return have;
}

int stratum_connect(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_cfg.pool_port)};
    if (inet_pton(AF_INET, g_cfg.pool_host, &addr.sin_addr) != 1) {
        ml_log("pool address %s is not an IPv4 address", g_cfg.pool_host);
        return -1;
    }
    int sock = ML_SC(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (sock < 0)
        return -1;
    if (ML_SC(connect(sock, (struct sockaddr *)&addr, sizeof addr)) != 0) {
        ml_log("%s:%d connect error", g_cfg.pool_host, g_cfg.pool_port);
        ML_SC(close(sock));
        return -1;
    }
    int one = 1;
    ML_SC(setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    ml_log("use pool %s:%d", g_cfg.pool_host, g_cfg.pool_port);
    return sock;
}

void stratum_new_session(void)
{
    session[0] = '\0';
}

int stratum_logged_in(void)
{
    return session[0] != '\0';
}

static int line(char *buf, size_t size, int n)
{
    if (n < 0 || (size_t)n >= size - 1)
        return -1;
    buf[n++] = '\n';
    buf[n] = '\0';
    return n;
}

int stratum_login_line(char *buf, size_t size)
{
    login_id = ++next_id;
    return line(buf, size,
                snprintf(buf, size,
                         "{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"%s\",\"pass\":\"%s\","
                         "\"agent\":\"minerlens-miner/" ML_VERSION "\",\"algo\":[\"%s\"]}}",
                         login_id, g_cfg.login, g_cfg.pass, g_cfg.pow->name));
}

int stratum_submit_line(char *buf, size_t size, const struct ml_share *s)
{
    char nonce_hex[9], hash_hex[65];
    uint8_t nonce_le[4] = {(uint8_t)s->nonce, (uint8_t)(s->nonce >> 8), (uint8_t)(s->nonce >> 16),
                           (uint8_t)(s->nonce >> 24)};
    hex_encode(nonce_le, 4, nonce_hex);
    hex_encode(s->hash, 32, hash_hex);
    int id = ++next_id;
    pending[id % PENDING_LEN] = (struct pending){id, s->diff, now_s()};
    return line(buf, size,
                snprintf(buf, size,
                         "{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"%s\",\"job_id\":\"%s\","
                         "\"nonce\":\"%s\",\"result\":\"%s\",\"algo\":\"%s\"}}",
                         id, session, s->job_id, nonce_hex, hash_hex, g_cfg.pow->name));
}

int stratum_keepalive_line(char *buf, size_t size)
{
    return line(buf, size,
                snprintf(buf, size, "{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"%s\"}}",
                         ++next_id, session));
}

static void handle_job(const char *s, const struct json_tok *t, int n, int obj)
{
    struct ml_job job = {0};
    char hex[2 * ML_BLOB_MAX + 1], target[32];
    int blob = json_get(s, t, n, obj, "blob"), id = json_get(s, t, n, obj, "job_id");
    int tgt = json_get(s, t, n, obj, "target");
    if (blob < 0 || id < 0 || tgt < 0) {
        ml_log("job without blob/job_id/target ignored");
        return;
    }
    int hexlen = json_copy(s, &t[blob], hex, sizeof hex);
    int blen = hex_decode(hex, (size_t)(hexlen < 0 ? 0 : hexlen), job.blob, sizeof job.blob);
    if (blen < 0 || (size_t)blen < g_cfg.pow->nonce_offset + 4) {
        ml_log("job with a bad blob ignored");
        return;
    }
    job.blob_len = (size_t)blen;
    json_copy(s, &t[id], job.job_id, sizeof job.job_id);
    int tlen = json_copy(s, &t[tgt], target, sizeof target);
    uint8_t tb[8] = {0};
    if (tlen == 8 && hex_decode(target, 8, tb, 4) == 4) {
        uint32_t compact = (uint32_t)tb[0] | (uint32_t)tb[1] << 8 | (uint32_t)tb[2] << 16 | (uint32_t)tb[3] << 24;
        job.target = target_from_compact(compact);
    } else if (tlen == 16 && hex_decode(target, 16, tb, 8) == 8) {
        job.target = le64(tb);
    } else {
        ml_log("job with a bad target ignored");
        return;
    }
    job.diff = job.target ? UINT64_MAX / job.target : 0;
    int algo = json_get(s, t, n, obj, "algo");
    if (algo >= 0)
        json_copy(s, &t[algo], job.algo, sizeof job.algo);
    int seed = json_get(s, t, n, obj, "seed_hash");
    if (seed >= 0 && t[seed].end - t[seed].start == 64 && hex_decode(s + t[seed].start, 64, job.seed, 32) == 32)
        job.has_seed = 1;
    char height[24] = "0";
    int h = json_get(s, t, n, obj, "height");
    if (h >= 0)
        json_copy(s, &t[h], height, sizeof height);
    job_publish(&job);
    if (g_cfg.profile == ML_PROFILE_CPUMINER)
        ml_log("Stratum requested work restart: job %s diff %llu height %s", job.job_id, (unsigned long long)job.diff,
               height);
    else
        ml_log("new job from %s:%d diff %llu algo %s height %s", g_cfg.pool_host, g_cfg.pool_port,
               (unsigned long long)job.diff, job.algo[0] ? job.algo : g_cfg.pow->name, height);
}

static void log_result(int ok, const struct pending *p, const char *reason)
{
    unsigned long long a = atomic_load(&accepted), r = atomic_load(&rejected);
    unsigned ms = (unsigned)((now_s() - p->sent) * 1e3);
    if (g_cfg.profile == ML_PROFILE_CPUMINER) {
        ml_log("%s: %llu/%llu (%.2f%%), %.2f khash/s diff %llu %s%s", ok ? "accepted" : "rejected", a, a + r,
               100.0 * (double)a / (double)(a + r ? a + r : 1), worker_rate() / 1e3, (unsigned long long)p->diff,
               ok ? "(yay!!!)" : "(booooo) ", ok ? "" : reason);
    } else if (ok) {
        ml_log("accepted (%llu/%llu) diff %llu (%u ms)", a, r, (unsigned long long)p->diff, ms);
    } else {
        ml_log("rejected (%llu/%llu) diff %llu \"%s\" (%u ms)", a, r, (unsigned long long)p->diff, reason, ms);
    }
}

int stratum_handle_line(const char *s, size_t len)
{
    struct json_tok t[MAX_TOKENS];
    int n = json_parse(s, len, t, MAX_TOKENS);
    if (n < 1 || t[0].type != JSON_OBJECT) {
        ml_log("unparsable message from the pool");
        return 0;
    }
    int method = json_get(s, t, n, 0, "method");
    if (method >= 0) {
        int params = json_get(s, t, n, 0, "params");
        if (json_is(s, &t[method], "job") && params >= 0 && t[params].type == JSON_OBJECT)
            handle_job(s, t, n, params);
        return 0;
    }
    int idt = json_get(s, t, n, 0, "id"), err = json_get(s, t, n, 0, "error");
    int res = json_get(s, t, n, 0, "result");
    char idbuf[16] = "";
    if (idt >= 0)
        json_copy(s, &t[idt], idbuf, sizeof idbuf);
    int id = atoi(idbuf);
    int failed = err >= 0 && t[err].type == JSON_OBJECT;
    char reason[128] = "";
    if (failed) {
        int m = json_get(s, t, n, err, "message");
        if (m >= 0)
            json_copy(s, &t[m], reason, sizeof reason);
    }
    if (id == login_id) {
        if (failed || res < 0 || t[res].type != JSON_OBJECT) {
            ml_log("login error: \"%s\"", reason);
            return -1;
        }
        int sid = json_get(s, t, n, res, "id");
        if (sid >= 0)
            json_copy(s, &t[sid], session, sizeof session);
        int job = json_get(s, t, n, res, "job");
        if (job >= 0 && t[job].type == JSON_OBJECT)
            handle_job(s, t, n, job);
        return 0;
    }
    struct pending *p = &pending[(unsigned)id % PENDING_LEN];
    if (id <= 0 || p->id != id)
        return 0; /* keepalived answers */
    p->id = 0;
    if (failed)
        atomic_fetch_add(&rejected, 1);
    else
        atomic_fetch_add(&accepted, 1);
    log_result(!failed, p, reason);
    return 0;
}
