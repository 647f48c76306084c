/*
 * sink.postgres.columns.vectors: an embeddings result written to a real[]
 * column besides the results jsonb, through `sluice run` (Redis list ->
 * mock-infer -> PostgreSQL).  Every row's real[] has the vector's length
 * and its values; the nearest-neighbour query the README gives finds a
 * row's own text first; a backend whose result is not an array sends its
 * rows to the dead-letter table.  Needs PostgreSQL, Redis and mock-infer.
 */
#include "harness.h"

#include <math.h>

#define N 60  /* messages */
#define DIM 8 /* mock-infer's embedding length */

static char dir[64]; /* this run's files */

/* Send 'n' generated messages to Redis list 'key' with `sluice produce`. */
static void produce(const char *key, int n)
{
    h_produce("'redis://%s/%s?type=list' --generate %d", H_REDIS, key, n);
}

/* Run the pipeline reading 'key' into 'table' with 'vectors' (YAML flow
 * mapping) until 'want' rows are in 'table' (or 'want_dead' in its dead
 * letters). */
static void run_pipeline(const char *key, const char *table,
                         const char *vectors, long long want,
                         long long want_dead)
{
    char yaml[4096], path[256], snk[512];
    struct h_mock m;
    struct h_proc p;

    assert_int_equal(h_mock_start(&m), 0);
    h_sink_yaml(snk, sizeof(snk), table, "");
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: vectors\n"
             "source:\n"
             "  kind: redis-list\n"
             "  redis:\n"
             "    url: redis://%s\n"
             "    key: %s\n"
             "    consumer: c1\n"
             "backends:\n"
             "  embed:\n"
             "    kind: openai-embeddings\n"
             "    url: %s/v1\n"
             "    model: mock-embed\n"
             "    batch_max: 16\n" H_SENTIMENT_BACKEND
             "steps:\n  - name: s\n    backends: [embed, sentiment]\n"
             "%s"
             "    flush_ms: 10\n"
             "    columns:\n"
             "      vectors: %s\n",
             H_REDIS, key, m.url, m.url, snk, vectors);
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, table);
    h_write_file(path, yaml);
    h_sluice_start(&p, dir, path, table);
    PGconn *db = h_db();
    int64_t end = h_now_ms() + 60000;
    while ((h_pg_int(db, "SELECT count(*) FROM %s", table) < want ||
            h_pg_int(db, "SELECT count(*) FROM %s_dead", table) < want_dead) &&
           h_now_ms() < end)
        h_pause();
    h_sluice_stop(&p, 30000);
    h_mock_stop(&m);
    PQfinish(db);
}

static void test_embedding_column(void **state)
{
    char key[96], table[96];

    (void)state;
    h_unique(key, sizeof(key), "vec");
    h_unique(table, sizeof(table), "t_vec");
    produce(key, N);
    run_pipeline(key, table, "{embedding: embed}", N, 0);

    PGconn *db = h_db();
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), N);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", table), 0);
    /* The column sluice created is real[] (float4 elements). */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM pg_attribute WHERE "
                              "attrelid = '%s'::regclass AND attname = "
                              "'embedding' AND atttypid = 'real[]'::regtype",
                              table),
                     1);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE "
                              "array_length(embedding, 1) = %d AND "
                              "jsonb_array_length(results->'embed') = %d",
                              table, DIM, DIM),
                     N);
    /* Element by element, the real[] holds the jsonb vector's values. */
    PGresult *res =
        h_pg_query(db,
                   "SELECT e.v::float8, (results->'embed'->>(e.n::int - 1))"
                   "::float8 FROM %s, unnest(embedding) WITH ORDINALITY "
                   "AS e(v, n)",
                   table);
    assert_int_equal(PQntuples(res), N * DIM);
    for (int i = 0; i < PQntuples(res); i++) {
        double got = atof(PQgetvalue(res, i, 0));
        double want = atof(PQgetvalue(res, i, 1));
        if (fabs(got - want) > 1e-6 * (fabs(want) + 1e-30) + 1e-7)
            fail_msg("element %d: real[] %.9g, jsonb %.17g", i, got, want);
    }
    PQclear(res);
    /* The README's nearest-neighbour query: a row's own vector is its
     * nearest (cosine similarity 1). */
    res = h_pg_query(
        db,
        "WITH q AS (SELECT embedding AS v FROM %s WHERE "
        "payload->>'seq' = '7') "
        "SELECT t.payload->>'seq', "
        "(SELECT sum(a * b) FROM unnest(t.embedding, q.v) AS x(a, b)) / "
        "(sqrt((SELECT sum(a * a) FROM unnest(t.embedding) AS a)) * "
        "sqrt((SELECT sum(b * b) FROM unnest(q.v) AS b))) AS cosine "
        "FROM %s t, q ORDER BY cosine DESC LIMIT 5",
        table, table);
    assert_int_equal(PQntuples(res), 5);
    assert_string_equal(PQgetvalue(res, 0, 0), "7");
    assert_true(fabs(atof(PQgetvalue(res, 0, 1)) - 1.0) < 1e-6);
    PQclear(res);
    PQclear(h_pg_query(db, "DROP TABLE %s, %s_dead", table, table));
    PQfinish(db);
}

/* A vector column fed by a result that is not an array: the rows go to
 * the dead-letter table with PostgreSQL's reason, none to the table. */
static void test_not_an_array(void **state)
{
    char key[96], table[96];
    enum { M = 5 };

    (void)state;
    h_unique(key, sizeof(key), "vecbad");
    h_unique(table, sizeof(table), "t_vecbad");
    produce(key, M);
    run_pipeline(key, table, "{label_vec: sentiment}", 0, M);

    PGconn *db = h_db();
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), 0);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s_dead WHERE stage = "
                              "'sink' AND error LIKE '%%cannot extract "
                              "elements from a scalar%%'",
                              table),
                     M);
    PQclear(h_pg_query(db, "DROP TABLE %s, %s_dead", table, table));
    PQfinish(db);
}

static int setup(void **state)
{
    (void)state;
    return h_group_setup(H_NEED_PG | H_NEED_REDIS, dir, sizeof(dir), NULL, 0,
                         NULL);
}

static int teardown(void **state)
{
    (void)state;
    return h_group_teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding_column),
        cmocka_unit_test(test_not_an_array),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
