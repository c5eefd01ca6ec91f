/* Portable SHA-256 with access to the compression function (for Bitcoin-style midstates). */
#ifndef ML_SHA256_H
#define ML_SHA256_H

#include <stddef.h>
#include <stdint.h>

extern const uint32_t ml_sha256_iv[8];
void ml_sha256_transform(uint32_t state[8], const uint8_t block[64]);
void ml_sha256(const uint8_t *in, size_t len, uint8_t out[32]);
void ml_sha256_store(const uint32_t state[8], uint8_t out[32]);

#endif
