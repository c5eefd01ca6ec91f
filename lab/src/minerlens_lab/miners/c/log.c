/* Log lines (XMRig-style "[time] message") written with one write() each, and hex/target helpers. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"
#include "miner.h"

static int log_fd = 1;

int log_open(const char *path)
{
    if (path == NULL)
        return 0;
    int fd = ML_SC(open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644));
    if (fd < 0)
        return -1;
    log_fd = fd;
    return 0;
}

void ml_log(const char *fmt, ...)
{
    char line[1024];
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
    if (ML_SC(write(log_fd, line, (size_t)n)) < 0) {
        /* nothing sensible to do when the log is gone */
    }
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
