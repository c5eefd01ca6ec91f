/* Litecoin's scrypt(N=1024, r=1, p=1) of the 80-byte header, salted with itself, through OpenSSL. */
#include <openssl/evp.h>
#include <stdlib.h>

#include "pow.h"

static void *scrypt_thread_init(int index)
{
    (void)index;
    return malloc(1);
}

static void scrypt_hash(void *tctx, const uint8_t *blob, size_t len, uint8_t out[32])
{
    (void)tctx;
    if (EVP_PBE_scrypt((const char *)blob, len, blob, len, 1024, 1, 1, 0, out, 32) != 1)
        abort();
}

const struct ml_pow ml_pow_scrypt = {
    .name = "scrypt",
    .nonce_offset = 76,
    .cpuminer = 1,
    .yield_every = 1,
    .thread_init = scrypt_thread_init,
    .hash = scrypt_hash,
};
