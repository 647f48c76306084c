/*
 * Shortest round-trip printing of reals for jansson documents.  Compact
 * text is written here, structure by structure, each real in the fewest
 * digits that read back as the same double, plain ASCII strings and
 * integers directly, and any other scalar by jansson (so strings are
 * escaped exactly as json_dumps() does).
 */
#include "jsontext.h"
#include "strbuf.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
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

/* 10^k as an integer, k <= PREC_MAX. */
static const uint64_t pow10_u[PREC_MAX + 1] = {1u,
                                               10u,
                                               100u,
                                               1000u,
                                               10000u,
                                               100000u,
                                               1000000u,
                                               10000000u,
                                               100000000u,
                                               1000000000u,
                                               10000000000u,
                                               100000000000u,
                                               1000000000000u,
                                               10000000000000u,
                                               100000000000000u,
                                               1000000000000000u,
                                               10000000000000000u,
                                               100000000000000000u};

/* The 'ndig' decimal digits of 'n' (< 10^ndig, leading zeros kept). */
static void put_digits(uint64_t n, int ndig, char *dig)
{
    static const char pairs[] = "00010203040506070809"
                                "10111213141516171819"
                                "20212223242526272829"
                                "30313233343536373839"
                                "40414243444546474849"
                                "50515253545556575859"
                                "60616263646566676869"
                                "70717273747576777879"
                                "80818283848586878889"
                                "90919293949596979899";
    int i = ndig;

    while (i >= 2) {
        unsigned r = (unsigned)(n % 100);
        n /= 100;
        i -= 2;
        dig[i] = pairs[2 * r];
        dig[i + 1] = pairs[2 * r + 1];
    }
    if (i)
        dig[0] = (char)('0' + n % 10);
}

#if LDBL_MANT_DIG >= 64 && FLT_EVAL_METHOD == 0
#define FAST_DIGITS 1    /* long double has >= 64 bits, double math is exact */
#define POW10_EXACT 27   /* 10^27 = 2^27 * 5^27 and 5^27 < 2^64 */
#define POW10_DBL 22     /* 10^22: 5^22 < 2^53 */
#define TIE_MARGIN 0.02L /* |fraction - 0.5| below which printf decides */

/* 10^k, exact as long double (and as double up to 10^POW10_DBL). */
static const long double pow10_ld[POW10_EXACT + 1] = {
    1e0L,  1e1L,  1e2L,  1e3L,  1e4L,  1e5L,  1e6L,  1e7L,  1e8L,  1e9L,
    1e10L, 1e11L, 1e12L, 1e13L, 1e14L, 1e15L, 1e16L, 1e17L, 1e18L, 1e19L,
    1e20L, 1e21L, 1e22L, 1e23L, 1e24L, 1e25L, 1e26L, 1e27L};
static const double pow10_d[POW10_DBL + 1] = {
    1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/*
 * The PREC_MAX digits of "%.*e" (PREC_MAX - 1) of 'a' (finite, > 0) as
 * the integer *n (10^16 <= *n < 10^17) and its decimal exponent *x,
 * without printf: a times 10^(16 - x) in long double is a * 10^k rounded
 * once, off by at most half its ulp (2^-8 below 10^17), so its nearest
 * integer is the correctly rounded one unless the fraction lies within
 * TIE_MARGIN of one half.  Returns 0, or -1 when printf must decide (that
 * near-tie, or 'a' outside about [1e-11, 1e17), where 10^k is not exact).
 */
static int fast_digits(double a, uint64_t *n, int *x)
{
    uint64_t bits;

    memcpy(&bits, &a, sizeof(bits));
    int e2 = (int)(bits >> 52) - 1022; /* 2^(e2-1) <= a < 2^e2 */
    if (e2 < -40 || e2 > 60)
        return -1; /* keeps 16 - ex within [0, POW10_EXACT] below */
    /* floor((e2 - 1) * log10(2)), exact for |e2| < 1000; or one low */
    int ex = (((e2 - 1) * 78913 + (1 << 30)) >> 18) - (1 << 12);
    if (ex < 16 - POW10_EXACT || ex > 16)
        return -1;
    long double p = (long double)a * pow10_ld[16 - ex];
    if (p >= 1e17L) {
        if (++ex > 16)
            return -1;
        p = (long double)a * pow10_ld[16 - ex];
    }
    if (p < 1e16L || p >= 1e17L)
        return -1; /* a rounded across a power of ten */
    uint64_t i = (uint64_t)p;
    long double frac = p - (long double)i; /* exact */
    if (frac > 0.5L - TIE_MARGIN && frac < 0.5L + TIE_MARGIN)
        return -1;
    if (frac > 0.5L && ++i == pow10_u[PREC_MAX])
        return -1; /* 9.99..95 rounds to 10^17: rare, printf's */
    *n = i;
    *x = ex;
    return 0;
}

/*
 * 1 when 'c' times 10^e reads back as 'a' (> 0), 0 when not, -1 when this
 * cannot tell.  Clinger's fast path when 'c' fits a double's 53 bits and
 * 10^|e| is a double: one correctly rounded product or quotient is what
 * strtod() gives.  Else, with a 64-bit long double, the product rounded
 * to 64 bits and then to 53 is the correctly rounded one unless the first
 * rounding lands on a midpoint between two doubles (its 11 low bits read
 * 10000000000): rounding is monotonic and keeps those midpoints.
 */
static int fast_reads_back(uint64_t c, int e, double a)
{
    if (c <= (UINT64_C(1) << 53) && e >= -POW10_DBL && e <= POW10_DBL) {
        double r = e < 0 ? (double)c / pow10_d[-e] : (double)c * pow10_d[e];
        return r == a;
    }
#if LDBL_MANT_DIG == 64
    if (e >= -POW10_EXACT && e <= POW10_EXACT) {
        long double l = e < 0 ? (long double)c / pow10_ld[-e]
                              : (long double)c * pow10_ld[e];
        int le;
        uint64_t m = (uint64_t)ldexpl(frexpl(l, &le), 64);
        if ((m & 0x7ff) == 0x400)
            return -1;
        return (double)l == a;
    }
#endif
    return -1;
}
#endif

/*
 * Print 'v' into text[REAL_TEXT] in the fewest digits, PREC_MIN to
 * PREC_MAX, that read back as 'v'; returns that precision.  The text is
 * "%.*g"'s, at a fraction of its cost: v's PREC_MAX digits come from
 * fast_digits() (or one snprintf when it cannot tell), and the shorter
 * candidates are those digits rounded, each checked by reading it back
 * (fast_reads_back(), else strtod()).  Rounding the digits instead of v
 * can only go wrong when the digits after the cut read 5000...: v itself
 * may lie on either side of the half, and printf decides.
 */
static int real_text(double v, char *text)
{
    char dig[PREC_MAX];
    int neg = signbit(v) != 0;
    uint64_t n = 0; /* v's PREC_MAX digits */
    int x;          /* and its decimal exponent */

#ifdef FAST_DIGITS
    if (v == 0 || fast_digits(fabs(v), &n, &x) < 0)
#endif
    {
        char full[REAL_TEXT];
        /* "-d.dddddddddddddddde+XX" */
        snprintf(full, sizeof(full), "%.*e", PREC_MAX - 1, v);
        const char *s = full + (full[0] == '-');
        n = (uint64_t)(s[0] - '0');
        for (int i = 0; i < PREC_MAX - 1; i++)
            n = n * 10 + (uint64_t)(s[2 + i] - '0');
        x = atoi(s + 2 + PREC_MAX - 1 + 1);
    }

    for (int p = PREC_MIN; p < PREC_MAX; p++) {
        uint64_t div = pow10_u[PREC_MAX - p], half = div / 2;
        uint64_t q = n / div, r = n % div;
        int cx = x;
        if (r == half) {
            /* digits ...5000: v may lie on either side of the half */
            snprintf(text, REAL_TEXT, "%.*g", p, v);
            if (strtod(text, NULL) == v)
                return p;
            continue;
        }
        if (r > half && ++q == pow10_u[p]) { /* 99..9 -> 100..0 */
            q = pow10_u[p - 1];
            cx++;
        }
#ifdef FAST_DIGITS
        int back = v != 0 ? fast_reads_back(q, cx - p + 1, fabs(v)) : -1;
        if (back == 0)
            continue;
#else
        int back = -1;
#endif
        put_digits(q, p, dig);
        put_g(neg, dig, p, cx, p, text);
        if (back == 1 || strtod(text, NULL) == v)
            return p;
    }
    put_digits(n, PREC_MAX, dig);
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

/*
 * s[0..len) as a JSON string when jansson would print it verbatim with
 * 'flags': no '"', '\\' or control byte, no '/' under JSON_ESCAPE_SLASH,
 * no byte above 0x7f under JSON_ENSURE_ASCII.  Keys, labels and most
 * texts are such strings, and jansson's writer costs ~1,300 instructions a
 * scalar.  1 when written, 0 when jansson must print it (escapes), -1 when
 * out of memory.
 */
static int put_plain_string(struct sl_strbuf *o, const char *s, size_t len,
                            size_t flags)
{
    int slash = (flags & JSON_ESCAPE_SLASH) != 0;
    int ascii = (flags & JSON_ENSURE_ASCII) != 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\' || (c == '/' && slash) ||
            (c > 0x7f && ascii))
            return 0;
    }
    return sl_strbuf_add(o, "\"", 1) || sl_strbuf_add(o, s, len) ||
                   sl_strbuf_add(o, "\"", 1)
               ? -1
               : 1;
}

/* 'v' in decimal, as jansson's "%" JSON_INTEGER_FORMAT. */
static int put_integer(struct sl_strbuf *o, json_int_t v)
{
    char buf[24];
    char *end = buf + sizeof(buf), *p = end;
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do
        *--p = (char)('0' + u % 10);
    while (u /= 10);
    if (v < 0)
        *--p = '-';
    return sl_strbuf_add(o, p, (size_t)(end - p));
}

int sl_jsontext_put_plain(struct sl_strbuf *o, const json_t *j, size_t flags)
{
    if (json_is_string(j))
        return put_plain_string(o, json_string_value(j), json_string_length(j),
                                flags);
    if (json_is_integer(j))
        return put_integer(o, json_integer_value(j)) ? -1 : 1;
    return 0;
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
            if (i++ && sl_strbuf_add(o, ",", 1))
                return -1;
            int plain = put_plain_string(o, key, strlen(key), flags);
            if (plain == 0) {
                json_t *k = json_stringn_nocheck(key, strlen(key));
                plain = k && !put_scalar(o, k, flags) ? 1 : -1;
                json_decref(k);
            }
            if (plain < 0 || sl_strbuf_add(o, ":", 1) ||
                put_value(o, v, flags, depth + 1))
                return -1;
        }
        return sl_strbuf_add(o, "}", 1);
    case JSON_ARRAY:
        if (sl_strbuf_add(o, "[", 1))
            return -1;
        json_array_foreach((json_t *)j, i, v)
        {
            if (json_is_real(v)) { /* a vector's: comma and real at once */
                char text[1 + REAL_TEXT];
                size_t n = real_json(json_real_value(v), text + 1);
                text[0] = ',';
                if (!n || sl_strbuf_add(o, text + !i, n + (i != 0)))
                    return -1;
                continue;
            }
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
    case JSON_STRING:
    case JSON_INTEGER: {
        int plain = sl_jsontext_put_plain(o, j, flags);
        return plain ? (plain < 0 ? -1 : 0) : put_scalar(o, j, flags);
    }
    case JSON_TRUE:
        return sl_strbuf_add(o, "true", 4);
    case JSON_FALSE:
        return sl_strbuf_add(o, "false", 5);
    case JSON_NULL:
        return sl_strbuf_add(o, "null", 4);
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
