/* "CryptoNight-like" memory-hard hash (NOT bit-compatible with CryptoNight): a 2 MiB scratchpad filled
 * from the input, 2^19 iterations of data-dependent 16-byte reads/writes mixed with 64x64->128 bit
 * multiplications, then folded back. Shared by the miner and by the pool's verifier (ctypes). */
#ifndef ML_CNLIKE_H
#define ML_CNLIKE_H

#include <stddef.h>
#include <stdint.h>

#define CNLIKE_SCRATCHPAD ((size_t)2 << 20)
#define CNLIKE_ITERATIONS (1u << 19)

void cnlike_hash(const uint8_t *in, size_t len, uint8_t out[32], uint8_t *scratchpad);
/* convenience for verifiers: allocates and frees its own scratchpad; returns 0 on success */
int cnlike_hash_alloc(const uint8_t *in, size_t len, uint8_t out[32]);

#endif
