/*
 * The PostgreSQL sink against a real server: exactly-once rows under
 * resends, row-level isolation of bad bytes, SQL injection stored
 * verbatim, and no loss or doubling across backend kills, restarts
 * (fast and immediate) and a server that is down when the sink starts.
 *
 * Environment: SLUICE_PG_DSN (default host=127.0.0.1 port=55432
 * dbname=sluice user=postgres).  The restart tests drive pg_ctl:
 * SLUICE_PG_CTL is the command prefix (default: pg_ctl from
 * SLUICE_PG_BINDIR or /usr/lib/postgresql/15/bin with -D $SLUICE_PGDATA,
 * run as the postgres user when we are root); SLUICE_PGDATA defaults to
 * <repo>/.run/postgres/data.  They are skipped when that directory does
 * not exist.  They restart the server: do not share it with other tests
 * that cannot stand that (CTest runs this file's cases one after another).
 */
#include "cmocka_shim.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "msg.h"
#include "row.h"
#include "sink_pg.h"

#include <jansson.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_PG_DSN "host=127.0.0.1 port=55432 dbname=sluice user=postgres"
#define N_STREAM 100000
#define DEADLINE_MS 120000

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v && *v ? v : fallback;
}

static const char *dsn(void)
{
    return env_or("SLUICE_PG_DSN", DEFAULT_PG_DSN);
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

static struct sl_sink_pg *sink_new(const char *table, const char *dead,
                                   const char *app, int batch, struct acks *a)
{
    struct sl_sink_pg_conf conf = {0};
    char errstr[256];
    int err;
    struct sl_sink_pg *sink;

    conf.dsn = dsn();
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
    sink = sl_sink_pg_new(&conf, on_ack, a, &err, errstr, sizeof(errstr));
    if (!sink)
        fail_msg("sl_sink_pg_new: %s", errstr);
    return sink;
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
        fprintf(stderr,
                "skipped: no data directory %s (set SLUICE_PGDATA "
                "or SLUICE_PG_CTL)\n",
                pg_data_dir());
        skip();
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
        skip();
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resend_exactly_once),
        cmocka_unit_test(test_bad_bytes_isolated),
        cmocka_unit_test(test_injection_stored_verbatim),
        cmocka_unit_test(test_kill_backend),
        cmocka_unit_test(test_restart_fast),
        cmocka_unit_test(test_restart_immediate),
        cmocka_unit_test(test_server_down_at_start),
    };

    sl_log_level_from_env();
    if (getenv("SLUICE_TEST_FILTER")) /* e.g. "test_restart_*" */
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
