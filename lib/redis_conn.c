/*
 * Redis connection shared by the Redis sources.  Blocking hiredis with a
 * connect timeout and a command timeout; a dropped connection is retried
 * with exponential backoff (capped, with jitter) and each distinct cause
 * is logged once, never with the password.
 */
#include "redis_conn.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "secret.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#define BACKOFF_MIN_MS 100 /* first reconnect delay */

struct sl_redis_conn {
    struct sl_redis_url url;     /* host, port, db; password copied below */
    char user[128];              /* ACL user from the URL; "" for default */
    char password[256];          /* resolved secret; "" when none */
    char display[300];           /* host:port/db for logs, no secret */
    char component[32];          /* log component */
    char client_name[128];       /* CLIENT SETNAME; "" for none */
    int connect_timeout_ms;      /* per connect */
    int command_timeout_ms;      /* per reply */
    int backoff_max_ms;          /* cap on the reconnect delay */
    redisContext *ctx;           /* NULL while disconnected */
    bool ever_connected;         /* a later connect is a reconnect */
    int attempts;                /* failed connects since the last success */
    int64_t next_try_ms;         /* monotonic time of the next connect */
    char last_cause[256];        /* last logged cause, to log once */
    unsigned int seed;           /* jitter */
    _Atomic uint64_t reconnects; /* successful reconnects */
};

int sl_redis_url_parse(const char *url, struct sl_redis_url *u, char *errstr,
                       size_t errstr_size)
{
    const char *p, *at, *slash, *hend, *colon;
    char tmp[16];

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (!url || strncmp(url, "redis://", 8) != 0)
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "redis url must start with redis://");
    p = url + 8;
    slash = strchr(p, '/');
    at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    if (at) {
        /* "[user]:password@": only the part after the first ':' is secret. */
        const char *c = memchr(p, ':', (size_t)(at - p));
        size_t plen = c ? (size_t)(at - c - 1) : (size_t)(at - p);
        const char *pw = c ? c + 1 : p;
        if (plen >= sizeof(u->password))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: password too long");
        memcpy(u->password, pw, plen);
        p = at + 1;
    }
    hend = slash ? slash : p + strlen(p);
    if (*p == '[') { /* [ipv6]:port */
        const char *rb = memchr(p, ']', (size_t)(hend - p));
        if (!rb)
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: unterminated '[' in host");
        if ((size_t)(rb - p - 1) >= sizeof(u->host))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: host too long");
        memcpy(u->host, p + 1, (size_t)(rb - p - 1));
        colon = rb + 1 < hend && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', (size_t)(hend - p));
        const char *e = colon ? colon : hend;
        if ((size_t)(e - p) >= sizeof(u->host))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: host too long");
        memcpy(u->host, p, (size_t)(e - p));
    }
    if (!u->host[0])
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "redis url: no host");
    if (colon) {
        size_t n = (size_t)(hend - colon - 1);
        char *end;
        if (n == 0 || n >= sizeof(tmp))
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: bad port");
        memcpy(tmp, colon + 1, n);
        tmp[n] = '\0';
        long port = strtol(tmp, &end, 10);
        if (*end || port < 1 || port > 65535)
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: bad port '%s'", tmp);
        u->port = (int)port;
    }
    if (slash && slash[1]) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (*end || db < 0 || db > 65535)
            return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                             "redis url: bad database '%s'", slash + 1);
        u->db = (int)db;
    }
    return 0;
}

/* The user part of "user:password@", copied into 'user'. */
static void url_user(const char *url, char *user, size_t size)
{
    const char *p = url + 8, *slash = strchr(p, '/');
    const char *at = memchr(p, '@', slash ? (size_t)(slash - p) : strlen(p));
    const char *c = at ? memchr(p, ':', (size_t)(at - p)) : NULL;

    user[0] = '\0';
    if (c && c > p && (size_t)(c - p) < size) {
        memcpy(user, p, (size_t)(c - p));
        user[c - p] = '\0';
    }
}

/*
 * The password named by password_env / password_file of 'conf' (lib/secret.h
 * rules) into rc->password; left alone when neither is set.
 */
static int read_password(struct sl_redis_conn *rc,
                         const struct sl_redis_conn_conf *conf, char *errstr,
                         size_t errstr_size)
{
    struct sl_secret_src src = {conf->password_env, conf->password_file};
    char *pw;
    int err;

    err = sl_secret_read(&src, 0,
                         src.env && *src.env ? "redis password_env"
                                             : "redis password_file",
                         &pw, errstr, errstr_size);
    if (err < 0 || !pw)
        return err;
    if (strlen(pw) >= sizeof(rc->password))
        err = sl_seterr(-SL_ESECRET, errstr, errstr_size,
                        "redis password: longer than %zu bytes",
                        sizeof(rc->password) - 1);
    else
        snprintf(rc->password, sizeof(rc->password), "%s", pw);
    sl_secret_free(pw);
    return err;
}

struct sl_redis_conn *sl_redis_conn_new(const struct sl_redis_conn_conf *conf,
                                        char *errstr, size_t errstr_size)
{
    struct sl_redis_conn *rc = calloc(1, sizeof(*rc));

    if (!rc) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    if (sl_redis_url_parse(conf->url, &rc->url, errstr, errstr_size) < 0)
        goto fail;
    url_user(conf->url, rc->user, sizeof(rc->user));
    snprintf(rc->password, sizeof(rc->password), "%s", rc->url.password);
    memset(rc->url.password, 0, sizeof(rc->url.password));
    if (read_password(rc, conf, errstr, errstr_size) < 0)
        goto fail;
    snprintf(rc->display, sizeof(rc->display), "%s:%d/%d", rc->url.host,
             rc->url.port, rc->url.db);
    snprintf(rc->component, sizeof(rc->component), "%s",
             conf->component ? conf->component : "redis");
    snprintf(rc->client_name, sizeof(rc->client_name), "%s",
             conf->client_name ? conf->client_name : "");
    for (char *p = rc->client_name; *p; p++)
        if (*p == ' ' || *p == '\n')
            *p = '-';
    rc->connect_timeout_ms =
        conf->connect_timeout_ms > 0 ? conf->connect_timeout_ms : 5000;
    rc->command_timeout_ms =
        conf->command_timeout_ms > 0 ? conf->command_timeout_ms : 10000;
    rc->backoff_max_ms = conf->backoff_max_ms > 0 ? conf->backoff_max_ms : 5000;
    rc->seed = (unsigned int)(sl_now_us() ^ (int64_t)getpid());
    return rc;
fail:
    sl_redis_conn_destroy(rc);
    return NULL;
}

void sl_redis_conn_destroy(struct sl_redis_conn *rc)
{
    if (!rc)
        return;
    if (rc->ctx)
        redisFree(rc->ctx);
    memset(rc->password, 0, sizeof(rc->password));
    free(rc);
}

static struct timeval tv_ms(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/* Run one command on a fresh context; an error reply becomes errstr. */
static int setup_command(redisContext *ctx, int argc, const char **argv,
                         const char *what, char *errstr, size_t errstr_size)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    int rc = 0;

    if (!r)
        return sl_seterr(-SL_ECONN, errstr, errstr_size, "%s failed: %s", what,
                         ctx->errstr);
    if (r->type == REDIS_REPLY_ERROR)
        rc = sl_seterr(-SL_EREDIS, errstr, errstr_size, "%s failed: %s", what,
                       r->str);
    freeReplyObject(r);
    return rc;
}

int sl_redis_conn_connect(struct sl_redis_conn *rc, char *errstr,
                          size_t errstr_size)
{
    redisContext *ctx;
    char db[16];

    if (rc->ctx) {
        redisFree(rc->ctx);
        rc->ctx = NULL;
    }
    ctx = redisConnectWithTimeout(rc->url.host, rc->url.port,
                                  tv_ms(rc->connect_timeout_ms));
    if (!ctx)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    if (ctx->err) {
        int err = sl_seterr(-SL_ECONN, errstr, errstr_size, "connect: %s",
                            ctx->errstr);
        redisFree(ctx);
        return err;
    }
    if (redisSetTimeout(ctx, tv_ms(rc->command_timeout_ms)) != REDIS_OK) {
        redisFree(ctx);
        return sl_seterr(-SL_ECONN, errstr, errstr_size,
                         "cannot set the command timeout");
    }
    redisEnableKeepAlive(ctx);
    if (rc->password[0]) {
        const char *auth_user[] = {"AUTH", rc->user, rc->password};
        const char *auth[] = {"AUTH", rc->password};
        int err =
            rc->user[0]
                ? setup_command(ctx, 3, auth_user, "AUTH", errstr, errstr_size)
                : setup_command(ctx, 2, auth, "AUTH", errstr, errstr_size);
        if (err < 0) {
            redisFree(ctx);
            return err;
        }
    }
    if (rc->url.db != 0) {
        snprintf(db, sizeof(db), "%d", rc->url.db);
        const char *sel[] = {"SELECT", db};
        int err = setup_command(ctx, 2, sel, "SELECT", errstr, errstr_size);
        if (err < 0) {
            redisFree(ctx);
            return err;
        }
    }
    if (rc->client_name[0]) {
        /* Only for operators (CLIENT LIST): a refusal is not an error. */
        const char *setname[] = {"CLIENT", "SETNAME", rc->client_name};
        redisReply *r = redisCommandArgv(ctx, 3, setname, NULL);
        if (!r) {
            int err = sl_seterr(-SL_ECONN, errstr, errstr_size,
                                "CLIENT SETNAME failed: %s", ctx->errstr);
            redisFree(ctx);
            return err;
        }
        freeReplyObject(r);
    }
    rc->ctx = ctx;
    rc->ever_connected = true;
    return 0;
}

/* Next delay: 100 ms doubling to the cap, then 50..100 % of it (jitter). */
static int next_backoff(struct sl_redis_conn *rc)
{
    int64_t d = BACKOFF_MIN_MS;
    for (int i = 0; i < rc->attempts && d < rc->backoff_max_ms; i++)
        d *= 2;
    if (d > rc->backoff_max_ms)
        d = rc->backoff_max_ms;
    d = d / 2 + rand_r(&rc->seed) % (d / 2 + 1);
    return (int)d;
}

void sl_redis_conn_fail(struct sl_redis_conn *rc, const char *cause)
{
    char why[256];

    /* 'cause' may point into the context we are about to free. */
    snprintf(why, sizeof(why), "%s", cause);
    cause = why;
    if (rc->ctx) {
        redisFree(rc->ctx);
        rc->ctx = NULL;
    }
    int delay = next_backoff(rc);
    rc->attempts++;
    rc->next_try_ms = sl_mono_ms() + delay;
    if (strcmp(cause, rc->last_cause) != 0) {
        sl_log(SL_LOG_WARN, rc->component,
               "redis %s: connection lost or refused (%s); reconnecting with "
               "backoff up to %d ms, unacked entries stay pending",
               rc->display, cause, rc->backoff_max_ms);
        snprintf(rc->last_cause, sizeof(rc->last_cause), "%s", cause);
    }
}

redisContext *sl_redis_conn_get(struct sl_redis_conn *rc)
{
    char err[256];

    if (rc->ctx)
        return rc->ctx;
    if (sl_mono_ms() < rc->next_try_ms)
        return NULL;
    bool again = rc->ever_connected;
    if (sl_redis_conn_connect(rc, err, sizeof(err)) < 0) {
        sl_redis_conn_fail(rc, err);
        return NULL;
    }
    if (again) {
        atomic_fetch_add(&rc->reconnects, 1);
        sl_log(SL_LOG_INFO, rc->component,
               "redis %s: reconnected after %d failed attempt(s)", rc->display,
               rc->attempts);
    }
    rc->attempts = 0;
    rc->last_cause[0] = '\0';
    return rc->ctx;
}

int sl_redis_conn_wait_ms(const struct sl_redis_conn *rc)
{
    if (rc->ctx)
        return 0;
    int64_t d = rc->next_try_ms - sl_mono_ms();
    return d > 0 ? (int)d : 0;
}

redisReply *sl_redis_conn_argv(struct sl_redis_conn *rc, int argc,
                               const char **argv, const size_t *argvlen)
{
    redisContext *ctx = sl_redis_conn_get(rc);
    if (!ctx)
        return NULL;
    redisReply *r = redisCommandArgv(ctx, argc, argv, argvlen);
    if (!r)
        sl_redis_conn_fail(rc, ctx->errstr[0] ? ctx->errstr : "I/O error");
    return r;
}

uint64_t sl_redis_conn_reconnects(const struct sl_redis_conn *rc)
{
    return atomic_load(&rc->reconnects);
}

const char *sl_redis_conn_display(const struct sl_redis_conn *rc)
{
    return rc->display;
}
