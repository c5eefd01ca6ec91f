/* XMRig's network model (libuv event loop on the main thread), as strace shows XMRig 6.16 doing it:
 *
 *  - epoll_wait on the pool socket and two eventfds, with two periodic timers (500 ms: the workers'
 *    hash-rate sampling tick; 1 s: the network tick that sends keepalived after --keepalive idle seconds);
 *  - a worker that finds a share writes 8 bytes to an eventfd (uv_async_send); the loop reads it (twice:
 *    libuv drains it until EAGAIN) and writes the submit to the socket with write();
 *  - pool messages are read with read(); every log line goes to the log thread (log.c), which writes it
 *    with pwrite64 and then wakes the loop through the second eventfd, which the loop reads once;
 *  - the hash-rate report ("speed 10s/60s/15m ...") every --print-time seconds;
 *  - on a connection error: close, wait --retry-pause (5 s, XMRig's default), reconnect. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

#define RBUF 65536
#define TICK_S 0.5
#define NET_TICK_S 1.0
#define NET_TICK_PHASE_S 0.37 /* the two timers do not fire together (they start at different moments) */

static int efd_share = -1;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* vDSO */
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void xmrig_share_notify(void)
{
    uint64_t one = 1;
    if (efd_share >= 0 && ML_SC(write(efd_share, &one, sizeof one)) < 0) {
        /* the counter is saturated: the loop is awake anyway */
    }
}

struct conn {
    int sock;
    char rbuf[RBUF];
    size_t rlen;
    double last_tx;
    double retry_at;
};

static int send_text(struct conn *c, const char *buf, int n)
{
    if (n < 0 || ML_SC(write(c->sock, buf, (size_t)n)) != n)
        return -1;
    c->last_tx = now_s();
    return 0;
}

static void drop(struct conn *c, int ep, const char *why)
{
    if (c->sock < 0)
        return;
    ml_log("%s:%d %s", g_cfg.pool_host, g_cfg.pool_port, why);
    ML_SC(epoll_ctl(ep, EPOLL_CTL_DEL, c->sock, NULL));
    ML_SC(close(c->sock));
    c->sock = -1;
    c->rlen = 0;
    stratum_new_session();
    c->retry_at = now_s() + g_cfg.retry_pause_s;
}

static void try_connect(struct conn *c, int ep)
{
    c->sock = stratum_connect();
    if (c->sock < 0) {
        c->retry_at = now_s() + g_cfg.retry_pause_s;
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->sock};
    ML_SC(epoll_ctl(ep, EPOLL_CTL_ADD, c->sock, &ev));
    stratum_new_session();
    char buf[1024];
    if (send_text(c, buf, stratum_login_line(buf, sizeof buf)) != 0)
        drop(c, ep, "write error");
}

static int send_shares(struct conn *c)
{
    struct ml_share s;
    char buf[1024];
    while (stratum_take_share(&s)) {
        if (c->sock < 0 || !stratum_logged_in())
            continue; /* XMRig drops results it cannot submit */
        if (send_text(c, buf, stratum_submit_line(buf, sizeof buf, &s)) != 0)
            return -1;
    }
    return 0;
}

static int read_pool(struct conn *c)
{
    ssize_t got = ML_SC(read(c->sock, c->rbuf + c->rlen, sizeof c->rbuf - c->rlen));
    if (got <= 0)
        return -1;
    c->rlen += (size_t)got;
    char *start = c->rbuf, *nl;
    while ((nl = memchr(start, '\n', c->rlen - (size_t)(start - c->rbuf))) != NULL) {
        if (stratum_handle_line(start, (size_t)(nl - start)) != 0)
            return -1;
        start = nl + 1;
    }
    c->rlen -= (size_t)(start - c->rbuf);
    memmove(c->rbuf, start, c->rlen);
    return c->rlen == sizeof c->rbuf ? -1 : 0;
}

int xmrig_loop_run(double run_seconds)
{
    int ep = ML_SC(epoll_create1(EPOLL_CLOEXEC));
    int efd_log = ML_SC(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    int share_fd = ML_SC(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (ep < 0 || efd_log < 0 || share_fd < 0)
        return -1;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd_log};
    ML_SC(epoll_ctl(ep, EPOLL_CTL_ADD, efd_log, &ev));
    ev.data.fd = share_fd;
    ML_SC(epoll_ctl(ep, EPOLL_CTL_ADD, share_fd, &ev));
    efd_share = share_fd;
    log_set_notify(efd_log);

    static struct conn c = {.sock = -1};
    const double start = now_s();
    double tick = start + TICK_S, net_tick = start + NET_TICK_PHASE_S, print_at = start + g_cfg.print_time_s;
    double last_print = start, max_rate = 0.0;
    uint64_t last_hashes = 0;
    try_connect(&c, ep);

    while (!atomic_load(&g_stop)) {
        double now = now_s();
        if (run_seconds > 0 && now - start >= run_seconds)
            break;
        double next = tick < net_tick ? tick : net_tick;
        if (g_cfg.print_time_s > 0 && print_at < next)
            next = print_at;
        if (run_seconds > 0 && start + run_seconds < next)
            next = start + run_seconds;
        int timeout = next <= now ? 0 : (int)((next - now) * 1000.0 + 0.999);
        struct epoll_event evs[8];
        int n = ML_SC(epoll_wait(ep, evs, 8, timeout));
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            uint64_t v;
            if (fd == share_fd) {
                while (ML_SC(read(share_fd, &v, sizeof v)) == (ssize_t)sizeof v) {
                    /* drained until EAGAIN, as libuv does */
                }
                if (send_shares(&c) != 0)
                    drop(&c, ep, "write error");
            } else if (fd == efd_log) {
                if (ML_SC(read(efd_log, &v, sizeof v)) < 0) {
                    /* EAGAIN: nothing to do */
                }
            } else if (fd == c.sock) {
                if (read_pool(&c) != 0)
                    drop(&c, ep, "connection closed");
            }
        }
        now = now_s();
        if (now >= tick) /* hash-rate sampling: reads the workers' counters, no syscall */
            tick += TICK_S * (1 + (int)((now - tick) / TICK_S));
        if (now >= net_tick) {
            net_tick += NET_TICK_S * (1 + (int)((now - net_tick) / NET_TICK_S));
            if (c.sock < 0 && now >= c.retry_at)
                try_connect(&c, ep);
            else if (c.sock >= 0 && g_cfg.keepalive_s > 0 && stratum_logged_in() && now - c.last_tx >= g_cfg.keepalive_s) {
                char buf[256];
                if (send_text(&c, buf, stratum_keepalive_line(buf, sizeof buf)) != 0)
                    drop(&c, ep, "write error");
            }
        }
        if (g_cfg.print_time_s > 0 && now >= print_at) {
            print_at += g_cfg.print_time_s;
            uint64_t h = total_hashes();
            double rate = now > last_print ? (double)(h - last_hashes) / (now - last_print) : 0.0;
            if (rate > max_rate)
                max_rate = rate;
            ml_log("speed 10s/60s/15m %.2f n/a n/a H/s max %.2f H/s", rate, max_rate);
            last_print = now;
            last_hashes = h;
        }
    }
    log_set_notify(-1);
    efd_share = -1;
    if (c.sock >= 0)
        ML_SC(close(c.sock));
    (void)errno;
    return 0;
}
