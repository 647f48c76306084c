/*
 * One blocking hiredis connection shared by the Redis sources: URL
 * parsing, the password from an environment variable or a private file,
 * connect with timeouts (AUTH, SELECT), and reconnect with capped,
 * jittered backoff that is logged once per cause.  Secrets are never
 * logged.
 */
#ifndef SL_REDIS_CONN_H
#define SL_REDIS_CONN_H

#include <hiredis/hiredis.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A parsed "redis://[:password@]host:port[/db]". */
struct sl_redis_url {
    char host[256];     /* host name or address */
    int port;           /* 6379 when absent */
    int db;             /* 0 when absent */
    char password[256]; /* from the URL; "" when none */
};

/*
 * Parse 'url' into *u.  Returns 0, or -SL_ECONFIG with errstr naming what
 * is wrong (the password is never copied into errstr).  Any thread.
 */
int sl_redis_url_parse(const char *url, struct sl_redis_url *u, char *errstr,
                       size_t errstr_size);

struct sl_redis_conn_conf {
    const char *url;           /* redis://[:password@]host:port[/db] */
    const char *password_env;  /* environment variable holding it; or NULL */
    const char *password_file; /* file holding it (mode 0600); or NULL */
    int connect_timeout_ms;    /* 0: 5000 */
    int command_timeout_ms;    /* 0: 10000; above any BLOCK we send */
    int backoff_max_ms;        /* reconnect backoff cap; 0: 5000 */
    const char *component;     /* for logs: "redis-stream", "redis-list" */
    const char *client_name;   /* CLIENT SETNAME (spaces become '-'); or
                                  NULL */
};

struct sl_redis_conn;

/*
 * A connection described by 'conf' (copied), not yet connected.  The
 * password is taken from password_env, else password_file (refused when
 * group or others may read it), else the URL.  Returns NULL and fills
 * errstr for a bad URL (-SL_ECONFIG) or an unsafe or unreadable password
 * file (-SL_ESECRET).  Main thread; then owned by one thread.
 */
struct sl_redis_conn *sl_redis_conn_new(const struct sl_redis_conn_conf *conf,
                                        char *errstr, size_t errstr_size);

/* Close and free 'rc'.  NULL is a no-op.  Owning thread. */
void sl_redis_conn_destroy(struct sl_redis_conn *rc);

/*
 * Connect now (with AUTH and SELECT), ignoring the backoff.  Returns 0 or
 * -SL_ECONN / -SL_EREDIS with errstr saying why.  Owning thread.
 */
int sl_redis_conn_connect(struct sl_redis_conn *rc, char *errstr,
                          size_t errstr_size);

/*
 * The live context, connecting first when the backoff allows it.  Returns
 * NULL while disconnected (the failure is logged once per cause; the
 * caller retries later, see sl_redis_conn_wait_ms()).  Owning thread.
 */
redisContext *sl_redis_conn_get(struct sl_redis_conn *rc);

/*
 * Milliseconds until the next reconnect attempt (0 when connected or
 * due).  Owning thread.
 */
int sl_redis_conn_wait_ms(const struct sl_redis_conn *rc);

/*
 * Drop the connection after an I/O or protocol error 'cause' and schedule
 * a reconnect with backoff.  Logs once per distinct cause.  Owning
 * thread.
 */
void sl_redis_conn_fail(struct sl_redis_conn *rc, const char *cause);

/*
 * Run one command given as argv (lengths may be NULL for C strings).
 * Returns the reply, owned by the caller (freeReplyObject()), or NULL when
 * not connected or on an I/O error (the connection is then dropped with
 * sl_redis_conn_fail()).  Error replies are returned, not handled.
 * Owning thread.
 */
redisReply *sl_redis_conn_argv(struct sl_redis_conn *rc, int argc,
                               const char **argv, const size_t *argvlen);

/* Number of successful reconnects after the first connect.  Any thread. */
uint64_t sl_redis_conn_reconnects(const struct sl_redis_conn *rc);

/* The URL without its password, for logs.  Owning thread. */
const char *sl_redis_conn_display(const struct sl_redis_conn *rc);

/*
 * Counters shared by the Redis sources: the first member of each kind's
 * state, so that sl_source_redis_stats() reads either.  Written by
 * the source thread, read by any.
 */
struct sl_redis_counters {
    _Atomic uint64_t read;            /* entries handed to the queue */
    _Atomic uint64_t claimed;         /* XAUTOCLAIMed entries */
    _Atomic uint64_t redelivered;     /* own pending entries re-read */
    _Atomic uint64_t dead_lettered;   /* pushed marked "redelivery" */
    _Atomic uint64_t acked;           /* XACKed / LREMed */
    _Atomic uint64_t ack_failures;    /* failed ack round trips */
    _Atomic uint64_t group_recreated; /* NOGROUP recoveries */
    _Atomic uint64_t reaped;          /* list entries reaped */
    struct sl_redis_conn *conn;       /* for its reconnect count; set
                                         before the source thread starts */
};

#endif
