/*
 * Gateway mode end to end: `sluice run` on a pipeline with gateway
 * enabled and mock-infer behind it.  POST /v1/process answers with
 * exactly mock-infer's results (and writes the row when asked), 400 for
 * a malformed body, 502 when a backend fails under on_error: fail, 429
 * with Retry-After beyond max_concurrency; pipelines/gateway.yaml runs
 * as shipped; SIGTERM exits 0.
 */
#include "harness.h"

#include <jansson.h>
#include <pthread.h>

static struct h_mock mock;
static char dir[64];     /* this run's files */
static char sluice[512]; /* the binary under test */

/* What a test gateway varies. */
struct gw {
    int max_concurrency; /* gateway.max_concurrency */
    const char *table;   /* write rows here; NULL: no sink */
    const char *headers; /* backend header lines (YAML, indented), or "" */
    int max_attempts;    /* retry.max_attempts */
};

static void write_pipeline(const char *path, const struct gw *g)
{
    char yaml[4096], sink[512] = "", backends[2048] = "";
    static const char *const route[3] = {"sentiment", "ner", "summary"};
    static const char *const ptr[3] = {"/label", "/entities", "/summary"};

    for (int i = 0; i < 3; i++) {
        size_t n = strlen(backends);
        snprintf(backends + n, sizeof(backends) - n,
                 "  %s:\n"
                 "    kind: http-json\n"
                 "    url: %s/predict/%s\n"
                 "    body: '{\"text\": {{text}}}'\n"
                 "    result_pointer: %s\n"
                 "    retry:\n      max_attempts: %d\n%s",
                 route[i], mock.url, route[i], ptr[i],
                 g->max_attempts ? g->max_attempts : 4,
                 g->headers ? g->headers : "");
    }
    if (g->table)
        h_sink_yaml(sink, sizeof(sink), g->table, "    flush_ms: 10\n");
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-gateway\n"
             "shutdown_timeout_ms: 10000\n"
             "http:\n  listen: 127.0.0.1:0\n"
             "gateway:\n"
             "  enabled: true\n"
             "  max_concurrency: %d\n"
             "  write_rows: %s\n"
             "backends:\n%s"
             "steps:\n"
             "  - name: analyse\n"
             "    backends: [sentiment, ner, summary]\n"
             "    on_error: fail\n%s",
             g->max_concurrency, g->table ? "true" : "false", backends, sink);
    h_write_file(path, yaml);
}

/* POST 'body' to the gateway; returns the parsed reply (or NULL). */
static json_t *process(int port, const char *body, long *statusp,
                       struct h_reply *keep)
{
    char url[128];
    struct h_reply rep;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/process", port);
    h_http(url, body, NULL, &rep);
    *statusp = rep.status;
    json_t *j = json_loads(rep.body, 0, NULL);
    if (!j)
        print_message("reply %ld is not JSON: %s\n", rep.status, rep.body);
    if (keep)
        *keep = rep;
    else
        free(rep.body);
    return j;
}

/* What mock-infer itself answers on 'route' for 'text', at 'field'. */
static json_t *direct(const char *route, const char *text, const char *field)
{
    char url[128];
    struct h_reply rep;
    json_t *req = json_pack("{s:s}", "text", text);
    char *body = json_dumps(req, JSON_COMPACT);

    snprintf(url, sizeof(url), "%s/predict/%s", mock.url, route);
    h_http(url, body, NULL, &rep);
    assert_int_equal(rep.status, 200);
    json_t *j = json_loads(rep.body, 0, NULL);
    assert_non_null(j);
    json_t *v = json_incref(json_object_get(j, field));
    assert_non_null(v);
    json_decref(j);
    json_decref(req);
    free(body);
    free(rep.body);
    return v;
}

static void expect_results(json_t *reply, const char *text)
{
    static const char *const route[3] = {"sentiment", "ner", "summary"};
    static const char *const field[3] = {"label", "entities", "summary"};
    json_t *results = json_object_get(reply, "results");

    assert_non_null(results);
    assert_int_equal(json_object_size(results), 3);
    for (int i = 0; i < 3; i++) {
        json_t *want = direct(route[i], text, field[i]);
        json_t *got = json_object_get(results, route[i]);
        if (!json_equal(want, got)) {
            char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
            char *g = json_dumps(reply, JSON_COMPACT);
            fail_msg("%s: want %s in %s", route[i], w, g);
        }
        json_decref(want);
    }
    assert_int_equal(json_object_size(json_object_get(reply, "errors")), 0);
    assert_true(json_is_integer(
        json_object_get(json_object_get(reply, "timings"), "total")));
}

/* ---- the tests ---- */

static void test_results_and_rows(void **state)
{
    (void)state;
    char table[96], yaml[256];
    struct h_proc proc;
    const char *texts[2] = {"Alice loves the great food in Paris, it was good!",
                            "Terrible service from Bob and Chen: awful, "
                            "sad, the worst delivery ever made here"};

    h_unique(table, sizeof(table), "gateway_rows");
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_pipeline(yaml, &(struct gw){.max_concurrency = 8, .table = table});
    int port = h_sluice_start(&proc, dir, yaml, "gw-rows");

    json_t *replies[2];
    for (int i = 0; i < 2; i++) {
        long status;
        json_t *body = json_pack("{s:s, s:i}", "text", texts[i], "n", i);
        char *b = json_dumps(body, JSON_COMPACT);
        replies[i] = process(port, b, &status, NULL);
        assert_int_equal(status, 200);
        assert_non_null(replies[i]);
        expect_results(replies[i], texts[i]);
        free(b);
        json_decref(body);
    }
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(replies[0], "results"), "sentiment")),
        "positive");
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(replies[1], "results"), "sentiment")),
        "negative");

    /* Each answered request has its row, with the same results. */
    PGconn *db = h_db();
    assert_int_equal(h_wait_rows(db, table, 2, 30000), 2);
    PGresult *res = h_pg_query(db,
                               "SELECT source, topic, payload->>'n', results, "
                               "worker FROM %s ORDER BY (payload->>'n')::int",
                               table);
    assert_int_equal(PQntuples(res), 2);
    for (int i = 0; i < 2; i++) {
        assert_string_equal(PQgetvalue(res, i, 0), "gateway");
        assert_string_equal(PQgetvalue(res, i, 1), "gateway");
        assert_int_equal(atoi(PQgetvalue(res, i, 2)), i);
        assert_string_equal(PQgetvalue(res, i, 4), "gw-rows/gateway");
        json_t *row = json_loads(PQgetvalue(res, i, 3), 0, NULL);
        assert_true(json_equal(row, json_object_get(replies[i], "results")));
        json_decref(row);
        json_decref(replies[i]);
    }
    PQclear(res);

    /* Malformed bodies: 400 with a reason, and no row. */
    static const struct {
        const char *body;
        const char *says;
    } bad[] = {
        {"this is not JSON", "not valid JSON"},
        {"[1, 2, 3]", "must be a JSON object"},
        {"\"text\"", "must be a JSON object"},
        {"", "not valid JSON"},
        {"{\"other\": 1}", "text"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        long status;
        json_t *j = process(port, bad[i].body, &status, NULL);
        assert_int_equal(status, 400);
        assert_non_null(j);
        const char *err = json_string_value(json_object_get(j, "error"));
        assert_non_null(err);
        if (!strstr(err, bad[i].says))
            fail_msg("400 for '%s' says '%s'", bad[i].body, err);
        json_decref(j);
    }
    /* GET is not the gateway's method. */
    assert_int_equal(h_get(port, "/v1/process", NULL), 405);

    char *metrics = NULL;
    assert_int_equal(h_get(port, "/metrics", &metrics), 200);
    assert_true(h_prom_check(metrics) > 0);
    assert_true(
        h_prom_value(metrics, "sluice_gateway_responses_total{code=\"200\"}") ==
        2);
    assert_true(
        h_prom_value(metrics, "sluice_gateway_responses_total{code=\"400\"}") ==
        5);
    assert_true(h_prom_value(metrics, "sluice_gateway_rows_total") == 2);
    free(metrics);
    h_sluice_stop(&proc, 10000);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), 2);
    PQfinish(db);
}

static void test_backend_failure_502(void **state)
{
    (void)state;
    char yaml[256];
    struct h_proc proc;

    snprintf(yaml, sizeof(yaml), "%s/failing.yaml", dir);
    write_pipeline(yaml,
                   &(struct gw){.max_concurrency = 4,
                                .max_attempts = 1,
                                .headers = "    headers:\n"
                                           "      X-Mock-Fault: \"500\"\n"});
    int port = h_sluice_start(&proc, dir, yaml, "gw-fail");
    long status;
    json_t *j = process(port, "{\"text\": \"good\"}", &status, NULL);
    assert_int_equal(status, 502);
    assert_non_null(j);
    const char *err = json_string_value(json_object_get(j, "error"));
    assert_non_null(err);
    char *all = json_dumps(j, JSON_COMPACT);
    print_message("502: %s\n", all);
    free(all);
    assert_non_null(strstr(err, "http_5xx"));
    assert_non_null(strstr(err, "step 'analyse'"));
    assert_true(json_object_size(json_object_get(j, "errors")) >= 1);
    json_decref(j);
    h_sluice_stop(&proc, 10000);
}

struct slow_call {
    int port;      /* gateway */
    long status;   /* its answer */
    json_t *reply; /* parsed */
};

static void *slow_request(void *arg)
{
    struct slow_call *c = arg;

    c->reply =
        process(c->port, "{\"text\": \"happy happy\"}", &c->status, NULL);
    return NULL;
}

static void test_saturated_429(void **state)
{
    (void)state;
    char yaml[256];
    struct h_proc proc;

    snprintf(yaml, sizeof(yaml), "%s/saturated.yaml", dir);
    write_pipeline(
        yaml, &(struct gw){.max_concurrency = 1,
                           .headers = "    headers:\n"
                                      "      X-Mock-Latency-Ms: \"500\"\n"});
    int port = h_sluice_start(&proc, dir, yaml, "gw-busy");

    struct slow_call first = {.port = port};
    pthread_t t;
    int64_t t0 = h_now_ms();
    assert_int_equal(pthread_create(&t, NULL, slow_request, &first), 0);
    /* The first request holds the only slot once the gauge says so. */
    double inflight;
    while ((inflight = h_metric(port, "sluice_gateway_inflight")) != 1) {
        if (h_now_ms() - t0 >= 400) /* well before it can finish */
            fail_msg("sluice_gateway_inflight is %g after %lld ms", inflight,
                     (long long)(h_now_ms() - t0));
        h_pause();
    }
    char url[128];
    struct h_reply rep;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/process", port);
    h_http(url, "{\"text\": \"sad\"}", NULL, &rep);
    int64_t second_ms = h_now_ms() - t0;
    assert_int_equal(rep.status, 429);
    assert_string_equal(rep.retry_after, "1");
    json_t *j = json_loads(rep.body, 0, NULL);
    assert_non_null(j);
    assert_non_null(
        strstr(json_string_value(json_object_get(j, "error")), "too many"));
    json_decref(j);
    free(rep.body);

    pthread_join(t, NULL);
    int64_t first_ms = h_now_ms() - t0;
    print_message("429 after %lld ms; the held request answered %ld after "
                  "%lld ms\n",
                  (long long)second_ms, first.status, (long long)first_ms);
    assert_int_equal(first.status, 200);
    assert_true(first_ms >= 500);
    expect_results(first.reply, "happy happy");
    json_decref(first.reply);

    /* The slot is free again. */
    long status;
    j = process(port, "{\"text\": \"sad\"}", &status, NULL);
    assert_int_equal(status, 200);
    json_decref(j);
    h_sluice_stop(&proc, 10000);
}

/* A stream source and the gateway in one process: both do their work. */
static void test_source_and_gateway(void **state)
{
    (void)state;
    char table[96], stream[96], yaml[256], path[256];
    struct h_proc proc;

    h_unique(table, sizeof(table), "gateway_both");
    h_unique(stream, sizeof(stream), "gateway-both");
    h_produce("redis://%s/%s --generate 100", H_REDIS, stream);
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, table);
    write_pipeline(path, &(struct gw){.max_concurrency = 4, .table = table});
    char *text = h_read_file(path);
    assert_non_null(text);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "%ssource:\n"
            "  kind: redis-stream\n"
            "  redis:\n"
            "    url: redis://%s\n"
            "    key: %s\n"
            "    group: g\n",
            text, H_REDIS, stream);
    fclose(f);
    free(text);
    snprintf(yaml, sizeof(yaml), "%s", path);
    int port = h_sluice_start(&proc, dir, yaml, "gw-both");

    long status;
    json_t *j = process(port, "{\"text\": \"good good\"}", &status, NULL);
    assert_int_equal(status, 200);
    expect_results(j, "good good");
    json_decref(j);
    PGconn *db = h_db();
    assert_int_equal(h_wait_rows(db, table, 101, 60000), 101);
    assert_int_equal(
        h_pg_int(db, "SELECT count(*) FROM %s WHERE source = 'gateway'", table),
        1);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT payload->>'seq') FROM %s "
                              "WHERE source = 'redis-stream'",
                              table),
                     100);
    h_sluice_stop(&proc, 10000);
    PQfinish(db);
}

/* pipelines/gateway.yaml as shipped, pointed at mock-infer. */
static void test_shipped_pipeline(void **state)
{
    (void)state;
    char yaml[1024];
    struct h_proc proc;
    const char *src = getenv("SLUICE_SOURCE_DIR");

    snprintf(yaml, sizeof(yaml), "%s/pipelines/gateway.yaml", src ? src : "..");
    setenv("MODEL_URL", mock.url, 1);
    setenv("SLUICE_LISTEN", "127.0.0.1:0", 1);
    int port = h_sluice_start(&proc, dir, yaml, "gw-shipped");
    assert_int_equal(h_get(port, "/readyz", NULL), 200);
    long status;
    json_t *j =
        process(port, "{\"text\": \"The best day in Tokyo\"}", &status, NULL);
    assert_int_equal(status, 200);
    expect_results(j, "The best day in Tokyo");
    json_decref(j);
    h_sluice_stop(&proc, 10000);
}

/* write_rows without a sink is a pipeline error: exit 2, with the reason
 * (the loader's, so `sluice check` says the same). */
static void test_write_rows_needs_sink(void **state)
{
    (void)state;
    char path[256], cmd[1024], out[4096];

    snprintf(path, sizeof(path), "%s/nosink.yaml", dir);
    h_write_file(path, "version: 1\n"
                       "name: nosink\n"
                       "http:\n  listen: 127.0.0.1:0\n"
                       "gateway:\n  enabled: true\n  write_rows: true\n"
                       "backends:\n"
                       "  s:\n"
                       "    kind: http-json\n"
                       "    url: http://127.0.0.1:1/x\n"
                       "steps:\n  - name: a\n    backends: [s]\n");
    snprintf(cmd, sizeof(cmd), "%s run %s 2>&1", sluice, path);
    int rc = h_shell(cmd, out, sizeof(out));
    print_message("exit %d: %s", rc, out);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "write_rows is true but the pipeline has no "
                                "'sink': add sink.postgres or set write_rows "
                                "to false at gateway.write_rows"));
}

/* A one-backend gateway whose model answers each request body back
 * (X-Mock-Echo), result at /v; rows into 'table' when not NULL. */
static void write_echo_pipeline(const char *path, const char *table,
                                const char *headers, const char *step)
{
    char yaml[2048], sink[512] = "";

    if (table)
        snprintf(sink, sizeof(sink),
                 "sink:\n"
                 "  postgres:\n"
                 "    dsn: %s\n"
                 "    table: %s\n"
                 "    dead_letter_table: %s_dead\n"
                 "    create_table: true\n"
                 "    flush_ms: 10\n",
                 H_PG_DSN, table, table);
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-gateway-echo\n"
             "shutdown_timeout_ms: 10000\n"
             "http:\n  listen: 127.0.0.1:0\n"
             "gateway:\n"
             "  enabled: true\n"
             "  max_body_bytes: 4096\n"
             "  write_rows: %s\n"
             "backends:\n"
             "  echo:\n"
             "    kind: http-json\n"
             "    url: %s/predict/sentiment\n"
             "    result_pointer: /v\n"
             "    headers:\n"
             "      X-Mock-Echo: \"1\"\n%s"
             "    retry:\n      max_attempts: 1\n"
             "steps:\n"
             "  - name: echo\n"
             "    backends: [echo]\n%s%s",
             table ? "true" : "false", mock.url, headers ? headers : "",
             step ? step : "", sink);
    h_write_file(path, yaml);
}

/* Numbers keep the text the model sent: 0.6, 0.1 and a real that needs
 * all 17 digits, in the gateway's reply and in the row's jsonb. */
static void test_numbers_keep_precision(void **state)
{
    (void)state;
    /* The last: all in one document, each keeps its own digits. */
    static const char *const nums[] = {"0.6", "0.1", "0.30000000000000004",
                                       "1e-7", "[0.6,0.1,0.30000000000000004]"};
    static const char *const stored[] = {
        "0.6", "0.1", "0.30000000000000004", "0.0000001",
        "[0.6, 0.1, 0.30000000000000004]"}; /* jsonb's text of them */
    char table[96], yaml[256], body[128], want[128];
    struct h_proc proc;

    h_unique(table, sizeof(table), "gateway_numbers");
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_echo_pipeline(yaml, table, NULL, NULL);
    int port = h_sluice_start(&proc, dir, yaml, "gw-numbers");
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        char url[128];
        struct h_reply rep;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/process", port);
        snprintf(body, sizeof(body), "{\"i\":%zu,\"v\":%s}", i, nums[i]);
        h_http(url, body, NULL, &rep);
        assert_int_equal(rep.status, 200);
        snprintf(want, sizeof(want), "{\"results\":{\"echo\":%s},", nums[i]);
        if (strncmp(rep.body, want, strlen(want)) != 0)
            fail_msg("sent %s, the reply is %s", nums[i], rep.body);
        free(rep.body);
    }
    PGconn *db = h_db();
    size_t n = sizeof(nums) / sizeof(nums[0]);
    assert_int_equal(h_wait_rows(db, table, (long long)n, 30000), (long long)n);
    PGresult *res = h_pg_query(
        db, "SELECT results->>'echo' FROM %s ORDER BY (payload->>'i')::int",
        table);
    assert_int_equal(PQntuples(res), (int)n);
    for (size_t i = 0; i < n; i++) {
        const char *got = PQgetvalue(res, (int)i, 0);
        if (strcmp(got, stored[i]) != 0)
            fail_msg("sent %s, the row holds %s", nums[i], got);
    }
    PQclear(res);
    PQfinish(db);
    h_sluice_stop(&proc, 10000);
}

/* An answer with the headers the error tests look at. */
/* 'method' 'path' with 'body' (or NULL) sent as 'ctype' (NULL: no
 * Content-Type header at all), with one more header 'extra' (or NULL). */
static void raw_http_with(int port, const char *method, const char *path,
                          const char *ctype, const char *body,
                          const char *extra, struct h_reply *rep)
{
    char url[256];

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    h_request(method, url, body, ctype, extra, rep);
}

static void raw_http(int port, const char *method, const char *path,
                     const char *ctype, const char *body, struct h_reply *rep)
{
    raw_http_with(port, method, path, ctype, body, NULL, rep);
}

/* Expect 'status' with a JSON body {"error": "..."} that says 'says' and
 * names no library flag. */
static void expect_json_error(const struct h_reply *rep, long status,
                              const char *says)
{
    if (rep->status != status)
        fail_msg("want %ld, got %ld: %s", status, rep->status, rep->body);
    assert_string_equal(rep->ctype, "application/json");
    json_t *j = json_loads(rep->body, 0, NULL);
    if (!j)
        fail_msg("%ld body is not JSON: %s", status, rep->body);
    const char *err = json_string_value(json_object_get(j, "error"));
    assert_non_null(err);
    if (!strstr(err, says))
        fail_msg("%ld says '%s', not '%s'", status, err, says);
    assert_null(strstr(err, "MHD"));
    assert_null(strstr(err, "CURL"));
    json_decref(j);
}

/* The listener's own errors are JSON, 405 names the allowed method, a
 * body that is not JSON by its Content-Type gets 415, and each answer is
 * counted by status. */
static void test_http_errors(void **state)
{
    (void)state;
    char yaml[256], big[8192];
    struct h_proc proc;
    struct h_reply rep;

    snprintf(yaml, sizeof(yaml), "%s/errors.yaml", dir);
    write_echo_pipeline(yaml, NULL, NULL, NULL);
    int port = h_sluice_start(&proc, dir, yaml, "gw-errors");

    raw_http(port, "GET", "/v1/process", NULL, NULL, &rep);
    expect_json_error(&rep, 405,
                      "method GET is not allowed on /v1/process; "
                      "use POST");
    assert_string_equal(rep.allow, "POST");
    free(rep.body);
    raw_http(port, "DELETE", "/metrics", NULL, NULL, &rep);
    expect_json_error(&rep, 405, "use GET, HEAD");
    assert_string_equal(rep.allow, "GET, HEAD");
    free(rep.body);
    raw_http(port, "HEAD", "/healthz", NULL, NULL, &rep);
    assert_int_equal(rep.status, 200);
    free(rep.body);
    raw_http(port, "POST", "/v1/nothing", "application/json", "{}", &rep);
    expect_json_error(&rep, 404, "no such path: /v1/nothing");
    free(rep.body);
    memset(big, ' ', sizeof(big) - 1);
    big[0] = '{';
    big[sizeof(big) - 2] = '}';
    big[sizeof(big) - 1] = '\0';
    /* Refused by its Content-Length before it is sent (curl waits for
     * 100 Continue), and when only reading it finds out (chunked). */
    static const char *const how[] = {NULL, "Transfer-Encoding: chunked"};
    for (int i = 0; i < 2; i++) {
        raw_http_with(port, "POST", "/v1/process", "application/json", big,
                      how[i], &rep);
        expect_json_error(&rep, 413,
                          "the request body is larger than 4096 bytes "
                          "(gateway.max_body_bytes)");
        free(rep.body);
    }

    static const char *const refused[] = {"text/plain",
                                          "application/x-www-form-urlencoded",
                                          "application/jsonx", "json", NULL};
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        char says[256];
        if (refused[i])
            snprintf(says, sizeof(says),
                     "the body must be sent as Content-Type: "
                     "application/json (or a +json type), not '%s'",
                     refused[i]);
        else
            snprintf(says, sizeof(says),
                     "the body must be sent as Content-Type: "
                     "application/json (or a +json type); the request has "
                     "no Content-Type");
        raw_http(port, "POST", "/v1/process", refused[i], "{\"v\": 1}", &rep);
        expect_json_error(&rep, 415, says);
        free(rep.body);
    }
    static const char *const taken[] = {
        "application/json", "application/json; charset=utf-8",
        "Application/JSON", "application/vnd.api+json"};
    for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
        raw_http(port, "POST", "/v1/process", taken[i], "{\"v\": 1}", &rep);
        if (rep.status != 200)
            fail_msg("%s: %ld %s", taken[i], rep.status, rep.body);
        free(rep.body);
    }

    char *metrics = NULL;
    assert_int_equal(h_get(port, "/metrics", &metrics), 200);
    assert_true(h_prom_check(metrics) > 0);
    static const struct {
        const char *series;
        double want;
    } counts[] = {
        {"sluice_gateway_responses_total{code=\"415\"}", 5},
        {"sluice_gateway_responses_total{code=\"200\"}", 4},
        {"sluice_http_responses_total{code=\"404\"}", 1},
        {"sluice_http_responses_total{code=\"405\"}", 2},
        {"sluice_http_responses_total{code=\"413\"}", 2},
        {"sluice_http_responses_total{code=\"415\"}", 5},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        double got = h_prom_value(metrics, counts[i].series);
        if (got != counts[i].want)
            fail_msg("%s is %g, not %g", counts[i].series, got, counts[i].want);
    }
    free(metrics);
    h_sluice_stop(&proc, 10000);
}

/* A step past its deadline_ms answers 504 with the attempts really made,
 * and counts under code="504". */
static void test_deadline_504(void **state)
{
    (void)state;
    char yaml[256];
    struct h_proc proc;
    struct h_reply rep;

    snprintf(yaml, sizeof(yaml), "%s/deadline.yaml", dir);
    write_echo_pipeline(yaml, NULL, "      X-Mock-Latency-Ms: \"5000\"\n",
                        "    deadline_ms: 300\n");
    int port = h_sluice_start(&proc, dir, yaml, "gw-deadline");
    int64_t t0 = h_now_ms();
    raw_http(port, "POST", "/v1/process", "application/json", "{\"v\": 1}",
             &rep);
    int64_t ms = h_now_ms() - t0;
    print_message("504 after %lld ms: %s\n", (long long)ms, rep.body);
    expect_json_error(&rep, 504,
                      "step 'echo': backend 'echo' failed (deadline) after 1 "
                      "attempt(s): step 'echo' deadline of 300 ms passed");
    assert_true(ms < 5000);
    json_t *j = json_loads(rep.body, 0, NULL);
    json_t *e = json_object_get(json_object_get(j, "errors"), "echo");
    assert_string_equal(json_string_value(json_object_get(e, "class")),
                        "deadline");
    assert_int_equal(json_integer_value(json_object_get(e, "attempts")), 1);
    json_decref(j);
    free(rep.body);
    assert_true(
        h_metric(port, "sluice_gateway_responses_total{code=\"504\"}") == 1);
    assert_true(
        h_metric(port, "sluice_gateway_responses_total{code=\"502\"}") == 0);
    h_sluice_stop(&proc, 10000);
}

static int setup(void **state)
{
    (void)state;
    return h_group_setup(H_NEED_PG | H_NEED_REDIS, dir, sizeof(dir), sluice,
                         sizeof(sluice), &mock);
}

static int teardown(void **state)
{
    (void)state;
    return h_group_teardown(&mock);
}

/* hardening #7: under on_error partial a body that cannot be rendered for
 * the request fails that backend only (200, its error in "errors"); when
 * no backend can render it the request is bad: 400. */
static void test_partial_render_failure(void **state)
{
    (void)state;
    char yaml[256], text[2048];
    struct h_proc proc;
    long status;

    snprintf(yaml, sizeof(yaml), "%s/partial-render.yaml", dir);
    snprintf(text, sizeof(text),
             "version: 1\n"
             "name: test-partial-render\n"
             "http:\n  listen: 127.0.0.1:0\n"
             "gateway: {enabled: true}\n"
             "backends:\n" H_SENTIMENT_BACKEND "  by_user:\n"
             "    kind: http-json\n"
             "    url: %s/predict/sentiment\n"
             "    body: '{\"text\": {{user.name}}}'\n"
             "    result_pointer: /label\n"
             "steps:\n"
             "  - name: s\n"
             "    backends: [sentiment, by_user]\n"
             "    on_error: partial\n",
             mock.url, mock.url);
    h_write_file(yaml, text);
    int port = h_sluice_start(&proc, dir, yaml, "gw-partial-render");

    json_t *j = process(port, "{\"text\": \"good\"}", &status, NULL);
    assert_int_equal(status, 200);
    assert_non_null(j);
    assert_non_null(
        json_object_get(json_object_get(j, "results"), "sentiment"));
    json_t *e = json_object_get(json_object_get(j, "errors"), "by_user");
    assert_string_equal(json_string_value(json_object_get(e, "class")),
                        "input");
    assert_string_equal(
        json_string_value(json_object_get(e, "message")),
        "missing field 'user.name' for template of backend 'by_user'");
    json_decref(j);

    j = process(port, "{\"other\": 1}", &status, NULL);
    assert_int_equal(status, 400);
    json_decref(j);
    h_sluice_stop(&proc, 10000);
}

/* Wait until sluice's /readyz says 503: the drain has begun. */
static void wait_draining(struct h_proc *proc, int port)
{
    int64_t end = h_now_ms() + 10000;

    while (h_get(port, "/readyz", NULL) != 503) {
        if (h_exited(proc) || h_now_ms() > end) {
            h_dump_log(proc->log, 4000);
            fail_msg("sluice did not start draining");
        }
        h_pause();
    }
}

/*
 * A second SIGTERM while a slow request is in flight stops at once: the
 * request is answered 503 and sluice exits well before the backend's
 * 8 s latency (shutdown_timeout_ms is 10 s).
 */
static void test_second_signal_stops_at_once(void **state)
{
    (void)state;
    char yaml[256];
    struct h_proc proc;

    snprintf(yaml, sizeof(yaml), "%s/second-signal.yaml", dir);
    write_pipeline(
        yaml, &(struct gw){.max_concurrency = 4,
                           .max_attempts = 1,
                           .headers = "    headers:\n"
                                      "      X-Mock-Latency-Ms: \"8000\"\n"});
    int port = h_sluice_start(&proc, dir, yaml, "gw-second");
    struct slow_call slow = {.port = port};
    pthread_t t;
    int64_t t0 = h_now_ms();
    assert_int_equal(pthread_create(&t, NULL, slow_request, &slow), 0);
    while (h_metric(port, "sluice_gateway_inflight") != 1) {
        if (h_now_ms() - t0 > 5000)
            fail_msg("the slow request never got in flight");
        h_pause();
    }
    kill(proc.pid, SIGTERM);
    wait_draining(&proc, port);
    int64_t t1 = h_now_ms();
    kill(proc.pid, SIGTERM);
    bool exited = h_wait_exit(&proc, 20000);
    int64_t stop_ms = h_now_ms() - t1;
    pthread_join(t, NULL);
    int64_t answer_ms = h_now_ms() - t0;
    print_message("second SIGTERM: exit %d after %lld ms; the request in "
                  "flight answered %ld after %lld ms\n",
                  proc.status, (long long)stop_ms, slow.status,
                  (long long)answer_ms);
    if (!exited)
        h_kill(&proc);
    assert_true(exited);
    assert_true(stop_ms < 3000);
    assert_int_equal(proc.status, 0);
    assert_int_equal(slow.status, 503);
    json_decref(slow.reply);
    char *log = h_read_file(proc.log);
    assert_non_null(strstr(log, "second signal (SIGTERM): stopping now"));
    free(log);
}

/* SIGHUP drains like SIGTERM, says so, and exits 0. */
static void test_sighup_drains(void **state)
{
    (void)state;
    char yaml[256];
    struct h_proc proc;

    snprintf(yaml, sizeof(yaml), "%s/sighup.yaml", dir);
    write_pipeline(yaml, &(struct gw){.max_concurrency = 4});
    int port = h_sluice_start(&proc, dir, yaml, "gw-hup");
    long status;
    json_t *j = process(port, "{\"text\": \"happy\"}", &status, NULL);
    assert_int_equal(status, 200);
    json_decref(j);
    kill(proc.pid, SIGHUP);
    bool exited = h_wait_exit(&proc, 20000);
    if (!exited)
        h_kill(&proc);
    assert_true(exited);
    if (proc.status != 0)
        h_dump_log(proc.log, 4000);
    assert_int_equal(proc.status, 0);
    char *log = h_read_file(proc.log);
    assert_non_null(strstr(log, "SIGHUP: draining (up to 10000 ms)"));
    assert_non_null(strstr(log, "gateway stopped: 1 requests, 1 answered 200"));
    free(log);
}

/* A port already taken: exit 1, and the last line is the cause. */
static void test_busy_port_cause_last(void **state)
{
    (void)state;
    char yaml[256], cmd[1024], out[8192];

    snprintf(yaml, sizeof(yaml), "%s/busy.yaml", dir);
    write_pipeline(yaml, &(struct gw){.max_concurrency = 4});
    /* mock-infer holds its port. */
    snprintf(cmd, sizeof(cmd), "%s run %s --listen 127.0.0.1:%d 2>&1", sluice,
             yaml, mock.port);
    int rc = h_shell(cmd, out, sizeof(out));
    print_message("exit %d:\n%s", rc, out);
    assert_int_equal(rc, 1);
    const char *last = h_last_line(out);
    char want[128];
    snprintf(want, sizeof(want),
             "\"message\":\"http: 127.0.0.1:%d: cannot listen (Address "
             "already in use)\"",
             mock.port);
    if (!strstr(last, want))
        fail_msg("last line is not the cause: %s", last);
    assert_non_null(strstr(last, "\"level\":\"error\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_results_and_rows),
        cmocka_unit_test(test_backend_failure_502),
        cmocka_unit_test(test_saturated_429),
        cmocka_unit_test(test_source_and_gateway),
        cmocka_unit_test(test_shipped_pipeline),
        cmocka_unit_test(test_write_rows_needs_sink),
        cmocka_unit_test(test_numbers_keep_precision),
        cmocka_unit_test(test_http_errors),
        cmocka_unit_test(test_deadline_504),
        cmocka_unit_test(test_partial_render_failure),
        cmocka_unit_test(test_second_signal_stops_at_once),
        cmocka_unit_test(test_sighup_drains),
        cmocka_unit_test(test_busy_port_cause_last),
    };
    if (getenv("SLUICE_TEST_FILTER"))
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
