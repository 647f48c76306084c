/*
 * sink.postgres.columns.vectors: an embeddings result written to a real[]
 * column besides the results jsonb, through `sluice run` (Redis list ->
 * mock-infer -> PostgreSQL).  Every row's real[] has the vector's length
 * and its values; the nearest-neighbour query the README gives finds a
 * row's own text first; a backend whose result is not an array sends its
 * rows to the dead-letter table.  Needs PostgreSQL, Redis and mock-infer.
 */
#include "harness.h"

#include "strbuf.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>

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
 * letters).  The backend "embed" calls mock-infer, or 'embed_url' when
 * not NULL, with the lines 'embed_extra' added to it; "embed64" is the
 * same asking for base64.  'sink_extra': lines added to sink.postgres. */
static void run_pipeline_with(const char *key, const char *table,
                              const char *embed_url, const char *embed_extra,
                              const char *sink_extra, const char *vectors,
                              long long want, long long want_dead)
{
    char yaml[4096], path[256], snk[512];
    struct h_mock m;
    struct h_proc p;

    assert_int_equal(h_mock_start(&m), 0);
    h_sink_yaml(snk, sizeof(snk), table, sink_extra);
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
             "    batch_max: 16\n"
             "%s"
             "  embed64:\n"
             "    kind: openai-embeddings\n"
             "    url: %s/v1\n"
             "    model: mock-embed\n"
             "    batch_max: 16\n"
             "    encoding_format: base64\n" H_SENTIMENT_BACKEND
             "steps:\n  - name: s\n    backends: [embed, embed64, "
             "sentiment]\n"
             "%s"
             "    flush_ms: 10\n"
             "    columns:\n"
             "      vectors: %s\n",
             H_REDIS, key, embed_url ? embed_url : m.url, embed_extra, m.url,
             m.url, snk, vectors);
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

static void run_pipeline(const char *key, const char *table,
                         const char *vectors, long long want,
                         long long want_dead)
{
    run_pipeline_with(key, table, NULL, "", "", vectors, want, want_dead);
}

/* Both rows and dead letters of 'table' are as many as expected. */
static void assert_landed(PGconn *db, const char *table, long long rows,
                          long long dead)
{
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), rows);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", table), dead);
}

/* Elements of the embedding columns of 'table' equal to the same element
 * of 'backend''s result in results, taken as a float4 when 'as_float4'
 * (what PostgreSQL makes of the number), else as the number itself. */
static long long same_elements(PGconn *db, const char *table,
                               const char *backend, bool as_float4)
{
    return h_pg_int(db,
                    "SELECT count(*) FROM %s, unnest(embedding) WITH "
                    "ORDINALITY AS e(v, n) WHERE e.v::float8 = "
                    "(results->'%s'->>(e.n::int - 1))::float8%s",
                    table, backend, as_float4 ? "::float4::float8" : "");
}

/* Drop 'table' and its dead letters; close 'db'. */
static void drop_tables(PGconn *db, const char *table)
{
    PQclear(h_pg_query(db, "DROP TABLE %s, %s_dead", table, table));
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
    assert_landed(db, table, N, 0);
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
    /* exactly: each element is the float4 PostgreSQL makes of the number */
    assert_int_equal(same_elements(db, table, "embed", true), N * DIM);
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
    drop_tables(db, table);
}

/* A vector column fed by a result that is not an array: the rows go to
 * the dead-letter table with the reason, none to the table. */
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
                              "'sink' AND error = 'vector column "
                              "\"label_vec\": backend sentiment''s result "
                              "is a string, not an array of numbers'",
                              table),
                     M);
    drop_tables(db, table);
}

/*
 * embeddings speed-up (b64): a backend with encoding_format: base64 gets
 * mock-infer's vectors as base64 float32s; its rows hold the float32 of
 * each value the float backend gets as JSON numbers (mock-infer's k/255
 * are doubles, so they differ), and so does the real[] column fed by it.
 */
static void test_base64_rows(void **state)
{
    char key[96], table[96];

    (void)state;
    h_unique(key, sizeof(key), "vec64");
    h_unique(table, sizeof(table), "t_vec64");
    produce(key, N);
    run_pipeline(key, table, "{embedding: embed64}", N, 0);

    PGconn *db = h_db();
    assert_landed(db, table, N, 0);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE "
                              "jsonb_array_length(results->'embed64') = %d",
                              table, DIM),
                     N);
    /* element by element: base64 value == float32 of the JSON number */
    assert_int_equal(
        h_pg_int(db,
                 "SELECT count(*) FROM %s, generate_series(0, "
                 "%d) AS i WHERE (results->'embed64'->>i)::float8 "
                 "= (results->'embed'->>i)::float8::float4::float8",
                 table, DIM - 1),
        N * DIM);
    /* ... which is not the double mock-infer sends as a number */
    assert_true(h_pg_int(db,
                         "SELECT count(*) FROM %s, generate_series(0, %d) AS "
                         "i WHERE (results->'embed64'->>i)::float8 <> "
                         "(results->'embed'->>i)::float8",
                         table, DIM - 1) > N * DIM / 2);
    /* the real[] column holds the same values */
    assert_int_equal(same_elements(db, table, "embed64", false), N * DIM);
    drop_tables(db, table);
}

/* A server that answers every embeddings request with one embedding per
 * input, each the JSON text 'embedding'. */
struct canned {
    struct MHD_Daemon *d;
    char url[64];
    const char *embedding; /* JSON text of each data[i].embedding */
};

static enum MHD_Result canned_answer(void *cls, struct MHD_Connection *conn,
                                     const char *url, const char *method,
                                     const char *version,
                                     const char *upload_data,
                                     size_t *upload_data_size, void **con_cls)
{
    struct canned *c = cls;
    struct sl_strbuf *body = *con_cls;

    (void)url;
    (void)method;
    (void)version;
    if (!body) {
        *con_cls = body = calloc(1, sizeof(*body));
        return body ? MHD_YES : MHD_NO;
    }
    if (*upload_data_size) {
        sl_strbuf_add(body, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    json_t *req = json_loadb(body->p ? body->p : "", body->len, 0, NULL);
    size_t n = json_array_size(json_object_get(req, "input"));
    struct sl_strbuf reply = {0};
    sl_strbuf_addf(&reply, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++)
        sl_strbuf_addf(&reply,
                       "%s{\"object\":\"embedding\",\"index\":%zu,"
                       "\"embedding\":%s}",
                       i ? "," : "", i, c->embedding);
    sl_strbuf_addf(&reply, "],\"model\":\"m\"}");
    json_decref(req);
    sl_strbuf_free(body);
    free(body);
    *con_cls = NULL;
    size_t len = reply.len;
    char *text = sl_strbuf_done(&reply);
    if (!text)
        return MHD_NO;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return ret;
}

static void canned_start(struct canned *c, const char *embedding)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    c->embedding = embedding;
    c->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                            canned_answer, c, MHD_OPTION_SOCK_ADDR, &a,
                            MHD_OPTION_END);
    assert_non_null(c->d);
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(c->d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    snprintf(c->url, sizeof(c->url), "http://127.0.0.1:%u", info->port);
}

/* A base64 embedding that is not whole float32s: every message goes to
 * the dead-letter table with the reason, none to the table. */
static void test_bad_base64_dead_letter(void **state)
{
    char key[96], table[96];
    struct canned c;
    enum { M = 5 };

    (void)state;
    canned_start(&c, "\"AACAPw=\"");
    h_unique(key, sizeof(key), "vec64bad");
    h_unique(table, sizeof(table), "t_vec64bad");
    produce(key, M);
    run_pipeline_with(key, table, c.url,
                      "    encoding_format: base64\n"
                      "    retry: {max_attempts: 1}\n",
                      "", "{embedding: embed}", 0, M);
    MHD_stop_daemon(c.d);

    PGconn *db = h_db();
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), 0);
    assert_int_equal(
        h_pg_int(db,
                 "SELECT count(*) FROM %s_dead WHERE error LIKE "
                 "'%%reply''s data[0].embedding is not base64 of "
                 "little-endian float32s: 7 characters, not a multiple of "
                 "4%%'",
                 table),
        M);
    drop_tables(db, table);
}

/* vectors_in_results: false: the vector is in its column only; the
 * results keep every other backend's result (here embed64's, the same
 * vector as float32s, which the column's values equal). */
static void test_not_in_results(void **state)
{
    char key[96], table[96];

    (void)state;
    h_unique(key, sizeof(key), "vecnr");
    h_unique(table, sizeof(table), "t_vecnr");
    produce(key, N);
    run_pipeline_with(key, table, NULL, "", "    vectors_in_results: false\n",
                      "{embedding: embed}", N, 0);

    PGconn *db = h_db();
    assert_landed(db, table, N, 0);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE NOT results ? "
                              "'embed' AND results ? 'embed64' AND results ? "
                              "'sentiment' AND array_length(embedding, 1) = %d",
                              table, DIM),
                     N);
    assert_int_equal(same_elements(db, table, "embed64", false), N * DIM);
    drop_tables(db, table);
}

/* The same for a base64 backend, whose vectors travel packed from the
 * reply to the row (vecpack.h): each element the float32 the server sent,
 * that of the number the float backend got, and no trace of it in
 * results. */
static void test_not_in_results_base64(void **state)
{
    char key[96], table[96];

    (void)state;
    h_unique(key, sizeof(key), "vecnr64");
    h_unique(table, sizeof(table), "t_vecnr64");
    produce(key, N);
    run_pipeline_with(key, table, NULL, "", "    vectors_in_results: false\n",
                      "{embedding: embed64, e2: embed64}", N, 0);

    PGconn *db = h_db();
    assert_landed(db, table, N, 0);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE NOT results ? "
                              "'embed64' AND results ? 'embed' AND "
                              "array_length(embedding, 1) = %d AND e2 = "
                              "embedding AND NOT results::text LIKE '%%f32%%'",
                              table, DIM),
                     N);
    assert_int_equal(same_elements(db, table, "embed", true), N * DIM);
    drop_tables(db, table);
}

/* A number a real cannot hold (PostgreSQL's float4 would refuse it too):
 * a dead letter saying which element, nothing in the table. */
static void test_out_of_range(void **state)
{
    char key[96], table[96];
    struct canned c;
    enum { M = 3 };

    (void)state;
    canned_start(&c, "[0.5,1e39,0.25]");
    h_unique(key, sizeof(key), "vecrange");
    h_unique(table, sizeof(table), "t_vecrange");
    produce(key, M);
    run_pipeline_with(key, table, c.url, "    retry: {max_attempts: 1}\n", "",
                      "{embedding: embed}", 0, M);
    MHD_stop_daemon(c.d);

    PGconn *db = h_db();
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), 0);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s_dead WHERE stage = "
                              "'sink' AND error = 'vector column "
                              "\"embedding\": backend embed''s result [1] = "
                              "1e+39 is out of range for type real'",
                              table),
                     M);
    drop_tables(db, table);
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
        cmocka_unit_test(test_base64_rows),
        cmocka_unit_test(test_bad_base64_dead_letter),
        cmocka_unit_test(test_not_in_results),
        cmocka_unit_test(test_not_in_results_base64),
        cmocka_unit_test(test_out_of_range),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
