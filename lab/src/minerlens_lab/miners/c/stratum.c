/* The stratum client thread: XMRig's JSON-RPC dialect over TCP, one JSON object per line.
 *
 *   -> {"id":1,"jsonrpc":"2.0","method":"login","params":{"login":..,"pass":..,"agent":..,"algo":[..]}}
 *   <- {"id":1,"jsonrpc":"2.0","error":null,"result":{"id":SESSION,"job":{..},"status":"OK"}}
 *   <- {"jsonrpc":"2.0","method":"job","params":{"blob":..,"job_id":..,"target":..,"algo":..,"seed_hash":..}}
 *   -> {"id":N,"jsonrpc":"2.0","method":"submit","params":{"id":SESSION,"job_id":..,"nonce":..,"result":..}}
 *   -> {"id":N,"jsonrpc":"2.0","method":"keepalived","params":{"id":SESSION}}
 *
 * Workers hand shares over through a queue and a wake-up pipe; this thread polls the socket and the
 * pipe, sends keepalives when the connection has been idle, and reconnects after a pause on errors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
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
#define RBUF 65536
#define MAX_TOKENS 128

struct share {
    char job_id[64];
    uint32_t nonce;
    uint8_t hash[32];
    uint64_t diff;
};

struct pending {
    int id;
    uint64_t diff;
    double sent;
};

static struct share queue[QUEUE_LEN];
static unsigned q_head, q_tail;
static pthread_spinlock_t q_lock;
static int wake[2] = {-1, -1};
static atomic_ullong accepted, rejected;

static int sock = -1;
static int next_id = 1, login_id;
static char session[128];
static double last_tx;
static struct pending pending[PENDING_LEN];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int stratum_init(void)
{
    pthread_spin_init(&q_lock, PTHREAD_PROCESS_PRIVATE);
    return ML_SC(pipe2(wake, O_CLOEXEC | O_NONBLOCK));
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
        struct share *s = &queue[q_tail % QUEUE_LEN];
        snprintf(s->job_id, sizeof s->job_id, "%s", job_id);
        s->nonce = nonce;
        memcpy(s->hash, hash, 32);
        s->diff = diff;
        q_tail++;
    }
    pthread_spin_unlock(&q_lock);
    if (wake[1] >= 0) {
        char b = 1;
        if (ML_SC(write(wake[1], &b, 1)) < 0) {
            /* the pipe is full: the stratum thread is awake anyway */
        }
    }
}

static int send_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int send_line(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof buf - 1)
        return -1;
    buf[n++] = '\n';
    if (ML_SC(send(sock, buf, (size_t)n, MSG_NOSIGNAL)) != n)
        return -1;
    last_tx = now_s();
    return 0;
}

static int send_shares(void)
{
    for (;;) {
        struct share s;
        pthread_spin_lock(&q_lock);
        int have = q_head != q_tail;
        if (have)
            s = queue[q_head++ % QUEUE_LEN];
        pthread_spin_unlock(&q_lock);
        if (!have)
            return 0;
        char nonce_hex[9], hash_hex[65];
        uint8_t nonce_le[4] = {(uint8_t)s.nonce, (uint8_t)(s.nonce >> 8), (uint8_t)(s.nonce >> 16),
                               (uint8_t)(s.nonce >> 24)};
        hex_encode(nonce_le, 4, nonce_hex);
        hex_encode(s.hash, 32, hash_hex);
        int id = ++next_id;
        pending[id % PENDING_LEN] = (struct pending){id, s.diff, now_s()};
        if (send_line("{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"submit\",\"params\":{\"id\":\"%s\",\"job_id\":\"%s\","
                      "\"nonce\":\"%s\",\"result\":\"%s\",\"algo\":\"%s\"}}",
                      id, session, s.job_id, nonce_hex, hash_hex, g_cfg.pow->name) != 0)
            return -1;
    }
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
    ml_log("new job from %s:%d diff %llu algo %s height %s", g_cfg.pool_host, g_cfg.pool_port,
           (unsigned long long)job.diff, job.algo[0] ? job.algo : g_cfg.pow->name, height);
}

/* returns -1 when the session must be dropped */
static int handle_line(const char *s, size_t len)
{
    struct json_tok t[MAX_TOKENS];
    int n = json_parse(s, len, t, MAX_TOKENS);
    if (n < 1 || t[0].type != JSON_OBJECT) {
        ml_log("unparsable message from the pool");
        return 0;
    }
    int method = json_get(s, t, n, 0, "method");
    if (method >= 0) {
        if (json_is(s, &t[method], "job"))
            handle_job(s, t, n, json_get(s, t, n, 0, "params"));
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
        if (failed || res < 0) {
            ml_log("login error: \"%s\"", reason);
            return -1;
        }
        int sid = json_get(s, t, n, res, "id");
        if (sid >= 0)
            json_copy(s, &t[sid], session, sizeof session);
        int job = json_get(s, t, n, res, "job");
        if (job >= 0)
            handle_job(s, t, n, job);
        return 0;
    }
    struct pending *p = &pending[id % PENDING_LEN];
    if (p->id != id)
        return 0; /* keepalived answers */
    p->id = 0;
    unsigned ms = (unsigned)((now_s() - p->sent) * 1e3);
    if (failed) {
        atomic_fetch_add(&rejected, 1);
        ml_log("rejected (%llu/%llu) diff %llu \"%s\" (%u ms)", (unsigned long long)atomic_load(&accepted),
               (unsigned long long)atomic_load(&rejected), (unsigned long long)p->diff, reason, ms);
    } else {
        atomic_fetch_add(&accepted, 1);
        ml_log("accepted (%llu/%llu) diff %llu (%u ms)", (unsigned long long)atomic_load(&accepted),
               (unsigned long long)atomic_load(&rejected), (unsigned long long)p->diff, ms);
    }
    return 0;
}

static int connect_pool(void)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_cfg.pool_port)};
    if (inet_pton(AF_INET, g_cfg.pool_host, &addr.sin_addr) != 1) {
        ml_log("pool address %s is not an IPv4 address", g_cfg.pool_host);
        return -1;
    }
    sock = ML_SC(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (sock < 0)
        return -1;
    if (ML_SC(connect(sock, (struct sockaddr *)&addr, sizeof addr)) != 0) {
        ml_log("%s:%d connect error", g_cfg.pool_host, g_cfg.pool_port);
        ML_SC(close(sock));
        sock = -1;
        return -1;
    }
    int one = 1;
    ML_SC(setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    ml_log("use pool %s:%d", g_cfg.pool_host, g_cfg.pool_port);
    return 0;
}

static void session_loop(void)
{
    static char rbuf[RBUF];
    size_t rlen = 0;
    login_id = ++next_id;
    session[0] = '\0';
    if (send_line("{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"login\",\"params\":{\"login\":\"%s\",\"pass\":\"%s\","
                  "\"agent\":\"minerlens-miner/" ML_VERSION "\",\"algo\":[\"%s\"]}}",
                  login_id, g_cfg.login, g_cfg.pass, g_cfg.pow->name) != 0)
        return;
    while (!atomic_load(&g_stop)) {
        int timeout = -1;
        if (g_cfg.keepalive_s > 0) {
            double left = last_tx + g_cfg.keepalive_s - now_s();
            timeout = left <= 0 ? 0 : (int)(left * 1000) + 1;
        }
        struct pollfd pfd[2] = {{sock, POLLIN, 0}, {wake[0], POLLIN, 0}};
        if (ML_SC(poll(pfd, 2, timeout)) < 0)
            continue; /* EINTR */
        if (pfd[1].revents & POLLIN) {
            char drain[64];
            if (ML_SC(read(wake[0], drain, sizeof drain)) < 0) {
                /* EAGAIN: someone else drained it */
            }
            if (session[0] && send_shares() != 0)
                return;
        }
        if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t got = ML_SC(recv(sock, rbuf + rlen, sizeof rbuf - rlen, 0));
            if (got <= 0) {
                ml_log("%s:%d connection closed", g_cfg.pool_host, g_cfg.pool_port);
                return;
            }
            rlen += (size_t)got;
            char *start = rbuf, *nl;
            while ((nl = memchr(start, '\n', rlen - (size_t)(start - rbuf))) != NULL) {
                if (handle_line(start, (size_t)(nl - start)) != 0)
                    return;
                start = nl + 1;
            }
            rlen -= (size_t)(start - rbuf);
            memmove(rbuf, start, rlen);
            if (rlen == sizeof rbuf) {
                ml_log("message from the pool too long");
                return;
            }
        }
        if (g_cfg.keepalive_s > 0 && session[0] && now_s() - last_tx >= g_cfg.keepalive_s) {
            if (send_line("{\"id\":%d,\"jsonrpc\":\"2.0\",\"method\":\"keepalived\",\"params\":{\"id\":\"%s\"}}",
                          ++next_id, session) != 0)
                return;
        }
    }
}

void *stratum_main(void *arg)
{
    (void)arg;
    ml_count_register(0);
    while (!atomic_load(&g_stop)) {
        if (connect_pool() == 0) {
            session_loop();
            ML_SC(close(sock));
            sock = -1;
        }
        if (atomic_load(&g_stop))
            break;
        struct timespec pause = {g_cfg.retry_pause_s, 0};
        ML_SC(nanosleep(&pause, NULL));
    }
    return NULL;
}
