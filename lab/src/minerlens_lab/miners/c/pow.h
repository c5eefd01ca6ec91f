/* Proof-of-work backends. Each hashes a job blob (with the nonce written at nonce_offset) to 32 bytes. */
#ifndef ML_POW_H
#define ML_POW_H

#include <stddef.h>
#include <stdint.h>

struct ml_config;

struct ml_pow {
    const char *name;    /* the stratum algorithm name */
    size_t nonce_offset; /* 4-byte little-endian nonce position in the blob */
    unsigned yield_every; /* default hashes between two sched_yield() in yield mode */
    int cpuminer;         /* the real CPU miner of this algorithm is cpuminer (else XMRig): the default profile */
    int (*init)(const struct ml_config *cfg);
    /* process-wide re-keying (RandomX seed); may block for a long time. NULL: not keyed. */
    int (*set_seed)(const uint8_t seed[32]);
    void *(*thread_init)(int index);
    void (*hash)(void *tctx, const uint8_t *blob, size_t len, uint8_t out[32]);
};

extern const struct ml_pow ml_pow_sha256d;
extern const struct ml_pow ml_pow_scrypt;
extern const struct ml_pow ml_pow_cnlike;
extern const struct ml_pow ml_pow_randomx;

const struct ml_pow *ml_pow_find(const char *name);

#endif
