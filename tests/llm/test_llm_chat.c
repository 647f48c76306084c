/*
 * pipelines/review-sentiment.yaml against a real chat model: SmolLM2-135M-
 * Instruct served by llama-cpp-python's OpenAI-compatible server
 * (`scripts/models start --llm`, 127.0.0.1:58083 or SLUICE_LLM_URL).  The
 * pipeline file itself, with this test's topic and tables: reviews from
 * Kafka, one openai-chat call each, rows in PostgreSQL.  Every reply must
 * parse and land as exactly one row (no dead letter), with its content, a
 * label that is one of positive/negative/neutral or the documented
 * fallback 'unknown', and the tokens it cost.
 *
 * Label `llm`, built and registered only with -DSLUICE_LLM_TESTS=ON: not
 * part of `make test` or CI (the server is a 20-minute build).  README:
 * "A real chat model".
 */
#include "models/models.h"

#define LAND_MS 600000 /* ~0.2-2 s a reply on 2 busy cores */

/* The label as README documents it: the first of the three words in the
 * reply, else 'unknown'. */
#define LABEL_SQL                                                              \
    "coalesce(substring(lower(results->'sentiment'->>'content') from "         \
    "'positive|negative|neutral'), 'unknown')"

static char dir[64];
static int llm_port;

static const char *const reviews[] = {
    "Terrible. The screen cracked on the first day and nobody replied.",
    "Absolutely love it, the best headphones I have ever owned!",
    "The package arrived on Monday.",
    "Awful food, cold and late. Never again.",
    "Excellent battery life and a great price. Highly recommended.",
    "It is a phone case. It is blue.",
    "The room was dirty and the staff were rude.",
    "Fantastic service, friendly staff, I will come back.",
    "Broke after a week, what a waste of money.",
    "Works as described, nothing special.",
    "Das Essen war großartig, sehr zu empfehlen!",
    "The service was NOT good at all :( \"never again\" \\ sigh",
    "Tab\tand newline\nin one review, okay I guess...",
    "Perfect fit and very comfortable shoes, thank you!",
    "The sound quality is poor and it keeps disconnecting.",
    "I ordered two and received two.",
};
#define N_REVIEWS ((int)(sizeof(reviews) / sizeof(reviews[0])))

/* SLUICE_LLM_URL's port (http://127.0.0.1:PORT), else 58083. */
static int llm_port_of_env(void)
{
    const char *url = getenv("SLUICE_LLM_URL");
    const char *colon = url ? strrchr(url, ':') : NULL;
    int port = colon ? atoi(colon + 1) : 0;

    return port > 0 ? port : 58083;
}

static void test_every_reply_lands(void **state)
{
    char name[64], group[80], yaml[192], jsonl[192], cmd[1024], out[2048];
    char url[64];
    struct h_proc p;
    (void)state;

    h_unique(name, sizeof(name), "llm_reviews");
    snprintf(group, sizeof(group), "g-%s", name);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, name);
    h_review_pipeline(m_srcdir(), yaml, name, NULL);

    /* The reviews, one message each, on a topic of one partition. */
    snprintf(jsonl, sizeof(jsonl), "%s/%s.jsonl", dir, name);
    FILE *f = fopen(jsonl, "w");
    assert_non_null(f);
    for (int i = 0; i < N_REVIEWS; i++) {
        json_t *j = json_pack("{s:i,s:s}", "seq", i, "text", reviews[i]);
        char *text = json_dumps(j, JSON_COMPACT);
        fprintf(f, "%s\n", text);
        free(text);
        json_decref(j);
    }
    assert_int_equal(fclose(f), 0);
    snprintf(cmd, sizeof(cmd),
             "%s/sluice produce kafka://%s/%s --partitions 1 --file %s 2>&1",
             h_bindir(), H_KAFKA, name, jsonl);
    if (h_shell(cmd, out, sizeof(out)) != 0)
        fail_msg("%s: %s", cmd, out);

    /* The pipeline's own variables point it at the servers. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", llm_port);
    setenv("MODEL_URL", url, 1);
    setenv("MODEL_CONCURRENCY", "2", 1); /* the server runs one at a time */
    setenv("KAFKA_BROKERS", H_KAFKA, 1);
    setenv("KAFKA_GROUP", group, 1);
    setenv("PG_DSN", H_PG_DSN, 1);
    setenv("SLUICE_LOG_LEVEL", "info",
           1); /* h_sluice_start reads "listening on" */

    int64_t t0 = h_now_ms();
    int mport = h_sluice_start(&p, dir, yaml, "llm");
    PGconn *db = h_db();
    long long got = m_wait_done(db, name, N_REVIEWS, LAND_MS);
    int64_t ms = h_now_ms() - t0;
    double prompt =
        h_metric(mport, "sluice_backend_tokens_total{backend=\"sentiment\","
                        "type=\"prompt\"}");
    double completion =
        h_metric(mport, "sluice_backend_tokens_total{backend=\"sentiment\","
                        "type=\"completion\"}");
    h_sluice_stop(&p, 30000);
    if (got < N_REVIEWS)
        h_dump_log(p.log, 4000);
    print_message("%lld of %d reviews in %lld ms (%.0f ms a review); "
                  "tokens: %.0f prompt, %.0f completion\n",
                  got, N_REVIEWS, (long long)ms,
                  (double)ms / (got > 0 ? (double)got : 1.0), prompt,
                  completion);

    /* What the model said, and the label read from it. */
    PGresult *res = h_pg_query(
        db,
        "SELECT (payload->>'seq')::int, results->'sentiment'->>'content', "
        "%s FROM %s ORDER BY 1",
        LABEL_SQL, name);
    for (int i = 0; i < PQntuples(res); i++)
        print_message("  %2s %-8s %s\n", PQgetvalue(res, i, 0),
                      PQgetvalue(res, i, 2), PQgetvalue(res, i, 1));
    PQclear(res);

    /* Exactly one row a review, no dead letter. */
    m_check_once(db, name, N_REVIEWS);
    /* Every reply parsed: its content is a string in the row... */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE "
                              "jsonb_typeof(results->'sentiment'->'content') "
                              "= 'string'",
                              name),
                     N_REVIEWS);
    /* ... the label is one of the three or the documented fallback ... */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE %s IN "
                              "('positive', 'negative', 'neutral', "
                              "'unknown')",
                              name, LABEL_SQL),
                     N_REVIEWS);
    /* ... and most replies carry a label (a 135M model is no oracle, but
     * one that answered beside the point for most reviews would mean the
     * prompt no longer fits it). */
    long long labelled = h_pg_int(
        db, "SELECT count(*) FROM %s WHERE %s <> 'unknown'", name, LABEL_SQL);
    print_message("%lld of %d replies name a label\n", labelled, N_REVIEWS);
    assert_true(labelled * 2 >= N_REVIEWS);
    /* The tokens each reply cost are stored and counted: a prompt, and an
     * answer of 1 to max_tokens (8) tokens. */
    assert_int_equal(
        h_pg_int(db,
                 "SELECT count(*) FROM %s WHERE (results->'sentiment'->"
                 "'usage'->>'prompt_tokens')::int > 0 AND (results->"
                 "'sentiment'->'usage'->>'completion_tokens')::int "
                 "BETWEEN 1 AND 8",
                 name),
        N_REVIEWS);
    assert_true(prompt > 0 && completion >= N_REVIEWS);

    /* The topic stays (a few KB), like the other tests' topics. */
    PQclear(h_pg_query(db, "DROP TABLE IF EXISTS %s, %s_dead", name, name));
    PQfinish(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_reply_lands),
    };

    llm_port = llm_port_of_env();
    h_require_postgres();
    h_require_kafka();
    h_require(h_tcp_open(llm_port) &&
                  h_get(llm_port, "/v1/models", NULL) == 200,
              "no chat model server (llama_cpp.server)",
              "scripts/models start --llm starts it");
    h_tmpdir(dir, sizeof(dir));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
