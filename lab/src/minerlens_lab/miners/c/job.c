/* The current job: written by the stratum thread, copied by workers when its sequence number moves.
 * A spinlock (no futex, so no syscall even under contention). */
#include <pthread.h>
#include <string.h>

#include "miner.h"

static pthread_spinlock_t lock;
static struct ml_job current;
static _Atomic uint64_t seq;

void job_init(void)
{
    pthread_spin_init(&lock, PTHREAD_PROCESS_PRIVATE);
}

void job_publish(const struct ml_job *job)
{
    pthread_spin_lock(&lock);
    current = *job;
    current.seq = atomic_load(&seq) + 1;
    atomic_store(&seq, current.seq);
    pthread_spin_unlock(&lock);
}

uint64_t job_current_seq(void)
{
    return atomic_load_explicit(&seq, memory_order_acquire);
}

int job_snapshot(struct ml_job *out)
{
    pthread_spin_lock(&lock);
    int have = current.seq != 0;
    if (have)
        *out = current;
    pthread_spin_unlock(&lock);
    return have;
}
