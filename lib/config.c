/*
 * The pipeline file loader: libfyaml builds the document, then one walk
 * driven by the schema tables (config_schema.c) interpolates ${VAR}, checks
 * types, ranges and keys, and fills struct sl_config, collecting every
 * error with its file:line:col and key path.
 */
#include "config.h"

#include "clock.h"
#include "config_schema.h"
#include "err.h"
#include "secret.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_VALUE_BYTES (1 << 20) /* a scalar after interpolation */
#define MAX_PATH 512              /* key paths in messages */
#define GUARD_MS 10000            /* the guard child's time to parse */

struct sl_config_ctx {
    const char *file;              /* name used in messages */
    struct sl_config_errors *errs; /* where errors go */
    size_t nerr;                   /* errors reported for this file */
    bool oom;                      /* an allocation failed */
    bool guard;                    /* try libfyaml in a child first */
    struct fy_node *root;          /* the document's root, once built */
};

/* A place in the file, 1-based; line 0 when unknown. */
struct mark {
    int line;   /* 1-based */
    int column; /* 1-based */
};

/* ---- errors ---- */

/*
 * A malloc'd copy of 'text' that is one line of UTF-8 text whatever a
 * ${VAR} or a multi-line scalar put in it: control characters become \n,
 * \r, \t or \xNN, and invalid UTF-8 \xNN.  NULL when memory is short.
 */
static char *one_line(const char *text)
{
    size_t len = strlen(text), o = 0;
    char *utf8 = malloc(4 * len + 4), *out = malloc(16 * len + 4);

    if (!utf8 || !out) {
        free(utf8);
        free(out);
        return NULL;
    }
    sl_utf8_printable(text, len, utf8, 4 * len + 4);
    for (const unsigned char *c = (const unsigned char *)utf8; *c; c++) {
        if (*c == '\n')
            o += (size_t)sprintf(out + o, "\\n");
        else if (*c == '\r')
            o += (size_t)sprintf(out + o, "\\r");
        else if (*c == '\t')
            o += (size_t)sprintf(out + o, "\\t");
        else if (*c < 0x20 || *c == 0x7f)
            o += (size_t)sprintf(out + o, "\\x%02x", *c);
        else
            out[o++] = (char)*c;
    }
    out[o] = '\0';
    free(utf8);
    return out;
}

/*
 * Keep error 'text' at 'm': 'msg' is what is wrong, 'path' its key path
 * (NULL or "": none).
 */
static void add_error(struct sl_config_ctx *ctx, struct mark m,
                      const char *text, const char *msg, const char *path)
{
    struct sl_config_errors *errs = ctx->errs;
    struct sl_config_error *items, e = {.line = m.line, .column = m.column};

    ctx->nerr++;
    if (errs->cnt >= SL_CONFIG_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    e.text = one_line(text);
    e.file = one_line(ctx->file);
    e.message = one_line(msg);
    e.path = path && *path ? one_line(path) : NULL;
    items = realloc(errs->items, (errs->cnt + 1) * sizeof(*items));
    if (items)
        errs->items = items;
    if (!e.text || !e.file || !e.message || (path && *path && !e.path) ||
        !items) {
        free(e.text);
        free(e.file);
        free(e.message);
        free(e.path);
        ctx->oom = true;
        return;
    }
    items[errs->cnt++] = e;
}

static struct mark node_mark(struct fy_node *fyn);

/*
 * The value under key 'key' (len bytes) of mapping 'map', aliases not
 * resolved; NULL when none.  Keys are compared as text (a key may hold
 * dots, as Kafka properties do, or any character).
 */
static struct fy_node *lookup_n(struct fy_node *map, const char *key,
                                size_t len)
{
    struct fy_node_pair *fynp;
    void *it = NULL;

    if (!fy_node_is_mapping(map))
        return NULL;
    while ((fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp);
        size_t n;
        const char *text = keyn && fy_node_is_scalar(keyn)
                               ? fy_node_get_scalar(keyn, &n)
                               : NULL;
        if (text && n == len && !memcmp(text, key, len))
            return fy_node_pair_value(fynp);
    }
    return NULL;
}

/* The last place of 'fyn' (its last scalar's end); {0, 0} when none. */
static struct mark node_end(struct fy_node *fyn)
{
    struct mark none = {0, 0};
    int n;

    if (!fyn)
        return none;
    if (fy_node_is_alias(fyn) || fy_node_is_scalar(fyn)) {
        struct fy_token *fyt = fy_node_get_scalar_token(fyn);
        const struct fy_mark *fym = fyt ? fy_token_end_mark(fyt) : NULL;
        return fym ? (struct mark){fym->line + 1, fym->column + 1} : none;
    }
    if (fy_node_is_mapping(fyn)) {
        n = fy_node_mapping_item_count(fyn);
        return n > 0 ? node_end(fy_node_pair_value(
                           fy_node_mapping_get_by_index(fyn, n - 1)))
                     : none;
    }
    n = fy_node_sequence_item_count(fyn);
    return n > 0 ? node_end(fy_node_sequence_get_by_index(fyn, n - 1)) : none;
}

/* True when 'm' lies in [from, to]. */
static bool within(struct mark m, struct mark from, struct mark to)
{
    return from.line && to.line &&
           (m.line > from.line ||
            (m.line == from.line && m.column >= from.column)) &&
           (m.line < to.line || (m.line == to.line && m.column <= to.column));
}

/*
 * When key path 'path' passes through an alias ('*name') in the document,
 * the outermost such alias: the place where the anchored value is used.
 * Returns NULL when it passes through none; *lastp: the alias is the
 * path's own value, nothing below it.
 */
static struct fy_node *alias_on_path(struct fy_node *root, const char *path,
                                     bool *lastp)
{
    struct fy_node *fyn = root, *alias = NULL;
    const char *p = path;

    *lastp = false;
    while (fyn && *p) {
        if (fy_node_is_alias(fyn)) {
            alias = alias ? alias : fyn;
            fyn = fy_node_resolve_alias(fyn);
            continue;
        }
        if (*p == '.') {
            p++;
        } else if (*p == '[') {
            char *end;
            long i = strtol(p + 1, &end, 10);
            if (*end != ']' || !fy_node_is_sequence(fyn))
                break;
            fyn = fy_node_sequence_get_by_index(fyn, (int)i);
            p = end + 1;
        } else {
            size_t n = strcspn(p, ".["), more = n;
            struct fy_node *val;
            while (!(val = lookup_n(fyn, p, more)) && p[more] == '.')
                more += 1 + strcspn(p + more + 1, ".[");
            fyn = val;
            p += val ? more : n;
        }
    }
    if (fyn && !*p && fy_node_is_alias(fyn) && !alias) {
        alias = fyn;
        *lastp = true;
    }
    return alias;
}

/* "FILE:L:C: <fmt> at <path>"; no " at" when path is NULL. */
static void vreport(struct sl_config_ctx *ctx, struct mark m, const char *path,
                    const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vreport(struct sl_config_ctx *ctx, struct mark m, const char *path,
                    const char *fmt, va_list ap)
{
    char msg[1024], via[192] = "", line[1800];
    bool last;
    struct fy_node *alias =
        ctx->root && path ? alias_on_path(ctx->root, path, &last) : NULL;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    if (alias) {
        /* An anchored value is right or wrong where it is used: point
         * there, and say where the value itself is written (or, for a
         * place outside it, such as the key a mapping misses, where it
         * starts).  An error about the alias's own key ('<<: *x') stays
         * at the key. */
        struct fy_node *target = fy_node_resolve_alias(alias);
        struct mark use = node_mark(alias), def = node_mark(target);
        const char *name = fy_node_get_scalar0(alias);

        if (!within(m, def, node_end(target))) {
            if (last && m.line == use.line)
                use = m; /* about the alias's own key: stays there */
            else
                m = def; /* a fallback place: where the value starts */
        }
        if (use.line && (use.line != m.line || use.column != m.column)) {
            if (m.line)
                snprintf(via, sizeof(via), " (through alias '*%.64s' to %d:%d)",
                         name ? name : "", m.line, m.column);
            else
                snprintf(via, sizeof(via), " (through alias '*%.64s')",
                         name ? name : "");
            m = use;
        }
    }
    if (m.line <= 0)
        m = (struct mark){1, 1};
    if (path && *path)
        snprintf(line, sizeof(line), "%s:%d:%d: %s%s at %s", ctx->file, m.line,
                 m.column, msg, via, path);
    else
        snprintf(line, sizeof(line), "%s:%d:%d: %s%s", ctx->file, m.line,
                 m.column, msg, via);
    strncat(msg, via, sizeof(msg) - strlen(msg) - 1);
    add_error(ctx, m, line, msg, path);
}

static void report(struct sl_config_ctx *ctx, struct mark m, const char *path,
                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void report(struct sl_config_ctx *ctx, struct mark m, const char *path,
                   const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, m, path, fmt, ap);
    va_end(ap);
}

/* An error about the file as a whole: "FILE: what". */
static void report_file(struct sl_config_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void report_file(struct sl_config_ctx *ctx, const char *fmt, ...)
{
    char msg[1024], line[1600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", ctx->file, msg);
    add_error(ctx, (struct mark){0, 0}, line, msg, NULL);
}

void sl_config_errors_clear(struct sl_config_errors *errs)
{
    if (!errs)
        return;
    for (size_t i = 0; i < errs->cnt; i++) {
        free(errs->items[i].text);
        free(errs->items[i].file);
        free(errs->items[i].path);
        free(errs->items[i].message);
    }
    free(errs->items);
    memset(errs, 0, sizeof(*errs));
}

/* Stable sort of items [from, cnt) by line, then column. */
static void sort_errors(struct sl_config_errors *errs, size_t from)
{
    for (size_t i = from + 1; i < errs->cnt; i++) {
        struct sl_config_error e = errs->items[i];
        size_t j = i;
        while (j > from && (errs->items[j - 1].line > e.line ||
                            (errs->items[j - 1].line == e.line &&
                             errs->items[j - 1].column > e.column))) {
            errs->items[j] = errs->items[j - 1];
            j--;
        }
        errs->items[j] = e;
    }
}

/* ---- nodes ---- */

static struct mark node_mark(struct fy_node *fyn)
{
    struct mark none = {0, 0};

    if (!fyn)
        return none;
    if (fy_node_is_scalar(fyn)) {
        struct fy_token *fyt = fy_node_get_scalar_token(fyn);
        const struct fy_mark *fym = fyt ? fy_token_start_mark(fyt) : NULL;
        enum fy_node_style style = fy_node_get_style(fyn);
        if (!fym)
            return none;
        /* Quoted scalars' and aliases' tokens start after the quote or
         * the '*': point at it. */
        if ((style == FYNS_SINGLE_QUOTED || style == FYNS_DOUBLE_QUOTED ||
             style == FYNS_ALIAS) &&
            fym->column > 0)
            return (struct mark){fym->line + 1, fym->column};
        return (struct mark){fym->line + 1, fym->column + 1};
    }
    if (fy_node_is_mapping(fyn)) {
        void *it = NULL;
        struct fy_node_pair *fynp = fy_node_mapping_iterate(fyn, &it);
        if (!fynp)
            return none;
        struct mark m = node_mark(fy_node_pair_key(fynp));
        return m.line ? m : node_mark(fy_node_pair_value(fynp));
    }
    if (fy_node_is_sequence(fyn)) {
        void *it = NULL;
        return node_mark(fy_node_sequence_iterate(fyn, &it));
    }
    return none;
}

/* The mark of 'fyn', or of 'fallback' when 'fyn' has none. */
static struct mark mark_or(struct fy_node *fyn, struct mark fallback)
{
    struct mark m = node_mark(fyn);
    return m.line ? m : fallback;
}

/* A plain empty, "~" or "null" scalar (or no node at all). */
static bool is_null(struct fy_node *fyn)
{
    const char *s;
    size_t len;

    if (!fyn)
        return true;
    if (!fy_node_is_scalar(fyn) || fy_node_get_style(fyn) != FYNS_PLAIN)
        return false;
    s = fy_node_get_scalar(fyn, &len);
    if (!s || len == 0)
        return true;
    return (len == 1 && s[0] == '~') ||
           (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
                         !memcmp(s, "NULL", 4)));
}

size_t sl_config_error_count(const struct sl_config_ctx *ctx)
{
    return ctx->nerr;
}

bool sl_config_is_null(struct fy_node *fyn)
{
    return is_null(fyn);
}

struct fy_node *sl_config_lookup(struct fy_node *map, const char *key)
{
    struct fy_node *fyn;

    if (!map || !fy_node_is_mapping(map))
        return NULL;
    fyn = fy_node_mapping_lookup_by_string(map, key, FY_NT);
    return fyn && fy_node_is_alias(fyn) ? fy_node_resolve_alias(fyn) : fyn;
}

void sl_config_report(struct sl_config_ctx *ctx, struct fy_node *node,
                      struct fy_node *map, const char *path, const char *fmt,
                      ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, mark_or(node, node_mark(map)), path, fmt, ap);
    va_end(ap);
}

/* "a mapping", "a list", "an empty value" or "'text'" for messages. */
static const char *describe_node(struct fy_node *fyn, const char *text,
                                 char *buf, size_t size)
{
    if (is_null(fyn))
        return "an empty value";
    if (fy_node_is_mapping(fyn))
        return "a mapping";
    if (fy_node_is_sequence(fyn))
        return "a list";
    if (!text) {
        size_t len;
        text = fy_node_get_scalar(fyn, &len);
        snprintf(buf, size, "'%.*s%s'", len > 60 ? 60 : (int)len,
                 text ? text : "", len > 60 ? "..." : "");
        return buf;
    }
    snprintf(buf, size, "'%.60s%s'", text, strlen(text) > 60 ? "..." : "");
    return buf;
}

/* What a key's value should be: "an integer between 1 and 10". */
static const char *describe_key(const struct sl_config_key *k, char *buf,
                                size_t size)
{
    size_t n = 0;

    switch (k->type) {
    case SL_KT_STR:
        if (k->check)
            return k->check->expect;
        return k->flags & SL_KF_EMPTY_OK ? "a string" : "a non-empty string";
    case SL_KT_INT:
        if (k->min == k->max)
            snprintf(buf, size, "%lld", k->min);
        else
            snprintf(buf, size, "an integer between %lld and %lld", k->min,
                     k->max);
        return buf;
    case SL_KT_NUM:
        snprintf(buf, size, "a number between %g and %g", k->fmin, k->fmax);
        return buf;
    case SL_KT_BOOL:
        return "true or false";
    case SL_KT_ENUM:
        n = (size_t)snprintf(buf, size, "one of");
        for (size_t i = 0; k->enums[i] && n < size; i++)
            n += (size_t)snprintf(buf + n, size - n, "%s %s", i ? "," : "",
                                  k->enums[i]);
        return buf;
    case SL_KT_STRLIST:
        snprintf(buf, size, "a list of %lld to %lld strings", k->min, k->max);
        return buf;
    case SL_KT_OBJLIST:
        snprintf(buf, size, "a list of %lld to %lld mappings", k->min, k->max);
        return buf;
    case SL_KT_OBJ:
    case SL_KT_OBJMAP:
    case SL_KT_KVMAP:
        return "a mapping";
    }
    return "a value";
}

/* ---- ${VAR} interpolation ---- */

struct buf {
    char *p;      /* NUL-terminated */
    size_t len;   /* without the NUL */
    size_t cap;   /* allocated */
    bool failed;  /* out of memory or too long */
    bool toolong; /* past MAX_VALUE_BYTES */
};

static void buf_add(struct buf *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > MAX_VALUE_BYTES) {
        b->failed = b->toolong = true;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static bool env_name_char(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

/*
 * The value of scalar 'fyn' with ${VAR}, ${VAR:-default} and $$ expanded.
 * Returns a malloc'd string, or NULL after reporting the error.
 */
static char *interpolate(struct sl_config_ctx *ctx, struct fy_node *fyn,
                         const char *path)
{
    size_t len, i = 0;
    const char *s = fy_node_get_scalar(fyn, &len);
    struct buf b = {0};
    struct mark m = node_mark(fyn);

    if (!s)
        s = "";
    if (memchr(s, '\0', len)) {
        report(ctx, m, path, "a value must not contain NUL bytes");
        return NULL;
    }
    buf_add(&b, "", 0);
    while (i < len) {
        const char *d = memchr(s + i, '$', len - i);
        size_t j;

        if (!d) {
            buf_add(&b, s + i, len - i);
            break;
        }
        buf_add(&b, s + i, (size_t)(d - (s + i)));
        i = (size_t)(d - s);
        if (i + 1 < len && s[i + 1] == '$') {
            buf_add(&b, "$", 1);
            i += 2;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            buf_add(&b, "$", 1);
            i++;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        j = i + 2;
        while (j < len && env_name_char(s[j], j == i + 2))
            j++;
        size_t name_len = j - (i + 2);
        const char *def = NULL;
        size_t def_len = 0;
        if (name_len > 0 && j + 1 < len && s[j] == ':' && s[j + 1] == '-') {
            const char *close = memchr(s + j + 2, '}', len - (j + 2));
            if (close) {
                def = s + j + 2;
                def_len = (size_t)(close - def);
                j = (size_t)(close - s);
            }
        }
        if (name_len == 0 || j >= len || s[j] != '}' || name_len > 255) {
            report(ctx, m, path,
                   "malformed variable reference '%.*s' (write ${NAME}, "
                   "${NAME:-default} or $$ for a literal '$')",
                   (int)((j < len ? j + 1 : len) - i), s + i);
            free(b.p);
            return NULL;
        }
        char name[256];
        memcpy(name, s + i + 2, name_len);
        name[name_len] = '\0';
        const char *val = getenv(name);
        if (def && (!val || !*val))
            buf_add(&b, def, def_len);
        else if (val)
            buf_add(&b, val, strlen(val));
        else {
            report(ctx, m, path,
                   "environment variable '%s' is not set (set it, or give a "
                   "default: ${%s:-default})",
                   name, name);
            free(b.p);
            return NULL;
        }
        i = j + 1;
    }
    if (b.failed) {
        free(b.p);
        if (b.toolong)
            report(ctx, m, path, "value longer than %d bytes", MAX_VALUE_BYTES);
        else
            ctx->oom = true;
        return NULL;
    }
    return b.p;
}

/* ---- conversions ---- */

/*
 * Convert text 's' for key 'k' into 'field'.  Returns 0, -SL_EINVAL when
 * 's' is not acceptable, -SL_ENOMEM.
 */
static int convert(const struct sl_config_key *k, const char *s, void *field)
{
    switch (k->type) {
    case SL_KT_STR: {
        char *copy;
        if (!*s && !(k->flags & SL_KF_EMPTY_OK))
            return -SL_EINVAL;
        if (k->check && !k->check->ok(s))
            return -SL_EINVAL;
        if (!(copy = strdup(s)))
            return -SL_ENOMEM;
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case SL_KT_INT: {
        char *end;
        long long v;
        if (!*s || *s == ' ')
            return -SL_EINVAL;
        errno = 0;
        v = strtoll(s, &end, 10);
        if (errno || *end || v < k->min || v > k->max)
            return -SL_EINVAL;
        *(int *)field = (int)v;
        return 0;
    }
    case SL_KT_NUM: {
        char *end;
        double v;
        if (!*s || *s == ' ')
            return -SL_EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || *end || !isfinite(v) || v < k->fmin || v > k->fmax)
            return -SL_EINVAL;
        *(double *)field = v;
        return 0;
    }
    case SL_KT_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
            *(bool *)field = true;
        else if (!strcmp(s, "false") || !strcmp(s, "False") ||
                 !strcmp(s, "FALSE"))
            *(bool *)field = false;
        else
            return -SL_EINVAL;
        return 0;
    case SL_KT_ENUM:
        for (int i = 0; k->enums[i]; i++) {
            if (!strcmp(s, k->enums[i])) {
                *(int *)field = i;
                return 0;
            }
        }
        return -SL_EINVAL;
    default:
        return -SL_EINVAL;
    }
}

/* ---- defaults and freeing, by schema ---- */

static int apply_defaults(const struct sl_config_schema *s, void *obj)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];
        char *field = (char *)obj + k->off;
        int err;

        if (k->type == SL_KT_OBJ) {
            if ((err = apply_defaults(k->sub, field)) < 0)
                return err;
        } else if (k->def && (err = convert(k, k->def, field)) < 0) {
            return err;
        }
    }
    return 0;
}

static void free_strlist(struct sl_config_strlist *sl)
{
    for (size_t i = 0; i < sl->cnt; i++)
        free(sl->items[i]);
    free(sl->items);
}

static void free_kvlist(struct sl_config_kvlist *kvl)
{
    for (size_t i = 0; i < kvl->cnt; i++) {
        free(kvl->items[i].key);
        free(kvl->items[i].value);
        free(kvl->items[i].value_env);
        free(kvl->items[i].value_file);
    }
    free(kvl->items);
}

static void free_obj(const struct sl_config_schema *s, void *obj)
{
    if (s->named)
        free(*(char **)((char *)obj + s->name_off));
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];
        char *field = (char *)obj + k->off;

        switch (k->type) {
        case SL_KT_STR:
            free(*(char **)field);
            break;
        case SL_KT_STRLIST:
            free_strlist((struct sl_config_strlist *)field);
            break;
        case SL_KT_KVMAP:
            free_kvlist((struct sl_config_kvlist *)field);
            break;
        case SL_KT_OBJ:
            free_obj(k->sub, field);
            break;
        case SL_KT_OBJLIST:
        case SL_KT_OBJMAP: {
            char *arr;
            memcpy(&arr, field, sizeof(arr)); /* any T *: no punning */
            size_t cnt = *(size_t *)((char *)obj + k->cnt_off);
            for (size_t j = 0; j < cnt; j++)
                free_obj(k->sub, arr + j * k->sub->size);
            free(arr);
            break;
        }
        default:
            break;
        }
    }
}

/* ---- the walk ---- */

/* Append ".key" or "[i]" to a path. */
static void path_key(char *out, const char *path, const char *key)
{
    snprintf(out, MAX_PATH, "%s%s%s", path, *path ? "." : "", key);
}

static void parse_obj(struct sl_config_ctx *ctx,
                      const struct sl_config_schema *s, void *obj,
                      struct fy_node *map, struct mark at, const char *path);

/* Resolve an alias; reports an unknown one and returns NULL. */
static struct fy_node *deref(struct sl_config_ctx *ctx, struct fy_node *fyn,
                             const char *path, bool *bad)
{
    struct fy_node *target;

    *bad = false;
    if (!fyn || !fy_node_is_alias(fyn))
        return fyn;
    if ((target = fy_node_resolve_alias(fyn)) != NULL)
        return target;
    report(ctx, node_mark(fyn), path, "unknown alias '*%s'",
           fy_node_get_scalar0(fyn) ? fy_node_get_scalar0(fyn) : "");
    *bad = true;
    return NULL;
}

/*
 * Grow the array whose pointer is stored at 'slot' (any T *, accessed
 * with memcpy so that no pointer type is punned) by one zeroed element of
 * 'size' bytes.  Returns the new element, or NULL (ctx->oom).
 */
static void *grow(struct sl_config_ctx *ctx, void *slot, size_t *cntp,
                  size_t size)
{
    char *arr;

    memcpy(&arr, slot, sizeof(arr));
    arr = realloc(arr, (*cntp + 1) * size);
    if (!arr) {
        ctx->oom = true;
        return NULL;
    }
    memcpy(slot, &arr, sizeof(arr));
    memset(arr + *cntp * size, 0, size);
    return arr + (*cntp)++ * size;
}

/* Read a scalar value of key 'k' into 'field'; false after an error. */
static bool parse_scalar(struct sl_config_ctx *ctx,
                         const struct sl_config_key *k, void *field,
                         struct fy_node *val, struct mark keymark,
                         const char *path)
{
    char exp[512], got[128];
    char *text;
    int err;

    if (!fy_node_is_scalar(val)) {
        report(ctx, mark_or(val, keymark), path, "expected %s, got %s",
               describe_key(k, exp, sizeof(exp)),
               describe_node(val, NULL, got, sizeof(got)));
        return false;
    }
    if (!(text = interpolate(ctx, val, path)))
        return false;
    if ((err = convert(k, text, field)) == -SL_EINVAL)
        report(ctx, mark_or(val, keymark), path, "expected %s, got %s",
               describe_key(k, exp, sizeof(exp)),
               k->check && k->check->secret
                   ? "a value that is not shown (it may hold a secret)"
                   : describe_node(val, text, got, sizeof(got)));
    else if (err < 0)
        ctx->oom = true;
    free(text);
    return err == 0;
}

/* Checks a sequence's length against [k->min, k->max]. */
static void check_count(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k, struct fy_node *seq,
                        struct mark keymark, const char *path)
{
    int n = fy_node_sequence_item_count(seq);
    char exp[512];

    if (n < k->min || n > k->max)
        report(ctx, mark_or(seq, keymark), path, "expected %s, got %d item%s",
               describe_key(k, exp, sizeof(exp)), n, n == 1 ? "" : "s");
}

/*
 * Report a duplicate key when 'key' was already among the pairs of 'map'
 * before 'fynp'.  Returns true for a duplicate.
 */
static bool duplicate_key(struct sl_config_ctx *ctx, struct fy_node *map,
                          struct fy_node_pair *fynp, const char *key,
                          const char *path)
{
    void *it = NULL;
    struct fy_node_pair *p;

    while ((p = fy_node_mapping_iterate(map, &it)) != NULL && p != fynp) {
        const char *other = fy_node_get_scalar0(fy_node_pair_key(p));
        if (other && !strcmp(other, key)) {
            struct mark first = node_mark(fy_node_pair_key(p));
            report(ctx, node_mark(fy_node_pair_key(fynp)), path,
                   "duplicate key '%s' (first given at line %d)", key,
                   first.line);
            return true;
        }
    }
    return false;
}

/* The text of a mapping key; NULL (reported) when it is not a scalar. */
static const char *key_text(struct sl_config_ctx *ctx, struct fy_node *map,
                            struct fy_node *keyn, const char *path)
{
    const char *key;
    char got[128];

    if (keyn && fy_node_is_scalar(keyn) && !fy_node_is_alias(keyn) &&
        (key = fy_node_get_scalar0(keyn)) != NULL && *key)
        return key;
    report(ctx, mark_or(keyn, node_mark(map)), path, "expected a key, got %s",
           describe_node(keyn, NULL, got, sizeof(got)));
    return NULL;
}

static void parse_strlist(struct sl_config_ctx *ctx,
                          const struct sl_config_key *k,
                          struct sl_config_strlist *sl, struct fy_node *seq,
                          struct mark keymark, const char *path)
{
    struct sl_config_key item = {.type = SL_KT_STR, .check = k->check};
    char ipath[MAX_PATH], exp[512], got[128];
    void *it = NULL;
    struct fy_node *fyn;
    size_t i = 0;

    check_count(ctx, k, seq, keymark, path);
    for (; (fyn = fy_node_sequence_iterate(seq, &it)) != NULL; i++) {
        char *value = NULL;
        bool bad;

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!(fyn = deref(ctx, fyn, ipath, &bad)))
            continue;
        if (is_null(fyn)) {
            report(ctx, mark_or(fyn, mark_or(seq, keymark)), ipath,
                   "expected %s, got %s", describe_key(&item, exp, sizeof(exp)),
                   describe_node(fyn, NULL, got, sizeof(got)));
            continue;
        }
        if (!parse_scalar(ctx, &item, &value, fyn, keymark, ipath))
            continue;
        char **items = realloc(sl->items, (sl->cnt + 1) * sizeof(*items));
        if (!items) {
            free(value);
            ctx->oom = true;
            return;
        }
        sl->items = items;
        items[sl->cnt++] = value;
    }
}

static void parse_kvmap(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k,
                        struct sl_config_kvlist *kvl, struct fy_node *map,
                        const char *path)
{
    struct sl_config_key item = {.type = SL_KT_STR, .flags = SL_KF_EMPTY_OK};
    char kpath[MAX_PATH], got[128];
    void *it = NULL;
    struct fy_node_pair *fynp;

    if ((long long)fy_node_mapping_item_count(map) > k->max)
        report(ctx, node_mark(map), path,
               "expected at most %lld entries, got %d", k->max,
               fy_node_mapping_item_count(map));
    while ((fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp), *val;
        const char *key = key_text(ctx, map, keyn, path);
        char *value = NULL;
        bool bad;

        if (!key)
            continue;
        path_key(kpath, path, key);
        if (duplicate_key(ctx, map, fynp, key, kpath))
            continue;
        if (k->check && !k->check->ok(key)) {
            report(ctx, node_mark(keyn), kpath, "expected %s, got '%s'",
                   k->check->expect, key);
            continue;
        }
        if (!(val = deref(ctx, fy_node_pair_value(fynp), kpath, &bad)) && bad)
            continue;
        /* With k->sub, a value may also be a mapping: {value_env: NAME}. */
        if (k->sub && val && fy_node_is_mapping(val)) {
            if (fy_node_mapping_item_count(val) == 0) {
                report(ctx, node_mark(keyn), kpath,
                       "expected {value_env: NAME} or {value_file: PATH}, "
                       "got an empty mapping");
                continue;
            }
            struct sl_config_kv *kv =
                grow(ctx, &kvl->items, &kvl->cnt, sizeof(*kv));
            if (!kv || !(kv->key = strdup(key))) {
                ctx->oom = true;
                return;
            }
            parse_obj(ctx, k->sub, kv, val, node_mark(keyn), kpath);
            continue;
        }
        if (is_null(val) || !fy_node_is_scalar(val)) {
            report(ctx, mark_or(val, node_mark(keyn)), kpath,
                   "expected a string, number or boolean%s, got %s",
                   k->sub ? " (or {value_env: NAME} or {value_file: PATH})"
                          : "",
                   describe_node(val, NULL, got, sizeof(got)));
            continue;
        }
        if (!parse_scalar(ctx, &item, &value, val, node_mark(keyn), kpath))
            continue;
        struct sl_config_kv *kv =
            grow(ctx, &kvl->items, &kvl->cnt, sizeof(*kv));
        if (!kv || !(kv->key = strdup(key))) {
            if (kv)
                kv->value = value;
            else
                free(value);
            ctx->oom = true;
            return;
        }
        kv->value = value;
    }
}

static void parse_objmap(struct sl_config_ctx *ctx,
                         const struct sl_config_key *k, void *obj,
                         struct fy_node *map, const char *path)
{
    char kpath[MAX_PATH], got[128];
    void *slot = (char *)obj + k->off;
    size_t *cntp = (size_t *)((char *)obj + k->cnt_off);
    void *it = NULL;
    struct fy_node_pair *fynp;

    if ((long long)fy_node_mapping_item_count(map) > k->max)
        report(ctx, node_mark(map), path,
               "expected at most %lld entries, got %d", k->max,
               fy_node_mapping_item_count(map));
    while ((fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp), *val;
        const char *key = key_text(ctx, map, keyn, path);
        char *elem;
        bool bad;

        if (!key)
            continue;
        path_key(kpath, path, key);
        if (duplicate_key(ctx, map, fynp, key, kpath))
            continue;
        if (k->check && !k->check->ok(key)) {
            report(ctx, node_mark(keyn), kpath, "expected %s, got '%s'",
                   k->check->expect, key);
            continue;
        }
        if (!(val = deref(ctx, fy_node_pair_value(fynp), kpath, &bad)) && bad)
            continue;
        if (!fy_node_is_mapping(val)) {
            report(ctx, mark_or(val, node_mark(keyn)), kpath,
                   "expected a mapping, got %s",
                   describe_node(val, NULL, got, sizeof(got)));
            continue;
        }
        if (!(elem = grow(ctx, slot, cntp, k->sub->size)))
            return;
        if (apply_defaults(k->sub, elem) < 0 ||
            !(*(char **)(elem + k->sub->name_off) = strdup(key))) {
            ctx->oom = true;
            return;
        }
        parse_obj(ctx, k->sub, elem, val, node_mark(keyn), kpath);
    }
}

static void parse_objlist(struct sl_config_ctx *ctx,
                          const struct sl_config_key *k, void *obj,
                          struct fy_node *seq, struct mark keymark,
                          const char *path)
{
    char ipath[MAX_PATH], got[128];
    void *slot = (char *)obj + k->off;
    size_t *cntp = (size_t *)((char *)obj + k->cnt_off);
    void *it = NULL;
    struct fy_node *fyn;
    size_t i = 0;

    check_count(ctx, k, seq, keymark, path);
    for (; (fyn = fy_node_sequence_iterate(seq, &it)) != NULL; i++) {
        char *elem;
        bool bad;

        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        if (!(fyn = deref(ctx, fyn, ipath, &bad)) && bad)
            continue;
        if (!fy_node_is_mapping(fyn)) {
            report(ctx, mark_or(fyn, mark_or(seq, keymark)), ipath,
                   "expected a mapping, got %s",
                   describe_node(fyn, NULL, got, sizeof(got)));
            continue;
        }
        if (!(elem = grow(ctx, slot, cntp, k->sub->size)))
            return;
        if (apply_defaults(k->sub, elem) < 0) {
            ctx->oom = true;
            return;
        }
        parse_obj(ctx, k->sub, elem, fyn, mark_or(fyn, keymark), ipath);
    }
}

/*
 * Read the value 'val' of key 'k' (whose own key is at 'keymark') into
 * 'obj'.  Returns true when the value was read without error.
 */
static bool parse_value(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k, void *obj,
                        struct fy_node *val, struct mark keymark,
                        const char *path)
{
    char *field = (char *)obj + k->off;
    char exp[512], got[128];
    size_t before = ctx->nerr;
    bool bad;

    if (!(val = deref(ctx, val, path, &bad)) && bad)
        return false;
    if (is_null(val) && k->type == SL_KT_OBJ) {
        /* "postgres:" with nothing under it: all defaults. */
        parse_obj(ctx, k->sub, field, NULL, keymark, path);
        if (k->flags & SL_KF_HAS)
            *(bool *)((char *)obj + k->has_off) = true;
        return ctx->nerr == before;
    }
    if (is_null(val)) {
        if (!(k->flags & SL_KF_REQ))
            return true; /* as if not given: the default stays */
        report(ctx, mark_or(val, keymark), path, "expected %s, got %s",
               describe_key(k, exp, sizeof(exp)),
               describe_node(val, NULL, got, sizeof(got)));
        return false;
    }
    switch (k->type) {
    case SL_KT_STR:
    case SL_KT_INT:
    case SL_KT_NUM:
    case SL_KT_BOOL:
    case SL_KT_ENUM:
        if (!parse_scalar(ctx, k, field, val, keymark, path))
            return false;
        break;
    case SL_KT_OBJ:
    case SL_KT_OBJMAP:
    case SL_KT_KVMAP:
        if (!fy_node_is_mapping(val)) {
            report(ctx, mark_or(val, keymark), path, "expected %s, got %s",
                   describe_key(k, exp, sizeof(exp)),
                   describe_node(val, NULL, got, sizeof(got)));
            return false;
        }
        if (k->type == SL_KT_OBJ)
            parse_obj(ctx, k->sub, field, val, keymark, path);
        else if (k->type == SL_KT_OBJMAP)
            parse_objmap(ctx, k, obj, val, path);
        else
            parse_kvmap(ctx, k, (struct sl_config_kvlist *)field, val, path);
        break;
    case SL_KT_STRLIST:
    case SL_KT_OBJLIST:
        if (!fy_node_is_sequence(val)) {
            report(ctx, mark_or(val, keymark), path, "expected %s, got %s",
                   describe_key(k, exp, sizeof(exp)),
                   describe_node(val, NULL, got, sizeof(got)));
            return false;
        }
        if (k->type == SL_KT_STRLIST)
            parse_strlist(ctx, k, (struct sl_config_strlist *)field, val,
                          keymark, path);
        else
            parse_objlist(ctx, k, obj, val, keymark, path);
        break;
    }
    if (k->flags & SL_KF_HAS)
        *(bool *)((char *)obj + k->has_off) = true;
    return ctx->nerr == before;
}

static const struct sl_config_key *find_key(const struct sl_config_schema *s,
                                            const char *name)
{
    for (size_t i = 0; i < s->nkeys; i++)
        if (!strcmp(s->keys[i].name, name))
            return &s->keys[i];
    return NULL;
}

/* "a", "a or b", "a, b or c": the discriminator values in 'kinds'. */
static const char *kinds_text(const struct sl_config_schema *s, unsigned kinds,
                              char *buf, size_t size)
{
    const char *const *names = find_key(s, s->kind_key)->enums;
    size_t n = 0, total = 0, seen = 0;

    for (size_t i = 0; names[i]; i++)
        total += (kinds >> i) & 1u;
    buf[0] = '\0';
    for (size_t i = 0; names[i] && n < size; i++) {
        if (!((kinds >> i) & 1u))
            continue;
        seen++;
        n += (size_t)snprintf(buf + n, size - n, "%s%s",
                              seen == 1       ? ""
                              : seen == total ? " or "
                                              : ", ",
                              names[i]);
    }
    return buf;
}

/* An unknown key; points from secrets to their _env/_file forms. */
static void report_unknown(struct sl_config_ctx *ctx,
                           const struct sl_config_schema *s, const char *key,
                           struct mark m, const char *path)
{
    char env[128], file[128];

    snprintf(env, sizeof(env), "%s_env", key);
    snprintf(file, sizeof(file), "%s_file", key);
    if (!strcmp(key, "<<"))
        report(ctx, m, path,
               "merge keys ('<<') are not supported; repeat the settings or "
               "use an alias ('*name') for a whole value");
    else if (find_key(s, env) && find_key(s, file))
        report(ctx, m, path,
               "unknown key '%s' (secrets must not be written in the file; "
               "use %s or %s)",
               key, env, file);
    else
        report(ctx, m, path, "unknown key '%s'", key);
}

static void parse_obj(struct sl_config_ctx *ctx,
                      const struct sl_config_schema *s, void *obj,
                      struct fy_node *map, struct mark at, const char *path)
{
    const struct sl_config_key *kind_key = NULL;
    struct fy_node_pair *kind_pair = NULL, *fynp;
    char kpath[MAX_PATH], tmp[256];
    uint64_t seen = 0;
    void *it = NULL;
    int kind = -1;

    /* The discriminator first: it decides which other keys are allowed. */
    if (s->kind_key) {
        kind_key = find_key(s, s->kind_key);
        while (map && (fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
            const char *key = fy_node_get_scalar0(fy_node_pair_key(fynp));
            if (key && !strcmp(key, s->kind_key)) {
                kind_pair = fynp;
                break;
            }
        }
        if (kind_pair) {
            path_key(kpath, path, s->kind_key);
            if (parse_value(ctx, kind_key, obj, fy_node_pair_value(kind_pair),
                            node_mark(fy_node_pair_key(kind_pair)), kpath) &&
                !is_null(fy_node_pair_value(kind_pair)))
                kind = *(int *)((char *)obj + kind_key->off);
            seen |= 1ull << (kind_key - s->keys);
        }
        it = NULL;
    }

    while (map && (fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp);
        const char *key = key_text(ctx, map, keyn, path);
        const struct sl_config_key *k;

        if (!key || fynp == kind_pair)
            continue;
        path_key(kpath, path, key);
        if (!(k = find_key(s, key))) {
            report_unknown(ctx, s, key, node_mark(keyn), kpath);
            continue;
        }
        if (duplicate_key(ctx, map, fynp, key, kpath))
            continue;
        seen |= 1ull << (k - s->keys);
        if (k->kinds && kind >= 0 && !((k->kinds >> kind) & 1u)) {
            report(ctx, node_mark(keyn), kpath,
                   "key '%s' is only allowed when %s is %s", key, s->kind_label,
                   kinds_text(s, k->kinds, tmp, sizeof(tmp)));
            continue;
        }
        parse_value(ctx, k, obj, fy_node_pair_value(fynp), node_mark(keyn),
                    kpath);
    }

    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        if (!(k->flags & SL_KF_REQ) || ((seen >> i) & 1u))
            continue;
        if (k->kinds && (kind < 0 || !((k->kinds >> kind) & 1u)))
            continue;
        path_key(kpath, path, k->name);
        if (k->kinds)
            report(ctx, at, kpath,
                   "missing required key '%s' (required when %s is %s)",
                   k->name, s->kind_label,
                   kinds_text(s, 1u << kind, tmp, sizeof(tmp)));
        else
            report(ctx, at, kpath, "missing required key '%s'", k->name);
    }
    if (s->check)
        s->check(ctx, obj, map, path);
}

/* ---- entry points ---- */

static bool blank_text(const char *text, size_t len)
{
    bool comment = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n')
            comment = false;
        else if (c == '#')
            comment = true;
        else if (!comment && c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return true;
}

/*
 * Parse the first YAML document of 'text' with parser *fypp (made here;
 * the caller destroys the document, then the parser, even on failure),
 * then read one more event: a second document's start sets *nextp to its
 * place.  Returns the document, or NULL after a YAML error (in the
 * parser's diagnostics).
 */
static struct fy_document *build_document(const struct fy_parse_cfg *pcfg,
                                          const char *text, size_t len,
                                          struct fy_parser **fypp,
                                          struct mark *nextp)
{
    struct fy_document *fyd;
    struct fy_event *fye;

    *nextp = (struct mark){0, 0};
    if (!(*fypp = fy_parser_create(pcfg)) ||
        fy_parser_set_string(*fypp, text, len) != 0 ||
        !(fyd = fy_parse_load_document(*fypp)))
        return NULL;
    if ((fye = fy_parser_parse(*fypp)) != NULL) {
        const struct fy_mark *fym = fy_event_start_mark(fye);
        if (fye->type == FYET_DOCUMENT_START)
            *nextp = fym ? (struct mark){fym->line + 1, fym->column + 1}
                         : (struct mark){1, 1};
        fy_parser_event_free(*fypp, fye);
    } else if (fy_parser_get_stream_error(*fypp)) {
        fy_parse_document_destroy(*fypp, fyd);
        return NULL;
    }
    return fyd;
}

/* Free what build_document() made. */
static void free_document(struct fy_parser *fyp, struct fy_document *fyd)
{
    if (fyd)
        fy_parse_document_destroy(fyp, fyd);
    if (fyp)
        fy_parser_destroy(fyp);
}

/*
 * Build the document from 'text' in a forked child first: libfyaml 0.7.12
 * (Debian 12) dies of SIGSEGV on some malformed YAML ('? b: <tab>: b'),
 * and in this process that would kill sluice.  The child only runs
 * libfyaml, writes one byte to a pipe when it returns, and _exit()s.
 * Returns 0 when the child finished (the caller then parses here, again:
 * pipeline files are small), 1 when it died first, 2 when it ran past
 * GUARD_MS (it is then killed), -1 with errno set when no child could be
 * made or watched (the caller parses unguarded).  Forking is safe because
 * loading happens before any thread starts (sl_config_load()'s contract); in
 * case another thread holds a lock the child needs, GUARD_MS bounds the wait.
 */
static int parse_in_child(const struct fy_parse_cfg *pcfg, const char *text,
                          size_t len)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    int64_t deadline = sl_mono_ms() + GUARD_MS;
    struct pollfd pfd;
    int fds[2], rc, err;
    char byte = 0;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    if ((pid = fork()) < 0) {
        err = errno;
        close(fds[0]);
        close(fds[1]);
        errno = err;
        return -1;
    }
    if (pid == 0) {
        /* Die of the signal itself: no core file, and no crash handler
         * (a sanitizer's, cmocka's) reporting or carrying on in here. */
        struct rlimit nocore = {0, 0};
        close(fds[0]);
        setrlimit(RLIMIT_CORE, &nocore);
        /* By the system call itself: a sanitizer intercepts signal() and
         * keeps its own handler (ThreadSanitizer's then hangs here).  An
         * all-zero kernel sigaction is SIG_DFL, no flags, empty mask. */
        unsigned long ksa[4] = {0};
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
            syscall(SYS_rt_sigaction, fatal[i], ksa, NULL, 8);
        /* All the parent will do, the clean-up too: libfyaml 0.7.12
         * crashes in fy_parser_destroy() after some errors. */
        struct fy_parser *fyp;
        struct mark next;
        struct fy_document *fyd = build_document(pcfg, text, len, &fyp, &next);
        free_document(fyp, fyd);
        _exit(write(fds[1], "k", 1) == 1 ? 0 : 1);
    }
    close(fds[1]);
    pfd = (struct pollfd){.fd = fds[0], .events = POLLIN};
    do {
        int64_t left = deadline - sl_mono_ms();
        rc = poll(&pfd, 1, left > 0 ? (int)left : 0);
    } while (rc < 0 && errno == EINTR);
    /* Readable with no byte: the child died before writing it. */
    if (rc > 0 && read(fds[0], &byte, 1) != 1)
        byte = 0;
    err = errno;
    close(fds[0]);
    if (rc <= 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    errno = err;
    if (rc < 0)
        return -1; /* poll() failed: no verdict */
    return rc == 0 ? 2 : byte == 'k' ? 0 : 1;
}

static int parse_text(struct sl_config_ctx *ctx, const char *text, size_t len,
                      struct sl_config **cfgp)
{
    struct fy_diag_cfg dcfg;
    struct fy_diag *diag;
    struct fy_parse_cfg pcfg;
    struct fy_parser *fyp = NULL;
    struct fy_document *fyd;
    struct fy_node *root;
    struct sl_config *cfg;
    struct mark next;
    int err;

    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    dcfg.colorize = false;
    if (!(diag = fy_diag_create(&dcfg)))
        return -SL_ENOMEM;
    fy_diag_set_collect_errors(diag, true);
    memset(&pcfg, 0, sizeof(pcfg));
    /* Duplicate keys are ours to report, with their key path. */
    pcfg.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_ALLOW_DUPLICATE_KEYS |
                 FYPCF_JSON_NONE;
    pcfg.diag = diag;

    /* YAML is printable UTF-8 text; refuse anything else before the
     * parser sees it: libfyaml 0.7.12 loops for ever on some invalid
     * bytes and crashes on a NUL after a tab. */
    size_t ok = sl_utf8_valid_prefix(text, len);
    const char *why = "the file is not UTF-8 text";
    for (size_t i = 0; i < ok; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
            ok = i;
            why = "control characters are not allowed";
            break;
        }
    }
    if (ok < len) {
        int line = 1, col = 1;
        for (size_t i = 0; i < ok; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        report(ctx, (struct mark){line, col}, NULL, "invalid YAML: %s", why);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }
    if (ctx->guard) {
        int rc = parse_in_child(&pcfg, text, len);
        if (rc > 0) {
            if (rc == 1)
                report_file(ctx, "the YAML parser (libfyaml) crashed on this "
                                 "text; look for tabs or stray '?'/':' in "
                                 "keys");
            else
                report_file(ctx,
                            "the YAML parser (libfyaml) did not finish "
                            "within %d s on this text and was stopped; look "
                            "for tabs or stray '?'/':' in keys",
                            GUARD_MS / 1000);
            fy_diag_destroy(diag);
            return ctx->oom ? -SL_ENOMEM : -SL_ECONFIG;
        }
        if (rc < 0)
            sl_log(SL_LOG_WARN, "config",
                   "%s: cannot start a process to try the YAML parser in "
                   "(%s); parsing without that guard",
                   ctx->file, strerror(errno));
    }
    fyd = build_document(&pcfg, text, len, &fyp, &next);
    if (!fyd) {
        void *it = NULL;
        struct fy_diag_error *de;
        size_t before = ctx->nerr;

        while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
            if (de->type < FYET_ERROR)
                continue;
            report(ctx, (struct mark){de->line, de->column}, NULL,
                   "invalid YAML: %s", de->msg ? de->msg : "syntax error");
        }
        if (ctx->nerr == before) {
            if (blank_text(text, len))
                report(ctx, (struct mark){1, 1}, NULL,
                       "the file is empty; a pipeline needs at least "
                       "'version' and 'name'");
            else
                report(ctx, (struct mark){1, 1}, NULL, "invalid YAML");
        }
        free_document(fyp, NULL);
        fy_diag_destroy(diag);
        return ctx->oom ? -SL_ENOMEM : -SL_ECONFIG;
    }
    if (next.line) {
        /* Later documents were ignored once: refuse them. */
        report(ctx, next, NULL,
               "a second YAML document starts here; a pipeline file holds "
               "one document (remove this '---' and what follows it, or "
               "give each pipeline a file of its own)");
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }

    root = fy_document_root(fyd);
    if (root && fy_node_is_alias(root))
        root = fy_node_resolve_alias(root);
    if (!root || !fy_node_is_mapping(root)) {
        char got[128];
        if (!root || is_null(root))
            report(ctx, (struct mark){1, 1}, NULL,
                   "the file is empty; a pipeline needs at least 'version' "
                   "and 'name'");
        else
            report(ctx, node_mark(root), NULL,
                   "expected a mapping of pipeline settings, got %s",
                   describe_node(root, NULL, got, sizeof(got)));
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }

    if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(ctx->file))) {
        free(cfg);
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ENOMEM;
    }
    err = apply_defaults(&sl_config_schema_root, cfg);
    if (err == 0) {
        struct mark at = node_mark(root);
        ctx->root = root;
        parse_obj(ctx, &sl_config_schema_root, cfg, root, at, "");
        if (ctx->oom)
            err = -SL_ENOMEM;
        else if (ctx->nerr)
            err = -SL_ECONFIG;
    }
    ctx->root = NULL;
    free_document(fyp, fyd);
    fy_diag_destroy(diag);
    if (err < 0) {
        sl_config_destroy(cfg);
        return err;
    }
    *cfgp = cfg;
    return 0;
}

/* What kind of file 'st' is, for "not a regular file (it is ...)". */
static const char *file_kind(const struct stat *st)
{
    switch (st->st_mode & S_IFMT) {
    case S_IFDIR:
        return "a directory";
    case S_IFIFO:
        return "a FIFO";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFSOCK:
        return "a socket";
    default:
        return "not a file";
    }
}

/*
 * Read 'fd' to its end, at most SL_CONFIG_MAX_FILE_BYTES, into *bufp
 * (malloc'd; the caller frees it, even on failure) and *lenp.  Returns 0,
 * or a negative code after reporting why.
 */
static int read_all(struct sl_config_ctx *ctx, int fd, char **bufp,
                    size_t *lenp)
{
    size_t n = 0;

    *lenp = 0;
    if (!(*bufp = malloc(SL_CONFIG_MAX_FILE_BYTES + 1)))
        return -SL_ENOMEM;
    while (n <= SL_CONFIG_MAX_FILE_BYTES) {
        ssize_t got = read(fd, *bufp + n, SL_CONFIG_MAX_FILE_BYTES + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            report_file(ctx, "cannot read: %s", strerror(err));
            return sl_err_from_errno(err);
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > SL_CONFIG_MAX_FILE_BYTES) {
        report_file(ctx, "too large (more than %d bytes)",
                    SL_CONFIG_MAX_FILE_BYTES);
        return -SL_ETOOBIG;
    }
    *lenp = n;
    return 0;
}

/*
 * Open pipeline file 'path' for reading: a regular file only.  A FIFO
 * would block until a writer comes (or be read until some timeout), a
 * device or directory is no pipeline: refused at once.  Returns the
 * descriptor, or a negative code after reporting why.
 */
static int open_file(struct sl_config_ctx *ctx, const char *path)
{
    struct stat st;
    int fd, err;

    /* O_NONBLOCK: opening a FIFO must not wait for its writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
        report_file(ctx, "cannot open: %s", strerror(err));
        return err == ENOENT ? -SL_ENOTFOUND : sl_err_from_errno(err);
    }
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        report_file(ctx, "cannot open: %s", strerror(err));
        return sl_err_from_errno(err);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        report_file(ctx,
                    "not a regular file (it is %s); give the path of a "
                    "pipeline file",
                    file_kind(&st));
        return -SL_EINVAL;
    }
    return fd;
}

/*
 * Load from 'path' when not NULL, else from 'fd' when >= 0, else parse
 * 'text'; errors go to 'errs' (or nowhere), sorted by place.  'guard':
 * try libfyaml in a child first.
 */
static int with_ctx(const char *name, struct sl_config_errors *errs,
                    const char *text, size_t len, const char *path, int fd,
                    bool guard, struct sl_config **cfgp)
{
    struct sl_config_errors local = {0};
    struct sl_config_ctx ctx = {
        .file = name, .errs = errs ? errs : &local, .guard = guard};
    size_t from = ctx.errs->cnt;
    int err = 0;

    if (path || fd >= 0) {
        /* Read it ourselves: errno for operators, and a size cap. */
        int own = path ? open_file(&ctx, path) : fd;
        char *buf = NULL;
        size_t n = 0;

        if (own < 0)
            err = own;
        else if ((err = read_all(&ctx, own, &buf, &n)) == 0)
            err = parse_text(&ctx, buf, n, cfgp);
        if (path && own >= 0)
            close(own);
        free(buf);
    } else {
        err = parse_text(&ctx, text, len, cfgp);
    }
    sort_errors(ctx.errs, from);
    sl_config_errors_clear(&local);
    return err;
}

int sl_config_load(const char *path, struct sl_config **cfgp,
                   struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(path, errs, NULL, 0, path, -1, true, cfgp);
}

int sl_config_load_fd(const char *name, int fd, struct sl_config **cfgp,
                      struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, NULL, 0, NULL, fd, true, cfgp);
}

int sl_config_parse(const char *name, const char *text, size_t len,
                    struct sl_config **cfgp, struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, text, len, NULL, -1, true, cfgp);
}

int sl_config_parse_unguarded(const char *name, const char *text, size_t len,
                              struct sl_config **cfgp,
                              struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, text, len, NULL, -1, false, cfgp);
}

void sl_config_destroy(struct sl_config *cfg)
{
    if (!cfg)
        return;
    free_obj(&sl_config_schema_root, cfg);
    free(cfg->path);
    free(cfg);
}

int sl_config_kv_value(const struct sl_config_kv *kv, unsigned flags,
                       const char *what, char **valuep, char *errstr,
                       size_t errstr_size)
{
    struct sl_secret_src src = {kv->value_env, kv->value_file};

    *valuep = NULL;
    if (kv->value) {
        if (!(*valuep = strdup(kv->value)))
            return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return 0;
    }
    if (!src.env && !src.file) /* the loader never leaves it so */
        return sl_seterr(-SL_ESECRET, errstr, errstr_size, "%s: no value",
                         what);
    return sl_secret_read(&src, flags, what, valuep, errstr, errstr_size);
}

const struct sl_config_backend *
sl_config_backend_find(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->backend_cnt; i++)
        if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name))
            return &cfg->backends[i];
    return NULL;
}

const char *sl_config_source_kind_name(enum sl_config_source_kind kind)
{
    return (unsigned)kind <= SL_CONFIG_SOURCE_STDIN
               ? sl_config_source_kinds[kind]
               : "unknown";
}

const char *sl_config_backend_kind_name(enum sl_config_backend_kind kind)
{
    return (unsigned)kind <= SL_CONFIG_BACKEND_HTTP_JSON
               ? sl_config_backend_kinds[kind]
               : "unknown";
}

void sl_config_errors_print(FILE *fp, const char *path, int err,
                            const struct sl_config_errors *errs)
{
    for (size_t j = 0; j < errs->cnt; j++)
        fprintf(fp, "%s\n", errs->items[j].text);
    if (errs->dropped)
        fprintf(fp, "%s: %zu more errors not shown\n", path, errs->dropped);
    if (errs->cnt == 0)
        fprintf(fp, "%s: %s\n", path, sl_strerror(err));
}

/* {"file", "line", "column", "path", "message"}; 0 line/column, NULL
   path: null.  Appended to 'arr'; false when memory is short. */
static bool error_json(json_t *arr, const char *file, int line, int column,
                       const char *path, const char *message)
{
    json_t *e = json_object();

    if (!e || json_object_set_new(e, "file", json_string(file)) ||
        json_object_set_new(e, "line",
                            line ? json_integer(line) : json_null()) ||
        json_object_set_new(e, "column",
                            column ? json_integer(column) : json_null()) ||
        json_object_set_new(e, "path",
                            path ? json_string(path) : json_null()) ||
        json_object_set_new(e, "message", json_string(message))) {
        json_decref(e);
        return false;
    }
    return json_array_append_new(arr, e) == 0;
}

int sl_config_errors_json(json_t *arr, const char *path, int err,
                          const struct sl_config_errors *errs)
{
    char more[64], *file = one_line(path);
    bool ok = file != NULL;

    for (size_t j = 0; ok && j < errs->cnt; j++) {
        const struct sl_config_error *e = &errs->items[j];
        ok = error_json(arr, e->file, e->line, e->column, e->path, e->message);
    }
    if (ok && errs->dropped) {
        snprintf(more, sizeof(more), "%zu more errors not shown",
                 errs->dropped);
        ok = error_json(arr, file, 0, 0, NULL, more);
    }
    if (ok && errs->cnt == 0)
        ok = error_json(arr, file, 0, 0, NULL, sl_strerror(err));
    free(file);
    return ok ? 0 : -SL_ENOMEM;
}

/* ---- the effective pipeline as YAML ---- */

/* Builds the document of sl_config_to_yaml(). */
struct yaml_out {
    struct fy_document *fyd; /* the document being built */
    bool failed;             /* out of memory */
};

/* A YAML word that a plain scalar would read as a boolean or null. */
static bool yaml_word(const char *s)
{
    static const char *const words[] = {"true", "false", "yes", "no",  "on",
                                        "off",  "y",     "n",   "null"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (!strcasecmp(s, words[i]))
            return true;
    return false;
}

/*
 * True when 's' may be written as a plain scalar and read back as the same
 * text: letters, digits and a few marks, no ": " or " #", no space at
 * either end; 'string': and not read as a number, boolean or null.
 */
static bool plain_ok(const char *s, bool string)
{
    size_t len = strlen(s);

    if (len == 0 || len > 200 ||
        !(isalnum((unsigned char)s[0]) || s[0] == '_' || s[0] == '/'))
        return false;
    if (s[len - 1] == ' ' || s[len - 1] == ':' || strstr(s, ": ") ||
        strstr(s, " #"))
        return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("_-./:@+=, ", *p))
            return false;
    return !string || (!isdigit((unsigned char)s[0]) && !yaml_word(s));
}

/*
 * A scalar node for 's' (a 'string', or a number, boolean or name): plain
 * when plain_ok(), else double-quoted.  The quoted form is jansson's JSON
 * string (a valid YAML double-quoted scalar) read by libfyaml, so that the
 * escaping is the libraries'.  NULL when memory is short.
 */
static struct fy_node *yaml_scalar(struct yaml_out *yo, const char *s,
                                   bool string)
{
    struct fy_node *fyn = NULL;
    char *quoted, *clean = NULL;
    json_t *j;

    if (plain_ok(s, string)) {
        fyn = fy_node_create_scalar_copy(yo->fyd, s, FY_NT);
    } else {
        /* A ${VAR} may bring bytes that are not UTF-8: shown as \xNN. */
        if (!(j = json_string(s)) && (clean = malloc(4 * strlen(s) + 4)))
            j = json_string(
                sl_utf8_printable(s, strlen(s), clean, 4 * strlen(s) + 4));
        quoted = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
        /* The node points into the text: the document takes it over. */
        if (quoted && !(fyn = fy_node_build_from_malloc_string(yo->fyd, quoted,
                                                               strlen(quoted))))
            free(quoted);
        free(clean);
        json_decref(j);
    }
    if (!fyn)
        yo->failed = true;
    return fyn;
}

/* Append 'key': 'value' to mapping 'map' ('value' NULL: out of memory). */
static void yaml_put(struct yaml_out *yo, struct fy_node *map,
                     struct fy_node *key, struct fy_node *value)
{
    if (!key || !value || fy_node_mapping_append(map, key, value) != 0) {
        yo->failed = true;
        if (key && !fy_node_get_parent(key))
            fy_node_free(key);
        if (value && !fy_node_get_parent(value))
            fy_node_free(value);
    }
}

/* The shortest text of 'v' that reads back as the same double. */
static void num_text(double v, char *buf, size_t size)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, size, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static struct fy_node *yaml_obj(struct yaml_out *yo,
                                const struct sl_config_schema *s,
                                const void *obj);

/* "<from env NAME>" or "<from file PATH>"; NULL when neither is set. */
static struct fy_node *yaml_secret(struct yaml_out *yo, const char *env,
                                   const char *file)
{
    char text[MAX_PATH + 32];

    if (!env && !file)
        return NULL;
    snprintf(text, sizeof(text), "<from %s %s>", env ? "env" : "file",
             env ? env : file);
    return yaml_scalar(yo, text, true);
}

/* A header or Kafka property map: values, or where a secret comes from. */
static struct fy_node *yaml_kvmap(struct yaml_out *yo,
                                  const struct sl_config_kvlist *kvl)
{
    struct fy_node *map = fy_node_create_mapping(yo->fyd);

    for (size_t i = 0; map && i < kvl->cnt; i++) {
        const struct sl_config_kv *kv = &kvl->items[i];
        yaml_put(yo, map, yaml_scalar(yo, kv->key, true),
                 kv->value ? yaml_scalar(yo, kv->value, true)
                           : yaml_secret(yo, kv->value_env, kv->value_file));
    }
    return map;
}

/*
 * The value of key 'k' of 'obj' as a node; NULL with *skipp set when it
 * has none to show (an unset optional key, an empty map, a secret source
 * named by its sibling).
 */
static struct fy_node *yaml_value(struct yaml_out *yo,
                                  const struct sl_config_key *k,
                                  const void *obj, bool *skipp)
{
    const char *field = (const char *)obj + k->off;
    struct fy_node *fyn;
    char text[64];

    *skipp = false;
    switch (k->type) {
    case SL_KT_STR:
        if (!*(char *const *)field)
            break;
        return yaml_scalar(yo, *(char *const *)field, true);
    case SL_KT_INT:
        if (!k->def && *(const int *)field == 0)
            break; /* optional, not given: no limit */
        snprintf(text, sizeof(text), "%d", *(const int *)field);
        return yaml_scalar(yo, text, false);
    case SL_KT_NUM:
        if (!k->def && *(const double *)field == 0)
            break;
        num_text(*(const double *)field, text, sizeof(text));
        return yaml_scalar(yo, text, false);
    case SL_KT_BOOL:
        return yaml_scalar(yo, *(const bool *)field ? "true" : "false", false);
    case SL_KT_ENUM:
        return yaml_scalar(yo, k->enums[*(const int *)field], false);
    case SL_KT_OBJ:
        if ((k->flags & SL_KF_HAS) &&
            !*(const bool *)((const char *)obj + k->has_off))
            break;
        return yaml_obj(yo, k->sub, field);
    case SL_KT_STRLIST: {
        const struct sl_config_strlist *sl = (const void *)field;
        if (!sl->cnt)
            break;
        fyn = fy_node_create_sequence(yo->fyd);
        for (size_t i = 0; fyn && i < sl->cnt; i++) {
            struct fy_node *item = yaml_scalar(yo, sl->items[i], true);
            if (!item || fy_node_sequence_append(fyn, item) != 0)
                yo->failed = true;
        }
        return fyn;
    }
    case SL_KT_OBJLIST:
    case SL_KT_OBJMAP: {
        const char *arr;
        size_t cnt = *(const size_t *)((const char *)obj + k->cnt_off);
        memcpy(&arr, field, sizeof(arr));
        if (!cnt)
            break;
        fyn = k->type == SL_KT_OBJLIST ? fy_node_create_sequence(yo->fyd)
                                       : fy_node_create_mapping(yo->fyd);
        for (size_t i = 0; fyn && i < cnt; i++) {
            const char *elem = arr + i * k->sub->size;
            struct fy_node *item = yaml_obj(yo, k->sub, elem);
            if (k->type == SL_KT_OBJMAP)
                yaml_put(yo, fyn,
                         yaml_scalar(yo,
                                     *(char *const *)(elem + k->sub->name_off),
                                     true),
                         item);
            else if (!item || fy_node_sequence_append(fyn, item) != 0)
                yo->failed = true;
        }
        return fyn;
    }
    case SL_KT_KVMAP:
        if (!((const struct sl_config_kvlist *)(const void *)field)->cnt)
            break;
        return yaml_kvmap(yo, (const void *)field);
    }
    *skipp = true;
    return NULL;
}

/*
 * The stem of a secret source key of 's' ("api_key" for "api_key_env"
 * when 's' also has "api_key_file", and the other way round) in
 * stem[MAX_PATH]; false for any other key.
 */
static bool secret_key(const struct sl_config_schema *s, const char *name,
                       char *stem)
{
    size_t len = strlen(name), cut;
    const char *sib;
    char other[MAX_PATH + 8];

    if (len >= MAX_PATH - 8)
        return false;
    if (len > 4 && !strcmp(name + len - 4, "_env")) {
        cut = 4;
        sib = "_file";
    } else if (len > 5 && !strcmp(name + len - 5, "_file")) {
        cut = 5;
        sib = "_env";
    } else {
        return false;
    }
    snprintf(stem, MAX_PATH, "%.*s", (int)(len - cut), name);
    snprintf(other, sizeof(other), "%s%s", stem, sib);
    return find_key(s, other) != NULL;
}

static struct fy_node *
yaml_obj(struct yaml_out *yo, const struct sl_config_schema *s, const void *obj)
{
    struct fy_node *map = fy_node_create_mapping(yo->fyd);
    int kind = -1;
    char stem[MAX_PATH], other[MAX_PATH + 8];

    if (!map) {
        yo->failed = true;
        return NULL;
    }
    if (s->kind_key)
        kind =
            *(const int *)((const char *)obj + find_key(s, s->kind_key)->off);
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];
        struct fy_node *value;
        bool skip;

        if (k->kinds && (kind < 0 || !((k->kinds >> kind) & 1u)))
            continue;
        if (secret_key(s, k->name, stem)) {
            /* Once, at the _env key: "api_key: <from env NAME>". */
            if (strcmp(k->name + strlen(stem), "_env"))
                continue;
            snprintf(other, sizeof(other), "%s_file", stem);
            value = yaml_secret(
                yo, *(char *const *)((const char *)obj + k->off),
                *(char *const *)((const char *)obj + find_key(s, other)->off));
            if (value)
                yaml_put(yo, map, yaml_scalar(yo, stem, false), value);
            continue;
        }
        value = yaml_value(yo, k, obj, &skip);
        if (!skip)
            yaml_put(yo, map, yaml_scalar(yo, k->name, false), value);
    }
    return map;
}

char *sl_config_to_yaml(const struct sl_config *cfg)
{
    struct yaml_out yo = {0};
    struct fy_node *root;
    char *text = NULL;

    if (!(yo.fyd = fy_document_create(NULL)))
        return NULL;
    root = yaml_obj(&yo, &sl_config_schema_root, cfg);
    if (root && fy_document_set_root(yo.fyd, root) != 0) {
        fy_node_free(root);
        yo.failed = true;
    }
    if (!yo.failed)
        text = fy_emit_document_to_string(
            yo.fyd, FYECF_MODE_BLOCK | FYECF_WIDTH_INF | FYECF_INDENT_2 |
                        FYECF_DOC_START_MARK_OFF);
    fy_document_destroy(yo.fyd);
    return text;
}

/* ---- the configuration reference ---- */

/*
 * 's' into a Markdown table cell: '|' escaped; 'text': plain text (a
 * check's "expected ..."), so Markdown's marks are escaped too.
 */
static void md_cell(FILE *fp, const char *s, bool text)
{
    for (; *s; s++) {
        if (*s == '|' || (text && strchr("\\`*_[]<>", *s)))
            fputc('\\', fp);
        fputc(*s, fp);
    }
}

/* "`a`, `b` or `c`": the kinds of 'kinds' of schema 's'. */
static void md_kinds(FILE *fp, const struct sl_config_schema *s, unsigned kinds)
{
    const char *const *names = find_key(s, s->kind_key)->enums;
    size_t total = 0, seen = 0;

    for (size_t i = 0; names[i]; i++)
        total += (kinds >> i) & 1u;
    for (size_t i = 0; names[i]; i++) {
        if (!((kinds >> i) & 1u))
            continue;
        seen++;
        fprintf(fp, "%s`%s`",
                seen == 1       ? ""
                : seen == total ? " or "
                                : ", ",
                names[i]);
    }
}

static const char *md_type(const struct sl_config_key *k)
{
    switch (k->type) {
    case SL_KT_STR:
        return "string";
    case SL_KT_INT:
        return "integer";
    case SL_KT_NUM:
        return "number";
    case SL_KT_BOOL:
        return "boolean";
    case SL_KT_ENUM:
        return "string (one of)";
    case SL_KT_OBJ:
        return "mapping";
    case SL_KT_STRLIST:
        return "list of strings";
    case SL_KT_OBJLIST:
        return "list of mappings";
    case SL_KT_OBJMAP:
        return "mapping of name to mapping";
    case SL_KT_KVMAP:
        return "mapping of name to value";
    }
    return "value";
}

/* What 'k' accepts: a range, the names, the check's text. */
static void md_allowed(FILE *fp, const struct sl_config_key *k)
{
    switch (k->type) {
    case SL_KT_STR:
        if (k->check)
            md_cell(fp, k->check->expect, true);
        else
            fputs(k->flags & SL_KF_EMPTY_OK ? "any string"
                                            : "any non-empty string",
                  fp);
        break;
    case SL_KT_INT:
        if (k->min == k->max)
            fprintf(fp, "%lld", k->min);
        else
            fprintf(fp, "%lld to %lld", k->min, k->max);
        break;
    case SL_KT_NUM:
        fprintf(fp, "%.15g to %.15g", k->fmin, k->fmax);
        break;
    case SL_KT_BOOL:
        fputs("`true`, `false`", fp);
        break;
    case SL_KT_ENUM:
        for (size_t i = 0; k->enums[i]; i++)
            fprintf(fp, "%s`%s`", i ? ", " : "", k->enums[i]);
        break;
    case SL_KT_STRLIST:
    case SL_KT_OBJLIST:
        fprintf(fp, "%lld to %lld items", k->min, k->max);
        if (k->check) {
            fputs(", each ", fp);
            md_cell(fp, k->check->expect, true);
        }
        break;
    case SL_KT_OBJMAP:
    case SL_KT_KVMAP:
        fprintf(fp, "up to %lld entries", k->max);
        if (k->check) {
            fputs("; names: ", fp);
            md_cell(fp, k->check->expect, true);
        }
        if (k->type == SL_KT_KVMAP && k->sub)
            fputs("; values: a string, number or boolean, or "
                  "`{value_env: NAME}` or `{value_file: PATH}`",
                  fp);
        break;
    case SL_KT_OBJ:
        fputs("see below", fp);
        break;
    }
}

/* Where the keys of 'k's value live: "a.b", "a.<name>", "a[]". */
static void md_sub_path(char *out, const char *path,
                        const struct sl_config_key *k)
{
    path_key(out, path, k->name);
    if (k->type == SL_KT_OBJMAP || k->type == SL_KT_KVMAP)
        strncat(out, ".<name>", MAX_PATH - strlen(out) - 1);
    else if (k->type == SL_KT_OBJLIST)
        strncat(out, "[]", MAX_PATH - strlen(out) - 1);
}

/* The section of mapping 's' at 'path' ("" for the top), then its
   mappings' sections. */
static void md_section(FILE *fp, const struct sl_config_schema *s,
                       const char *path)
{
    char kpath[MAX_PATH], sub[MAX_PATH];

    if (*path)
        fprintf(fp, "\n## `%s`\n\n", path);
    else
        fputs("\n## Top level\n\n", fp);
    fputs("| Key | Type | Default | Allowed | Description |\n"
          "|-----|------|---------|---------|-------------|\n",
          fp);
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        path_key(kpath, path, k->name);
        fputs("| `", fp);
        md_cell(fp, kpath, false);
        fprintf(fp, "` | %s | ", md_type(k));
        if (k->def && *k->def) {
            fputs("`", fp);
            md_cell(fp, k->def, false);
            fputs("`", fp);
        } else if (k->def) {
            fputs("empty", fp);
        } else if (k->type == SL_KT_OBJ && !(k->flags & SL_KF_REQ) &&
                   !(k->flags & SL_KF_HAS)) {
            fputs("its keys' defaults", fp);
        } else if ((k->flags & SL_KF_REQ) && k->kinds) {
            fputs("required for ", fp);
            md_kinds(fp, s, k->kinds);
        } else {
            fputs(k->flags & SL_KF_REQ ? "required" : "none", fp);
        }
        fputs(" | ", fp);
        md_allowed(fp, k);
        fputs(" | ", fp);
        if (k->kinds) {
            fprintf(fp, "Only when `%s` is ", s->kind_label);
            md_kinds(fp, s, k->kinds);
            fputs(". ", fp);
        }
        md_cell(fp, k->desc ? k->desc : "", false);
        fputs(" |\n", fp);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        if (!k->sub)
            continue;
        md_sub_path(sub, path, k);
        md_section(fp, k->sub, sub);
    }
}

/* The reference's title and how to read it. */
static const char ref_intro[] =
    "# Configuration reference\n"
    "\n"
    "<!-- Generated by `sluice config-reference` from the schema\n"
    "     tables in lib/config_schema.c: edit the descriptions there,\n"
    "     then run `build/sluice config-reference > docs/configuration.md`.\n"
    "     -->\n"
    "\n"
    "Every key a pipeline file may hold, section by section. In a key\n"
    "path, `<name>` stands for a name you choose (`backends.<name>.url`\n"
    "is the `url` of each backend) and `[]` for each item of a list\n"
    "(`steps[].name`). A key with a default may be left out; `none`\n"
    "marks a key without one. Durations are in milliseconds (`_ms`),\n"
    "sizes in bytes. Every value may use `${VAR}`, `${VAR:-default}`\n"
    "and `$$` (README: Pipeline files). Secrets are never written in\n"
    "the file: `*_env` and `*_file` keys and `{value_env: NAME}` /\n"
    "`{value_file: PATH}` name where they are. `sluice check\n"
    "--print-config FILE` shows a file with every default filled in.\n";

int sl_config_reference(FILE *fp)
{
    fputs(ref_intro, fp);
    md_section(fp, &sl_config_schema_root, "");
    fflush(fp);
    return ferror(fp) ? -SL_EIO : 0;
}
