/* In-process syscall accounting.
 *
 * Each thread owns a padded counter slot; every syscall made by the miner's own code is wrapped in
 * ML_SC(), which bumps the calling thread's slot (relaxed, uncontended). The noise thread sums the
 * slots to learn the process's syscall rate without making any syscall for it. Syscalls libc makes on
 * its own (dynamic loading, thread start-up) are added as measured estimates (ML_SC_*).
 */
#ifndef ML_COUNTERS_H
#define ML_COUNTERS_H

#include <stdint.h>

/* measured with strace -f on Debian 12 (glibc 2.36):
 * - before main() and on the first log line: execve, ld.so mapping libcrypto/librandomx/libstdc++/libm/
 *   libgcc_s/libc, TLS set-up, /etc/localtime (82 + 7), and the first pthread_create's SIGRT_1 set-up (2);
 * - per pthread_create: mmap stack, mprotect, clone3, rt_sigprocmask x3 in the parent; rseq,
 *   set_robust_list, rt_sigprocmask in the child;
 * - per thread that mallocs: its malloc arena (mmap, munmap x2, mprotect). */
#define ML_SC_STARTUP 91u
#define ML_SC_THREAD 8u
#define ML_SC_ARENA 4u

void ml_count(unsigned n);
void ml_count_register(int noise_thread);
uint64_t ml_count_rest(void); /* everything but the noise thread */

#define ML_SC(call) (ml_count(1), (call))

#endif
