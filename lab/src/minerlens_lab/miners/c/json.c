#include "json.h"

#include <string.h>

static int add(struct json_tok *tok, int *n, int max, enum json_type type, int start, int parent)
{
    if (*n >= max)
        return -1;
    struct json_tok *t = &tok[*n];
    t->type = type;
    t->start = start;
    t->end = -1;
    t->size = 0;
    t->parent = parent;
    return (*n)++;
}

int json_parse(const char *s, size_t len, struct json_tok *tok, int max)
{
    int n = 0;
    int cur = -1;   /* innermost open container */
    int expect_key = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        switch (c) {
        case '{':
        case '[': {
            int t = add(tok, &n, max, c == '{' ? JSON_OBJECT : JSON_ARRAY, (int)i, cur);
            if (t < 0)
                return -1;
            if (cur >= 0 && tok[cur].type == JSON_ARRAY)
                tok[cur].size++;
            cur = t;
            expect_key = c == '{';
            break;
        }
        case '}':
        case ']':
            if (cur < 0 || tok[cur].type != (c == '}' ? JSON_OBJECT : JSON_ARRAY))
                return -1;
            tok[cur].end = (int)i + 1;
            cur = tok[cur].parent;
            /* a closed value inside an object: its key's value is done */
            if (cur >= 0 && tok[cur].type == JSON_OBJECT)
                expect_key = 0;
            break;
        case '"': {
            size_t j = i + 1;
            while (j < len && s[j] != '"') {
                if (s[j] == '\\')
                    j++;
                j++;
            }
            if (j >= len)
                return -1;
            int t = add(tok, &n, max, JSON_STRING, (int)i + 1, cur);
            if (t < 0)
                return -1;
            tok[t].end = (int)j;
            if (cur >= 0 && (tok[cur].type == JSON_ARRAY || expect_key))
                tok[cur].size++;
            i = j;
            break;
        }
        case ':':
            expect_key = 0;
            break;
        case ',':
            expect_key = cur >= 0 && tok[cur].type == JSON_OBJECT;
            break;
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            break;
        default: {
            size_t j = i;
            while (j < len && !strchr(",]} \t\r\n:", s[j]))
                j++;
            int t = add(tok, &n, max, JSON_PRIMITIVE, (int)i, cur);
            if (t < 0)
                return -1;
            tok[t].end = (int)j;
            if (cur >= 0 && tok[cur].type == JSON_ARRAY)
                tok[cur].size++;
            i = j - 1;
            break;
        }
        }
    }
    return cur == -1 && n > 0 ? n : -1;
}

static int skip(const struct json_tok *tok, int ntok, int i)
{
    /* tokens are in document order: the subtree of i ends at the first token that starts after it */
    int end = tok[i].end;
    int j = i + 1;
    while (j < ntok && tok[j].start < end)
        j++;
    return j;
}

int json_get(const char *s, const struct json_tok *tok, int ntok, int obj, const char *key)
{
    if (obj < 0 || obj >= ntok || tok[obj].type != JSON_OBJECT)
        return -1;
    int i = obj + 1;
    for (int k = 0; k < tok[obj].size && i < ntok; k++) {
        int val = i + 1;
        if (val >= ntok)
            return -1;
        if (tok[i].type == JSON_STRING && json_is(s, &tok[i], key))
            return val;
        i = skip(tok, ntok, val);
    }
    return -1;
}

int json_is(const char *s, const struct json_tok *t, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(t->end - t->start) == n && memcmp(s + t->start, lit, n) == 0;
}

int json_copy(const char *s, const struct json_tok *t, char *buf, size_t bufsz)
{
    if (t->type == JSON_OBJECT || t->type == JSON_ARRAY || bufsz == 0)
        return -1;
    size_t n = (size_t)(t->end - t->start);
    if (n >= bufsz)
        n = bufsz - 1;
    memcpy(buf, s + t->start, n);
    buf[n] = '\0';
    return (int)n;
}
