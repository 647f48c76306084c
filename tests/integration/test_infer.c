/*
 * The inference engine against mock-infer (started here on an ephemeral
 * port): one test per fault kind with the outcome a user sees, partial
 * results, mode first, embeddings micro-batching and concurrency within
 * one worker.
 */
#include "harness.h"

#include "clock.h"
#include "config.h"
#include "err.h"
#include "infer.h"
#include "log.h"
#include "msg.h"
#include "row.h"

#define START_DEADLINE_MS 10000

static struct h_mock mock; /* mock-infer, the backends of every test */

static int start_mock(void **state)
{
    static const char *const args[] = {"--huge-bytes",
                                       "1048576",
                                       "--trickle-interval-ms",
                                       "400",
                                       "--timeout-hold-ms",
                                       "10000",
                                       NULL};

    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_log_set_level(SL_LOG_ERROR);
    if (h_mock_start_args(&mock, args) != 0)
        return -1;
    int64_t deadline = h_now_ms() + START_DEADLINE_MS;
    while (h_now_ms() < deadline) {
        if (h_get(mock.port, "/healthz", NULL) == 200)
            return 0;
        h_pause();
    }
    return -1;
}

static int stop_mock(void **state)
{
    (void)state;
    h_mock_cleanup(&mock);
    curl_global_cleanup();
    return 0;
}

/* ---- running messages ---- */

struct outcome {
    int done;                           /* callbacks seen */
    enum sl_infer_status status;        /* of the message */
    json_t *results, *errors, *timings; /* referenced */
    char reason[512];                   /* FAILED reason */
    char stage[32];                     /* FAILED stage */
    int64_t done_ms;                    /* when done() ran */
};

static void on_done(void *arg, void *item, const struct sl_infer_result *res)
{
    struct outcome *o = item;
    (void)arg;
    o->done++;
    o->status = res->status;
    o->results = json_incref(res->results);
    o->errors = json_incref(res->errors);
    o->timings = json_incref(res->timings);
    snprintf(o->reason, sizeof(o->reason), "%s",
             res->reason ? res->reason : "");
    snprintf(o->stage, sizeof(o->stage), "%s",
             res->status == SL_INFER_FAILED ? sl_row_stage_name(res->stage)
                                            : "");
    o->done_ms = sl_mono_ms();
}

static void outcome_clear(struct outcome *o)
{
    json_decref(o->results);
    json_decref(o->errors);
    json_decref(o->timings);
    memset(o, 0, sizeof(*o));
}

struct rig {
    struct sl_config *cfg;
    struct sl_infer *inf;
    struct sl_infer_worker *w;
};

/* Parse YAML 'fmt' (with %s = the mock's base URL, any number of times). */
static void rig_up(struct rig *r, const char *yaml)
{
    char text[8192], errstr[512];
    struct sl_config_errors errs = {0};
    size_t o = 0;

    for (const char *p = yaml; *p && o < sizeof(text) - 80; p++) {
        if (p[0] == '@' && p[1] == 'B') {
            o += (size_t)snprintf(text + o, sizeof(text) - o, "%s", mock.url);
            p++;
        } else {
            text[o++] = *p;
        }
    }
    o += (size_t)snprintf(text + o, sizeof(text) - o,
                          "gateway: {enabled: true}\n");
    int err = sl_config_parse("test.yaml", text, o, &r->cfg, &errs);
    if (err) {
        for (size_t i = 0; i < errs.cnt; i++)
            fprintf(stderr, "%s\n", errs.items[i].text);
        fail_msg("config does not parse");
    }
    sl_config_errors_clear(&errs);
    r->inf = sl_infer_new(r->cfg, errstr, sizeof(errstr));
    if (!r->inf)
        fail_msg("sl_infer_new: %s", errstr);
    r->w = sl_infer_worker_new(r->inf, 256, errstr, sizeof(errstr));
    assert_non_null(r->w);
}

static void rig_down(struct rig *r)
{
    sl_infer_worker_destroy(r->w);
    sl_infer_destroy(r->inf);
    sl_config_destroy(r->cfg);
}

static void submit_text(struct rig *r, const char *payload, struct outcome *o)
{
    struct sl_msg *msg;
    char errstr[256];
    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_FILE, "t", 0, 0, NULL, NULL, 0,
                                payload, strlen(payload), NULL, errstr,
                                sizeof(errstr)),
                     0);
    /* the msg is freed by the test once done: keep it in o via a pair */
    json_t *doc = json_loads(payload, 0, NULL);
    if (doc) {
        assert_int_equal(
            sl_infer_worker_submit_json(r->w, doc, o, on_done, NULL), 0);
        json_decref(doc);
        sl_msg_destroy(msg);
        return;
    }
    sl_msg_destroy(msg);
    fail_msg("payload must be JSON here");
}

/* Drive until nothing is in flight or 'limit_ms' passed. */
static void drain(struct rig *r, int limit_ms)
{
    int64_t end = sl_mono_ms() + limit_ms;
    while (sl_infer_worker_progress(r->w, 50) > 0)
        if (sl_mono_ms() > end)
            fail_msg("messages still in flight after %d ms", limit_ms);
}

static const char *err_class(struct outcome *o, const char *backend)
{
    return json_string_value(
        json_object_get(json_object_get(o->errors, backend), "class"));
}

static int err_attempts(struct outcome *o, const char *backend)
{
    return (int)json_integer_value(
        json_object_get(json_object_get(o->errors, backend), "attempts"));
}

/* One http-json sentiment backend with extra YAML lines 'extra'. */
static void one_backend(struct rig *r, const char *extra, const char *text,
                        struct outcome *o)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: t\n"
             "backends:\n"
             "  sentiment:\n"
             "    kind: http-json\n"
             "    url: @B/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /label\n"
             "%s"
             "steps:\n  - name: s\n    backends: [sentiment]\n",
             extra);
    rig_up(r, yaml);
    char payload[512];
    snprintf(payload, sizeof(payload), "{\"text\": \"%s\"}", text);
    submit_text(r, payload, o);
    drain(r, 20000);
    assert_int_equal(o->done, 1);
}

/* ---- tests ---- */

static void test_ok_and_bad_payloads(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};

    one_backend(&r, "", "I love it, great", &o);
    assert_int_equal(o.status, SL_INFER_OK);
    assert_string_equal(
        json_string_value(json_object_get(o.results, "sentiment")), "positive");
    assert_true(json_is_integer(json_object_get(o.timings, "sentiment")));
    assert_true(json_is_integer(json_object_get(o.timings, "total")));

    outcome_clear(&o);
    rig_down(&r);
}

/* done() for sl_msg items: the msg's key names nothing, so use arg. */
static void on_done_arg(void *arg, void *item,
                        const struct sl_infer_result *res)
{
    (void)item;
    on_done(NULL, arg, res);
}

static void test_bad_payload_reasons(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0}, bad = {0}, missing = {0};
    struct sl_msg *msg, *msg2;
    char errstr[256];

    one_backend(&r, "", "fine", &o);
    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_FILE, "t", 0, 1, NULL, NULL, 0,
                                "{oops", 5, NULL, errstr, sizeof(errstr)),
                     0);
    assert_int_equal(sl_infer_worker_submit(r.w, msg, on_done_arg, &bad), 0);
    assert_int_equal(sl_msg_new(&msg2, SL_SOURCE_FILE, "t", 0, 2, NULL, NULL, 0,
                                "{\"body\": 1}", 11, NULL, errstr,
                                sizeof(errstr)),
                     0);
    assert_int_equal(sl_infer_worker_submit(r.w, msg2, on_done_arg, &missing),
                     0);
    drain(&r, 2000);
    assert_int_equal(bad.status, SL_INFER_FAILED);
    assert_string_equal(bad.stage, "decode");
    assert_non_null(strstr(bad.reason, "payload is not valid JSON"));
    assert_int_equal(missing.status, SL_INFER_FAILED);
    assert_string_equal(missing.stage, "decode");
    assert_string_equal(missing.reason, "missing field 'text' for template "
                                        "of backend 'sentiment'");
    sl_msg_destroy(msg);
    sl_msg_destroy(msg2);
    outcome_clear(&o);
    outcome_clear(&bad);
    outcome_clear(&missing);
    rig_down(&r);
}

/*
 * perf #15: a body checked once as safe is not parsed per message, but a
 * body whose placeholder is an object's key still gets its runtime error
 * (the config check passes it: with a string there it is JSON), and a
 * payload nested too deep for the JSON parser is still refused.
 */
static void test_body_not_json_at_run_time(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome ok = {0}, key = {0}, deep = {0};
    char payload[8192];
    size_t n = 0;

    rig_up(&r, "version: 1\nname: t\n"
               "backends:\n"
               "  keyed:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}, {{k}}: 1}'\n"
               "    result_pointer: /label\n"
               "  whole:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}, \"all\": [{{.}}]}'\n"
               "    result_pointer: /label\n"
               "steps:\n  - name: s\n    backends: [keyed, whole]\n");
    submit_text(&r, "{\"text\": \"good\", \"k\": \"name\"}", &ok);
    submit_text(&r, "{\"text\": \"good\", \"k\": 5}", &key);
    /* 2046 arrays in the payload: 2048 levels in the "whole" body. */
    n += (size_t)snprintf(payload, sizeof(payload),
                          "{\"text\": \"t\", \"k\": \"name\", \"d\": ");
    for (int i = 0; i < 2046; i++)
        payload[n++] = '[';
    for (int i = 0; i < 2046; i++)
        payload[n++] = ']';
    snprintf(payload + n, sizeof(payload) - n, "}");
    submit_text(&r, payload, &deep);
    drain(&r, 20000);
    assert_int_equal(ok.status, SL_INFER_OK);
    assert_int_equal(key.status, SL_INFER_FAILED);
    assert_string_equal(key.stage, "decode");
    assert_string_equal(key.reason,
                        "template does not render to JSON: string or '}' "
                        "expected near '5' at byte 18 for template of "
                        "backend 'keyed'");
    assert_int_equal(deep.status, SL_INFER_FAILED);
    assert_string_equal(deep.stage, "decode");
    assert_non_null(strstr(deep.reason, "template does not render to JSON"));
    outcome_clear(&ok);
    outcome_clear(&key);
    outcome_clear(&deep);
    rig_down(&r);
}

static void test_500_retried_then_ok(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};

    one_backend(&r,
                "    headers: {X-Mock-Fault: '500', X-Mock-Fault-Times: '2', "
                "X-Mock-Fault-Key: retry-500}\n"
                "    retry: {max_attempts: 4, base_ms: 10, max_ms: 50}\n",
                "good", &o);
    assert_int_equal(o.status, SL_INFER_OK);
    const struct sl_infer_stats *st = sl_infer_stats(r.inf, 0);
    assert_int_equal(atomic_load(&st->requests), 3);
    assert_int_equal(atomic_load(&st->retries), 2);
    assert_int_equal(atomic_load(&st->errors[SL_INFER_EC_HTTP_5XX]), 2);
    assert_int_equal(atomic_load(&st->successes), 1);
    outcome_clear(&o);
    rig_down(&r);
}

/*
 * A message that one sentiment backend, set up with the YAML lines
 * 'extra', fails: its error there has class 'class'; and, where given,
 * 'attempts' were made, the message failed at 'stage' with each of
 * 'reason' in its reason, within 'max_ms'.
 */
struct failing {
    const char *extra;     /* the backend's extra YAML lines */
    const char *class;     /* errors.sentiment.class */
    int attempts;          /* errors.sentiment.attempts; 0: any */
    const char *stage;     /* the failure stage; NULL: any */
    const char *reason[3]; /* parts of the reason, NULL-ended */
    int64_t max_ms;        /* took less; 0: any time */
};

static void one_failing(const struct failing *f)
{
    struct rig r = {0};
    struct outcome o = {0};
    int64_t t0 = sl_mono_ms();

    one_backend(&r, f->extra, "x", &o);
    assert_int_equal(o.status, SL_INFER_FAILED);
    if (f->stage)
        assert_string_equal(o.stage, f->stage);
    for (int i = 0; f->reason[i]; i++)
        assert_non_null(strstr(o.reason, f->reason[i]));
    assert_string_equal(err_class(&o, "sentiment"), f->class);
    if (f->attempts)
        assert_int_equal(err_attempts(&o, "sentiment"), f->attempts);
    if (f->max_ms)
        assert_true(sl_mono_ms() - t0 < f->max_ms);
    outcome_clear(&o);
    rig_down(&r);
}

static void test_503_dead_letter(void **state)
{
    (void)state;
    one_failing(&(struct failing){
        .extra = "    headers: {X-Mock-Fault: '503', X-Mock-Retry-After: '0'}\n"
                 "    retry: {max_attempts: 3, base_ms: 5, max_ms: 20}\n",
        .class = "http_5xx",
        .attempts = 3,
        .stage = "inference",
        .reason = {"503", "after 3 attempt"}});
}

static void test_429_retry_after(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};
    int64_t t0 = sl_mono_ms();

    one_backend(&r,
                "    headers: {X-Mock-Fault: '429', X-Mock-Retry-After: '1', "
                "X-Mock-Fault-Times: '1', X-Mock-Fault-Key: ra-429}\n"
                "    retry: {max_attempts: 3, base_ms: 1, max_ms: 2}\n",
                "good", &o);
    int64_t took = sl_mono_ms() - t0;
    assert_int_equal(o.status, SL_INFER_OK);
    assert_true(took >= 1000);
    assert_true(took < 3000);
    outcome_clear(&o);
    rig_down(&r);
}

static void test_timeout(void **state)
{
    (void)state;
    one_failing(&(struct failing){.extra =
                                      "    headers: {X-Mock-Fault: timeout}\n"
                                      "    timeout_ms: 300\n"
                                      "    retry: {max_attempts: 1}\n",
                                  .class = "timeout",
                                  .max_ms = 2000});
}

static void test_trickle(void **state)
{
    (void)state;
    one_failing(&(struct failing){.extra =
                                      "    headers: {X-Mock-Fault: trickle}\n"
                                      "    low_speed_bytes_per_s: 100\n"
                                      "    low_speed_time_ms: 1000\n"
                                      "    retry: {max_attempts: 1}\n",
                                  .class = "timeout",
                                  .max_ms = 5000});
}

static void test_bad_json_and_huge(void **state)
{
    (void)state;
    one_failing(
        &(struct failing){.extra = "    headers: {X-Mock-Fault: bad-json}\n"
                                   "    retry: {max_attempts: 3, base_ms: 1}\n",
                          .class = "bad_json",
                          .attempts = 1}); /* not retried */
    one_failing(&(struct failing){.extra = "    headers: {X-Mock-Fault: huge}\n"
                                           "    max_response_bytes: 65536\n"
                                           "    retry: {max_attempts: 1}\n",
                                  .class = "too_large"});
}

static void run_one(struct rig *r, struct outcome *o)
{
    submit_text(r, "{\"text\": \"I love it, great\"}", o);
    drain(r, 5000);
    assert_int_equal(o->done, 1);
}

static void test_breaker(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o[6] = {0};

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  sentiment:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}}'\n"
               "    headers: {X-Mock-Fault: '500', X-Mock-Fault-Times: '3', "
               "X-Mock-Fault-Key: breaker}\n"
               "    retry: {max_attempts: 1}\n"
               "    breaker: {failures: 2, open_ms: 300, half_open_probes: 1}\n"
               "steps:\n  - name: s\n    backends: [sentiment]\n");
    run_one(&r, &o[0]);
    run_one(&r, &o[1]);
    assert_string_equal(err_class(&o[1], "sentiment"), "http_5xx");
    assert_int_equal(sl_infer_breaker_state(r.inf, 0), SL_BREAKER_OPEN);
    run_one(&r, &o[2]); /* fails fast */
    assert_int_equal(o[2].status, SL_INFER_FAILED);
    assert_string_equal(err_class(&o[2], "sentiment"), "breaker_open");
    h_sleep_ms(350);
    assert_int_equal(sl_infer_breaker_state(r.inf, 0), SL_BREAKER_HALF_OPEN);
    run_one(&r, &o[3]); /* the probe gets the 3rd 500: open again */
    assert_string_equal(err_class(&o[3], "sentiment"), "http_5xx");
    assert_int_equal(sl_infer_breaker_state(r.inf, 0), SL_BREAKER_OPEN);
    h_sleep_ms(350);
    run_one(&r, &o[4]); /* the probe succeeds: closed */
    assert_int_equal(o[4].status, SL_INFER_OK);
    assert_int_equal(sl_infer_breaker_state(r.inf, 0), SL_BREAKER_CLOSED);
    run_one(&r, &o[5]);
    assert_int_equal(o[5].status, SL_INFER_OK);
    const struct sl_infer_stats *st = sl_infer_stats(r.inf, 0);
    assert_int_equal(atomic_load(&st->errors[SL_INFER_EC_BREAKER_OPEN]), 1);
    assert_int_equal(atomic_load(&st->requests), 5);
    for (int i = 0; i < 6; i++)
        outcome_clear(&o[i]);
    rig_down(&r);
}

#define THREE_MODELS(on_error)                                                 \
    "version: 1\nname: t\nbackends:\n"                                         \
    "  sentiment:\n"                                                           \
    "    kind: http-json\n"                                                    \
    "    url: @B/predict/sentiment\n"                                          \
    "    body: '{\"text\": {{text}}}'\n"                                       \
    "    result_pointer: /label\n"                                             \
    "  ner:\n"                                                                 \
    "    kind: http-json\n"                                                    \
    "    url: @B/predict/ner\n"                                                \
    "    body: '{\"text\": {{text}}}'\n"                                       \
    "    headers: {X-Mock-Fault: '503', X-Mock-Retry-After: '0'}\n"            \
    "    retry: {max_attempts: 2, base_ms: 1}\n"                               \
    "    result_pointer: /entities\n"                                          \
    "  summary:\n"                                                             \
    "    kind: http-json\n"                                                    \
    "    url: @B/predict/summary\n"                                            \
    "    body: '{\"text\": {{text}}}'\n"                                       \
    "    result_pointer: /summary\n"                                           \
    "steps:\n  - name: analyse\n    backends: [sentiment, ner, summary]\n"     \
    "    on_error: " on_error "\n"

static void test_partial_and_fail(void **state)
{
    (void)state;
    struct rig r = {0}, r2 = {0};
    struct outcome o = {0}, o2 = {0};
    char yaml[4096];

    snprintf(yaml, sizeof(yaml), "%s", THREE_MODELS("partial"));
    rig_up(&r, yaml);
    run_one(&r, &o);
    assert_int_equal(o.status, SL_INFER_PARTIAL);
    assert_string_equal(
        json_string_value(json_object_get(o.results, "sentiment")), "positive");
    assert_true(json_is_string(json_object_get(o.results, "summary")));
    assert_null(json_object_get(o.results, "ner"));
    assert_string_equal(err_class(&o, "ner"), "http_5xx");
    assert_int_equal(err_attempts(&o, "ner"), 2);
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(o.errors, "ner"), "status")),
                     503);

    snprintf(yaml, sizeof(yaml), "%s", THREE_MODELS("fail"));
    rig_up(&r2, yaml);
    run_one(&r2, &o2);
    assert_int_equal(o2.status, SL_INFER_FAILED);
    assert_non_null(strstr(o2.reason, "backend 'ner'"));
    outcome_clear(&o);
    outcome_clear(&o2);
    rig_down(&r);
    rig_down(&r2);
}

static void test_mode_first(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  slow:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    headers: {X-Mock-Latency-Ms: '600'}\n"
               "    result_pointer: /label\n"
               "  fast:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    headers: {X-Mock-Latency-Ms: '30'}\n"
               "    result_pointer: /label\n"
               "steps:\n  - name: s\n    backends: [slow, fast]\n"
               "    mode: first\n");
    int64_t t0 = sl_mono_ms();
    run_one(&r, &o);
    assert_int_equal(o.status, SL_INFER_OK);
    assert_non_null(json_object_get(o.results, "fast"));
    assert_null(json_object_get(o.results, "slow"));
    assert_true(o.done_ms - t0 < 500);
    outcome_clear(&o);
    rig_down(&r);
}

static void test_deadline(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};

    one_backend(&r, "    headers: {X-Mock-Latency-Ms: '2000'}\n", "x", &o);
    outcome_clear(&o);
    rig_down(&r);
    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  sentiment:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    headers: {X-Mock-Latency-Ms: '2000'}\n"
               "steps:\n  - name: s\n    backends: [sentiment]\n"
               "    deadline_ms: 200\n");
    int64_t t0 = sl_mono_ms();
    run_one(&r, &o);
    assert_int_equal(o.status, SL_INFER_FAILED);
    assert_string_equal(err_class(&o, "sentiment"), "deadline");
    assert_true(o.done_ms - t0 < 1000);
    outcome_clear(&o);
    rig_down(&r);
}

static double embed_value(const char *text, unsigned j)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const char *p = text; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 0x100000001b3ULL;
    }
    return (double)((h >> ((j % 8) * 8)) & 0xff) / 255.0;
}

static void test_embeddings_batching(void **state)
{
    (void)state;
    struct rig r = {0};
    enum { N = 100 };
    static struct outcome o[N];
    char payload[128], text[64];

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  embed:\n"
               "    kind: openai-embeddings\n"
               "    url: @B/v1\n"
               "    model: mock-embed\n"
               "    batch_max: 16\n"
               "    batch_wait_ms: 5\n"
               "steps:\n  - name: s\n    backends: [embed]\n");
    json_int_t before = h_mock_calls(&mock, "embeddings");
    for (int i = 0; i < N; i++) {
        snprintf(payload, sizeof(payload), "{\"text\": \"document %d\"}", i);
        submit_text(&r, payload, &o[i]);
    }
    drain(&r, 10000);
    json_int_t calls = h_mock_calls(&mock, "embeddings") - before;
    assert_true(calls >= 7 && calls <= 20); /* ceil(100/16) = 7 */
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].status, SL_INFER_OK);
        json_t *vec = json_object_get(o[i].results, "embed");
        assert_int_equal(json_array_size(vec), 8);
        snprintf(text, sizeof(text), "document %d", i);
        for (unsigned j = 0; j < 8; j++)
            assert_true(fabs(json_real_value(json_array_get(vec, j)) -
                             embed_value(text, j)) < 1e-9);
        /* mock-infer counts words: a batch of n uses 2n, 2 per message */
        json_t *u =
            json_object_get(json_object_get(o[i].timings, "usage"), "embed");
        assert_int_equal(
            json_integer_value(json_object_get(u, "prompt_tokens")), 2);
        assert_int_equal(
            json_integer_value(json_object_get(u, "completion_tokens")), 0);
        assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")),
                         2);
        outcome_clear(&o[i]);
    }
    const struct sl_infer_stats *st = sl_infer_stats(r.inf, 0);
    assert_int_equal(atomic_load(&st->tokens_prompt), 2 * N);
    assert_int_equal(atomic_load(&st->tokens_completion), 0);
    assert_int_equal(atomic_load(&st->batched_inputs), N);
    assert_int_equal((json_int_t)atomic_load(&st->batches), calls);
    rig_down(&r);
}

static void test_chat_json(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0};

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  chat:\n"
               "    kind: openai-chat\n"
               "    url: @B/v1\n"
               "    model: mock-1\n"
               "    response_format: json\n"
               "    messages:\n"
               "      - {role: system, content: 'Classify.'}\n"
               "      - {role: user, content: 'Review: {{text}}'}\n"
               "steps:\n  - name: s\n    backends: [chat]\n");
    run_one(&r, &o);
    assert_int_equal(o.status, SL_INFER_OK);
    json_t *v = json_object_get(o.results, "chat");
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(v, "content"), "label")),
                        "positive");
    json_t *u = json_object_get(v, "usage");
    json_int_t prompt = json_integer_value(json_object_get(u, "prompt_tokens"));
    json_int_t completion =
        json_integer_value(json_object_get(u, "completion_tokens"));
    assert_true(prompt > 0 && completion > 0);
    /* the same counts in the row's timings.usage and in the metrics */
    json_t *tu = json_object_get(json_object_get(o.timings, "usage"), "chat");
    assert_int_equal(json_integer_value(json_object_get(tu, "prompt_tokens")),
                     prompt);
    assert_int_equal(
        json_integer_value(json_object_get(tu, "completion_tokens")),
        completion);
    assert_int_equal(json_integer_value(json_object_get(tu, "total_tokens")),
                     prompt + completion);
    const struct sl_infer_stats *st = sl_infer_stats(r.inf, 0);
    assert_int_equal(atomic_load(&st->tokens_prompt), prompt);
    assert_int_equal(atomic_load(&st->tokens_completion), completion);
    outcome_clear(&o);
    rig_down(&r);
}

static void test_concurrent_in_one_worker(void **state)
{
    (void)state;
    struct rig r = {0};
    enum { N = 20 };
    struct outcome o[N] = {0};

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  sentiment:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    headers: {X-Mock-Latency-Ms: '300'}\n"
               "steps:\n  - name: s\n    backends: [sentiment]\n");
    int64_t t0 = sl_mono_ms();
    for (int i = 0; i < N; i++)
        submit_text(&r, "{\"text\": \"ok\"}", &o[i]);
    drain(&r, 10000);
    int64_t took = sl_mono_ms() - t0;
    for (int i = 0; i < N; i++) {
        assert_int_equal(o[i].status, SL_INFER_OK);
        outcome_clear(&o[i]);
    }
    assert_true(took >= 300);
    assert_true(took < 900); /* about one latency, not 20 */
    rig_down(&r);
}

/* ---- failure lines ---- */

static char log_path[128]; /* where the engine's log goes */

/* Send the log (at warn) to a fresh file. */
static void log_capture(void)
{
    snprintf(log_path, sizeof(log_path), "%s/log", mock.dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    sl_log_set_fd(fd);
    sl_log_set_level(SL_LOG_WARN);
}

/* Back to stderr at error; the messages of the captured lines, in order
 * ('max' at most; returns how many lines there were). */
static int log_release(char msgs[][640], int max)
{
    char line[4096];
    int n = 0;

    sl_log_set_level(SL_LOG_ERROR);
    sl_log_set_fd(2);
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "level")),
                            "warn");
        if (n < max)
            snprintf(msgs[n], 640, "%s",
                     json_string_value(json_object_get(j, "message")));
        print_message("log: %s", line);
        json_decref(j);
        n++;
    }
    fclose(f);
    unlink(log_path);
    return n;
}

/* A failure says which backend, why and what happens next, at warn; a
 * burst of 100 messages (200 failed attempts) gives one line. */
static void test_failure_lines(void **state)
{
    (void)state;
    struct rig r = {0};
    static struct outcome o[100];
    char msgs[8][640];

    log_capture();
    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  sentiment:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}}'\n"
               "    headers: {X-Mock-Fault: '503', X-Mock-Retry-After: '0'}\n"
               "    retry: {max_attempts: 2}\n"
               "    breaker: {failures: 0}\n"
               "steps:\n  - name: s\n    backends: [sentiment]\n");
    for (int i = 0; i < 100; i++)
        submit_text(&r, "{\"text\": \"fine\"}", &o[i]);
    drain(&r, 20000);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(o[i].status, SL_INFER_FAILED);
        outcome_clear(&o[i]);
    }
    rig_down(&r);
    int n = log_release(msgs, 8);
    /* One line; a second only if the burst outlasted SL_LOG_LIMIT_MS on a
     * loaded machine, and then it counts what it held back. */
    assert_true(n >= 1 && n <= 2);
    if (n == 2)
        assert_non_null(strstr(msgs[1], " more since last)"));
    assert_string_equal(
        msgs[0], "backend 'sentiment' failed (http_5xx) on attempt 1 of 2: "
                 "HTTP 503: {\"error\":{\"message\":\"mock-infer: injected "
                 "fault 503\",\"type\":\"server_error\"}}; retrying in 0 ms");
}

/* Connection refused, the breaker opening, and the calls it then fails
 * fast: one line each, however many messages. */
static void test_failure_lines_breaker(void **state)
{
    (void)state;
    struct rig r = {0};
    static struct outcome o[100];
    char msgs[8][640];

    log_capture();
    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  down:\n"
               "    kind: http-json\n"
               "    url: http://127.0.0.1:1/predict/sentiment\n"
               "    body: '{\"text\": {{text}}}'\n"
               "    max_concurrency: 1\n"
               "    retry: {max_attempts: 1}\n"
               "    breaker: {failures: 2, open_ms: 60000}\n"
               "steps:\n  - name: s\n    backends: [down]\n");
    for (int i = 0; i < 100; i++)
        submit_text(&r, "{\"text\": \"fine\"}", &o[i]);
    drain(&r, 20000);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(o[i].status, SL_INFER_FAILED);
        outcome_clear(&o[i]);
    }
    rig_down(&r);
    int n = log_release(msgs, 8);
    assert_int_equal(n, 3);
    assert_string_equal(msgs[0],
                        "backend 'down' failed (connect) on attempt 1 of 1: "
                        "Couldn't connect to server; giving up, the message "
                        "fails (dead letter, or the gateway's error answer)");
    assert_string_equal(msgs[1], "backend 'down': circuit breaker open; its "
                                 "calls fail fast for 60000 ms, then 1 "
                                 "probe(s) test it");
    assert_string_equal(
        msgs[2], "backend 'down' failed (breaker_open) after 0 attempt(s): "
                 "circuit breaker of backend 'down' is open; not called; "
                 "giving up, the message fails (dead letter, or the gateway's "
                 "error answer)");
}

/* The breaker closing after a probe succeeded is said too. */
static void test_failure_lines_breaker_closes(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o[2] = {0};
    char msgs[8][640];

    log_capture();
    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  flaky:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}}'\n"
               "    headers: {X-Mock-Fault: '500', X-Mock-Fault-Times: '1', "
               "X-Mock-Fault-Key: closes}\n"
               "    retry: {max_attempts: 1}\n"
               "    breaker: {failures: 1, open_ms: 100}\n"
               "steps:\n  - name: s\n    backends: [flaky]\n");
    run_one(&r, &o[0]);
    assert_int_equal(o[0].status, SL_INFER_FAILED);
    h_sleep_ms(150); /* open_ms passed: the next call is the probe */
    run_one(&r, &o[1]);
    assert_int_equal(o[1].status, SL_INFER_OK);
    outcome_clear(&o[0]);
    outcome_clear(&o[1]);
    rig_down(&r);
    int n = log_release(msgs, 8);
    assert_int_equal(n, 3);
    /* The failure opens the breaker before its own line is written. */
    assert_string_equal(msgs[0], "backend 'flaky': circuit breaker open; its "
                                 "calls fail fast for 100 ms, then 1 "
                                 "probe(s) test it");
    assert_string_equal(msgs[1],
                        "backend 'flaky' failed (http_5xx) on attempt 1 of 1: "
                        "HTTP 500: {\"error\":{\"message\":\"mock-infer: "
                        "injected fault 500\",\"type\":\"server_error\"}}; "
                        "giving up, the message fails (dead letter, or the "
                        "gateway's error answer)");
    assert_string_equal(msgs[2], "backend 'flaky': circuit breaker closed; a "
                                 "probe succeeded, calls pass again");
}

/* hardening #7: under on_error partial a body that cannot be rendered for
 * this payload fails its backend only, as an "input" error; when no
 * backend can render it, the message is bad (stage "decode"). */
static void test_partial_render_failure(void **state)
{
    (void)state;
    struct rig r = {0};
    struct outcome o = {0}, none = {0};

    rig_up(&r, "version: 1\nname: t\nbackends:\n"
               "  sentiment:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{text}}}'\n"
               "    result_pointer: /label\n"
               "  by_user:\n"
               "    kind: http-json\n"
               "    url: @B/predict/sentiment\n"
               "    body: '{\"text\": {{user.name}}}'\n"
               "    result_pointer: /label\n"
               "steps:\n  - name: s\n    backends: [sentiment, by_user]\n"
               "    on_error: partial\n");
    run_one(&r, &o);
    assert_int_equal(o.status, SL_INFER_PARTIAL);
    assert_string_equal(
        json_string_value(json_object_get(o.results, "sentiment")), "positive");
    assert_null(json_object_get(o.results, "by_user"));
    assert_string_equal(err_class(&o, "by_user"), "input");
    assert_int_equal(err_attempts(&o, "by_user"), 0);
    assert_string_equal(
        json_string_value(
            json_object_get(json_object_get(o.errors, "by_user"), "message")),
        "missing field 'user.name' for template of backend 'by_user'");
    assert_int_equal(
        atomic_load(&sl_infer_stats(r.inf, 1)->errors[SL_INFER_EC_INPUT]), 1);
    assert_int_equal(atomic_load(&sl_infer_stats(r.inf, 1)->requests), 0);

    submit_text(&r, "{\"other\": 1}", &none);
    drain(&r, 5000);
    assert_int_equal(none.done, 1);
    assert_int_equal(none.status, SL_INFER_FAILED);
    assert_string_equal(none.stage, "decode");
    assert_string_equal(err_class(&none, "sentiment"), "input");
    assert_string_equal(err_class(&none, "by_user"), "input");
    assert_int_equal(atomic_load(&sl_infer_stats(r.inf, 0)->requests), 1);
    outcome_clear(&o);
    outcome_clear(&none);
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_and_bad_payloads),
        cmocka_unit_test(test_bad_payload_reasons),
        cmocka_unit_test(test_body_not_json_at_run_time),
        cmocka_unit_test(test_500_retried_then_ok),
        cmocka_unit_test(test_503_dead_letter),
        cmocka_unit_test(test_429_retry_after),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_trickle),
        cmocka_unit_test(test_bad_json_and_huge),
        cmocka_unit_test(test_breaker),
        cmocka_unit_test(test_partial_and_fail),
        cmocka_unit_test(test_mode_first),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_embeddings_batching),
        cmocka_unit_test(test_chat_json),
        cmocka_unit_test(test_concurrent_in_one_worker),
        cmocka_unit_test(test_failure_lines),
        cmocka_unit_test(test_failure_lines_breaker),
        cmocka_unit_test(test_failure_lines_breaker_closes),
        cmocka_unit_test(test_partial_render_failure),
    };
    return cmocka_run_group_tests(tests, start_mock, stop_mock);
}
