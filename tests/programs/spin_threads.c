/* spin_threads THREADS SECONDS: THREADS threads burn CPU without a syscall (as a no-yield miner does)
   while the main thread waits in pthread_join; the process exits after SECONDS. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

static volatile int stop;
static double secs;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *spin(void *arg) {
    (void)arg;
    volatile unsigned long x = 0;
    double end = now() + secs;
    while (!stop) {
        for (int i = 0; i < 10000000; i++) x += i; /* clock_gettime is a vDSO call: no syscall */
        if (now() >= end) stop = 1;
    }
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 2;
    secs = argc > 2 ? atof(argv[2]) : 5.0;
    if (n < 1 || n > 64) return 2;
    pthread_t t[64];
    for (int i = 0; i < n; i++)
        if (pthread_create(&t[i], NULL, spin, NULL) != 0) return 3;
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    return 0;
}
