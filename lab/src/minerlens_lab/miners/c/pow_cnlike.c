/* Miner glue for the CryptoNight-like hash: one 2 MiB scratchpad per thread, in huge pages if possible
 * (as XMRig allocates CryptoNight scratchpads). */
#include <stdlib.h>

#include "cnlike.h"
#include "hugemem.h"
#include "miner.h"
#include "pow.h"

static int huge;

static int cnlike_init(const struct ml_config *cfg)
{
    huge = cfg->huge_pages;
    return 0;
}

static void *cnlike_thread_init(int index)
{
    struct ml_mem *mem = malloc(sizeof *mem);
    if (mem == NULL || ml_alloc_large(CNLIKE_SCRATCHPAD, huge, mem) != 0)
        return NULL;
    ml_log("memory: thread %d scratchpad 2 MiB pages=%s", index, ml_pages_name(mem->pages));
    return mem;
}

static void cnlike_pow_hash(void *tctx, const uint8_t *blob, size_t len, uint8_t out[32])
{
    struct ml_mem *mem = tctx;
    cnlike_hash(blob, len, out, mem->ptr);
}

const struct ml_pow ml_pow_cnlike = {
    .name = "cn-like",
    .nonce_offset = 39,
    .yield_every = 1,
    .init = cnlike_init,
    .thread_init = cnlike_thread_init,
    .hash = cnlike_pow_hash,
};
