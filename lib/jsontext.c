/*
 * Shortest round-trip printing of reals for jansson documents.  Compact
 * text is written here, structure by structure, with each scalar printed
 * by jansson (so strings are escaped exactly as json_dumps() does) and
 * each real in the fewest digits that read back as the same double.
 */
#include "jsontext.h"
#include "strbuf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREC_MIN 15     /* always exact for a decimal of <= 15 digits */
#define PREC_MAX 17     /* always enough for a double */
#define PREC_MASK 0x1fu /* JSON_REAL_PRECISION's bits in the flags */
#define DEPTH_MAX 2048  /* as jansson's parser: deeper is refused */
#define SCALAR_BUF 64   /* most scalars fit; longer strings are malloc'd */
#define REAL_TEXT 40    /* "%.17g" of any double, plus ".0" */

/* Flags that the structure writer passes on to jansson for scalars. */
#define SCALAR_FLAGS (JSON_ENSURE_ASCII | JSON_ESCAPE_SLASH)

/*
 * 'dig' (ndig significant digits, no sign) times 10^x in %g's style for
 * precision 'prec' (fixed notation when prec > x >= -4, else d.ddde-XX),
 * trailing zeros dropped, into text[REAL_TEXT].
 */
static void put_g(int neg, const char *dig, int ndig, int x, int prec,
                  char *text)
{
    char *o = text;

    while (ndig > 1 && dig[ndig - 1] == '0')
        ndig--;
    if (neg)
        *o++ = '-';
    if (x < -4 || x >= prec) {
        *o++ = dig[0];
        if (ndig > 1) {
            *o++ = '.';
            memcpy(o, dig + 1, (size_t)ndig - 1);
            o += ndig - 1;
        }
        int ax = x < 0 ? -x : x; /* at most 324 */
        *o++ = 'e';
        *o++ = x < 0 ? '-' : '+';
        if (ax >= 100)
            *o++ = (char)('0' + ax / 100);
        *o++ = (char)('0' + ax / 10 % 10);
        *o++ = (char)('0' + ax % 10);
        *o = '\0';
        return;
    }
    if (x < 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = -1; i > x; i--)
            *o++ = '0';
        memcpy(o, dig, (size_t)ndig);
        o += ndig;
    } else {
        for (int i = 0; i <= x; i++)
            *o++ = i < ndig ? dig[i] : '0';
        if (ndig > x + 1) {
            *o++ = '.';
            memcpy(o, dig + x + 1, (size_t)(ndig - x - 1));
            o += ndig - x - 1;
        }
    }
    *o = '\0';
}

/*
 * Print 'v' into text[REAL_TEXT] in the fewest digits, PREC_MIN to
 * PREC_MAX, that read back as 'v'; returns that precision.  The text is
 * "%.*g"'s, at a third of its cost: one snprintf gives v's PREC_MAX
 * digits, and the shorter candidates are those digits rounded, each
 * checked by reading it back.  Rounding the digits instead of v can only
 * go wrong when the digits after the cut read 5000...: v itself may lie
 * on either side of the half, and printf decides.
 */
static int real_text(double v, char *text)
{
    char full[REAL_TEXT];
    char dig[PREC_MAX + 1], cut[PREC_MAX + 1];

    dig[PREC_MAX] = '\0';

    /* "-d.dddddddddddddddde+XX" */
    snprintf(full, sizeof(full), "%.*e", PREC_MAX - 1, v);
    const char *s = full + (full[0] == '-');
    dig[0] = s[0];
    memcpy(dig + 1, s + 2, PREC_MAX - 1);
    int x = atoi(s + 2 + PREC_MAX - 1 + 1);
    int neg = full[0] == '-';

    for (int p = PREC_MIN; p < PREC_MAX; p++) {
        int cx = x;
        if (dig[p] == '5' &&
            strspn(dig + p + 1, "0") == (size_t)(PREC_MAX - p - 1)) {
            /* digits ...5000: v may lie on either side of the half */
            snprintf(text, REAL_TEXT, "%.*g", p, v);
            if (strtod(text, NULL) == v)
                return p;
            continue;
        }
        memcpy(cut, dig, (size_t)p);
        if (dig[p] >= '5') {
            int i = p - 1;
            while (i >= 0 && cut[i] == '9')
                cut[i--] = '0';
            if (i >= 0) {
                cut[i]++;
            } else { /* 99..9 -> 100..0 */
                cut[0] = '1';
                cx++;
            }
        }
        put_g(neg, cut, p, cx, p, text);
        if (strtod(text, NULL) == v)
            return p;
    }
    put_g(neg, dig, PREC_MAX, x, PREC_MAX, text);
    return PREC_MAX;
}

/* Digits 'v' needs to read back as itself, PREC_MIN to PREC_MAX. */
static int real_precision(double v)
{
    char text[REAL_TEXT];

    return real_text(v, text);
}

/*
 * 'v' in its shortest text, as jansson writes a real: a ".0" when it
 * would read as an integer, and no '+' or leading zeros in the exponent
 * ("1e-07" is "1e-7").  Returns the length, or 0 for a non-finite real
 * (which JSON cannot hold).
 */
static size_t real_json(double v, char *text)
{
    if (!isfinite(v))
        return 0;
    real_text(v, text);
    size_t len = strlen(text);
    if (strspn(text, "0123456789-") == len) {
        memcpy(text + len, ".0", 3);
        return len + 2;
    }
    char *e = strchr(text, 'e');
    if (e) {
        char *digits = e + 1 + (e[1] == '-' || e[1] == '+');
        char *from = digits;
        while (*from == '0' && from[1])
            from++;
        char *to = e[1] == '+' ? e + 1 : digits;
        memmove(to, from, strlen(from) + 1);
        len = strlen(text);
    }
    return len;
}

/* The precision 'j' needs, at least 'have'; stops early at PREC_MAX. */
static int need(const json_t *j, int have)
{
    const char *key;
    json_t *v;
    size_t i;

    if (have >= PREC_MAX)
        return have;
    switch (json_typeof(j)) {
    case JSON_REAL: {
        int p = real_precision(json_real_value(j));
        return p > have ? p : have;
    }
    case JSON_OBJECT:
        json_object_foreach((json_t *)j, key, v)
        {
            have = need(v, have);
            if (have >= PREC_MAX)
                break;
        }
        return have;
    case JSON_ARRAY:
        json_array_foreach((json_t *)j, i, v)
        {
            have = need(v, have);
            if (have >= PREC_MAX)
                break;
        }
        return have;
    default:
        return have;
    }
}

int sl_jsontext_precision(const json_t *j)
{
    return j ? need(j, PREC_MIN) : PREC_MIN;
}

/* A scalar as jansson prints it with 'flags'. */
static int put_scalar(struct sl_strbuf *o, const json_t *j, size_t flags)
{
    char buf[SCALAR_BUF];
    size_t n = json_dumpb(j, buf, sizeof(buf), flags | JSON_ENCODE_ANY);

    if (n == 0)
        return -1; /* a non-finite real, or out of memory */
    if (n <= sizeof(buf))
        return sl_strbuf_add(o, buf, n);
    char *big = malloc(n);
    if (!big)
        return -1;
    int rc = json_dumpb(j, big, n, flags | JSON_ENCODE_ANY) == n
                 ? sl_strbuf_add(o, big, n)
                 : -1;
    free(big);
    return rc;
}

/* 'j' as compact text, each real in its own shortest precision. */
static int put_value(struct sl_strbuf *o, const json_t *j, size_t flags,
                     int depth)
{
    const char *key;
    json_t *v;
    size_t i;

    if (depth > DEPTH_MAX)
        return -1;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        if (sl_strbuf_add(o, "{", 1))
            return -1;
        i = 0;
        json_object_foreach((json_t *)j, key, v)
        {
            json_t *k = json_stringn_nocheck(key, strlen(key));
            int rc = !k || (i++ && sl_strbuf_add(o, ",", 1)) ||
                     put_scalar(o, k, flags) || sl_strbuf_add(o, ":", 1) ||
                     put_value(o, v, flags, depth + 1);
            json_decref(k);
            if (rc)
                return -1;
        }
        return sl_strbuf_add(o, "}", 1);
    case JSON_ARRAY:
        if (sl_strbuf_add(o, "[", 1))
            return -1;
        json_array_foreach((json_t *)j, i, v)
        {
            if ((i && sl_strbuf_add(o, ",", 1)) ||
                put_value(o, v, flags, depth + 1))
                return -1;
        }
        return sl_strbuf_add(o, "]", 1);
    case JSON_REAL: {
        char text[REAL_TEXT];
        size_t n = real_json(json_real_value(j), text);
        return n ? sl_strbuf_add(o, text, n) : -1;
    }
    default:
        return put_scalar(o, j, flags);
    }
}

char *sl_jsontext_dumps(const json_t *j, size_t flags)
{
    if (!j)
        return NULL;
    flags &= ~(size_t)JSON_REAL_PRECISION(PREC_MASK);
    /* Indented, sorted or embedded text: jansson writes the structure,
     * with one precision for the whole document. */
    if (!(flags & JSON_COMPACT) || JSON_INDENT(flags) ||
        (flags & (JSON_SORT_KEYS | JSON_EMBED)))
        return json_dumps(j, flags |
                                 JSON_REAL_PRECISION(sl_jsontext_precision(j)));
    if (!(flags & JSON_ENCODE_ANY) && !json_is_object(j) && !json_is_array(j))
        return NULL; /* as json_dumps() */
    struct sl_strbuf o = {0};
    if (put_value(&o, j, flags & SCALAR_FLAGS, 0)) {
        sl_strbuf_free(&o);
        return NULL;
    }
    return sl_strbuf_done(&o);
}
