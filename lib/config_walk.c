/*
 * The config walk: one pass over the document driven by the schema tables
 * (config_schema.c) that converts and range-checks every value, applies
 * defaults, checks keys (unknown, duplicate, required, kind-specific) and
 * fills struct sl_config; and the schema-driven freeing of it.
 */
#include "config_int.h"
#include "err.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int sl_config_apply_defaults(const struct sl_config_schema *s, void *obj)
{
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];
        char *field = (char *)obj + k->off;
        int err;

        if (k->type == SL_KT_OBJ) {
            if ((err = sl_config_apply_defaults(k->sub, field)) < 0)
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

void sl_config_free_obj(const struct sl_config_schema *s, void *obj)
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
            sl_config_free_obj(k->sub, field);
            break;
        case SL_KT_OBJLIST:
        case SL_KT_OBJMAP: {
            char *arr;
            memcpy(&arr, field, sizeof(arr)); /* any T *: no punning */
            size_t cnt = *(size_t *)((char *)obj + k->cnt_off);
            for (size_t j = 0; j < cnt; j++)
                sl_config_free_obj(k->sub, arr + j * k->sub->size);
            free(arr);
            break;
        }
        default:
            break;
        }
    }
}

/* ---- the walk ---- */

void sl_config_path_key(char *out, const char *path, const char *key)
{
    snprintf(out, SL_CONFIG_MAX_PATH, "%s%s%s", path, *path ? "." : "", key);
}

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
    sl_config_report_at(
        ctx, sl_config_node_mark(fyn), path, "unknown alias '*%s'",
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

/* "expected <what k takes>, got <what val is>", at val (or the key). */
static void report_expected(struct sl_config_ctx *ctx,
                            const struct sl_config_key *k, struct fy_node *val,
                            struct sl_config_mark keymark, const char *path)
{
    char exp[512], got[128];

    sl_config_report_at(ctx, sl_config_mark_or(val, keymark), path,
                        "expected %s, got %s",
                        describe_key(k, exp, sizeof(exp)),
                        sl_config_describe_node(val, NULL, got, sizeof(got)));
}

/* Read a scalar value of key 'k' into 'field'; false after an error. */
static bool parse_scalar(struct sl_config_ctx *ctx,
                         const struct sl_config_key *k, void *field,
                         struct fy_node *val, struct sl_config_mark keymark,
                         const char *path)
{
    char exp[512], got[128];
    char *text;
    int err;

    if (!fy_node_is_scalar(val)) {
        report_expected(ctx, k, val, keymark, path);
        return false;
    }
    if (!(text = sl_config_interpolate(ctx, val, path)))
        return false;
    if ((err = convert(k, text, field)) == -SL_EINVAL)
        sl_config_report_at(
            ctx, sl_config_mark_or(val, keymark), path, "expected %s, got %s",
            describe_key(k, exp, sizeof(exp)),
            k->check && k->check->secret
                ? "a value that is not shown (it may hold a secret)"
                : sl_config_describe_node(val, text, got, sizeof(got)));
    else if (err < 0)
        ctx->oom = true;
    free(text);
    return err == 0;
}

/* Checks a sequence's length against [k->min, k->max]. */
static void check_count(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k, struct fy_node *seq,
                        struct sl_config_mark keymark, const char *path)
{
    int n = fy_node_sequence_item_count(seq);
    char exp[512];

    if (n < k->min || n > k->max)
        sl_config_report_at(ctx, sl_config_mark_or(seq, keymark), path,
                            "expected %s, got %d item%s",
                            describe_key(k, exp, sizeof(exp)), n,
                            n == 1 ? "" : "s");
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
            struct sl_config_mark first =
                sl_config_node_mark(fy_node_pair_key(p));
            sl_config_report_at(
                ctx, sl_config_node_mark(fy_node_pair_key(fynp)), path,
                "duplicate key '%s' (first given at line %d)", key, first.line);
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
    sl_config_report_at(ctx, sl_config_mark_or(keyn, sl_config_node_mark(map)),
                        path, "expected a key, got %s",
                        sl_config_describe_node(keyn, NULL, got, sizeof(got)));
    return NULL;
}

static void parse_strlist(struct sl_config_ctx *ctx,
                          const struct sl_config_key *k,
                          struct sl_config_strlist *sl, struct fy_node *seq,
                          struct sl_config_mark keymark, const char *path)
{
    struct sl_config_key item = {.type = SL_KT_STR, .check = k->check};
    char ipath[SL_CONFIG_MAX_PATH], exp[512], got[128];
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
        if (sl_config_is_null(fyn)) {
            sl_config_report_at(
                ctx, sl_config_mark_or(fyn, sl_config_mark_or(seq, keymark)),
                ipath, "expected %s, got %s",
                describe_key(&item, exp, sizeof(exp)),
                sl_config_describe_node(fyn, NULL, got, sizeof(got)));
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

/* A KVMAP's or OBJMAP's entry count against k->max. */
static void check_entries(struct sl_config_ctx *ctx,
                          const struct sl_config_key *k, struct fy_node *map,
                          const char *path)
{
    if ((long long)fy_node_mapping_item_count(map) > k->max)
        sl_config_report_at(ctx, sl_config_node_mark(map), path,
                            "expected at most %lld entries, got %d", k->max,
                            fy_node_mapping_item_count(map));
}

/*
 * The key of entry 'fynp' of a KVMAP or OBJMAP 'map' at 'path', its path
 * in 'kpath' and its value (alias resolved) in *valp.  NULL after
 * reporting a key that is not text, a duplicate, one k->check refuses or
 * an unknown alias.
 */
static const char *map_entry(struct sl_config_ctx *ctx,
                             const struct sl_config_key *k, struct fy_node *map,
                             struct fy_node_pair *fynp, const char *path,
                             char *kpath, struct fy_node **valp)
{
    struct fy_node *keyn = fy_node_pair_key(fynp);
    const char *key = key_text(ctx, map, keyn, path);
    bool bad;

    if (!key)
        return NULL;
    sl_config_path_key(kpath, path, key);
    if (duplicate_key(ctx, map, fynp, key, kpath))
        return NULL;
    if (k->check && !k->check->ok(key)) {
        sl_config_report_at(ctx, sl_config_node_mark(keyn), kpath,
                            "expected %s, got '%s'", k->check->expect, key);
        return NULL;
    }
    if (!(*valp = deref(ctx, fy_node_pair_value(fynp), kpath, &bad)) && bad)
        return NULL;
    return key;
}

static void parse_kvmap(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k,
                        struct sl_config_kvlist *kvl, struct fy_node *map,
                        const char *path)
{
    struct sl_config_key item = {.type = SL_KT_STR, .flags = SL_KF_EMPTY_OK};
    char kpath[SL_CONFIG_MAX_PATH], got[128];
    void *it = NULL;
    struct fy_node_pair *fynp;

    check_entries(ctx, k, map, path);
    while ((fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp), *val;
        const char *key = map_entry(ctx, k, map, fynp, path, kpath, &val);
        char *value = NULL;

        if (!key)
            continue;
        /* With k->sub, a value may also be a mapping: {value_env: NAME}. */
        if (k->sub && val && fy_node_is_mapping(val)) {
            if (fy_node_mapping_item_count(val) == 0) {
                sl_config_report_at(
                    ctx, sl_config_node_mark(keyn), kpath,
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
            sl_config_parse_obj(ctx, k->sub, kv, val, sl_config_node_mark(keyn),
                                kpath);
            continue;
        }
        if (sl_config_is_null(val) || !fy_node_is_scalar(val)) {
            sl_config_report_at(
                ctx, sl_config_mark_or(val, sl_config_node_mark(keyn)), kpath,
                "expected a string, number or boolean%s, got %s",
                k->sub ? " (or {value_env: NAME} or {value_file: PATH})" : "",
                sl_config_describe_node(val, NULL, got, sizeof(got)));
            continue;
        }
        if (!parse_scalar(ctx, &item, &value, val, sl_config_node_mark(keyn),
                          kpath))
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
    char kpath[SL_CONFIG_MAX_PATH], got[128];
    void *slot = (char *)obj + k->off;
    size_t *cntp = (size_t *)((char *)obj + k->cnt_off);
    void *it = NULL;
    struct fy_node_pair *fynp;

    check_entries(ctx, k, map, path);
    while ((fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
        struct fy_node *keyn = fy_node_pair_key(fynp), *val;
        const char *key = map_entry(ctx, k, map, fynp, path, kpath, &val);
        char *elem;

        if (!key)
            continue;
        if (!fy_node_is_mapping(val)) {
            sl_config_report_at(
                ctx, sl_config_mark_or(val, sl_config_node_mark(keyn)), kpath,
                "expected a mapping, got %s",
                sl_config_describe_node(val, NULL, got, sizeof(got)));
            continue;
        }
        if (!(elem = grow(ctx, slot, cntp, k->sub->size)))
            return;
        if (sl_config_apply_defaults(k->sub, elem) < 0 ||
            !(*(char **)(elem + k->sub->name_off) = strdup(key))) {
            ctx->oom = true;
            return;
        }
        sl_config_parse_obj(ctx, k->sub, elem, val, sl_config_node_mark(keyn),
                            kpath);
    }
}

static void parse_objlist(struct sl_config_ctx *ctx,
                          const struct sl_config_key *k, void *obj,
                          struct fy_node *seq, struct sl_config_mark keymark,
                          const char *path)
{
    char ipath[SL_CONFIG_MAX_PATH], got[128];
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
            sl_config_report_at(
                ctx, sl_config_mark_or(fyn, sl_config_mark_or(seq, keymark)),
                ipath, "expected a mapping, got %s",
                sl_config_describe_node(fyn, NULL, got, sizeof(got)));
            continue;
        }
        if (!(elem = grow(ctx, slot, cntp, k->sub->size)))
            return;
        if (sl_config_apply_defaults(k->sub, elem) < 0) {
            ctx->oom = true;
            return;
        }
        sl_config_parse_obj(ctx, k->sub, elem, fyn,
                            sl_config_mark_or(fyn, keymark), ipath);
    }
}

/*
 * Read the value 'val' of key 'k' (whose own key is at 'keymark') into
 * 'obj'.  Returns true when the value was read without error.
 */
static bool parse_value(struct sl_config_ctx *ctx,
                        const struct sl_config_key *k, void *obj,
                        struct fy_node *val, struct sl_config_mark keymark,
                        const char *path)
{
    char *field = (char *)obj + k->off;
    size_t before = ctx->nerr;
    bool bad;

    if (!(val = deref(ctx, val, path, &bad)) && bad)
        return false;
    if (sl_config_is_null(val) && k->type == SL_KT_OBJ) {
        /* "postgres:" with nothing under it: all defaults. */
        sl_config_parse_obj(ctx, k->sub, field, NULL, keymark, path);
        if (k->flags & SL_KF_HAS)
            *(bool *)((char *)obj + k->has_off) = true;
        return ctx->nerr == before;
    }
    if (sl_config_is_null(val)) {
        if (!(k->flags & SL_KF_REQ))
            return true; /* as if not given: the default stays */
        report_expected(ctx, k, val, keymark, path);
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
            report_expected(ctx, k, val, keymark, path);
            return false;
        }
        if (k->type == SL_KT_OBJ)
            sl_config_parse_obj(ctx, k->sub, field, val, keymark, path);
        else if (k->type == SL_KT_OBJMAP)
            parse_objmap(ctx, k, obj, val, path);
        else
            parse_kvmap(ctx, k, (struct sl_config_kvlist *)field, val, path);
        break;
    case SL_KT_STRLIST:
    case SL_KT_OBJLIST:
        if (!fy_node_is_sequence(val)) {
            report_expected(ctx, k, val, keymark, path);
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

const struct sl_config_key *sl_config_find_key(const struct sl_config_schema *s,
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
    const char *const *names = sl_config_find_key(s, s->kind_key)->enums;
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
                           struct sl_config_mark m, const char *path)
{
    char env[128], file[128];

    snprintf(env, sizeof(env), "%s_env", key);
    snprintf(file, sizeof(file), "%s_file", key);
    if (!strcmp(key, "<<"))
        sl_config_report_at(
            ctx, m, path,
            "merge keys ('<<') are not supported; repeat the settings or "
            "use an alias ('*name') for a whole value");
    else if (sl_config_find_key(s, env) && sl_config_find_key(s, file))
        sl_config_report_at(
            ctx, m, path,
            "unknown key '%s' (secrets must not be written in the file; "
            "use %s or %s)",
            key, env, file);
    else
        sl_config_report_at(ctx, m, path, "unknown key '%s'", key);
}

void sl_config_parse_obj(struct sl_config_ctx *ctx,
                         const struct sl_config_schema *s, void *obj,
                         struct fy_node *map, struct sl_config_mark at,
                         const char *path)
{
    const struct sl_config_key *kind_key = NULL;
    struct fy_node_pair *kind_pair = NULL, *fynp;
    char kpath[SL_CONFIG_MAX_PATH], tmp[256];
    uint64_t seen = 0;
    void *it = NULL;
    int kind = -1;

    /* The discriminator first: it decides which other keys are allowed. */
    if (s->kind_key) {
        kind_key = sl_config_find_key(s, s->kind_key);
        while (map && (fynp = fy_node_mapping_iterate(map, &it)) != NULL) {
            const char *key = fy_node_get_scalar0(fy_node_pair_key(fynp));
            if (key && !strcmp(key, s->kind_key)) {
                kind_pair = fynp;
                break;
            }
        }
        if (kind_pair) {
            sl_config_path_key(kpath, path, s->kind_key);
            if (parse_value(ctx, kind_key, obj, fy_node_pair_value(kind_pair),
                            sl_config_node_mark(fy_node_pair_key(kind_pair)),
                            kpath) &&
                !sl_config_is_null(fy_node_pair_value(kind_pair)))
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
        sl_config_path_key(kpath, path, key);
        if (!(k = sl_config_find_key(s, key))) {
            report_unknown(ctx, s, key, sl_config_node_mark(keyn), kpath);
            continue;
        }
        if (duplicate_key(ctx, map, fynp, key, kpath))
            continue;
        seen |= 1ull << (k - s->keys);
        if (k->kinds && kind >= 0 && !((k->kinds >> kind) & 1u)) {
            sl_config_report_at(ctx, sl_config_node_mark(keyn), kpath,
                                "key '%s' is only allowed when %s is %s", key,
                                s->kind_label,
                                kinds_text(s, k->kinds, tmp, sizeof(tmp)));
            continue;
        }
        parse_value(ctx, k, obj, fy_node_pair_value(fynp),
                    sl_config_node_mark(keyn), kpath);
    }

    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        if (!(k->flags & SL_KF_REQ) || ((seen >> i) & 1u))
            continue;
        if (k->kinds && (kind < 0 || !((k->kinds >> kind) & 1u)))
            continue;
        sl_config_path_key(kpath, path, k->name);
        if (k->kinds)
            sl_config_report_at(
                ctx, at, kpath,
                "missing required key '%s' (required when %s is %s)", k->name,
                s->kind_label, kinds_text(s, 1u << kind, tmp, sizeof(tmp)));
        else
            sl_config_report_at(ctx, at, kpath, "missing required key '%s'",
                                k->name);
    }
    if (s->check)
        s->check(ctx, obj, map, path);
}
