/* Log lines ("[time] message") and hex/target helpers.
 *
 * cpuminer profile: each line is one write() by the thread that logs it (cpuminer's applog).
 * XMRig profile: lines are queued (mutex + condition signal: a futex wake) for a log thread that writes
 * each with pwrite64 at the file's offset and then writes 8 bytes to the event loop's eventfd - what
 * XMRig's libuv uv_fs_write in the thread pool followed by uv_async_send look like in strace. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

#define LQ_LEN 64
#define LINE_MAX_LEN 1024

static int log_fd = 1, log_is_file;
static off_t log_off;

static pthread_mutex_t lq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lq_cond = PTHREAD_COND_INITIALIZER;
static char lq[LQ_LEN][LINE_MAX_LEN];
static int lq_len[LQ_LEN];
static unsigned lq_head, lq_tail;
static int log_async, log_waiting, notify_fd = -1;

int log_open(const char *path)
{
    if (path == NULL)
        return 0;
    int fd = ML_SC(open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd < 0)
        return -1;
    log_fd = fd;
    log_is_file = 1;
    log_off = ML_SC(lseek(fd, 0, SEEK_END));
    if (log_off < 0)
        log_off = 0;
    return 0;
}

static void write_line(const char *line, int n)
{
    ssize_t done = log_is_file && log_async ? ML_SC(pwrite(log_fd, line, (size_t)n, log_off))
                                            : ML_SC(write(log_fd, line, (size_t)n));
    if (done > 0)
        log_off += done;
}

static void *log_thread(void *arg)
{
    (void)arg;
    ml_count_register(0);
    static char batch[LQ_LEN][LINE_MAX_LEN];
    int lens[LQ_LEN];
    for (;;) {
        pthread_mutex_lock(&lq_lock);
        while (lq_head == lq_tail) {
            log_waiting = 1;
            ml_count(1); /* futex wait */
            pthread_cond_wait(&lq_cond, &lq_lock);
            log_waiting = 0;
        }
        int n = 0;
        while (lq_head != lq_tail && n < LQ_LEN) {
            memcpy(batch[n], lq[lq_head % LQ_LEN], (size_t)lq_len[lq_head % LQ_LEN]);
            lens[n++] = lq_len[lq_head % LQ_LEN];
            lq_head++;
        }
        int fd = notify_fd;
        pthread_mutex_unlock(&lq_lock);
        for (int i = 0; i < n; i++) {
            write_line(batch[i], lens[i]);
            if (fd >= 0) {
                uint64_t one = 1;
                if (ML_SC(write(fd, &one, sizeof one)) < 0) {
                    /* the loop is gone or saturated: nothing to do */
                }
            }
        }
    }
    return NULL;
}

void log_start_thread(void)
{
    pthread_t tid;
    ml_count(ML_SC_THREAD);
    if (pthread_create(&tid, NULL, log_thread, NULL) == 0 && pthread_detach(tid) == 0)
        log_async = 1;
}

void log_set_notify(int fd)
{
    pthread_mutex_lock(&lq_lock);
    notify_fd = fd;
    pthread_mutex_unlock(&lq_lock);
}

void log_stop_thread(void)
{
    /* the thread stays blocked; what is queued is written here, and every later line directly */
    pthread_mutex_lock(&lq_lock);
    log_async = 0;
    while (lq_head != lq_tail) {
        write_line(lq[lq_head % LQ_LEN], lq_len[lq_head % LQ_LEN]);
        lq_head++;
    }
    pthread_mutex_unlock(&lq_lock);
}

static void emit(const char *line, int n)
{
    if (!log_async) {
        write_line(line, n);
        return;
    }
    pthread_mutex_lock(&lq_lock);
    if (!log_async) {
        pthread_mutex_unlock(&lq_lock);
        write_line(line, n);
        return;
    }
    if (lq_tail - lq_head < LQ_LEN) {
        memcpy(lq[lq_tail % LQ_LEN], line, (size_t)n);
        lq_len[lq_tail % LQ_LEN] = n;
        lq_tail++;
    }
    if (log_waiting)
        ml_count(1); /* the futex wake */
    pthread_cond_signal(&lq_cond);
    pthread_mutex_unlock(&lq_lock);
}

void ml_log(const char *fmt, ...)
{
    char line[LINE_MAX_LEN];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts); /* vDSO: no syscall */
    gmtime_r(&ts.tv_sec, &tm);
    int n = (int)strftime(line, sizeof line, "[%Y-%m-%d %H:%M:%S", &tm);
    n += snprintf(line + n, sizeof line - (size_t)n, ".%03ld] ", ts.tv_nsec / 1000000);
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        return;
    n += m;
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    emit(line, n);
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static int nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int hex_decode(const char *in, size_t hexlen, uint8_t *out, size_t outmax)
{
    if (hexlen % 2 != 0 || hexlen / 2 > outmax)
        return -1;
    for (size_t i = 0; i < hexlen / 2; i++) {
        int hi = nibble(in[2 * i]), lo = nibble(in[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (int)(hexlen / 2);
}

uint64_t target_from_compact(uint32_t compact)
{
    /* XMRig: a 4-byte target t stands for difficulty 0xFFFFFFFF / t, i.e. a 64-bit target of
     * 0xFFFFFFFFFFFFFFFF / (0xFFFFFFFF / t) */
    if (compact == 0)
        return 0;
    uint64_t diff = 0xFFFFFFFFull / compact;
    if (diff == 0)
        diff = 1;
    return UINT64_MAX / diff;
}
