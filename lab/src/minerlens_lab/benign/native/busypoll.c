/* busypoll: a DPDK-like poll-mode packet processor for the minerlens lab.
 *
 *   busypoll PORT THREADS SPIN_US LOG
 *
 * THREADS threads each own a non-blocking UDP socket bound to 127.0.0.1:PORT (SO_REUSEPORT: the kernel
 * spreads flows over them) and poll it in a tight loop: a packet is "processed" (checksummed, a counter
 * per flow updated); when none is waiting the thread spins SPIN_US microseconds and then calls
 * sched_yield(), as poll-mode drivers and busy-polling network stacks do instead of sleeping in epoll.
 * Every 2 s the main thread appends "<seconds> <packets> <bytes> <polls>" to LOG. Runs until killed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static atomic_ulong packets, bytes, polls;
static unsigned port, spin_us;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int open_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    int one = 1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("busypoll: socket");
        exit(1);
    }
    return fd;
}

static void *poller(void *arg) {
    int fd = *(int *)arg;
    unsigned char buf[2048];
    uint32_t flows[256] = {0};
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        atomic_fetch_add_explicit(&polls, 1, memory_order_relaxed);
        if (n > 0) {
            uint32_t sum = 0;
            for (ssize_t i = 0; i < n; i++) sum = (sum << 5) + sum + buf[i];
            flows[buf[0]] += sum & 1u;
            atomic_fetch_add_explicit(&packets, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&bytes, (unsigned long)n, memory_order_relaxed);
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            perror("busypoll: recv");
            exit(1);
        }
        double until = now() + spin_us / 1e6;
        while (now() < until) __builtin_ia32_pause();
        sched_yield();
    }
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: busypoll PORT THREADS SPIN_US LOG\n");
        return 2;
    }
    port = (unsigned)atoi(argv[1]);
    int threads = atoi(argv[2]);
    spin_us = (unsigned)atoi(argv[3]);
    if (port == 0 || port > 65535 || threads < 1 || threads > 256) {
        fprintf(stderr, "busypoll: bad arguments\n");
        return 2;
    }
    static int fds[256];
    for (int t = 0; t < threads; t++) {
        pthread_t th;
        fds[t] = open_socket();
        if (pthread_create(&th, NULL, poller, &fds[t]) != 0) {
            fprintf(stderr, "busypoll: pthread_create failed\n");
            return 1;
        }
    }
    double t0 = now();
    for (;;) {
        struct timespec two = {2, 0};
        nanosleep(&two, NULL);
        FILE *f = fopen(argv[4], "a");
        if (f == NULL) {
            perror("busypoll: log");
            return 1;
        }
        fprintf(f, "%.1f %lu %lu %lu\n", now() - t0, atomic_load(&packets), atomic_load(&bytes), atomic_load(&polls));
        fclose(f);
    }
}
