/*
 * sl_json_loadb_fast(): yajl's callback parser reads the text, and each
 * callback adds one jansson value to the innermost open container, so
 * the tree is the one json_loadb() builds.  Whatever jansson could read
 * differently ends the parse, and the caller asks jansson.
 */
#include "jsonload.h"

#include "strbuf.h"

#include <yajl/yajl_parse.h>

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* jansson's JSON_PARSER_MAX_DEPTH: each value, scalars too, is a level. */
#define MAX_DEPTH 2048

struct load {
    yajl_handle h;         /* the parser calling back */
    size_t end;            /* bytes up to the top level's closing bracket */
    json_t *root;          /* the top-level object or array; owned */
    json_t **open;         /* open containers, outermost first; borrowed */
    size_t depth;          /* entries used in 'open' */
    size_t cap;            /* entries allocated in 'open' */
    struct sl_strbuf key;  /* the key of the next member of an object */
    struct sl_strbuf text; /* a number's text, NUL-terminated */
};

/*
 * True when no byte of s[0..len) is past 0x7f.  yajl has checked the
 * UTF-8 of every string and refused raw control characters (and "\u"
 * never reaches yajl), so ASCII text is valid to jansson too: only text
 * with other bytes needs jansson's stricter check (yajl lets overlong
 * forms, surrogates and code points past U+10FFFF through).
 */
static bool is_ascii(const unsigned char *s, size_t len)
{
    uint64_t any = 0, w;
    size_t i = 0;

    for (; i + sizeof(w) <= len; i += sizeof(w)) {
        memcpy(&w, s + i, sizeof(w));
        any |= w;
    }
    for (; i < len; i++)
        any |= s[i];
    return (any & 0x8080808080808080u) == 0;
}

/*
 * Put the new value 'v' where the text has it: in the innermost open
 * container, under the pending key for an object.  Takes 'v' (released
 * on failure).  1, or 0 to stop the parse.
 */
static int add(struct load *ld, json_t *v)
{
    json_t *parent;

    if (!v)
        return 0;
    if (ld->depth + 1 > MAX_DEPTH) {
        json_decref(v);
        return 0;
    }
    if (ld->depth == 0) { /* the top level: jansson wants [ or { */
        if (ld->root || !(json_is_object(v) || json_is_array(v))) {
            json_decref(v);
            return 0;
        }
        ld->root = v;
        return 1;
    }
    parent = ld->open[ld->depth - 1];
    if (json_is_object(parent)) {
        const char *key = ld->key.p ? ld->key.p : "";
        /* the last duplicate wins, as in jansson; its check of non-ASCII */
        if (is_ascii((const unsigned char *)key, ld->key.len))
            return json_object_setn_new_nocheck(parent, key, ld->key.len, v) ==
                   0;
        return json_object_setn_new(parent, key, ld->key.len, v) == 0;
    }
    return json_array_append_new(parent, v) == 0;
}

/* Add the new container 'v' and make it the innermost.  1, or 0. */
static int open_container(struct load *ld, json_t *v)
{
    if (!add(ld, v))
        return 0;
    if (ld->depth == ld->cap) {
        size_t cap = ld->cap ? ld->cap * 2 : 16;
        json_t **grown = realloc(ld->open, cap * sizeof(*grown));
        if (!grown)
            return 0;
        ld->open = grown;
        ld->cap = cap;
    }
    ld->open[ld->depth++] = v; /* owned by its parent, or ld->root */
    return 1;
}

static int on_null(void *ctx)
{
    return add(ctx, json_null());
}

static int on_boolean(void *ctx, int b)
{
    return add(ctx, json_boolean(b));
}

/*
 * A number as jansson reads it: an integer when the text has no '.', 'e'
 * or 'E' (one outside json_int_t is an error to jansson), else a real
 * from strtod() (overflow to infinity is an error, underflow is not).
 */
static int on_number(void *ctx, const char *s, size_t len)
{
    struct load *ld = ctx;
    char *end;

    ld->text.len = 0;
    if (sl_strbuf_add(&ld->text, s, len) < 0)
        return 0;
    errno = 0;
    if (!memchr(s, '.', len) && !memchr(s, 'e', len) && !memchr(s, 'E', len)) {
        json_int_t i = strtoll(ld->text.p, &end, 10);
        if (errno == ERANGE || end != ld->text.p + len)
            return 0;
        return add(ld, json_integer(i));
    }
    double d = strtod(ld->text.p, &end);
    /* end: a locale whose decimal point is not '.' reads less */
    if ((errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL)) ||
        end != ld->text.p + len)
        return 0;
    return add(ld, json_real(d));
}

static int on_string(void *ctx, const unsigned char *s, size_t len)
{
    const char *str = (const char *)s;

    /* json_stringn() refuses what jansson's parser refuses */
    return add(ctx, is_ascii(s, len) ? json_stringn_nocheck(str, len)
                                     : json_stringn(str, len));
}

static int on_start_map(void *ctx)
{
    return open_container(ctx, json_object());
}

static int on_map_key(void *ctx, const unsigned char *s, size_t len)
{
    struct load *ld = ctx;

    ld->key.len = 0;
    if (sl_strbuf_add(&ld->key, s, len) < 0)
        return 0;
    return 1;
}

static int on_end_container(void *ctx)
{
    struct load *ld = ctx;

    if (--ld->depth == 0)
        ld->end = yajl_get_bytes_consumed(ld->h);
    return 1;
}

static int on_start_array(void *ctx)
{
    return open_container(ctx, json_array());
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_container,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_container,
};

/*
 * Text that yajl and jansson read differently however it continues: the
 * bytes "\u" (yajl makes a lone surrogate '?', jansson refuses it; \u0000
 * and the pairs are left to jansson too), and a form feed or vertical tab
 * (whitespace to yajl only).  memchr() finds these rare bytes at a small
 * part of a lexer's cost.
 */
static bool jansson_only(const char *buf, size_t len)
{
    const char *end = buf + len;
    const char *p;

    for (p = memchr(buf, '\\', len); p; p = memchr(p, '\\', end - p)) {
        if (++p < end && *p == 'u')
            return true;
    }
    return memchr(buf, '\f', len) || memchr(buf, '\v', len);
}

json_t *sl_json_loadb_fast(const char *buf, size_t len)
{
    struct load ld = {0};
    yajl_handle h;
    bool ok;

    if (!buf || len == 0 || jansson_only(buf, len))
        return NULL;
    h = yajl_alloc(&callbacks, NULL, &ld);
    if (!h)
        return NULL;
    /* The defaults are strict: no comments, no trailing bytes, one
     * value, UTF-8 checked. */
    ld.h = h;
    ok = yajl_parse(h, (const unsigned char *)buf, len) == yajl_status_ok &&
         yajl_complete_parse(h) == yajl_status_ok && ld.root;
    /* yajl 2.1 takes a string left open after the value for one still
     * coming, and then calls the text complete: jansson refuses it. */
    ok = ok && !memchr(buf + ld.end, '"', len - ld.end);
    yajl_free(h);
    free(ld.open);
    sl_strbuf_free(&ld.key);
    sl_strbuf_free(&ld.text);
    if (!ok) {
        json_decref(ld.root);
        return NULL;
    }
    return ld.root;
}
