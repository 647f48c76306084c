/*
 * The PostgreSQL sink against a real server: exactly-once rows under
 * resends, row-level isolation of bad bytes, SQL injection stored
 * verbatim, no loss or doubling across backend kills, restarts (fast
 * and immediate) and a server that is down when the sink starts; the
 * connection's TCP keepalive and tcp_user_timeout defaults (read back
 * from the sink's own socket) and their DSN overrides; and a network
 * that goes silent, in a network namespace of the test's own.
 *
 * Environment: SLUICE_PG_DSN (default the harness's H_PG_DSN, which
 * follows SLUICE_PG_PORT).  The restart tests drive pg_ctl:
 * SLUICE_PG_CTL is the command prefix (default: pg_ctl from
 * SLUICE_PG_BINDIR or /usr/lib/postgresql/15/bin with -D $SLUICE_PGDATA,
 * run as the postgres user when we are root); SLUICE_PGDATA defaults to
 * <repo>/.run/postgres/data.  They are skipped when that directory does
 * not exist.  They restart the server: do not share it with other tests
 * that cannot stand that (CTest runs this file's cases one after another).
 */
#include "cmocka_shim.h"
#include "harness.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "row.h"
#include "sink_pg.h"

#include <jansson.h>
#include <libpq-fe.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define N_STREAM 100000
#define DEADLINE_MS 120000

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v && *v ? v : fallback;
}

static const char *dsn(void)
{
    return env_or("SLUICE_PG_DSN", H_PG_DSN);
}

/* A table name no other run uses. */
static void unique_name(char *buf, size_t size, const char *prefix)
{
    static int seq;

    snprintf(buf, size, "%s_%ld_%lld_%d", prefix, (long)getpid(),
             (long long)(sl_now_us() % 1000000000), seq++);
}

/* ---- acks ---- */

struct acks {
    pthread_mutex_t mu;   /* guards all */
    unsigned char *count; /* acks with err 0 per offset */
    size_t n;             /* offsets tracked */
    long ok;              /* acks with err 0 */
    long failed;          /* acks with an error */
    long out_of_range;    /* offsets beyond n */
};

static void acks_init(struct acks *a, size_t n)
{
    pthread_mutex_init(&a->mu, NULL);
    a->count = calloc(n, 1);
    a->n = n;
    a->ok = a->failed = a->out_of_range = 0;
}

static void acks_fini(struct acks *a)
{
    free(a->count);
    pthread_mutex_destroy(&a->mu);
}

static void on_ack(void *arg, struct sl_msg *msg, int err)
{
    struct acks *a = arg;

    pthread_mutex_lock(&a->mu);
    if (err) {
        a->failed++;
    } else {
        a->ok++;
        if (msg->origin.offset >= 0 && (size_t)msg->origin.offset < a->n) {
            if (a->count[msg->origin.offset] < 255)
                a->count[msg->origin.offset]++;
        } else {
            a->out_of_range++;
        }
    }
    pthread_mutex_unlock(&a->mu);
    sl_msg_destroy(msg);
}

static long acks_ok(struct acks *a)
{
    long v;

    pthread_mutex_lock(&a->mu);
    v = a->ok;
    pthread_mutex_unlock(&a->mu);
    return v;
}

/* Wait until at least 'want' rows were acked; false at the deadline. */
static int wait_acks(struct acks *a, long want, int64_t ms)
{
    int64_t end = sl_mono_ms() + ms;

    while (acks_ok(a) < want) {
        if (sl_mono_ms() > end)
            return 0;
        usleep(2000); /* polling a condition, not synchronising by time */
    }
    return 1;
}

/* ---- SQL helpers (blocking libpq on the test thread) ---- */

static PGconn *db(void)
{
    PGconn *c = PQconnectdb(dsn());

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", dsn(), PQerrorMessage(c));
    return c;
}

static long long q_int(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static long long q_int(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    PGconn *c = db();
    PGresult *r;
    long long v;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    v = PQgetisnull(r, 0, 0) ? -1 : atoll(PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    return v;
}

static void q_exec(const char *sql)
{
    PGconn *c = db();
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK &&
        PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    PQfinish(c);
}

/* ---- rows ---- */

static struct sl_row *make_row(const char *topic, int64_t offset,
                               const void *key, size_t key_len,
                               const void *payload, size_t payload_len,
                               json_t *results)
{
    struct sl_msg *msg = NULL;
    char errstr[128];
    struct sl_row *row;

    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_KAFKA, topic, 0, offset, NULL,
                                key, key_len, payload, payload_len, NULL,
                                errstr, sizeof(errstr)),
                     0);
    if (!results)
        results = json_pack("{s:s,s:f}", "label", "positive", "score", 0.93);
    row = sl_row_new_result(msg, results, NULL,
                            json_pack("{s:i}", "sentiment_ms", 12), "w1");
    assert_non_null(row);
    return row;
}

static void submit_range(struct sl_sink_pg *sink, const char *topic,
                         int64_t from, int64_t to)
{
    char payload[128], key[32];
    int64_t i;

    for (i = from; i < to; i++) {
        int pl = snprintf(payload, sizeof(payload),
                          "{\"text\":\"message %lld\",\"n\":%lld}",
                          (long long)i, (long long)i);
        int kl = snprintf(key, sizeof(key), "k%lld", (long long)i);
        struct sl_row *row =
            make_row(topic, i, key, (size_t)kl, payload, (size_t)pl, NULL);

        assert_int_equal(sl_sink_pg_submit(sink, row, -1), 0);
    }
}

/* The TOAST compression the next sink_new*() asks for (NULL: the server's). */
static const char *next_toast;

static struct sl_sink_pg *sink_new_dsn(const char *conninfo, const char *table,
                                       const char *dead, const char *app,
                                       int batch, struct acks *a)
{
    struct sl_sink_pg_conf conf = {0};
    char errstr[256];
    struct sl_sink_pg *sink;

    conf.toast_compression = next_toast;
    conf.dsn = conninfo;
    conf.table = table;
    conf.dead_letter_table = dead;
    conf.create_table = 1;
    conf.batch_rows = batch;
    conf.flush_ms = 20;
    conf.max_batches_inflight = 4;
    conf.backlog_rows = 5000;
    conf.reconnect_min_ms = 50;
    conf.reconnect_max_ms = 1000;
    conf.application_name = app;
    sink = sl_sink_pg_new(&conf, on_ack, a, errstr, sizeof(errstr));
    if (!sink)
        fail_msg("sl_sink_pg_new: %s", errstr);
    return sink;
}

static struct sl_sink_pg *sink_new(const char *table, const char *dead,
                                   const char *app, int batch, struct acks *a)
{
    return sink_new_dsn(dsn(), table, dead, app, batch, a);
}

/* Every acked offset is in the table, read after the acks were taken. */
static void check_acked_in_table(struct acks *a, const char *table)
{
    unsigned char *snap = malloc(a->n);
    unsigned char *seen = calloc(a->n, 1);
    char sql[256];
    PGconn *c = db();
    PGresult *r;
    size_t i;
    int k;

    pthread_mutex_lock(&a->mu);
    memcpy(snap, a->count, a->n);
    pthread_mutex_unlock(&a->mu);
    snprintf(sql, sizeof(sql), "SELECT \"offset\" FROM %s", table);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    for (k = 0; k < PQntuples(r); k++) {
        long long off = atoll(PQgetvalue(r, k, 0));

        if (off >= 0 && (size_t)off < a->n)
            seen[off] = 1;
    }
    PQclear(r);
    PQfinish(c);
    for (i = 0; i < a->n; i++)
        if (snap[i] && !seen[i])
            fail_msg("offset %zu was acked but is not in %s", i, table);
    free(snap);
    free(seen);
}

/* ---- tests ---- */

static void test_resend_exactly_once(void **state)
{
    char table[64], dead[64];
    struct acks a;
    struct sl_sink_pg *sink;
    struct sl_sink_pg_stats st;
    size_t i;

    (void)state;
    unique_name(table, sizeof(table), "t_once");
    unique_name(dead, sizeof(dead), "t_once_dl");
    acks_init(&a, N_STREAM);
    sink = sink_new(table, dead, "sluice-test-once", 1000, &a);
    submit_range(sink, "reviews", 0, N_STREAM);
    assert_true(wait_acks(&a, N_STREAM, DEADLINE_MS));
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), N_STREAM);
    submit_range(sink, "reviews", 0, N_STREAM);
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    assert_int_equal(a.ok, 2 * N_STREAM);
    assert_int_equal(a.failed, 0);
    for (i = 0; i < a.n; i++)
        assert_int_equal(a.count[i], 2);
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), N_STREAM);
    assert_int_equal(q_int("SELECT count(DISTINCT \"offset\") FROM %s", table),
                     N_STREAM);
    sl_sink_pg_stats(sink, &st);
    assert_int_equal(st.rows_written, N_STREAM);
    assert_int_equal(st.duplicates, N_STREAM);
    assert_int_equal(st.rows_held, 0);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

static void test_bad_bytes_isolated(void **state)
{
    char table[64], dead[64], payload[64];
    struct acks a;
    struct sl_sink_pg *sink;
    struct sl_sink_pg_stats st;
    int i, n = 50;

    (void)state;
    unique_name(table, sizeof(table), "t_bad");
    unique_name(dead, sizeof(dead), "t_bad_dl");
    acks_init(&a, (size_t)n);
    sink = sink_new(table, dead, "sluice-test-bad", 1000, &a);
    for (i = 0; i < n; i++) {
        int pl = snprintf(payload, sizeof(payload), "{\"i\":%d}", i);
        struct sl_row *row;

        if (i == 17) /* a NUL in a results string: jsonb says 22P05 */
            row = make_row("bad", i, "k", 1, payload, (size_t)pl,
                           json_pack("{s:s%}", "text", "a\0b", (size_t)3));
        else if (i == 33) /* invalid UTF-8 in the text key: 22021 */
            row = make_row("bad", i, "\xff\xfe", 2, payload, (size_t)pl, NULL);
        else
            row = make_row("bad", i, "k", 1, payload, (size_t)pl, NULL);
        assert_int_equal(sl_sink_pg_submit(sink, row, -1), 0);
    }
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    assert_int_equal(a.ok, n);
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), n - 2);
    assert_int_equal(
        q_int("SELECT count(*) FROM %s WHERE \"offset\" IN (17, 33)", table),
        0);
    assert_int_equal(q_int("SELECT count(*) FROM %s", dead), 2);
    assert_int_equal(q_int("SELECT count(*) FROM %s WHERE \"offset\" = 17 AND "
                           "sqlstate = '22P05' AND stage = 'sink'",
                           dead),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM %s WHERE \"offset\" = 33 AND "
                           "sqlstate = '22021' AND key = '\\xfffe'::bytea",
                           dead),
                     1);
    sl_sink_pg_stats(sink, &st);
    assert_int_equal(st.dead_letters, 2);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

static void test_injection_stored_verbatim(void **state)
{
    static const char evil[] = "'); DROP TABLE x; --";
    char table[64], dead[64], json[128];
    struct acks a;
    struct sl_sink_pg *sink;
    int jl;

    (void)state;
    unique_name(table, sizeof(table), "t_inj");
    unique_name(dead, sizeof(dead), "t_inj_dl");
    q_exec("CREATE TABLE IF NOT EXISTS x (i int)");
    acks_init(&a, 4);
    sink = sink_new(table, dead, "sluice-test-inj", 100, &a);
    jl = snprintf(json, sizeof(json), "{\"text\":\"%s\"}", evil);
    assert_int_equal(sl_sink_pg_submit(sink,
                                       make_row("inj", 0, evil, strlen(evil),
                                                json, (size_t)jl, NULL),
                                       -1),
                     0);
    assert_int_equal(
        sl_sink_pg_submit(
            sink, make_row("inj", 1, NULL, 0, evil, strlen(evil), NULL), -1),
        0);
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    assert_int_equal(a.ok, 2);
    assert_int_equal(q_int("SELECT count(*) FROM pg_tables WHERE "
                           "tablename = 'x'"),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM %s WHERE \"offset\" = 0 AND "
                           "key = $$%s$$ AND payload->>'text' = $$%s$$ AND "
                           "payload_raw IS NULL",
                           table, evil, evil),
                     1);
    assert_int_equal(q_int("SELECT count(*) FROM %s WHERE \"offset\" = 1 AND "
                           "payload IS NULL AND "
                           "convert_from(payload_raw, 'UTF8') = $$%s$$",
                           table, evil),
                     1);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

/*
 * A large value is compressed with the method the sink's session asks for
 * (toast_compression), and with the server's own default when it asks
 * for none.  pg_column_compression() names the method of a stored value.
 */
static void test_toast_compression(void **state)
{
    static const char *const methods[] = {"lz4", "pglz", NULL};
    char table[64], dead[64], *json, server[16] = "";
    PGconn *c = db();
    PGresult *r = PQexec(c, "SHOW default_toast_compression");

    (void)state;
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    snprintf(server, sizeof(server), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    PQfinish(c);
    json = malloc(16384);
    assert_non_null(json);
    /* 16 KB of text that compresses well: TOASTed and compressed. */
    int jl = snprintf(json, 16384, "{\"text\":\"");
    while (jl < 16000)
        jl += snprintf(json + jl, (size_t)(16384 - jl), "a good day %d ", jl);
    jl += snprintf(json + jl, (size_t)(16384 - jl), "\"}");
    for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
        const char *want = methods[m] ? methods[m] : server;
        struct acks a;
        struct sl_sink_pg *sink;

        unique_name(table, sizeof(table), "t_toast");
        unique_name(dead, sizeof(dead), "t_toast_dl");
        acks_init(&a, 4);
        next_toast = methods[m];
        sink = sink_new(table, dead, "sluice-test-toast", 100, &a);
        next_toast = NULL;
        assert_int_equal(sl_sink_pg_submit(sink,
                                           make_row("toast", 0, NULL, 0, json,
                                                    (size_t)jl, NULL),
                                           -1),
                         0);
        assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
        assert_int_equal(a.ok, 1);
        if (q_int("SELECT count(*) FROM %s WHERE "
                  "pg_column_compression(payload) = '%s'",
                  table, want) != 1)
            fail_msg("toast_compression %s: the payload is not stored "
                     "compressed with %s",
                     methods[m] ? methods[m] : "(server's)", want);
        sl_sink_pg_destroy(sink);
        acks_fini(&a);
    }
    free(json);
}

/* ---- disruption ---- */

struct producer {
    struct sl_sink_pg *sink; /* where to submit */
    const char *topic;       /* topic of the rows */
    pthread_t thread;        /* producing thread */
};

static void *produce(void *arg)
{
    struct producer *p = arg;

    submit_range(p->sink, p->topic, 0, N_STREAM);
    return NULL;
}

static char pgdata[1024];

static const char *pg_data_dir(void)
{
    const char *src = env_or("SLUICE_SOURCE_DIR", ".");

    if (getenv("SLUICE_PGDATA") && *getenv("SLUICE_PGDATA"))
        snprintf(pgdata, sizeof(pgdata), "%s", getenv("SLUICE_PGDATA"));
    else
        snprintf(pgdata, sizeof(pgdata), "%s/.run/postgres/data", src);
    return pgdata;
}

static int pg_ctl_available(void)
{
    struct stat st;

    if (getenv("SLUICE_PG_CTL") && *getenv("SLUICE_PG_CTL"))
        return 1;
    return stat(pg_data_dir(), &st) == 0 && S_ISDIR(st.st_mode);
}

/* Run pg_ctl 'args' (e.g. "restart -m fast"); returns its exit status. */
static int pg_ctl(const char *args)
{
    char cmd[4096];
    const char *prefix = getenv("SLUICE_PG_CTL");
    const char *bindir =
        env_or("SLUICE_PG_BINDIR", "/usr/lib/postgresql/15/bin");

    if (prefix && *prefix)
        snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", prefix, args);
    else
        snprintf(cmd, sizeof(cmd),
                 "%s %s/pg_ctl -D '%s' -l '%s/../log' -w -t 60 %s "
                 ">/dev/null 2>&1",
                 geteuid() == 0 ? "runuser -u postgres --" : "", bindir,
                 pg_data_dir(), pg_data_dir(), args);
    return system(cmd);
}

enum disruption { KILL_BACKEND, RESTART_FAST, RESTART_IMMEDIATE };

static void stream_with(enum disruption what)
{
    char table[64], dead[64], app[64];
    struct acks a;
    struct producer p;
    struct sl_sink_pg *sink;
    struct sl_sink_pg_stats st;
    size_t i;

    if (what != KILL_BACKEND && !pg_ctl_available()) {
        h_skip("no data directory %s (set SLUICE_PGDATA or SLUICE_PG_CTL)",
               pg_data_dir());
    }
    unique_name(table, sizeof(table), "t_dis");
    unique_name(dead, sizeof(dead), "t_dis_dl");
    unique_name(app, sizeof(app), "sluice-sink");
    acks_init(&a, N_STREAM);
    sink = sink_new(table, dead, app, 1000, &a);
    p.sink = sink;
    p.topic = "stream";
    assert_int_equal(pthread_create(&p.thread, NULL, produce, &p), 0);
    assert_true(wait_acks(&a, N_STREAM / 5, DEADLINE_MS));
    if (what == KILL_BACKEND) {
        assert_int_equal(q_int("SELECT count(pg_terminate_backend(pid)) FROM "
                               "pg_stat_activity WHERE application_name = "
                               "'%s'",
                               app),
                         1);
    } else {
        assert_int_equal(pg_ctl(what == RESTART_FAST ? "restart -m fast"
                                                     : "restart -m immediate"),
                         0);
    }
    check_acked_in_table(&a, table);
    assert_int_equal(pthread_join(p.thread, NULL), 0);
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    sl_sink_pg_stats(sink, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(a.ok, N_STREAM);
    assert_int_equal(a.failed, 0);
    for (i = 0; i < a.n; i++)
        if (a.count[i] != 1)
            fail_msg("offset %zu acked %d times", i, a.count[i]);
    check_acked_in_table(&a, table);
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), N_STREAM);
    assert_int_equal(q_int("SELECT count(DISTINCT \"offset\") FROM %s", table),
                     N_STREAM);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

static void test_kill_backend(void **state)
{
    (void)state;
    stream_with(KILL_BACKEND);
}

static void test_restart_fast(void **state)
{
    (void)state;
    stream_with(RESTART_FAST);
}

static void test_restart_immediate(void **state)
{
    (void)state;
    stream_with(RESTART_IMMEDIATE);
}

static void test_server_down_at_start(void **state)
{
    char table[64], dead[64];
    struct acks a;
    struct sl_sink_pg *sink;
    struct sl_sink_pg_stats st;
    int64_t end;

    (void)state;
    if (!pg_ctl_available())
        h_skip("no data directory %s (set SLUICE_PGDATA or SLUICE_PG_CTL)",
               pg_data_dir());
    unique_name(table, sizeof(table), "t_down");
    unique_name(dead, sizeof(dead), "t_down_dl");
    acks_init(&a, 1000);
    assert_int_equal(pg_ctl("stop -m fast"), 0);
    sink = sink_new(table, dead, "sluice-test-down", 100, &a);
    submit_range(sink, "down", 0, 1000);
    /* Wait until the sink holds rows and has failed to connect. */
    end = sl_mono_ms() + DEADLINE_MS;
    for (;;) {
        sl_sink_pg_stats(sink, &st);
        if (st.rows_held > 0 && st.state == SL_SINK_PG_DISCONNECTED)
            break;
        assert_true(sl_mono_ms() < end);
        usleep(2000);
    }
    assert_int_equal(acks_ok(&a), 0);
    assert_int_equal(pg_ctl("start"), 0);
    assert_true(wait_acks(&a, 1000, DEADLINE_MS));
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), 1000);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

/* ---- connection settings ---- */

/* What the kernel holds for a TCP socket. */
struct tcp_opts {
    int keepalive;         /* SO_KEEPALIVE */
    int idle;              /* TCP_KEEPIDLE, s */
    int interval;          /* TCP_KEEPINTVL, s */
    int count;             /* TCP_KEEPCNT */
    unsigned user_timeout; /* TCP_USER_TIMEOUT, ms */
};

static void get_tcp_opts(int fd, struct tcp_opts *o)
{
    socklen_t len;

    len = sizeof(o->keepalive);
    assert_int_equal(
        getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &o->keepalive, &len), 0);
    len = sizeof(o->idle);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &o->idle, &len),
                     0);
    len = sizeof(o->interval);
    assert_int_equal(
        getsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &o->interval, &len), 0);
    len = sizeof(o->count);
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &o->count, &len),
                     0);
    len = sizeof(o->user_timeout);
    assert_int_equal(
        getsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &o->user_timeout, &len),
        0);
}

/* Local port of socket 'fd', or -1 when it is no TCP/IP socket. */
static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/*
 * The sink's own connection: the socket of this process whose local port
 * is the client_port PostgreSQL shows for application_name 'app'.
 */
static int sink_socket(const char *app)
{
    long long port = q_int("SELECT client_port FROM pg_stat_activity WHERE "
                           "application_name = '%s'",
                           app);
    struct dirent *e;
    DIR *d;
    int fd = -1;

    if (port <= 0)
        fail_msg("no TCP backend has application_name %s", app);
    d = opendir("/proc/self/fd");
    assert_non_null(d);
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && local_port(atoi(e->d_name)) == port)
            fd = atoi(e->d_name);
    closedir(d);
    if (fd < 0)
        fail_msg("no socket of ours has local port %lld", port);
    return fd;
}

/* A sink on 'conninfo' writes a row; its socket's options go to *o. */
static void sink_tcp_opts(const char *conninfo, struct tcp_opts *o)
{
    char table[64], dead[64], app[64];
    struct acks a;
    struct sl_sink_pg *sink;

    unique_name(table, sizeof(table), "t_ka");
    unique_name(dead, sizeof(dead), "t_ka_dl");
    unique_name(app, sizeof(app), "sluice-ka");
    acks_init(&a, 1);
    sink = sink_new_dsn(conninfo, table, dead, app, 10, &a);
    submit_range(sink, "ka", 0, 1);
    assert_true(wait_acks(&a, 1, DEADLINE_MS));
    get_tcp_opts(sink_socket(app), o);
    assert_int_equal(sl_sink_pg_drain(sink, DEADLINE_MS), 0);
    assert_int_equal(q_int("SELECT count(*) FROM %s", table), 1);
    sl_sink_pg_destroy(sink);
    acks_fini(&a);
}

/* Percent-encode 's' for a URI onto the end of buf[size]. */
static void uri_put(char *buf, size_t size, const char *s)
{
    size_t n = strlen(buf);

    for (; *s && n + 4 < size; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
            (c >= '0' && c <= '9') || strchr("-._~", c))
            buf[n++] = (char)c;
        else
            n += (size_t)snprintf(buf + n, size - n, "%%%02X", c);
    }
    buf[n] = '\0';
}

/* dsn() as a postgresql:// URI, with 'query' ("k=v&...") appended. */
static void dsn_as_uri(char *buf, size_t size, const char *query)
{
    static const char *const parts[] = {"user", "host", "port", "dbname"};
    const char *val[4] = {NULL, NULL, NULL, NULL};
    PQconninfoOption *opts = PQconninfoParse(dsn(), NULL), *o;
    size_t i;

    assert_non_null(opts);
    snprintf(buf, size, "postgresql://");
    for (o = opts; o->keyword; o++)
        for (i = 0; i < 4; i++)
            if (o->val && !strcmp(o->keyword, parts[i]))
                val[i] = o->val;
    if (val[0]) {
        uri_put(buf, size, val[0]);
        strncat(buf, "@", size - strlen(buf) - 1);
    }
    if (val[1])
        uri_put(buf, size, val[1]);
    if (val[2]) {
        strncat(buf, ":", size - strlen(buf) - 1);
        uri_put(buf, size, val[2]);
    }
    strncat(buf, "/", size - strlen(buf) - 1);
    if (val[3])
        uri_put(buf, size, val[3]);
    strncat(buf, "?", size - strlen(buf) - 1);
    for (o = opts; o->keyword; o++) {
        int part = 0;

        for (i = 0; i < 4; i++)
            part |= !strcmp(o->keyword, parts[i]);
        if (!o->val || part)
            continue;
        uri_put(buf, size, o->keyword);
        strncat(buf, "=", size - strlen(buf) - 1);
        uri_put(buf, size, o->val);
        strncat(buf, "&", size - strlen(buf) - 1);
    }
    strncat(buf, query, size - strlen(buf) - 1);
    PQconninfoFree(opts);
}

/* A DSN that says nothing about them gets the sink's defaults. */
static void test_keepalive_defaults(void **state)
{
    struct tcp_opts o;

    (void)state;
    sink_tcp_opts(dsn(), &o);
    assert_int_equal(o.keepalive, 1);
    assert_int_equal(o.idle, 10);
    assert_int_equal(o.interval, 5);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.user_timeout, 30000);
}

/* What the DSN sets, key=value or URI, wins over the default. */
static void test_keepalive_dsn_wins(void **state)
{
    char conninfo[1024];
    struct tcp_opts o;

    (void)state;
    snprintf(conninfo, sizeof(conninfo), "%s keepalives_idle=42", dsn());
    sink_tcp_opts(conninfo, &o);
    assert_int_equal(o.keepalive, 1);
    assert_int_equal(o.idle, 42);
    assert_int_equal(o.interval, 5);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.user_timeout, 30000);

    dsn_as_uri(conninfo, sizeof(conninfo),
               "keepalives_idle=42&tcp_user_timeout=12345");
    sink_tcp_opts(conninfo, &o);
    assert_int_equal(o.keepalive, 1);
    assert_int_equal(o.idle, 42);
    assert_int_equal(o.interval, 5);
    assert_int_equal(o.count, 3);
    assert_int_equal(o.user_timeout, 12345);

    snprintf(conninfo, sizeof(conninfo), "%s keepalives=0 tcp_user_timeout=0",
             dsn());
    sink_tcp_opts(conninfo, &o);
    assert_int_equal(o.keepalive, 0);
    assert_int_equal(o.user_timeout, 0);
}

/* ---- a network gone silent ---- */

/*
 * Silence (no RST, no FIN, nothing acknowledged) needs packets to vanish,
 * which takes a network of the test's own: the sinks run in a child in a
 * new user and network namespace (no root needed where the kernel allows
 * unprivileged user namespaces; skipped where it does not).  They reach
 * PostgreSQL through two relays: TCP on the child's loopback, a Unix
 * socket, then TCP from this process.  The child then drops every packet
 * to or from the relay's port with nft, or takes its loopback down when
 * nft is missing, and watches which sinks notice, and when.
 */

#define RELAY_PAIRS 32
#define SILENT_SKIP 77        /* child exit status: no namespace here */
#define SILENT_WATCH_MS 60000 /* how long the partition lasts at most */

/* Copies bytes both ways between accepted and dialled connections. */
struct relay {
    int lfd;                /* listening socket */
    int (*dial)(void *arg); /* connects the far side; -1 on failure */
    void *arg;              /* for dial */
    int fd[RELAY_PAIRS][2]; /* accepted and dialled ends; -1 when free */
    atomic_int stop;        /* relay_run() returns once set */
};

static void relay_init(struct relay *r, int lfd, int (*dial)(void *), void *arg)
{
    int i;

    r->lfd = lfd;
    r->dial = dial;
    r->arg = arg;
    for (i = 0; i < RELAY_PAIRS; i++)
        r->fd[i][0] = r->fd[i][1] = -1;
    atomic_init(&r->stop, 0);
}

static int send_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, buf, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

static void relay_close(struct relay *r, int i)
{
    close(r->fd[i][0]);
    close(r->fd[i][1]);
    r->fd[i][0] = r->fd[i][1] = -1;
}

/* Relay until r->stop is set or done(arg) is true. */
static void relay_run(struct relay *r, int (*done)(void *), void *arg)
{
    struct pollfd pfd[1 + 2 * RELAY_PAIRS];
    int end[1 + 2 * RELAY_PAIRS], i, k, n;
    char buf[16384];

    while (!atomic_load(&r->stop) && !(done && done(arg))) {
        n = 0;
        pfd[n].fd = r->lfd, pfd[n].events = POLLIN, end[n++] = -1;
        for (i = 0; i < RELAY_PAIRS; i++)
            for (k = 0; k < 2 && r->fd[i][0] >= 0; k++)
                pfd[n].fd = r->fd[i][k], pfd[n].events = POLLIN,
                end[n++] = i * 2 + k;
        if (poll(pfd, (nfds_t)n, 100) <= 0)
            continue;
        for (k = 1; k < n; k++) {
            int p = end[k] / 2, side = end[k] % 2;
            ssize_t got;

            if (!pfd[k].revents || r->fd[p][side] < 0)
                continue;
            got = recv(r->fd[p][side], buf, sizeof(buf), 0);
            if (got < 0 && errno == EINTR)
                continue;
            if (got <= 0 || send_all(r->fd[p][!side], buf, (size_t)got) < 0)
                relay_close(r, p);
        }
        if (pfd[0].revents & POLLIN) {
            int a = accept4(r->lfd, NULL, NULL, SOCK_CLOEXEC), b;

            if (a < 0)
                continue;
            for (i = 0; i < RELAY_PAIRS && r->fd[i][0] >= 0; i++)
                ;
            b = i < RELAY_PAIRS ? r->dial(r->arg) : -1;
            if (b < 0) {
                close(a);
                continue;
            }
            r->fd[i][0] = a, r->fd[i][1] = b;
        }
    }
    for (i = 0; i < RELAY_PAIRS; i++)
        if (r->fd[i][0] >= 0)
            relay_close(r, i);
}

static void *relay_thread(void *arg)
{
    relay_run(arg, NULL, NULL);
    return NULL;
}

/* Where dsn() reaches PostgreSQL over TCP. */
struct tcp_addr {
    char host[256]; /* hostaddr, else host */
    char port[16];  /* "5432" when not set */
};

/* False when dsn() names no single TCP host (a socket, a host list). */
static int pg_tcp_addr(struct tcp_addr *ta)
{
    PQconninfoOption *opts = PQconninfoParse(dsn(), NULL), *o;
    const char *host = NULL, *hostaddr = NULL, *port = "5432";
    int ok;

    assert_non_null(opts);
    for (o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        if (!strcmp(o->keyword, "host"))
            host = o->val;
        else if (!strcmp(o->keyword, "hostaddr"))
            hostaddr = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
    }
    if (hostaddr)
        host = hostaddr;
    ok = host && host[0] != '/' && !strchr(host, ',') && !strchr(port, ',');
    snprintf(ta->host, sizeof(ta->host), "%s", host ? host : "");
    snprintf(ta->port, sizeof(ta->port), "%s", port);
    PQconninfoFree(opts);
    return ok;
}

static int dial_tcp(void *arg)
{
    const struct tcp_addr *ta = arg;
    struct addrinfo hints = {0}, *ai;
    int fd;

    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(ta->host, ta->port, &hints, &ai) != 0)
        return -1;
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

static int dial_unix(void *arg)
{
    struct sockaddr_un sun = {0};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", (const char *)arg);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static int write_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC), ok;

    if (fd < 0)
        return -1;
    ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
    close(fd);
    return ok ? 0 : -1;
}

/* Move this (single-threaded) process into a network namespace. */
static int enter_netns(void)
{
    unsigned uid = (unsigned)getuid(), gid = (unsigned)getgid();
    char map[64];

    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) == 0) {
        snprintf(map, sizeof(map), "0 %u 1", uid);
        if (write_text("/proc/self/setgroups", "deny") < 0 ||
            write_text("/proc/self/uid_map", map) < 0)
            return -1;
        snprintf(map, sizeof(map), "0 %u 1", gid);
        return write_text("/proc/self/gid_map", map);
    }
    return unshare(CLONE_NEWNET); /* root without user namespaces */
}

static int set_loopback(int up)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc;

    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    rc = ioctl(fd, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        if (up)
            ifr.ifr_flags |= IFF_UP;
        else
            ifr.ifr_flags &= ~IFF_UP;
        rc = ioctl(fd, SIOCSIFFLAGS, &ifr);
    }
    close(fd);
    return rc;
}

/*
 * Make TCP port 'port' silent ('on') or not: nft drops its packets both
 * ways; without nft the loopback goes down (nothing is sent at all).
 * Returns how, or NULL on failure.
 */
static const char *silence(int port, int on)
{
    static int use_lo;
    char cmd[512];

    if (!on) {
        if (use_lo)
            return set_loopback(1) == 0 ? "loopback down" : NULL;
        return system("nft delete table inet sl_silent >/dev/null 2>&1") == 0
                   ? "nft drop"
                   : NULL;
    }
    snprintf(cmd, sizeof(cmd),
             "nft 'add table inet sl_silent; add chain inet sl_silent in "
             "{ type filter hook input priority 0; }; add rule inet "
             "sl_silent in tcp dport %d drop; add rule inet sl_silent in "
             "tcp sport %d drop' >/dev/null 2>&1",
             port, port);
    if (system(cmd) == 0)
        return "nft drop";
    use_lo = 1;
    return set_loopback(0) == 0 ? "loopback down" : NULL;
}

/* A sink of the silent-network test: its DSN and what it must do. */
struct silent_case {
    const char *what;  /* for messages */
    const char *extra; /* appended to the DSN */
    int busy;          /* a batch is sent into the silence */
    int64_t min_ms;    /* lost no sooner than this; -1: never lost */
    int64_t max_ms;    /* and no later than this */
};

/*
 * Keepalives alone: 10 s idle + 3 probes 5 s apart = 25 s; with
 * tcp_user_timeout, 30 s (Linux then ends a probed connection by it).
 * tcp_user_timeout is isolated by a keepalive idle time longer than the
 * test, not by keepalives=0: libpq applies tcp_user_timeout only when
 * keepalives are on.
 */
static const struct silent_case silent_cases[] = {
    {"defaults, a batch in flight", "", 1, 20000, 45000},
    {"defaults, idle", "", 0, 20000, 45000},
    {"tcp_user_timeout alone, a batch in flight", " keepalives_idle=600", 1,
     20000, 45000},
    {"keepalives alone, idle", " tcp_user_timeout=0", 0, 15000, 40000},
    {"neither (control), a batch in flight", " keepalives=0 tcp_user_timeout=0",
     1, -1, -1},
};
#define N_SILENT ((int)(sizeof(silent_cases) / sizeof(silent_cases[0])))

/* One sink of the silent-network test and what became of it. */
struct silent_sink {
    const struct silent_case *c; /* what it is */
    struct acks a;               /* its acks */
    struct sl_sink_pg *sink;     /* the sink */
    int64_t lost_ms;             /* since the silence began; -1: ready */
};

/* Submit one row at 'offset'; no cmocka assertion (we are the child). */
static int silent_submit(struct sl_sink_pg *sink, int64_t offset)
{
    struct sl_msg *msg = NULL;
    struct sl_row *row;

    if (sl_msg_new(&msg, SL_SOURCE_KAFKA, "silent", 0, offset, NULL, "k", 1,
                   "{}", 2, NULL, NULL, 0) < 0)
        return -1;
    row = sl_row_new_result(msg, json_pack("{s:b}", "ok", 1), NULL, NULL, "w1");
    if (!row) {
        sl_msg_destroy(msg);
        return -1;
    }
    return sl_sink_pg_submit(sink, row, -1);
}

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "silent network: " __VA_ARGS__);                   \
            fputc('\n', stderr);                                               \
            return 1;                                                          \
        }                                                                      \
    } while (0)

static int all_ready(struct silent_sink *ss, int n)
{
    struct sl_sink_pg_stats st;
    int i;

    for (i = 0; i < n; i++) {
        sl_sink_pg_stats(ss[i].sink, &st);
        if (st.state != SL_SINK_PG_READY)
            return 0;
    }
    return 1;
}

/*
 * The child's side: exit status 0 when every sink behaved, SILENT_SKIP
 * without a namespace, 1 otherwise (with the reason on stderr).  Sinks
 * write tables prefix_0 ...; the log goes to 'log_path'.
 */
static int silent_child(const char *sock_path, const char *log_path,
                        const char *prefix)
{
    struct silent_sink ss[N_SILENT];
    int n = N_SILENT, i, port, lfd, log_fd, lost;
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    struct sl_sink_pg_stats st;
    struct relay r;
    pthread_t relay;
    const char *how;
    char *log, *line;
    int64_t t0, now;

    if (enter_netns() < 0) {
        fprintf(stderr, "skipped: cannot make a network namespace (%s)\n",
                strerror(errno));
        return SILENT_SKIP;
    }
    CHECK(set_loopback(1) == 0, "loopback up: %s", strerror(errno));
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(lfd >= 0 && bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) == 0 &&
              listen(lfd, 16) == 0 &&
              getsockname(lfd, (struct sockaddr *)&sin, &len) == 0,
          "relay listener: %s", strerror(errno));
    port = ntohs(sin.sin_port);
    log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(log_fd >= 0, "%s: %s", log_path, strerror(errno));
    sl_log_set_fd(log_fd);
    sl_log_set_level(SL_LOG_INFO);
    relay_init(&r, lfd, dial_unix, (void *)sock_path);
    CHECK(pthread_create(&relay, NULL, relay_thread, &r) == 0, "thread");

    for (i = 0; i < n; i++) {
        struct sl_sink_pg_conf conf = {0};
        char conninfo[1024], table[96], dead[96], app[64], errstr[256];

        ss[i].c = &silent_cases[i];
        snprintf(conninfo, sizeof(conninfo),
                 "%s host=127.0.0.1 hostaddr=127.0.0.1 port=%d%s", dsn(), port,
                 ss[i].c->extra);
        snprintf(table, sizeof(table), "%s_%d", prefix, i);
        snprintf(dead, sizeof(dead), "%s_%d_dl", prefix, i);
        snprintf(app, sizeof(app), "sluice-silent-%d", i);
        acks_init(&ss[i].a, 2);
        ss[i].lost_ms = -1;
        conf.dsn = conninfo;
        conf.table = table;
        conf.dead_letter_table = dead;
        conf.create_table = 1;
        conf.flush_ms = 20;
        conf.reconnect_min_ms = 50;
        conf.reconnect_max_ms = 1000;
        conf.application_name = app;
        ss[i].sink =
            sl_sink_pg_new(&conf, on_ack, &ss[i].a, errstr, sizeof(errstr));
        CHECK(ss[i].sink, "sl_sink_pg_new: %s", errstr);
        CHECK(silent_submit(ss[i].sink, 0) == 0, "submit");
    }
    for (i = 0; i < n; i++)
        CHECK(wait_acks(&ss[i].a, 1, DEADLINE_MS), "%s: first row not acked",
              ss[i].c->what);

    how = silence(port, 1);
    CHECK(how, "cannot silence port %d", port);
    t0 = sl_mono_ms();
    for (i = 0; i < n; i++)
        if (ss[i].c->busy)
            CHECK(silent_submit(ss[i].sink, 1) == 0, "submit");
    do {
        usleep(50000); /* polling the sinks' state, not synchronising */
        now = sl_mono_ms();
        lost = 0;
        for (i = 0; i < n; i++) {
            sl_sink_pg_stats(ss[i].sink, &st);
            if (ss[i].lost_ms < 0 && st.state != SL_SINK_PG_READY)
                ss[i].lost_ms = now - t0;
            lost += ss[i].lost_ms >= 0 || ss[i].c->min_ms < 0;
        }
    } while (lost < n && now - t0 < SILENT_WATCH_MS);
    for (i = 0; i < n; i++) {
        fprintf(stderr, "silent network (%s): %-42s ", how, ss[i].c->what);
        if (ss[i].lost_ms >= 0)
            fprintf(stderr, "declared lost after %.1f s\n",
                    (double)ss[i].lost_ms / 1000);
        else
            fprintf(stderr, "still \"ready\" after %.1f s\n",
                    (double)(now - t0) / 1000);
    }
    for (i = 0; i < n; i++) {
        if (ss[i].c->min_ms < 0) {
            CHECK(ss[i].lost_ms < 0, "%s: lost, should have hung",
                  ss[i].c->what);
            continue;
        }
        CHECK(ss[i].lost_ms >= ss[i].c->min_ms &&
                  ss[i].lost_ms <= ss[i].c->max_ms,
              "%s: lost after %lld ms, want %lld..%lld", ss[i].c->what,
              (long long)ss[i].lost_ms, (long long)ss[i].c->min_ms,
              (long long)ss[i].c->max_ms);
        CHECK(acks_ok(&ss[i].a) == 1, "%s: acked in the silence",
              ss[i].c->what);
    }

    CHECK(silence(port, 0), "cannot end the silence");
    for (i = 0; i < n; i++)
        CHECK(wait_acks(&ss[i].a, 1 + ss[i].c->busy, DEADLINE_MS),
              "%s: its row was not acked after the silence", ss[i].c->what);
    for (now = sl_mono_ms(); !all_ready(ss, n);) {
        CHECK(sl_mono_ms() - now < DEADLINE_MS, "not reconnected");
        usleep(2000); /* polling a condition, not synchronising */
    }
    for (i = 0; i < n; i++) {
        sl_sink_pg_stats(ss[i].sink, &st);
        if (ss[i].c->min_ms < 0)
            CHECK(st.reconnects == 0, "%s: reconnected", ss[i].c->what);
        else
            CHECK(st.reconnects >= 1, "%s: did not reconnect", ss[i].c->what);
        CHECK(sl_sink_pg_drain(ss[i].sink, DEADLINE_MS) == 0, "%s: drain",
              ss[i].c->what);
        CHECK(ss[i].a.failed == 0 && ss[i].a.count[0] == 1 &&
                  ss[i].a.count[1] == ss[i].c->busy,
              "%s: acks", ss[i].c->what);
        sl_sink_pg_destroy(ss[i].sink);
        acks_fini(&ss[i].a);
    }
    atomic_store(&r.stop, 1);
    pthread_join(relay, NULL);
    close(lfd);

    /* Each lost connection was logged as lost, with the kernel's reason. */
    log = h_read_file(log_path);
    CHECK(log, "%s: %s", log_path, strerror(errno));
    for (lost = 0, i = 0; i < n; i++)
        lost -= ss[i].c->min_ms >= 0; /* less those that must be */
    for (line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "connection lost"))
            continue;
        fprintf(stderr, "silent network: logged %s\n", line);
        lost += strstr(line, "timed out") != NULL;
    }
    free(log);
    CHECK(lost >= 0, "%d \"connection lost ... timed out\" lines too few",
          -lost);
    return 0;
}

struct child_wait {
    pid_t pid;      /* the child */
    int status;     /* its wait status once reaped */
    int64_t end_ms; /* killed then */
};

static int child_done(void *arg)
{
    struct child_wait *cw = arg;

    if (waitpid(cw->pid, &cw->status, WNOHANG) == cw->pid)
        return 1;
    if (sl_mono_ms() < cw->end_ms)
        return 0;
    kill(cw->pid, SIGKILL);
    waitpid(cw->pid, &cw->status, 0);
    return 1;
}

/*
 * A connection that goes silent is declared lost in about 30 s with the
 * defaults (by tcp_user_timeout with a batch in flight, by keepalives
 * when idle), the sink reconnects and resends, and every row lands once;
 * with both turned off in the DSN the connection just hangs.
 */
static void test_silent_network(void **state)
{
    char dir[] = "/tmp/sl-silent.XXXXXX", sock_path[64], log_path[64];
    char prefix[48];
    struct sockaddr_un sun = {0};
    struct tcp_addr ta;
    struct child_wait cw;
    struct relay r;
    int lfd, i;

    (void)state;
    if (!pg_tcp_addr(&ta)) {
        h_skip("%s is not one TCP host", dsn());
    }
    assert_non_null(mkdtemp(dir));
    snprintf(sock_path, sizeof(sock_path), "%s/pg", dir);
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    unique_name(prefix, sizeof(prefix), "t_silent");
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sun.sun_family = AF_UNIX;
    snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock_path);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
    assert_int_equal(listen(lfd, 16), 0);
    fflush(stdout);
    fflush(stderr);
    cw.pid = fork();
    assert_true(cw.pid >= 0);
    if (cw.pid == 0) {
        /* Not cmocka's handlers: a crash here must end the child. */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(lfd);
        _exit(silent_child(sock_path, log_path, prefix));
    }
    cw.status = -1;
    cw.end_ms = sl_mono_ms() + 5 * DEADLINE_MS;
    relay_init(&r, lfd, dial_tcp, &ta);
    relay_run(&r, child_done, &cw);
    close(lfd);
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
    if (WIFEXITED(cw.status) && WEXITSTATUS(cw.status) == SILENT_SKIP)
        h_skip("no network namespace here (see the message above)");
    if (!WIFEXITED(cw.status) || WEXITSTATUS(cw.status) != 0)
        fail_msg("silent-network child failed (wait status %d)", cw.status);
    /* Every row landed once: busy sinks' two, idle sinks' one. */
    for (i = 0; i < N_SILENT; i++)
        assert_int_equal(
            q_int("SELECT count(*) FROM %s_%d WHERE topic = 'silent'", prefix,
                  i),
            1 + silent_cases[i].busy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resend_exactly_once),
        cmocka_unit_test(test_bad_bytes_isolated),
        cmocka_unit_test(test_injection_stored_verbatim),
        cmocka_unit_test(test_toast_compression),
        cmocka_unit_test(test_kill_backend),
        cmocka_unit_test(test_restart_fast),
        cmocka_unit_test(test_restart_immediate),
        cmocka_unit_test(test_server_down_at_start),
        cmocka_unit_test(test_keepalive_defaults),
        cmocka_unit_test(test_keepalive_dsn_wins),
        cmocka_unit_test(test_silent_network),
    };

    sl_log_level_from_env();
    if (getenv("SLUICE_TEST_FILTER")) /* e.g. "test_restart_*" */
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return h_status(cmocka_run_group_tests(tests, NULL, NULL));
}
