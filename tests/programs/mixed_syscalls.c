/* A multi-threaded mix of syscalls: the eBPF/tracefs parity workload (tests/collector/test_ebpf_parity_live.py). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
static long n;
/* each thread its own interleaving of cheap (getppid, getuid, clock_gettime) and no-cheap calls */
static void *worker(void *arg) {
    long k = (long)arg; char b[64]; struct timespec ts;
    int z = open("/dev/zero", O_RDONLY), nul = open("/dev/null", O_WRONLY);
    for (long i = 0; i < n; i++) {
        switch ((i * (k + 1)) % 5) {
        case 0: syscall(SYS_getppid); break;
        case 1: if (read(z, b, sizeof b) < 0) return NULL; break;
        case 2: if (write(nul, b, 8) < 0) return NULL; break;
        case 3: sched_yield(); break;
        default: syscall(SYS_clock_gettime, CLOCK_MONOTONIC, &ts);
        }
        if (i % 7 == k) syscall(SYS_getuid);
    }
    close(z); close(nul);
    return NULL;
}
int main(int argc, char **argv) {
    pthread_t th[16]; int t = atoi(argv[2]);
    n = atol(argv[1]);
    if (t < 1 || t > 16) return 2;
    for (long i = 1; i < t; i++) pthread_create(&th[i], NULL, worker, (void *)i);
    worker(NULL);
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    return 0;
}
