/*
 * Secrets (passwords, API keys, credential headers and Kafka properties)
 * never live in the pipeline file: it names an environment variable
 * (*_env) or a file (*_file) that holds one.  This module is the one
 * reader of such a source, with one set of rules, and the one check that
 * a source would be readable without reading it.
 */
#ifndef SL_SECRET_H
#define SL_SECRET_H

#include <stddef.h>

#define SL_SECRET_MAX (64 * 1024) /* longest secret, in bytes */

/* Where a secret is: the variable 'env', else the file 'file'. */
struct sl_secret_src {
    const char *env;  /* environment variable name; NULL or "": none */
    const char *file; /* path of a file; NULL or "": none */
};

/* Flags of sl_secret_read(). */
#define SL_SECRET_MULTILINE (1u << 0) /* line breaks inside are kept (PEM) */

/*
 * The rules, the same for every secret:
 *
 *   - env: the variable must be set and not empty;
 *   - file: it must exist, be a regular file (symbolic links are
 *     followed) that this process can read, have no permission bit for
 *     group or others (chmod 600), and hold at most SL_SECRET_MAX bytes;
 *   - the value loses its trailing CR and LF characters (a file written
 *     by an editor, `echo ... >file`); what is left must not be empty and
 *     must hold no NUL byte, nor, unless SL_SECRET_MULTILINE, a CR or LF
 *     (a secret goes into one header or protocol line).
 *
 * Error texts name the variable or the file, never the value.
 */

/*
 * Read the secret of 'src' into *valuep (malloc'd, NUL-terminated; free
 * it with sl_secret_free()).  When 'src' names nothing, returns 0 with
 * *valuep NULL.  Otherwise returns -SL_ESECRET (rules above broken) or
 * -SL_ENOMEM, with *valuep NULL and errstr "WHAT: why" ('what' says
 * whose secret: "backend 'chat' api_key_file").  Any thread.
 */
int sl_secret_read(const struct sl_secret_src *src, unsigned flags,
                   const char *what, char **valuep, char *errstr,
                   size_t errstr_size);

/*
 * Would sl_secret_read() get past the source of 'src'?  Checks what can
 * be known without reading the secret: the variable is set and not
 * empty; the file exists, is a regular file this process may read, is
 * not open to group or others, is not empty and not too long.  Returns 0
 * (also when 'src' names nothing) or -SL_ESECRET with errstr saying why
 * (no 'what' prefix: "environment variable X is not set").  Any thread.
 */
int sl_secret_check(const struct sl_secret_src *src, char *errstr,
                    size_t errstr_size);

/* Zero and free a secret from sl_secret_read().  NULL is a no-op. */
void sl_secret_free(char *value);

#endif
