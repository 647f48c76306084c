/*
 * The effective pipeline as YAML (--print-config): every key with its
 * value or default, walking the schema tables; secrets only by the names
 * of their _env/_file sources, never their values.
 */
#include "config_int.h"
#include "err.h"
#include "utf8.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    char text[SL_CONFIG_MAX_PATH + 32];

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
 * stem[SL_CONFIG_MAX_PATH]; false for any other key.
 */
static bool secret_key(const struct sl_config_schema *s, const char *name,
                       char *stem)
{
    size_t len = strlen(name), cut;
    const char *sib;
    char other[SL_CONFIG_MAX_PATH + 8];

    if (len >= SL_CONFIG_MAX_PATH - 8)
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
    snprintf(stem, SL_CONFIG_MAX_PATH, "%.*s", (int)(len - cut), name);
    snprintf(other, sizeof(other), "%s%s", stem, sib);
    return sl_config_find_key(s, other) != NULL;
}

static struct fy_node *
yaml_obj(struct yaml_out *yo, const struct sl_config_schema *s, const void *obj)
{
    struct fy_node *map = fy_node_create_mapping(yo->fyd);
    int kind = -1;
    char stem[SL_CONFIG_MAX_PATH], other[SL_CONFIG_MAX_PATH + 8];

    if (!map) {
        yo->failed = true;
        return NULL;
    }
    if (s->kind_key)
        kind = *(const int *)((const char *)obj +
                              sl_config_find_key(s, s->kind_key)->off);
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
                *(char *const *)((const char *)obj +
                                 sl_config_find_key(s, other)->off));
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
