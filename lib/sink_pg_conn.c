/*
 * PostgreSQL sink, connection side: reading the DSN (with libpq, masking
 * any password in its errors), the password (lib/secret.h), the
 * "host:port/db as user" shown in logs, and the keyword arrays the sink
 * thread connects with.  No connection is opened here.
 */
#include "sink_pg_int.h"
#include "err.h"
#include "secret.h"

#include <libpq-fe.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sl_sink_pg_first_line(const char *s, char *buf, size_t size)
{
    size_t n = 0;

    while (s && s[n] && s[n] != '\n' && n + 1 < size) {
        buf[n] = s[n];
        n++;
    }
    buf[n] = '\0';
}

int sl_sink_pg_read_password(const struct sl_sink_pg_conf *conf, char **pwp,
                             char *errstr, size_t errstr_size)
{
    struct sl_secret_src src = {conf->password_env, conf->password_file};

    return sl_secret_read(&src, 0,
                          src.env && *src.env ? "postgres password_env"
                                              : "postgres password_file",
                          pwp, errstr, errstr_size);
}

/*
 * libpq quotes a bad URI whole in its error ("invalid IPv6 host address
 * in URI: \"postgresql://u:secret@[::1\""): mask a URI's password, and
 * any password=... value, in 'line' before it is shown.
 */
static void mask_passwords(char *line)
{
    for (char *p = line; (p = strstr(p, "://")) != NULL;) {
        char *user = p + 3, *end = user + strcspn(user, "/?#\" ");
        char *at = memchr(user, '@', (size_t)(end - user));
        char *colon = at ? memchr(user, ':', (size_t)(at - user)) : NULL;
        if (colon)
            memset(colon + 1, '*', (size_t)(at - colon - 1));
        p = end;
    }
    for (char *p = line; (p = strstr(p, "password=")) != NULL;) {
        p += strlen("password=");
        for (; *p && *p != ' ' && *p != '"' && *p != '&'; p++)
            *p = '*';
    }
}

/* libpq's reading of 'dsn' (PQconninfoFree it); errstr says why not. */
static int parse_dsn(const char *dsn, PQconninfoOption **optsp, char *errstr,
                     size_t errstr_size)
{
    char *err = NULL;

    *optsp = PQconninfoParse(dsn, &err);
    if (!*optsp) {
        char line[256];

        sl_sink_pg_first_line(err ? err : "out of memory", line, sizeof(line));
        PQfreemem(err);
        mask_passwords(line);
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size, "postgres dsn: %s",
                         line);
    }
    return 0;
}

/* The value 'opts' has for 'keyword': NULL when the DSN did not set it. */
static const char *dsn_value(const PQconninfoOption *opts, const char *keyword)
{
    for (; opts->keyword; opts++)
        if (!strcmp(opts->keyword, keyword))
            return opts->val;
    return NULL;
}

int sl_sink_pg_conn_params(const char *dsn, const char *app,
                           const char *password, const char **keys,
                           const char **vals, int *servicep, char *errstr,
                           size_t errstr_size)
{
    static const char *const defaults[][2] = {
        {"keepalives", SL_SINK_PG_KEEPALIVES},
        {"keepalives_idle", SL_SINK_PG_KEEPALIVES_IDLE},
        {"keepalives_interval", SL_SINK_PG_KEEPALIVES_INTERVAL},
        {"keepalives_count", SL_SINK_PG_KEEPALIVES_COUNT},
        {"tcp_user_timeout", SL_SINK_PG_TCP_USER_TIMEOUT},
    };
    PQconninfoOption *opts;
    const char *service;
    size_t i;
    int k = 0, rc;

    keys[0] = vals[0] = NULL;
    *servicep = 0;
    if ((rc = parse_dsn(dsn, &opts, errstr, errstr_size)) < 0)
        return rc;
    service = dsn_value(opts, "service");
    if (!service || !*service)
        service = getenv("PGSERVICE");
    *servicep = service && *service;
    /* Ahead of dbname: were the DSN to set one after all, it would win. */
    for (i = 0; i < sizeof(defaults) / sizeof(defaults[0]) && !*servicep; i++) {
        if (dsn_value(opts, defaults[i][0]))
            continue;
        keys[k] = defaults[i][0], vals[k++] = defaults[i][1];
    }
    PQconninfoFree(opts);
    keys[k] = "dbname", vals[k++] = dsn;
    keys[k] = "application_name", vals[k++] = app;
    if (password)
        keys[k] = "password", vals[k++] = password;
    keys[k] = NULL, vals[k] = NULL;
    return k;
}

int sl_sink_pg_describe_dsn(const char *dsn, char **wherep, char *errstr,
                            size_t errstr_size)
{
    char buf[512];
    const char *host = NULL, *port = NULL, *db = NULL, *user = NULL;
    PQconninfoOption *opts, *o;
    int rc;

    *wherep = NULL;
    if ((rc = parse_dsn(dsn, &opts, errstr, errstr_size)) < 0)
        return rc;
    for (o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        if (!strcmp(o->keyword, "host") || !strcmp(o->keyword, "hostaddr"))
            host = host ? host : o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            db = o->val;
        else if (!strcmp(o->keyword, "user"))
            user = o->val;
    }
    snprintf(buf, sizeof(buf), "%s:%s/%s as %s", host ? host : "(socket)",
             port ? port : "5432", db ? db : "(default)",
             user ? user : "(default)");
    PQconninfoFree(opts);
    *wherep = strdup(buf);
    return *wherep ? 0 : -SL_ENOMEM;
}
