/*
 * Private to the config loader: the shape of the schema tables (one row per
 * key: name, type, range, default, where the value goes) shared by the
 * walker in config_walk.c and the tables in config_schema.c.
 */
#ifndef SL_CONFIG_SCHEMA_H
#define SL_CONFIG_SCHEMA_H

#include "config.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_CONFIG_MAX_PATH 512 /* key paths in messages */

enum sl_config_ktype {
    SL_KT_STR,     /* char * */
    SL_KT_INT,     /* int, within [min, max] */
    SL_KT_NUM,     /* double, within [fmin, fmax] */
    SL_KT_BOOL,    /* bool: true or false */
    SL_KT_ENUM,    /* an enum (int-sized): index into 'enums' */
    SL_KT_OBJ,     /* a struct inline at 'off', described by 'sub' */
    SL_KT_STRLIST, /* struct sl_config_strlist, [min, max] items */
    SL_KT_OBJLIST, /* array of 'sub' structs at 'off', count at 'cnt_off' */
    SL_KT_OBJMAP,  /* as OBJLIST; the YAML key goes to sub->name_off */
    SL_KT_KVMAP,   /* struct sl_config_kvlist; scalar values stringified */
};

#define SL_KF_REQ (1u << 0)      /* required (when its kinds apply) */
#define SL_KF_HAS (1u << 1)      /* set the bool at has_off when given */
#define SL_KF_EMPTY_OK (1u << 2) /* a string may be "" */

/* A check on a string value: "expected <expect>, got '...'" otherwise. */
struct sl_config_strcheck {
    const char *expect;        /* "a URL starting with http:// ..." */
    bool (*ok)(const char *s); /* true when 's' is acceptable */
    bool secret;               /* may hold a password: never echo it */
};

struct sl_config_schema;
struct sl_config_ctx;

/* One key of a mapping. */
struct sl_config_key {
    const char *name;                       /* the YAML key */
    enum sl_config_ktype type;              /* how the value is read */
    size_t off;                             /* where it goes in the struct */
    size_t cnt_off;                         /* OBJLIST/OBJMAP: the count */
    size_t has_off;                         /* SL_KF_HAS: a bool */
    unsigned flags;                         /* SL_KF_* */
    long long min, max;                     /* INT range; list lengths */
    double fmin, fmax;                      /* NUM range */
    const char *def;                        /* default, as YAML text */
    const char *const *enums;               /* ENUM names, NULL-ended */
    const struct sl_config_schema *sub;     /* OBJ, OBJLIST, OBJMAP */
    const struct sl_config_strcheck *check; /* STR, list items, map keys */
    unsigned kinds;   /* bit per discriminator value where the key is
                         allowed (and, with SL_KF_REQ, required); 0: any */
    const char *desc; /* one line for the reference (Markdown): what it
                         does, its unit, what happens at the limit */
};

/* A mapping: its keys and what to check once they are read. */
struct sl_config_schema {
    const struct sl_config_key *keys; /* nkeys rows */
    size_t nkeys;                     /* at most 64 */
    size_t size;                      /* sizeof the struct */
    const char *kind_key;   /* the ENUM key selecting kind-specific keys */
    const char *kind_label; /* how messages name it: "kind" */
    bool named;             /* OBJMAP entries: the key goes to ... */
    size_t name_off;        /* ... this char * field */
    /* Cross-key checks on 'obj', read from mapping 'map' at 'path'. */
    void (*check)(struct sl_config_ctx *ctx, void *obj, struct fy_node *map,
                  const char *path);
};

/* The top-level schema (struct sl_config). */
extern const struct sl_config_schema sl_config_schema_root;

/* Names of the enums, index = C enum value; NULL-ended. */
extern const char *const sl_config_source_kinds[];
extern const char *const sl_config_backend_kinds[];

/*
 * Report an error about 'node' (may be NULL: then about 'map'), whose key
 * path is 'path'.  For schema checks.
 */
void sl_config_report(struct sl_config_ctx *ctx, struct fy_node *node,
                      struct fy_node *map, const char *path, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));

/* Errors reported so far for this file. */
size_t sl_config_error_count(const struct sl_config_ctx *ctx);

/* True for no node, or an empty, '~' or 'null' plain scalar. */
bool sl_config_is_null(struct fy_node *fyn);

/* 'path' + ".key" into 'out' (SL_CONFIG_MAX_PATH bytes; config_walk.c). */
void sl_config_path_key(char *out, const char *path, const char *key);

/* The value of 'key' in mapping 'map' (aliases resolved), or NULL. */
struct fy_node *sl_config_lookup(struct fy_node *map, const char *key);

#endif
