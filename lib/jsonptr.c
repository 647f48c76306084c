/*
 * RFC 6901 JSON Pointer evaluation: split on '/', unescape ~1 and ~0 (in
 * that order), then step through objects by key and arrays by index.
 */
#include "jsonptr.h"

#include "err.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Unescape token p[0..len) into out (room for len + 1).  -SL_EINVAL on a
 * '~' not followed by '0' or '1'. */
static int unescape(const char *p, size_t len, char *out, size_t *outlen)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (p[i] != '~') {
            out[n++] = p[i];
            continue;
        }
        if (i + 1 >= len || (p[i + 1] != '0' && p[i + 1] != '1'))
            return -SL_EINVAL;
        out[n++] = p[i + 1] == '0' ? '~' : '/';
        i++;
    }
    out[n] = '\0';
    *outlen = n;
    return 0;
}

/* Parse an array index per RFC 6901: "0" or [1-9][0-9]*. */
static int parse_index(const char *s, size_t len, size_t *idxp)
{
    size_t v = 0;

    if (len == 0 || (len > 1 && s[0] == '0'))
        return -SL_EINVAL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -SL_EINVAL;
        if (v > (SIZE_MAX - 9) / 10)
            return -SL_ENOTFOUND; /* past any array's end */
        v = v * 10 + (size_t)(s[i] - '0');
    }
    *idxp = v;
    return 0;
}

int sl_jsonptr_get(json_t *root, const char *ptr, json_t **valuep)
{
    json_t *cur = root;
    char *tok;
    int err = 0;

    *valuep = NULL;
    if (!ptr || !root)
        return -SL_EINVAL;
    if (!*ptr) {
        *valuep = root;
        return 0;
    }
    if (*ptr != '/')
        return -SL_EINVAL;
    tok = malloc(strlen(ptr) + 1);
    if (!tok)
        return -SL_ENOMEM;
    const char *p = ptr + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p), tlen;

        err = unescape(p, len, tok, &tlen);
        if (err)
            break;
        if (json_is_object(cur)) {
            cur = json_object_getn(cur, tok, tlen);
        } else if (json_is_array(cur)) {
            size_t idx;
            if (tlen == 1 && tok[0] == '-') {
                cur = NULL; /* the element after the last: never present */
            } else {
                err = parse_index(tok, tlen, &idx);
                if (err == -SL_EINVAL)
                    break;
                cur = err ? NULL : json_array_get(cur, idx);
                err = 0;
            }
        } else {
            cur = NULL;
        }
        if (!cur) {
            err = -SL_ENOTFOUND;
            break;
        }
        if (!end)
            break;
        p = end + 1;
    }
    free(tok);
    if (!err)
        *valuep = cur;
    return err;
}
