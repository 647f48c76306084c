/*
 * A strict UTF-8 validator (RFC 3629) and a printable copy for logs.
 */
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the valid sequence at s (1..4), or 0 when it is invalid. */
static size_t seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    unsigned cp;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t sl_utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n = seq_len(p + i, len - i);
        if (n == 0)
            break;
        i += n;
    }
    return i;
}

bool sl_utf8_is_clean(const char *s, size_t len)
{
    return sl_utf8_valid_prefix(s, len) == len && memchr(s, 0, len) == NULL;
}

char *sl_utf8_printable(const char *s, size_t len, char *out, size_t size)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0, i = 0;

    if (size == 0)
        return out;
    while (i < len) {
        size_t n = p[i] ? seq_len(p + i, len - i) : 0;
        size_t need = n ? n : 4;
        if (o + need + 4 > size) { /* room for "..." and the NUL */
            if (size >= 4) {
                memcpy(out + (o < size - 4 ? o : size - 4), "...", 3);
                o = (o < size - 4 ? o : size - 4) + 3;
            }
            break;
        }
        if (n) {
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
        } else {
            snprintf(out + o, 5, "\\x%02x", p[i]);
            o += 4;
            i++;
        }
    }
    out[o < size ? o : size - 1] = '\0';
    return out;
}

char *sl_utf8_sanitize(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    char *out = malloc(len + 1);
    size_t i = 0;

    if (!out)
        return NULL;
    while (i < len) {
        size_t n = p[i] ? seq_len(p + i, len - i) : 0;
        if (n == 0) {
            out[i++] = '?';
            continue;
        }
        memcpy(out + i, p + i, n);
        i += n;
    }
    out[len] = '\0';
    return out;
}
