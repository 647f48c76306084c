/*
 * The PostgreSQL sink without a server: identifier checks and quoting,
 * binary array parameters, bisection, SQL text, row classification,
 * password-file safety, connection parameters (keepalive defaults the
 * DSN can override, bad DSNs), and backpressure while the database is
 * down.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "log.h"
#include "row.h"
#include "utf8.h"
#include "sink_pg.h"
#include "sink_pg_int.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_ident_check(void **state)
{
    static const char *good[] = {
        "t",
        "_x",
        "results",
        "sluice.results",
        "A_b9",
        "a23456789012345678901234567890123456789012345678901234567890123",
    };
    static const char *bad[] = {
        "",
        "9t",
        "a-b",
        "a.b.c",
        ".a",
        "a.",
        "t;drop",
        "\"t\"",
        "a b",
        "tä",
        "a..b",
        "x'",
        "a\n",
        "s.9t",
        "a234567890123456789012345678901234567890123456789012345678901234",
    };
    char errstr[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(
            sl_sink_pg_ident_check(good[i], "table", errstr, sizeof(errstr)),
            0);
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        errstr[0] = '\0';
        assert_int_equal(
            sl_sink_pg_ident_check(bad[i], "table", errstr, sizeof(errstr)),
            -SL_ECONFIG);
        assert_non_null(strstr(errstr, "table name"));
    }
    assert_int_equal(sl_sink_pg_ident_check(NULL, "table", NULL, 0),
                     -SL_ECONFIG);
}

static void test_ident_quote(void **state)
{
    char buf[64];

    (void)state;
    assert_int_equal(sl_sink_pg_ident_quote("results", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "\"results\"");
    assert_int_equal(sl_sink_pg_ident_quote("s.Results", buf, sizeof(buf)), 0);
    assert_string_equal(buf, "\"s\".\"Results\"");
    assert_int_equal(sl_sink_pg_ident_quote("abcdefgh", buf, 8), -SL_ETOOBIG);
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static void test_binary_array(void **state)
{
    struct sl_pgarr a = {0};
    const unsigned char *p;

    (void)state;
    assert_int_equal(sl_pgarr_begin(&a, SL_PG_OID_TEXT), 0);
    assert_int_equal(sl_pgarr_add(&a, "a\"b\\c,{}", 8), 0);
    assert_int_equal(sl_pgarr_add(&a, NULL, 0), 0);
    assert_int_equal(sl_pgarr_add(&a, "", 0), 0);
    sl_pgarr_finish(&a);
    p = a.buf;
    assert_int_equal(get32(p), 1);     /* ndim */
    assert_int_equal(get32(p + 4), 1); /* has NULL */
    assert_int_equal(get32(p + 8), SL_PG_OID_TEXT);
    assert_int_equal(get32(p + 12), 3); /* elements */
    assert_int_equal(get32(p + 16), 1); /* lower bound */
    assert_int_equal(get32(p + 20), 8); /* bytes kept verbatim */
    assert_memory_equal(p + 24, "a\"b\\c,{}", 8);
    assert_int_equal(get32(p + 32), 0xffffffffu); /* NULL */
    assert_int_equal(get32(p + 36), 0);           /* empty, not NULL */
    assert_int_equal(a.len, 40);

    /* begin() again reuses the buffer for a new array. */
    assert_int_equal(sl_pgarr_begin(&a, SL_PG_OID_INT8), 0);
    assert_int_equal(sl_pgarr_add_i64(&a, -2), 0);
    sl_pgarr_finish(&a);
    p = a.buf;
    assert_int_equal(get32(p + 4), 0);
    assert_int_equal(get32(p + 20), 8);
    assert_int_equal(get32(p + 24), 0xffffffffu);
    assert_int_equal(get32(p + 28), 0xfffffffeu);

    assert_int_equal(sl_pgarr_begin(&a, SL_PG_OID_JSONB), 0);
    assert_int_equal(sl_pgarr_add_jsonb(&a, "{}", 2), 0);
    sl_pgarr_finish(&a);
    p = a.buf;
    assert_int_equal(get32(p + 20), 3);
    assert_int_equal(p[24], 1); /* jsonb version */
    assert_memory_equal(p + 25, "{}", 2);
    sl_pgarr_free(&a);
    sl_pgarr_free(&a); /* zeroed: fine */
}

static void test_bisect_and_errors(void **state)
{
    size_t n, first;

    (void)state;
    for (n = 2; n < 2000; n++) {
        sl_sink_pg_bisect(n, &first);
        assert_true(first >= 1 && first < n);
        assert_true(first >= n / 2 - 1 && first <= n / 2 + 1);
    }
    assert_true(sl_sink_pg_is_data_error("22P05"));
    assert_true(sl_sink_pg_is_data_error("22021"));
    assert_true(sl_sink_pg_is_data_error("23505"));
    assert_false(sl_sink_pg_is_data_error("57P01"));
    assert_false(sl_sink_pg_is_data_error("08006"));
    assert_false(sl_sink_pg_is_data_error("42P01"));
    assert_false(sl_sink_pg_is_data_error(NULL));
}

static void test_sql_text(void **state)
{
    struct sl_sink_pg_columns cols = {0};
    char *sql;

    (void)state;
    cols.payload = "body";
    sql = sl_sink_pg_sql_insert("\"s\".\"t\"", &cols, NULL, 0);
    assert_non_null(sql);
    assert_non_null(strstr(sql, "INSERT INTO \"s\".\"t\" (\"source\""));
    assert_non_null(strstr(sql, "\"body\""));
    assert_non_null(strstr(sql, "unnest($1::text[]"));
    assert_non_null(strstr(sql, "$13::timestamptz[]"));
    assert_non_null(strstr(sql, "ON CONFLICT DO NOTHING"));
    free(sql);
    sql = sl_sink_pg_sql_create("\"t\"", NULL, NULL, 0);
    assert_non_null(strstr(sql, "UNIQUE (\"source\", \"topic\", "
                                "\"partition\", \"offset\", \"entry_id\")"));
    free(sql);
    /* vectors: real[] columns, each a slice of its real[] parameter */
    const struct sl_sink_pg_vector vecs[] = {{"emb", "e'x"}, {"e2", "y"}};
    sql = sl_sink_pg_sql_insert("\"t\"", NULL, vecs, 2);
    assert_non_null(strstr(sql, "\"received_at\", \"emb\", \"e2\") SELECT "
                                "u.c1, u.c2, "));
    assert_non_null(strstr(sql, "u.c13, CASE WHEN u.s1 IS NOT NULL THEN "
                                "($14::real[])[u.s1:u.s1 + u.l1 - 1] END, "
                                "CASE WHEN u.s2 IS NOT NULL THEN "
                                "($17::real[])[u.s2:u.s2 + u.l2 - 1] END "
                                "FROM unnest($1::text[]"));
    assert_non_null(strstr(sql, "$13::timestamptz[], $15::int4[], "
                                "$16::int4[], $18::int4[], $19::int4[]) AS "
                                "u(c1, c2, "));
    assert_non_null(strstr(sql, "c13, s1, l1, s2, l2) ON CONFLICT"));
    free(sql);
    sql = sl_sink_pg_sql_create("\"t\"", NULL, vecs, 1);
    assert_non_null(strstr(sql, ", \"emb\" real[], processed_at"));
    free(sql);
    char err[256];
    const struct sl_sink_pg_vector dup[] = {{"emb", "a"}, {"emb", "b"}};
    assert_int_equal(sl_sink_pg_vectors_check(NULL, dup, 2, err, sizeof(err)),
                     -SL_ECONFIG);
    assert_string_equal(err, "postgres vector column \"emb\" is given twice");
    const struct sl_sink_pg_vector clash[] = {{"results", "a"}};
    assert_int_equal(sl_sink_pg_vectors_check(NULL, clash, 1, err, sizeof(err)),
                     -SL_ECONFIG);
    assert_string_equal(
        err, "postgres vector column \"results\" is also the results column");
    sql = sl_sink_pg_sql_insert_dead("\"dl\"");
    assert_non_null(strstr(sql, "attempts = d.attempts + 1"));
    free(sql);
}

static struct sl_msg *msg_with(const char *payload, size_t len)
{
    struct sl_msg *msg = NULL;

    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_KAFKA, "t", 0, 7, NULL, "k", 1,
                                payload, len, NULL, NULL, 0),
                     0);
    return msg;
}

static void test_row_payload_kind(void **state)
{
    struct sl_row *row;
    char *s;

    (void)state;
    row = sl_row_new_result(msg_with("{\"a\":1}", 7),
                            json_pack("{s:i}", "x", 1), NULL, NULL, "w");
    assert_true(row->payload_json);
    assert_string_equal(row->results, "{\"x\":1}");
    assert_null(row->errors);
    sl_row_destroy(row);
    /* jsonb refuses \u0000; such a payload is carried as bytes. */
    row = sl_row_new_result(msg_with("{\"a\":\"\\u0000\"}", 13), NULL, NULL,
                            NULL, NULL);
    assert_false(row->payload_json);
    sl_row_destroy(row);
    row = sl_row_new_result(msg_with("not json \xff", 10), NULL, NULL, NULL,
                            NULL);
    assert_false(row->payload_json);
    assert_int_equal(sl_row_make_dead(row, SL_STAGE_SINK, "bad \xff", "22021"),
                     0);
    assert_int_equal(row->kind, SL_ROW_DEAD);
    assert_string_equal(row->error, "bad ?");
    assert_string_equal(row->sqlstate, "22021");
    assert_string_equal(sl_row_stage_name(row->stage), "sink");
    sl_row_destroy(row);
    sl_row_destroy(NULL);

    s = sl_utf8_sanitize("a\0b\xc3\xa9\xed\xa0\x80", 8);
    assert_string_equal(s, "a?b\xc3\xa9???");
    free(s);
}

static void on_ack(void *arg, struct sl_msg *msg, int err)
{
    int *counts = arg;

    counts[err == 0 ? 0 : 1]++;
    sl_msg_destroy(msg);
}

/* A vector column's value from a result, or the data error a row gets. */
static int vector_of(const char *json, struct sl_row_vec *vec, char *err,
                     size_t err_size)
{
    static const char *const backends[] = {"e"}, *const columns[] = {"v"};
    const struct sl_row_vectors spec = {backends, columns, 1, false};
    json_t *results = json_pack("{s:o}", "e", json_loads(json, 0, NULL));
    int rc;

    assert_non_null(results);
    memset(vec, 0, sizeof(*vec));
    err[0] = '\0';
    rc = sl_row_vectors_of(&spec, results, vec, err, err_size);
    json_decref(results);
    return rc;
}

static void test_row_vectors(void **state)
{
    struct sl_row_vec vec;
    char err[256];

    (void)state;
    /* integers and reals, each element its length 4 and its float4 */
    assert_int_equal(vector_of("[1, -0.5, 0]", &vec, err, sizeof(err)), 0);
    static const unsigned char want[24] = {0, 0, 0, 4, 0x3f, 0x80, 0, 0,
                                           0, 0, 0, 4, 0xbf, 0,    0, 0,
                                           0, 0, 0, 4, 0,    0,    0, 0};
    assert_int_equal(vec.count, 3);
    assert_memory_equal(vec.elems, want, sizeof(want));
    free(vec.elems);
    /* out of a real's range both ways, as PostgreSQL's float4in */
    assert_int_equal(vector_of("[0.5, 1e-50]", &vec, err, sizeof(err)),
                     -SL_EDATA);
    assert_string_equal(err, "vector column \"v\": backend e's result [1] = "
                             "1e-50 is out of range for type real");
    free(vec.elems);
    assert_int_equal(vector_of("[-1e39]", &vec, err, sizeof(err)), -SL_EDATA);
    assert_string_equal(err, "vector column \"v\": backend e's result [0] = "
                             "-1e+39 is out of range for type real");
    free(vec.elems);
    assert_int_equal(vector_of("[0.5, \"x\"]", &vec, err, sizeof(err)),
                     -SL_EDATA);
    assert_string_equal(err, "vector column \"v\": backend e's result [1] "
                             "is a string, not a number");
    free(vec.elems);
    assert_int_equal(vector_of("{\"a\": 1}", &vec, err, sizeof(err)),
                     -SL_EDATA);
    assert_string_equal(err, "vector column \"v\": backend e's result is an "
                             "object, not an array of numbers");
    assert_null(vec.elems);
}

static void test_password_file_mode(void **state)
{
    char path[] = "/tmp/sluice-pw-XXXXXX", errstr[256], want[256];
    struct sl_sink_pg_conf conf = {0};
    int fd = mkstemp(path), counts[2] = {0, 0};

    (void)state;
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    chmod(path, 0644);
    conf.dsn = "host=127.0.0.1 port=1";
    conf.password_file = path;
    assert_null(sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr)));
    snprintf(want, sizeof(want),
             "postgres password_file: file %s is readable by group or others "
             "(mode 0644); refusing it: chmod 600 %s",
             path, path);
    assert_string_equal(errstr, want);
    assert_null(strstr(errstr, "s3cret"));
    unlink(path);

    conf.password_file = NULL;
    conf.password_env = "SLUICE_TEST_NO_SUCH_VAR";
    assert_null(sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "postgres password_env: environment variable "
                                "SLUICE_TEST_NO_SUCH_VAR is not set");

    conf.password_env = NULL;
    conf.table = "results; drop";
    assert_null(sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr)));
    assert_string_equal(errstr, "table name \"results; drop\" is not "
                                "[schema.]name with each part "
                                "[A-Za-z_][A-Za-z0-9_]{0,62}");
    assert_int_equal(counts[0] + counts[1], 0);
}

/* The value keys[]/vals[] give 'key', or NULL when it is not there. */
static const char *param(const char *const *keys, const char *const *vals,
                         const char *key)
{
    int i;

    for (i = 0; keys[i]; i++)
        if (!strcmp(keys[i], key))
            return vals[i];
    return NULL;
}

static const char *const net_keys[] = {
    "keepalives",       "keepalives_idle",  "keepalives_interval",
    "keepalives_count", "tcp_user_timeout",
};

/* Each keepalive / tcp_user_timeout default is added, ahead of the DSN. */
static void test_conn_params_defaults(void **state)
{
    const char *keys[SL_SINK_PG_CONN_PARAMS], *vals[SL_SINK_PG_CONN_PARAMS];
    const char *dsn = "host=127.0.0.1 port=1 dbname=d user=u";
    char errstr[256];
    int service = -1;
    size_t i;

    (void)state;
    assert_int_equal(sl_sink_pg_conn_params(dsn, "app", NULL, keys, vals,
                                            &service, errstr, sizeof(errstr)),
                     7);
    assert_int_equal(service, 0);
    for (i = 0; i < 5; i++)
        assert_string_equal(keys[i], net_keys[i]);
    assert_string_equal(param(keys, vals, "keepalives"), "1");
    assert_string_equal(param(keys, vals, "keepalives_idle"), "10");
    assert_string_equal(param(keys, vals, "keepalives_interval"), "5");
    assert_string_equal(param(keys, vals, "keepalives_count"), "3");
    assert_string_equal(param(keys, vals, "tcp_user_timeout"), "30000");
    assert_string_equal(keys[5], "dbname"); /* expanded: its values win */
    assert_ptr_equal(vals[5], dsn);
    assert_string_equal(keys[6], "application_name");
    assert_string_equal(vals[6], "app");
    assert_null(keys[7]);
    assert_null(vals[7]);

    /* The password comes last, after the DSN, as before. */
    assert_int_equal(sl_sink_pg_conn_params(dsn, "app", "pw", keys, vals,
                                            &service, errstr, sizeof(errstr)),
                     8);
    assert_string_equal(keys[7], "password");
    assert_string_equal(vals[7], "pw");
    assert_null(keys[8]);

    /* An empty DSN (libpq's own defaults) still gets them. */
    assert_int_equal(sl_sink_pg_conn_params("", "app", NULL, keys, vals,
                                            &service, errstr, sizeof(errstr)),
                     7);
    assert_string_equal(param(keys, vals, "tcp_user_timeout"), "30000");
}

/* A value the DSN gives, in either form, is not overridden. */
static void test_conn_params_dsn_wins(void **state)
{
    const char *keys[SL_SINK_PG_CONN_PARAMS], *vals[SL_SINK_PG_CONN_PARAMS];
    char errstr[256];
    int service;

    (void)state;
    assert_int_equal(sl_sink_pg_conn_params("host=h keepalives_idle=42", "app",
                                            NULL, keys, vals, &service, errstr,
                                            sizeof(errstr)),
                     6);
    assert_null(param(keys, vals, "keepalives_idle"));
    assert_string_equal(param(keys, vals, "keepalives_interval"), "5");
    assert_string_equal(param(keys, vals, "tcp_user_timeout"), "30000");

    assert_int_equal(
        sl_sink_pg_conn_params("postgresql://u:secret@h:5/db?keepalives_idle="
                               "42&tcp_user_timeout=0&keepalives=0",
                               "app", NULL, keys, vals, &service, errstr,
                               sizeof(errstr)),
        4);
    assert_null(param(keys, vals, "keepalives"));
    assert_null(param(keys, vals, "keepalives_idle"));
    assert_null(param(keys, vals, "tcp_user_timeout"));
    assert_string_equal(param(keys, vals, "keepalives_count"), "3");
    assert_string_equal(keys[2], "dbname");

    /* A service file may set them: none is added, and the caller is told. */
    assert_int_equal(sl_sink_pg_conn_params("service=sluice", "app", NULL, keys,
                                            vals, &service, errstr,
                                            sizeof(errstr)),
                     2);
    assert_int_equal(service, 1);
    assert_string_equal(keys[0], "dbname");
    assert_int_equal(setenv("PGSERVICE", "sluice", 1), 0);
    assert_int_equal(sl_sink_pg_conn_params("host=h", "app", NULL, keys, vals,
                                            &service, errstr, sizeof(errstr)),
                     2);
    assert_int_equal(service, 1);
    assert_int_equal(unsetenv("PGSERVICE"), 0);
}

/*
 * libpq takes the arrays as they are: a connection started with them
 * (to a closed port: nothing needs to answer) carries the defaults, and
 * the DSN's own value where it sets one.
 */
static void test_conn_params_libpq(void **state)
{
    const char *keys[SL_SINK_PG_CONN_PARAMS], *vals[SL_SINK_PG_CONN_PARAMS];
    char errstr[256];
    int service;
    PGconn *conn;
    PQconninfoOption *opts, *o;
    int seen = 0;

    (void)state;
    assert_true(sl_sink_pg_conn_params(
                    "postgresql://u@127.0.0.1:1/db?keepalives_idle=42", "app",
                    NULL, keys, vals, &service, errstr, sizeof(errstr)) > 0);
    conn = PQconnectStartParams(keys, vals, 1);
    assert_non_null(conn);
    opts = PQconninfo(conn);
    assert_non_null(opts);
    for (o = opts; o->keyword; o++) {
        const char *want = NULL;

        if (!strcmp(o->keyword, "keepalives"))
            want = "1";
        else if (!strcmp(o->keyword, "keepalives_idle"))
            want = "42";
        else if (!strcmp(o->keyword, "keepalives_interval"))
            want = "5";
        else if (!strcmp(o->keyword, "keepalives_count"))
            want = "3";
        else if (!strcmp(o->keyword, "tcp_user_timeout"))
            want = "30000";
        else if (!strcmp(o->keyword, "dbname"))
            want = "db";
        else if (!strcmp(o->keyword, "application_name"))
            want = "app";
        if (!want)
            continue;
        assert_non_null(o->val);
        assert_string_equal(o->val, want);
        seen++;
    }
    assert_int_equal(seen, 7);
    PQconninfoFree(opts);
    PQfinish(conn);
}

/* A DSN libpq cannot read fails new() as it always did, password unseen. */
static void test_bad_dsn_error(void **state)
{
    static const struct {
        const char *dsn;
        const char *errstr;
    } cases[] = {
        {"host=127.0.0.1 bogus=1",
         "postgres dsn: invalid connection option \"bogus\""},
        {"port=5432 password=hunter2 bogus=1",
         "postgres dsn: invalid connection option \"bogus\""},
        {"host='x", "postgres dsn: unterminated quoted string in connection "
                    "info string"},
        {"keepalives_idle", "postgres dsn: missing \"=\" after "
                            "\"keepalives_idle\" in connection info string"},
        {"postgresql://u@h/db?keepalives_idle=42&nosuch=1",
         "postgres dsn: invalid URI query parameter: \"nosuch\""},
        /* libpq quotes the URI whole: its password is masked. */
        {"postgresql://u:hunter2@[::1",
         "postgres dsn: end of string reached when looking for matching "
         "\"]\" in IPv6 host address in URI: \"postgresql://u:*******@[::1\""},
        {"postgresql://u@[::1?password=hunter2",
         "postgres dsn: end of string reached when looking for matching "
         "\"]\" in IPv6 host address in URI: "
         "\"postgresql://u@[::1?password=*******\""},
    };
    const char *keys[SL_SINK_PG_CONN_PARAMS], *vals[SL_SINK_PG_CONN_PARAMS];
    struct sl_sink_pg_conf conf = {0};
    int service, counts[2] = {0, 0};
    char errstr[256];
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        conf.dsn = cases[i].dsn;
        errstr[0] = '\0';
        assert_null(
            sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr)));
        assert_string_equal(errstr, cases[i].errstr);
        assert_null(strstr(errstr, "hunter2"));

        errstr[0] = '\0';
        assert_int_equal(sl_sink_pg_conn_params(cases[i].dsn, "app", NULL, keys,
                                                vals, &service, errstr,
                                                sizeof(errstr)),
                         -SL_ECONFIG);
        assert_null(keys[0]);
        assert_string_equal(errstr, cases[i].errstr);
    }
    assert_int_equal(counts[0] + counts[1], 0);
}

/* Database down: nothing is acked, the backlog fills, submit() times out,
 * and drain() gives every message back as not durable. */
static void test_backpressure_when_down(void **state)
{
    struct sl_sink_pg_conf conf = {0};
    struct sl_sink_pg *sink;
    char errstr[256];
    int counts[2] = {0, 0}, i, rc = 0, submitted = 0;

    (void)state;
    conf.dsn = "host=127.0.0.1 port=1 dbname=none user=none";
    conf.batch_rows = 10;
    conf.max_batches_inflight = 2;
    conf.backlog_rows = 20;
    conf.reconnect_min_ms = 10;
    conf.reconnect_max_ms = 50;
    sink = sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr));
    assert_non_null(sink);
    for (i = 0; i < 1000 && rc == 0; i++) {
        struct sl_row *row =
            sl_row_new_result(msg_with("{}", 2), NULL, NULL, NULL, NULL);

        rc = sl_sink_pg_submit(sink, row, 200);
        if (rc == 0)
            submitted++;
        else
            sl_row_destroy(row);
    }
    assert_int_equal(rc, -SL_ETIMEDOUT);
    /* Held: at most (inflight + 1) batches plus a full backlog. */
    assert_true(submitted <= 10 * 3 + 20);
    assert_int_equal(counts[0], 0);
    assert_int_equal(sl_sink_pg_drain(sink, 50), -SL_ETIMEDOUT);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], submitted);
    assert_int_equal(sl_sink_pg_submit(sink, (struct sl_row *)&conf, 0),
                     -SL_EINVAL);
    sl_sink_pg_destroy(sink);
    sl_sink_pg_destroy(NULL);
}

/* The whole log written so far to 'path' (free it). */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 65536);
    size_t n;

    assert_non_null(f);
    assert_non_null(buf);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/*
 * Every change of the connection's state is one debug line, old -> new:
 * with the server down, the sink goes disconnected -> connecting ->
 * disconnected (and again), and to stopped at the end; never to setup or
 * ready.
 */
static void test_state_changes_traced(void **state)
{
    struct sl_sink_pg_conf conf = {0};
    struct sl_sink_pg *sink;
    char path[] = "/tmp/sl-test-sink-trace.XXXXXX", errstr[256];
    int fd = mkstemp(path), counts[2] = {0, 0};
    char *text = NULL;

    (void)state;
    assert_true(fd >= 0);
    sl_log_set_fd(fd);
    sl_log_set_level(SL_LOG_DEBUG);
    conf.dsn = "host=127.0.0.1 port=1 dbname=none user=none";
    conf.reconnect_min_ms = 10;
    conf.reconnect_max_ms = 20;
    sink = sl_sink_pg_new(&conf, on_ack, counts, errstr, sizeof(errstr));
    assert_non_null(sink);
    for (int i = 0; i < 500; i++) { /* up to 5 s: two failed attempts */
        free(text);
        text = slurp(path);
        char *again = strstr(text, "connecting -> disconnected");
        if (again && strstr(again + 1, "connecting -> disconnected"))
            break;
        usleep(10000);
    }
    sl_sink_pg_destroy(sink);
    sl_log_set_level(SL_LOG_ERROR);
    sl_log_set_fd(STDERR_FILENO);
    free(text);
    text = slurp(path);
    assert_non_null(strstr(text, "\"postgres 127.0.0.1:1/none as none: "
                                 "disconnected -> connecting\""));
    assert_non_null(strstr(text, "\"postgres 127.0.0.1:1/none as none: "
                                 "connecting -> disconnected\""));
    assert_non_null(strstr(text, " -> stopped\""));
    assert_null(strstr(text, "-> setup"));
    assert_null(strstr(text, "-> ready"));
    free(text);
    close(fd);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ident_check),
        cmocka_unit_test(test_ident_quote),
        cmocka_unit_test(test_binary_array),
        cmocka_unit_test(test_bisect_and_errors),
        cmocka_unit_test(test_sql_text),
        cmocka_unit_test(test_row_payload_kind),
        cmocka_unit_test(test_row_vectors),
        cmocka_unit_test(test_password_file_mode),
        cmocka_unit_test(test_conn_params_defaults),
        cmocka_unit_test(test_conn_params_dsn_wins),
        cmocka_unit_test(test_conn_params_libpq),
        cmocka_unit_test(test_bad_dsn_error),
        cmocka_unit_test(test_backpressure_when_down),
        cmocka_unit_test(test_state_changes_traced),
    };

    sl_log_set_level(SL_LOG_ERROR);
    unsetenv("PGSERVICE"); /* the defaults are added only without one */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
