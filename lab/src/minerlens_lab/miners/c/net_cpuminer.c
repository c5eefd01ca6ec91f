/* cpuminer's network model (pooler's cpuminer / cpuminer-multi): a stratum thread that polls the socket
 * (120 s timeout) and reads what the pool sends, and a work-I/O thread that waits on a condition variable
 * and sends each share the workers hand it (a mutex + condition signal: futex calls). No keepalive; on a
 * connection error it closes, waits 30 s (cpuminer's --retry-pause default) and reconnects. The workers
 * log one line per scan (worker.c); this thread logs every new job and every result. */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

#define RBUF 65536
#define POLL_TIMEOUT_MS 120000

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER;
static int work_waiting, work_pending;
static pthread_mutex_t send_lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;

void cpuminer_share_notify(void)
{
    pthread_mutex_lock(&work_lock);
    work_pending = 1;
    if (work_waiting)
        ml_count(1); /* the futex wake of a sleeping work-I/O thread */
    pthread_cond_signal(&work_cond);
    pthread_mutex_unlock(&work_lock);
}

static int send_locked(const char *buf, int n)
{
    pthread_mutex_lock(&send_lock);
    int ok = n > 0 && sock >= 0 && ML_SC(send(sock, buf, (size_t)n, MSG_NOSIGNAL)) == n;
    pthread_mutex_unlock(&send_lock);
    return ok ? 0 : -1;
}

static void *workio_main(void *arg)
{
    (void)arg;
    ml_count_register(0);
    struct ml_share s;
    char buf[1024];
    while (!atomic_load(&g_stop)) {
        pthread_mutex_lock(&work_lock);
        while (!work_pending && !atomic_load(&g_stop)) {
            work_waiting = 1;
            ml_count(1); /* futex wait (tq_pop in cpuminer: no timeout; the process ends with _exit) */
            pthread_cond_wait(&work_cond, &work_lock);
            work_waiting = 0;
        }
        work_pending = 0;
        pthread_mutex_unlock(&work_lock);
        while (stratum_take_share(&s)) {
            if (stratum_logged_in())
                send_locked(buf, stratum_submit_line(buf, sizeof buf, &s));
        }
    }
    return NULL;
}

static void session(void)
{
    static char rbuf[RBUF];
    size_t rlen = 0;
    char buf[1024];
    stratum_new_session();
    if (send_locked(buf, stratum_login_line(buf, sizeof buf)) != 0)
        return;
    while (!atomic_load(&g_stop)) {
        struct pollfd pfd = {sock, POLLIN, 0};
        int ready = ML_SC(poll(&pfd, 1, POLL_TIMEOUT_MS));
        if (ready < 0)
            continue; /* EINTR */
        if (ready == 0) {
            ml_log("Stratum connection timed out");
            return;
        }
        ssize_t got = ML_SC(recv(sock, rbuf + rlen, sizeof rbuf - rlen, 0));
        if (got <= 0) {
            ml_log("Stratum connection interrupted");
            return;
        }
        rlen += (size_t)got;
        char *start = rbuf, *nl;
        while ((nl = memchr(start, '\n', rlen - (size_t)(start - rbuf))) != NULL) {
            if (stratum_handle_line(start, (size_t)(nl - start)) != 0)
                return;
            start = nl + 1;
        }
        rlen -= (size_t)(start - rbuf);
        memmove(rbuf, start, rlen);
        if (rlen == sizeof rbuf)
            return;
    }
}

static void *stratum_thread(void *arg)
{
    (void)arg;
    ml_count_register(0);
    while (!atomic_load(&g_stop)) {
        int fd = stratum_connect();
        if (fd >= 0) {
            pthread_mutex_lock(&send_lock);
            sock = fd;
            pthread_mutex_unlock(&send_lock);
            session();
            pthread_mutex_lock(&send_lock);
            sock = -1;
            pthread_mutex_unlock(&send_lock);
            ML_SC(close(fd));
        }
        if (atomic_load(&g_stop))
            break;
        struct timespec pause = {g_cfg.retry_pause_s, 0};
        ML_SC(nanosleep(&pause, NULL));
    }
    return NULL;
}

void cpuminer_start(void)
{
    pthread_t tid;
    ml_count(2 * ML_SC_THREAD);
    if (pthread_create(&tid, NULL, workio_main, NULL) != 0 || pthread_detach(tid) != 0 ||
        pthread_create(&tid, NULL, stratum_thread, NULL) != 0 || pthread_detach(tid) != 0) {
        ml_log("cannot start the network threads");
        atomic_store(&g_stop, 1);
    }
}
