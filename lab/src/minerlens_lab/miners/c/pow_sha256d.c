/* Bitcoin-style double SHA-256 of an 80-byte block header, with the midstate trick of cpuminer: the
 * first 64 bytes do not change with the nonce, so their compression is done once per job. */
#include <stdlib.h>
#include <string.h>

#include "pow.h"
#include "sha256.h"

struct sha256d_ctx {
    uint8_t head[64];
    int have_mid;
    uint32_t mid[8];
};

static void *sha256d_thread_init(int index)
{
    (void)index;
    return calloc(1, sizeof(struct sha256d_ctx));
}

static void sha256d_hash(void *tctx, const uint8_t *blob, size_t len, uint8_t out[32])
{
    struct sha256d_ctx *c = tctx;
    uint8_t first[32];
    if (len != 80) {
        ml_sha256(blob, len, first);
        ml_sha256(first, 32, out);
        return;
    }
    if (!c->have_mid || memcmp(c->head, blob, 64) != 0) {
        memcpy(c->head, blob, 64);
        memcpy(c->mid, ml_sha256_iv, sizeof c->mid);
        ml_sha256_transform(c->mid, blob);
        c->have_mid = 1;
    }
    uint32_t st[8];
    uint8_t block[64] = {0};
    memcpy(st, c->mid, sizeof st);
    memcpy(block, blob + 64, 16);
    block[16] = 0x80;
    block[62] = 0x02; /* 640 bits */
    block[63] = 0x80;
    ml_sha256_transform(st, block);
    ml_sha256_store(st, first);
    memset(block, 0, sizeof block);
    memcpy(block, first, 32);
    block[32] = 0x80;
    block[62] = 0x01; /* 256 bits */
    memcpy(st, ml_sha256_iv, sizeof st);
    ml_sha256_transform(st, block);
    ml_sha256_store(st, out);
}

const struct ml_pow ml_pow_sha256d = {
    .name = "sha256d",
    .nonce_offset = 76,
    .cpuminer = 1,
    .yield_every = 4096,
    .thread_init = sha256d_thread_init,
    .hash = sha256d_hash,
};
