/* gen N [M] [T]: ground truth for tests/collector/test_tracefs_live.py (exact getppid counts per thread/child). */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
static long n_calls;
static int go[2];
static void *worker(void *arg) {
    char c; (void)arg;
    if (read(go[0], &c, 1) != 1) return NULL;
    for (long i = 0; i < n_calls; i++) syscall(SYS_getppid);
    return NULL;
}
/* gen N [M] [T]: prints "ready <pid>" (and "thread <tid>" lines), waits for a byte on stdin, then
   makes N getppid calls; a forked child makes M; T threads (made before "ready") make N each. */
int main(int argc, char **argv) {
    long m = argc > 2 ? atol(argv[2]) : 0; int t = argc > 3 ? atoi(argv[3]) : 0;
    pthread_t th[16]; char c;
    n_calls = atol(argv[1]);
    if (pipe(go) != 0 || t > 16) return 3;
    for (int i = 0; i < t; i++) pthread_create(&th[i], NULL, worker, NULL);
    printf("ready %d\n", getpid()); fflush(stdout);
    if (read(0, &c, 1) != 1) return 2;
    for (int i = 0; i < t; i++) if (write(go[1], "g", 1) != 1) return 4;
    pid_t child = -1;
    if (m > 0 && (child = fork()) == 0) { for (long i = 0; i < m; i++) syscall(SYS_getppid); _exit(0); }
    for (long i = 0; i < n_calls; i++) syscall(SYS_getppid);
    if (child > 0) waitpid(child, NULL, 0);
    for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
    printf("child %d\n", child); fflush(stdout);
    return 0;
}
