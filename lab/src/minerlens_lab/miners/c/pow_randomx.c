/* RandomX (Monero's rx/0) through the reference library (librandomx, the same v1.1.10 the PyPI `randomx`
 * wheel wraps). Light mode hashes from the 256 MiB cache; fast mode (--randomx-mode fast, XMRig's default)
 * first builds the 2080 MiB dataset with one init thread per online CPU (XMRig's "init": -1). Re-keyed when the job's seed changes. */
#include <stdlib.h>

#include "miner.h"
#include "pow.h"

#ifdef ML_NO_RANDOMX

static int rx_unavailable(const struct ml_config *cfg)
{
    (void)cfg;
    ml_log("randomx: this miner was built without librandomx (apt-get install librandomx-dev)");
    return -1;
}

const struct ml_pow ml_pow_randomx = {
    .name = "rx/0",
    .nonce_offset = 39,
    .yield_every = 1,
    .init = rx_unavailable,
};

#else

#include <pthread.h>
#include <randomx.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "counters.h"

static randomx_flags flags;
static randomx_cache *cache;
static randomx_dataset *dataset;
static int fast, init_threads;
static pthread_rwlock_t vm_lock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_mutex_t seed_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t current_seed[32];
static int have_seed;
static atomic_uint generation;

struct rx_thread {
    randomx_vm *vm;
    unsigned generation;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* the library's plain dataset comes from an aligned malloc: advise its page-aligned interior */
static int advise_huge(void *mem, size_t size)
{
    uintptr_t page = 4096, start = ((uintptr_t)mem + page - 1) & ~(page - 1);
    uintptr_t end = ((uintptr_t)mem + size) & ~(page - 1);
    if (end <= start)
        return -1;
    return ML_SC(madvise((void *)start, end - start, MADV_HUGEPAGE));
}

static int rx_init(const struct ml_config *cfg)
{
    flags = randomx_get_flags();
    fast = cfg->rx_fast;
    /* XMRig's "init": -1: the dataset is built by one thread per online CPU, whatever the hashing threads */
    init_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (init_threads < cfg->threads)
        init_threads = cfg->threads;
    const char *pages = "none";
    ml_count(3); /* the library's mmap of the cache and its JIT buffer */
    if (cfg->huge_pages && (cache = randomx_alloc_cache(flags | RANDOMX_FLAG_LARGE_PAGES)) != NULL)
        pages = "hugetlb";
    else
        cache = randomx_alloc_cache(flags);
    if (cache == NULL) {
        ml_log("randomx: cannot allocate the cache");
        return -1;
    }
    ml_log("memory: randomx cache 256 MiB pages=%s", pages);
    if (!fast)
        return 0;
    pages = "none";
    ml_count(2);
    if (cfg->huge_pages && (dataset = randomx_alloc_dataset(flags | RANDOMX_FLAG_LARGE_PAGES)) != NULL) {
        pages = "hugetlb";
    } else {
        dataset = randomx_alloc_dataset(flags);
        if (dataset != NULL && cfg->huge_pages && advise_huge(randomx_get_dataset_memory(dataset),
                                                              randomx_dataset_item_count() * RANDOMX_DATASET_ITEM_SIZE) == 0)
            pages = "thp";
    }
    if (dataset == NULL) {
        ml_log("randomx: cannot allocate the 2080 MiB dataset");
        return -1;
    }
    ml_log("memory: randomx dataset 2080 MiB pages=%s", pages);
    return 0;
}

struct init_part {
    unsigned long start, count;
};

static void *dataset_init_thread(void *arg)
{
    struct init_part *part = arg;
    ml_count_register(0);
    randomx_init_dataset(dataset, cache, part->start, part->count);
    return NULL;
}

static void init_dataset(void)
{
    unsigned long items = randomx_dataset_item_count();
    int n = init_threads < 1 ? 1 : init_threads;
    pthread_t tids[ML_MAX_THREADS];
    struct init_part parts[ML_MAX_THREADS];
    for (int i = 0; i < n; i++) {
        parts[i].start = items * (unsigned long)i / (unsigned long)n;
        parts[i].count = items * (unsigned long)(i + 1) / (unsigned long)n - parts[i].start;
        ml_count(ML_SC_THREAD);
        pthread_create(&tids[i], NULL, dataset_init_thread, &parts[i]);
    }
    for (int i = 0; i < n; i++)
        pthread_join(tids[i], NULL);
}

static int rx_set_seed(const uint8_t seed[32])
{
    pthread_mutex_lock(&seed_lock);
    if (have_seed && memcmp(seed, current_seed, 32) == 0) {
        pthread_mutex_unlock(&seed_lock);
        return 0;
    }
    pthread_rwlock_wrlock(&vm_lock);
    double t0 = now_s();
    randomx_init_cache(cache, seed, 32);
    double t1 = now_s();
    if (fast)
        init_dataset();
    memcpy(current_seed, seed, 32);
    have_seed = 1;
    atomic_fetch_add(&generation, 1);
    pthread_rwlock_unlock(&vm_lock);
    pthread_mutex_unlock(&seed_lock);
    if (fast)
        ml_log("randomx: seed ready, cache %.0f ms, dataset %.0f ms (%d threads)", (t1 - t0) * 1e3,
               (now_s() - t1) * 1e3, init_threads);
    else
        ml_log("randomx: seed ready, light cache %.0f ms", (t1 - t0) * 1e3);
    return 0;
}

static void *rx_thread_init(int index)
{
    (void)index;
    return calloc(1, sizeof(struct rx_thread));
}

static void rx_hash(void *tctx, const uint8_t *blob, size_t len, uint8_t out[32])
{
    struct rx_thread *t = tctx;
    pthread_rwlock_rdlock(&vm_lock);
    unsigned gen = atomic_load(&generation);
    if (t->vm == NULL) {
        randomx_flags vmflags = flags | (fast ? RANDOMX_FLAG_FULL_MEM : 0);
        const char *pages = "hugetlb";
        ml_count(3); /* scratchpad and JIT code mappings */
        if (!g_cfg.huge_pages ||
            (t->vm = randomx_create_vm(vmflags | RANDOMX_FLAG_LARGE_PAGES, fast ? NULL : cache, dataset)) == NULL) {
            t->vm = randomx_create_vm(vmflags, fast ? NULL : cache, dataset);
            pages = "none";
        }
        if (t->vm == NULL)
            abort();
        ml_log("memory: randomx vm scratchpad 2 MiB pages=%s", pages);
    } else if (t->generation != gen) {
        if (fast)
            randomx_vm_set_dataset(t->vm, dataset);
        else
            randomx_vm_set_cache(t->vm, cache);
    }
    t->generation = gen;
    randomx_calculate_hash(t->vm, blob, len, out);
    pthread_rwlock_unlock(&vm_lock);
}

const struct ml_pow ml_pow_randomx = {
    .name = "rx/0",
    .nonce_offset = 39,
    .yield_every = 1,
    .init = rx_init,
    .set_seed = rx_set_seed,
    .thread_init = rx_thread_init,
    .hash = rx_hash,
};

#endif
