#include "cnlike.h"

#include <stdlib.h>
#include <string.h>

#include "sha256.h"

#define MASK (CNLIKE_SCRATCHPAD - 16)

__extension__ typedef unsigned __int128 wide_t; /* GCC/Clang on 64-bit targets */

struct u128 {
    uint64_t lo, hi;
};

static inline uint64_t rotl(uint64_t x, int r)
{
    return (x << r) | (x >> (64 - r));
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8); /* little-endian hosts (x86-64, arm64) */
    return v;
}

static inline struct u128 load128(const uint8_t *p)
{
    return (struct u128){load64(p), load64(p + 8)};
}

static inline void store128(uint8_t *p, struct u128 v)
{
    memcpy(p, &v.lo, 8);
    memcpy(p + 8, &v.hi, 8);
}

/* the stand-in for CryptoNight's single AES round: a keyed 128-bit ARX/multiply mix */
static inline struct u128 mix(struct u128 x, struct u128 k)
{
    uint64_t l = x.lo ^ k.lo, h = x.hi ^ k.hi;
    l = (l ^ (h >> 29)) * 0xbf58476d1ce4e5b9ull;
    h = (h ^ (l >> 32)) * 0x94d049bb133111ebull;
    l ^= rotl(h, 17);
    h ^= rotl(l, 41);
    return (struct u128){l, h};
}

static inline struct u128 xor128(struct u128 a, struct u128 b)
{
    return (struct u128){a.lo ^ b.lo, a.hi ^ b.hi};
}

void cnlike_hash(const uint8_t *in, size_t len, uint8_t out[32], uint8_t *pad)
{
    /* 64-byte state: SHA-256(in) || SHA-256(SHA-256(in)) (CryptoNight uses Keccak-1600) */
    uint8_t state[64];
    ml_sha256(in, len, state);
    ml_sha256(state, 32, state + 32);
    struct u128 k0 = load128(state), k1 = load128(state + 16);
    struct u128 x = load128(state + 32);

    for (size_t off = 0; off < CNLIKE_SCRATCHPAD; off += 16) {
        x = mix(x, (off & 16) ? k1 : k0);
        store128(pad + off, x);
    }

    struct u128 a = xor128(load128(state), load128(state + 32));
    struct u128 b = xor128(load128(state + 16), load128(state + 48));
    for (uint32_t i = 0; i < CNLIKE_ITERATIONS; i++) {
        uint8_t *p = pad + (a.lo & MASK);
        struct u128 c = mix(load128(p), a);
        store128(p, xor128(b, c));
        uint8_t *q = pad + (c.lo & MASK);
        struct u128 d = load128(q);
        wide_t prod = (wide_t)c.lo * d.lo;
        a.lo += (uint64_t)(prod >> 64);
        a.hi += (uint64_t)prod;
        store128(q, a);
        a = xor128(a, d);
        b = c;
    }

    struct u128 f = x;
    for (size_t off = 0; off < CNLIKE_SCRATCHPAD; off += 16)
        f = mix(xor128(f, load128(pad + off)), (off & 16) ? k0 : k1);
    uint8_t final[64 + 32];
    memcpy(final, state, 64);
    store128(final + 64, f);
    store128(final + 80, a);
    ml_sha256(final, sizeof final, out);
}

int cnlike_hash_alloc(const uint8_t *in, size_t len, uint8_t out[32])
{
    uint8_t *pad = malloc(CNLIKE_SCRATCHPAD);
    if (pad == NULL)
        return -1;
    cnlike_hash(in, len, out, pad);
    free(pad);
    return 0;
}
