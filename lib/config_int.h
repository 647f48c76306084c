/*
 * Private to the config loader: what its files share.  config.c reads the
 * file and builds the document (behind the forked libfyaml guard);
 * config_walk.c walks it by the schema tables and fills struct sl_config;
 * config_interp.c expands ${VAR}; config_errors.c collects the errors with
 * their file:line:col and key path; config_yaml.c prints the effective
 * pipeline; config_ref.c writes the reference.  The schema's shape and the
 * calls its checks use are in config_schema.h.
 */
#ifndef SL_CONFIG_INT_H
#define SL_CONFIG_INT_H

#include "config_schema.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stddef.h>

/* One load: the file being read and where its errors go. */
struct sl_config_ctx {
    const char *file;              /* name used in messages */
    struct sl_config_errors *errs; /* where errors go */
    size_t nerr;                   /* errors reported for this file */
    bool oom;                      /* an allocation failed */
    bool guard;                    /* try libfyaml in a child first */
    struct fy_node *root;          /* the document's root, once built */
};

/* A place in the file, 1-based; line 0 when unknown. */
struct sl_config_mark {
    int line;   /* 1-based */
    int column; /* 1-based */
};

/* ---- config_errors.c ---- */

/*
 * "FILE:L:C: <fmt> at <path>" (no " at" when path is NULL or ""), pointing
 * through an alias on 'path' to where its value is used.
 */
void sl_config_report_at(struct sl_config_ctx *ctx, struct sl_config_mark m,
                         const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* An error about the file as a whole: "FILE: what". */
void sl_config_report_file(struct sl_config_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Stable sort of errs->items [from, cnt) by line, then column. */
void sl_config_errors_sort(struct sl_config_errors *errs, size_t from);

/* Where 'fyn' starts (at the quote of a quoted scalar); {0, 0}: unknown. */
struct sl_config_mark sl_config_node_mark(struct fy_node *fyn);

/* The mark of 'fyn', or 'fallback' when 'fyn' has none. */
struct sl_config_mark sl_config_mark_or(struct fy_node *fyn,
                                        struct sl_config_mark fallback);

/*
 * A malloc'd one-line, printable UTF-8 copy of 'text' (control characters
 * escaped); NULL when memory is short.
 */
char *sl_config_one_line(const char *text);

/* "a mapping", "a list", "an empty value" or "'text'" (in 'buf'). */
const char *sl_config_describe_node(struct fy_node *fyn, const char *text,
                                    char *buf, size_t size);

/* ---- config_interp.c ---- */

/*
 * The value of scalar 'fyn' with ${VAR}, ${VAR:-default} and $$ expanded.
 * Returns a malloc'd string, or NULL after reporting the error.
 */
char *sl_config_interpolate(struct sl_config_ctx *ctx, struct fy_node *fyn,
                            const char *path);

/* ---- config_walk.c ---- */

/* Set the defaults of schema 's' in 'obj'.  0 or -SL_ENOMEM. */
int sl_config_apply_defaults(const struct sl_config_schema *s, void *obj);

/* Free what 'obj' (of schema 's') holds; not 'obj' itself. */
void sl_config_free_obj(const struct sl_config_schema *s, void *obj);

/*
 * Read mapping 'map' (NULL: empty) into 'obj' by schema 's'; 'at' is where
 * errors about missing keys point, 'path' the mapping's key path.
 */
void sl_config_parse_obj(struct sl_config_ctx *ctx,
                         const struct sl_config_schema *s, void *obj,
                         struct fy_node *map, struct sl_config_mark at,
                         const char *path);

/* The row of key 'name' in 's', or NULL. */
const struct sl_config_key *sl_config_find_key(const struct sl_config_schema *s,
                                               const char *name);

#endif
