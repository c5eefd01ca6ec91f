/* Ground-truth workload for capture tests: each of T threads makes exactly N getppid() syscalls.
 * usage: getppid_loop N [T] */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

static long n_calls;

static void *worker(void *arg) {
    (void)arg;
    for (long i = 0; i < n_calls; i++) syscall(SYS_getppid);
    return NULL;
}

int main(int argc, char **argv) {
    n_calls = argc > 1 ? atol(argv[1]) : 1000;
    int threads = argc > 2 ? atoi(argv[2]) : 1;
    pthread_t tids[64];
    if (threads < 1 || threads > 64) return 2;
    for (int t = 1; t < threads; t++) pthread_create(&tids[t], NULL, worker, NULL);
    worker(NULL);
    for (int t = 1; t < threads; t++) pthread_join(tids[t], NULL);
    return 0;
}
