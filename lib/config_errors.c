/*
 * Config errors: each kept with its file:line:col, key path and message
 * (one printable line whatever a value held), pointing through aliases to
 * where a value is used; the places of nodes; printing the errors as text
 * or JSON.
 */
#include "config_int.h"
#include "err.h"
#include "utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * A malloc'd copy of 'text' that is one line of UTF-8 text whatever a
 * ${VAR} or a multi-line scalar put in it: control characters become \n,
 * \r, \t or \xNN, and invalid UTF-8 \xNN.  NULL when memory is short.
 */
char *sl_config_one_line(const char *text)
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
static void add_error(struct sl_config_ctx *ctx, struct sl_config_mark m,
                      const char *text, const char *msg, const char *path)
{
    struct sl_config_errors *errs = ctx->errs;
    struct sl_config_error *items, e = {.line = m.line, .column = m.column};

    ctx->nerr++;
    if (errs->cnt >= SL_CONFIG_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    e.text = sl_config_one_line(text);
    e.file = sl_config_one_line(ctx->file);
    e.message = sl_config_one_line(msg);
    e.path = path && *path ? sl_config_one_line(path) : NULL;
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
static struct sl_config_mark node_end(struct fy_node *fyn)
{
    struct sl_config_mark none = {0, 0};
    int n;

    if (!fyn)
        return none;
    if (fy_node_is_alias(fyn) || fy_node_is_scalar(fyn)) {
        struct fy_token *fyt = fy_node_get_scalar_token(fyn);
        const struct fy_mark *fym = fyt ? fy_token_end_mark(fyt) : NULL;
        return fym ? (struct sl_config_mark){fym->line + 1, fym->column + 1}
                   : none;
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
static bool within(struct sl_config_mark m, struct sl_config_mark from,
                   struct sl_config_mark to)
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
static void vreport(struct sl_config_ctx *ctx, struct sl_config_mark m,
                    const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void vreport(struct sl_config_ctx *ctx, struct sl_config_mark m,
                    const char *path, const char *fmt, va_list ap)
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
        struct sl_config_mark use = sl_config_node_mark(alias),
                              def = sl_config_node_mark(target);
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
        m = (struct sl_config_mark){1, 1};
    if (path && *path)
        snprintf(line, sizeof(line), "%s:%d:%d: %s%s at %s", ctx->file, m.line,
                 m.column, msg, via, path);
    else
        snprintf(line, sizeof(line), "%s:%d:%d: %s%s", ctx->file, m.line,
                 m.column, msg, via);
    strncat(msg, via, sizeof(msg) - strlen(msg) - 1);
    add_error(ctx, m, line, msg, path);
}

void sl_config_report_at(struct sl_config_ctx *ctx, struct sl_config_mark m,
                         const char *path, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vreport(ctx, m, path, fmt, ap);
    va_end(ap);
}

/* An error about the file as a whole: "FILE: what". */
void sl_config_report_file(struct sl_config_ctx *ctx, const char *fmt, ...)
{
    char msg[1024], line[1600];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(line, sizeof(line), "%s: %s", ctx->file, msg);
    add_error(ctx, (struct sl_config_mark){0, 0}, line, msg, NULL);
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
void sl_config_errors_sort(struct sl_config_errors *errs, size_t from)
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

struct sl_config_mark sl_config_node_mark(struct fy_node *fyn)
{
    struct sl_config_mark none = {0, 0};

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
            return (struct sl_config_mark){fym->line + 1, fym->column};
        return (struct sl_config_mark){fym->line + 1, fym->column + 1};
    }
    if (fy_node_is_mapping(fyn)) {
        void *it = NULL;
        struct fy_node_pair *fynp = fy_node_mapping_iterate(fyn, &it);
        if (!fynp)
            return none;
        struct sl_config_mark m = sl_config_node_mark(fy_node_pair_key(fynp));
        return m.line ? m : sl_config_node_mark(fy_node_pair_value(fynp));
    }
    if (fy_node_is_sequence(fyn)) {
        void *it = NULL;
        return sl_config_node_mark(fy_node_sequence_iterate(fyn, &it));
    }
    return none;
}

/* The mark of 'fyn', or of 'fallback' when 'fyn' has none. */
struct sl_config_mark sl_config_mark_or(struct fy_node *fyn,
                                        struct sl_config_mark fallback)
{
    struct sl_config_mark m = sl_config_node_mark(fyn);
    return m.line ? m : fallback;
}

/* A plain empty, "~" or "null" scalar (or no node at all). */
bool sl_config_is_null(struct fy_node *fyn)
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
    vreport(ctx, sl_config_mark_or(node, sl_config_node_mark(map)), path, fmt,
            ap);
    va_end(ap);
}

/* "a mapping", "a list", "an empty value" or "'text'" for messages. */
const char *sl_config_describe_node(struct fy_node *fyn, const char *text,
                                    char *buf, size_t size)
{
    if (sl_config_is_null(fyn))
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
    char more[64], *file = sl_config_one_line(path);
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
