/*
 * A quick reader for the JSON most payloads and replies are: objects,
 * arrays, strings with the short escapes, integers, reals, literals.  It
 * builds the same jansson value json_loadb() builds, without jansson's
 * per-character lexer; anything else (errors included) it leaves to
 * jansson, so values and error texts are jansson's.
 */
#include "template.h"

#include "utf8.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QUICK_MAX_DEPTH 64  /* deeper: jansson (its limit is 2048) */
#define QUICK_MAX_NUMBER 64 /* longer number text: jansson */

struct reader {
    const char *p;   /* next byte */
    const char *end; /* end of the text */
    char *buf;       /* unescaped string, grown as needed */
    size_t buf_size; /* bytes at buf */
};

/* jansson's whitespace: space, tab, LF, CR. */
static void skip_ws(struct reader *r)
{
    while (r->p < r->end &&
           (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/*
 * The string at r->p (just past its opening quote) into *sp, *np: a
 * pointer into the text when it has no escape, else into r->buf.  false
 * for what jansson refuses or this reader leaves to it (\u escapes).
 */
static bool read_string(struct reader *r, const char **sp, size_t *np)
{
    const char *s = r->p;
    bool ascii = true;

    while (r->p < r->end && *r->p != '"' && *r->p != '\\') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20)
            return false;
        ascii &= c < 0x80;
        r->p++;
    }
    if (r->p >= r->end)
        return false;
    size_t n = (size_t)(r->p - s);
    if (*r->p == '"') {
        if (!ascii && sl_utf8_valid_prefix(s, n) != n)
            return false;
        r->p++;
        *sp = s;
        *np = n;
        return true;
    }
    /* Escapes: unescape into buf (never longer than the text). */
    size_t o = 0, room = (size_t)(r->end - s);
    if (room > r->buf_size) {
        char *b = realloc(r->buf, room);
        if (!b)
            return false;
        r->buf = b;
        r->buf_size = room;
    }
    memcpy(r->buf, s, n);
    o = n;
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p++;
        if (c < 0x20)
            return false;
        if (c == '\\') {
            if (r->p >= r->end)
                return false;
            switch (*r->p++) {
            case '"':
                c = '"';
                break;
            case '\\':
                c = '\\';
                break;
            case '/':
                c = '/';
                break;
            case 'b':
                c = '\b';
                break;
            case 'f':
                c = '\f';
                break;
            case 'n':
                c = '\n';
                break;
            case 'r':
                c = '\r';
                break;
            case 't':
                c = '\t';
                break;
            default:
                return false; /* \u, or not an escape */
            }
        } else if (c >= 0x80) {
            ascii = false;
        }
        r->buf[o++] = (char)c;
    }
    if (r->p >= r->end)
        return false;
    r->p++;
    if (!ascii && sl_utf8_valid_prefix(r->buf, o) != o)
        return false;
    *sp = r->buf;
    *np = o;
    return true;
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* A number as jansson lexes it: an integer when it has no fraction and
 * no exponent, else a real.  NULL where jansson fails or could. */
static json_t *read_number(struct reader *r)
{
    const char *s = r->p, *p = r->p, *end = r->end;

    if (p < end && *p == '-')
        p++;
    if (p >= end || !is_digit(*p))
        return NULL;
    if (*p == '0') {
        p++;
        if (p < end && is_digit(*p))
            return NULL; /* jansson: invalid token */
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    bool real = false;
    if (p < end && *p == '.') {
        real = true;
        if (++p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = true;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
    }
    size_t n = (size_t)(p - s);
    r->p = p;
    if (!real) {
        /* 18 digits never overflow: jansson's strtoll() range errors are
         * its own to report. */
        size_t digits = n - (*s == '-');
        if (digits > 18)
            return NULL;
        json_int_t v = 0;
        for (const char *q = s + (*s == '-'); q < p; q++)
            v = v * 10 + (*q - '0');
        return json_integer(*s == '-' ? -v : v);
    }
    char text[QUICK_MAX_NUMBER + 1];
    if (n > QUICK_MAX_NUMBER)
        return NULL;
    memcpy(text, s, n);
    text[n] = '\0';
    errno = 0;
    double d = strtod(text, NULL);
    /* jansson refuses an overflow ("real number overflow"). */
    if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
        return NULL;
    return json_real(d);
}

static json_t *read_value(struct reader *r, int depth);

static json_t *read_object(struct reader *r, int depth)
{
    json_t *obj = json_object();

    if (!obj)
        return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return obj;
    }
    for (;;) {
        const char *k;
        size_t kn;
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            goto fail;
        r->p++;
        if (!read_string(r, &k, &kn))
            goto fail;
        /* The key may live in buf, which the value can reuse. */
        char kbuf[128], *key = kn < sizeof(kbuf) ? kbuf : malloc(kn + 1);
        if (!key)
            goto fail;
        memcpy(key, k, kn);
        key[kn] = '\0';
        skip_ws(r);
        json_t *v = NULL;
        if (r->p < r->end && *r->p == ':') {
            r->p++;
            v = read_value(r, depth + 1);
        }
        int err = !v || json_object_setn_new_nocheck(obj, key, kn, v);
        if (key != kbuf)
            free(key);
        if (err)
            goto fail;
        skip_ws(r);
        if (r->p >= r->end)
            goto fail;
        if (*r->p == '}') {
            r->p++;
            return obj;
        }
        if (*r->p++ != ',')
            goto fail;
    }
fail:
    json_decref(obj);
    return NULL;
}

static json_t *read_array(struct reader *r, int depth)
{
    json_t *arr = json_array();

    if (!arr)
        return NULL;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return arr;
    }
    for (;;) {
        json_t *v = read_value(r, depth + 1);
        if (!v || json_array_append_new(arr, v))
            goto fail;
        skip_ws(r);
        if (r->p >= r->end)
            goto fail;
        if (*r->p == ']') {
            r->p++;
            return arr;
        }
        if (*r->p++ != ',')
            goto fail;
    }
fail:
    json_decref(arr);
    return NULL;
}

/* true, false, null: followed by a letter, jansson sees another word. */
static json_t *read_literal(struct reader *r, const char *word, json_t *v)
{
    size_t n = strlen(word);

    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n))
        return NULL;
    r->p += n;
    if (r->p < r->end &&
        ((*r->p >= 'a' && *r->p <= 'z') || (*r->p >= 'A' && *r->p <= 'Z')))
        return NULL;
    return v;
}

static json_t *read_value(struct reader *r, int depth)
{
    const char *s;
    size_t n;

    if (depth > QUICK_MAX_DEPTH)
        return NULL;
    skip_ws(r);
    if (r->p >= r->end)
        return NULL;
    switch (*r->p) {
    case '{':
        r->p++;
        return read_object(r, depth);
    case '[':
        r->p++;
        return read_array(r, depth);
    case '"':
        r->p++;
        return read_string(r, &s, &n) ? json_stringn_nocheck(s, n) : NULL;
    case 't':
        return read_literal(r, "true", json_true());
    case 'f':
        return read_literal(r, "false", json_false());
    case 'n':
        return read_literal(r, "null", json_null());
    default:
        return read_number(r);
    }
}

json_t *sl_template_json_quick(const char *text, size_t len)
{
    struct reader r = {text, text + len, NULL, 0};
    json_t *v = NULL;

    if (!text)
        return NULL;
    skip_ws(&r);
    /* Without JSON_DECODE_ANY jansson wants an object or an array. */
    if (r.p < r.end && (*r.p == '{' || *r.p == '['))
        v = read_value(&r, 1);
    skip_ws(&r);
    if (v && r.p != r.end) {
        json_decref(v);
        v = NULL;
    }
    free(r.buf);
    return v;
}
