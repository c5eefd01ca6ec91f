/* ml-noise: run a program and make cheap syscalls alongside it, so that they are a given share of all the
 * syscalls of the pair (the syscall-noise injection of a miner that dilutes its own profile).
 *
 *   ml-noise --share 0.9 [--tracepoint-id N] -- PROGRAM [ARGS...]
 *
 * It opens a counting perf event on the raw_syscalls:sys_enter tracepoint for itself with `inherit`, so the
 * kernel counts every syscall of this process and of everything it starts (the program and its threads),
 * then forks and execs PROGRAM. Its own syscalls after that are all made here and counted here; the rest
 * is the program's. It keeps its own count at share/(1-share) times the rest: getpid, nanosleep(0),
 * clock_gettime (through syscall(), so the vDSO cannot absorb it) and a 1-byte read of /dev/null in
 * rotation, emitted in bursts, with pacing sleeps (also counted noise) at most ~200 a second (the pacing the
 * miner's noise thread uses: miners/c/noise_pacing.h, on the include path). It exits with the program's
 * status; SIGTERM/SIGINT are passed on to it. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/perf_event.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "noise_pacing.h"

static volatile sig_atomic_t child_done, forward_sig;
static uint64_t own; /* syscalls made by this process since the counter opened */

#define SC(...) (own++, syscall(__VA_ARGS__))

static void on_chld(int sig)
{
    (void)sig;
    child_done = 1;
}

static void on_term(int sig)
{
    forward_sig = sig;
}

static long tracepoint_id(void)
{
    const char *paths[] = {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                           "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        FILE *f = fopen(paths[i], "r");
        long id = -1;
        if (f == NULL)
            continue;
        if (fscanf(f, "%ld", &id) != 1)
            id = -1;
        fclose(f);
        if (id >= 0)
            return id;
    }
    return -1;
}

static int usage(void)
{
    fprintf(stderr, "usage: ml-noise --share F [--tracepoint-id N] -- PROGRAM [ARGS...]\n");
    return 2;
}

int main(int argc, char **argv)
{
    double share = -1.0;
    long tp = -1;
    int i = 1;
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            i++;
            break;
        }
        if (strcmp(argv[i], "--share") == 0 && i + 1 < argc)
            share = atof(argv[++i]);
        else if (strcmp(argv[i], "--tracepoint-id") == 0 && i + 1 < argc)
            tp = atol(argv[++i]);
        else
            return usage();
    }
    if (i >= argc || share <= 0.0 || share > 0.99)
        return usage();
    if (tp < 0 && (tp = tracepoint_id()) < 0) {
        fprintf(stderr, "ml-noise: cannot read the raw_syscalls:sys_enter tracepoint id (mount tracefs)\n");
        return 1;
    }
    struct perf_event_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.size = sizeof attr;
    attr.config = (uint64_t)tp;
    attr.inherit = 1;
    int counter = (int)syscall(SYS_perf_event_open, &attr, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    if (counter < 0) {
        fprintf(stderr, "ml-noise: perf_event_open: %s\n", strerror(errno));
        return 1;
    }
    /* from here on every syscall of this process is counted, by the kernel and in `own` */
    struct sigaction sa = {.sa_handler = on_chld, .sa_flags = SA_NOCLDSTOP};
    own++;
    sigaction(SIGCHLD, &sa, NULL);
    own++;
    pid_t child = fork(); /* one clone() here; what the child does is the program's */
    if (child < 0) {
        perror("ml-noise: fork");
        return 1;
    }
    if (child == 0) {
        execvp(argv[i], argv + i);
        fprintf(stderr, "ml-noise: cannot run %s: %s\n", argv[i], strerror(errno));
        _exit(127);
    }
    struct sigaction term = {.sa_handler = on_term};
    own += 2;
    sigaction(SIGTERM, &term, NULL);
    sigaction(SIGINT, &term, NULL);
    int devnull = (int)SC(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC);

    unsigned kind = 0;
    struct noise_pacer pacer = noise_pacer(share, 0.25, 0);
    uint64_t rest = 0; /* the program's syscalls */
    while (!child_done) {
        if (forward_sig) {
            SC(SYS_kill, child, forward_sig);
            forward_sig = 0;
        }
        uint64_t total = 0;
        if (SC(SYS_read, counter, &total, sizeof total) == (long)sizeof total && total >= own)
            rest = total - own;
        double wait = 0.0;
        uint64_t burst = noise_pace(&pacer, rest, own, &wait);
        if (burst > 0) {
            for (uint64_t n = 0; n < burst && !child_done; n++, own++)
                noise_emit(kind++, devnull);
            continue;
        }
        own++;
        noise_sleep(wait);
    }
    int status = 0;
    while (waitpid(child, &status, 0) < 0 && errno == EINTR)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
