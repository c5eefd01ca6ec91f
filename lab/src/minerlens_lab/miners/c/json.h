/* A tiny JSON tokenizer (jsmn-like) for stratum messages: tokens point into the source text. */
#ifndef ML_JSON_H
#define ML_JSON_H

#include <stddef.h>

enum json_type { JSON_OBJECT, JSON_ARRAY, JSON_STRING, JSON_PRIMITIVE };

struct json_tok {
    enum json_type type;
    int start, end; /* for strings: without the quotes */
    int size;       /* objects: number of keys; arrays: number of items */
    int parent;
};

/* Returns the number of tokens, or -1 for malformed input / too many tokens. Token 0 is the root. */
int json_parse(const char *s, size_t len, struct json_tok *tok, int max);
/* Index of the value of `key` in object token `obj`, or -1. */
int json_get(const char *s, const struct json_tok *tok, int ntok, int obj, const char *key);
int json_is(const char *s, const struct json_tok *t, const char *lit);
/* Copy a string/primitive token into buf (NUL-terminated, truncated); returns its length or -1. */
int json_copy(const char *s, const struct json_tok *t, char *buf, size_t bufsz);

#endif
