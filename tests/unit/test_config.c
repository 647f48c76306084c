/*
 * Pipeline file loader: the example pipelines load, defaults apply, ${VAR}
 * interpolation works, and each kind of mistake gives its exact
 * "file:line:col: what at key.path" message; a text libfyaml crashes on is
 * refused with an error, by `sluice check` and `sluice run` too.
 */
#include "cmocka_shim.h"

#include "config.h"
#include "config_schema.h"
#include "err.h"

#include <dirent.h>
#include <errno.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static int setup(void **state)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");

    (void)state;
    /* Paths in messages are as given: load relative to the repo root. */
    if (!src || chdir(src) != 0) {
        fprintf(stderr, "SLUICE_SOURCE_DIR must name the source tree\n");
        return -1;
    }
    return 0;
}

static struct sl_config *parse_ok(const char *text)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;
    int err = sl_config_parse("t.yaml", text, strlen(text), &cfg, &errs);

    for (size_t i = 0; i < errs.cnt; i++)
        fprintf(stderr, "unexpected: %s\n", errs.items[i].text);
    assert_int_equal(err, 0);
    assert_non_null(cfg);
    assert_int_equal(errs.cnt, 0);
    sl_config_errors_clear(&errs);
    return cfg;
}

/* Parse 'text' and expect exactly the error lines given (NULL-ended). */
static void parse_errors(const char *text, ...)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;
    int err = sl_config_parse("t.yaml", text, strlen(text), &cfg, &errs);
    const char *want;
    size_t n = 0;
    va_list ap;

    assert_int_equal(err, -SL_ECONFIG);
    assert_null(cfg);
    va_start(ap, text);
    while ((want = va_arg(ap, const char *)) != NULL) {
        assert_true(n < errs.cnt);
        assert_string_equal(errs.items[n].text, want);
        n++;
    }
    va_end(ap);
    for (size_t i = n; i < errs.cnt; i++)
        fprintf(stderr, "extra: %s\n", errs.items[i].text);
    assert_int_equal(errs.cnt, n);
    sl_config_errors_clear(&errs);
}

/* Load tests/data/config/'name' and expect the error lines (NULL-ended). */
static void load_errors(const char *name, ...)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;
    char path[256];
    const char *want;
    size_t n = 0;
    va_list ap;
    int err;

    snprintf(path, sizeof(path), "tests/data/config/%s", name);
    err = sl_config_load(path, &cfg, &errs);
    assert_int_equal(err, -SL_ECONFIG);
    assert_null(cfg);
    va_start(ap, name);
    while ((want = va_arg(ap, const char *)) != NULL) {
        assert_true(n < errs.cnt);
        assert_string_equal(errs.items[n].text, want);
        n++;
    }
    va_end(ap);
    for (size_t i = n; i < errs.cnt; i++)
        fprintf(stderr, "extra: %s\n", errs.items[i].text);
    assert_int_equal(errs.cnt, n);
    sl_config_errors_clear(&errs);
}

static void test_pipelines_load(void **state)
{
    DIR *dir = opendir("pipelines");
    struct dirent *de;
    int loaded = 0;

    (void)state;
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        struct sl_config_errors errs = {0};
        struct sl_config *cfg = NULL;
        char path[512];

        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml"))
            continue;
        snprintf(path, sizeof(path), "pipelines/%s", de->d_name);
        int err = sl_config_load(path, &cfg, &errs);
        for (size_t i = 0; i < errs.cnt; i++)
            fprintf(stderr, "%s\n", errs.items[i].text);
        assert_int_equal(err, 0);
        assert_non_null(cfg);
        assert_string_equal(cfg->path, path);
        sl_config_destroy(cfg);
        sl_config_errors_clear(&errs);
        loaded++;
    }
    closedir(dir);
    assert_true(loaded >= 4);
}

static void test_review_sentiment_values(void **state)
{
    struct sl_config *cfg = NULL;
    const struct sl_config_backend *be;

    (void)state;
    unsetenv("MODEL_URL");
    unsetenv("MODEL_NAME");
    unsetenv("MODEL_CONCURRENCY");
    unsetenv("KAFKA_BROKERS");
    assert_int_equal(
        sl_config_load("pipelines/review-sentiment.yaml", &cfg, NULL), 0);
    assert_string_equal(cfg->name, "review-sentiment");
    assert_true(cfg->source.present);
    assert_int_equal(cfg->source.kind, SL_CONFIG_SOURCE_KAFKA);
    assert_string_equal(cfg->source.kafka.brokers, "127.0.0.1:59092");
    assert_int_equal(cfg->source.kafka.topics.cnt, 1);
    assert_string_equal(cfg->source.kafka.topics.items[0], "reviews");
    assert_int_equal(cfg->backend_cnt, 1);
    be = sl_config_backend_find(cfg, "sentiment");
    assert_non_null(be);
    assert_null(sl_config_backend_find(cfg, "nope"));
    assert_int_equal(be->kind, SL_CONFIG_BACKEND_OPENAI_CHAT);
    assert_string_equal(be->url, "http://127.0.0.1:8080/v1");
    assert_string_equal(be->model, "smollm2");
    assert_int_equal(be->response_format, SL_CONFIG_RESPONSE_TEXT);
    assert_int_equal(be->max_tokens, 8);
    assert_int_equal(be->max_concurrency, 64);
    assert_int_equal(be->low_speed_time_ms, 0);
    /* the instruction, three worked examples, the review */
    assert_int_equal(be->message_cnt, 8);
    assert_int_equal(be->messages[0].role, SL_CONFIG_ROLE_SYSTEM);
    assert_int_equal(be->messages[2].role, SL_CONFIG_ROLE_ASSISTANT);
    assert_string_equal(be->messages[2].content, "negative");
    assert_int_equal(be->messages[7].role, SL_CONFIG_ROLE_USER);
    assert_string_equal(be->messages[7].content, "{{text}}");
    assert_int_equal(cfg->step_cnt, 1);
    assert_string_equal(cfg->steps[0].backends.items[0], "sentiment");
    assert_true(cfg->sink.present);
    assert_string_equal(cfg->sink.postgres.table, "review_sentiment");
    assert_string_equal(sl_config_source_kind_name(cfg->source.kind), "kafka");
    assert_string_equal(sl_config_backend_kind_name(be->kind), "openai-chat");
    sl_config_destroy(cfg);
}

static void test_defaults(void **state)
{
    struct sl_config *cfg = parse_ok("version: 1\n"
                                     "name: d\n"
                                     "source:\n"
                                     "  kind: kafka\n"
                                     "  kafka: {topics: [t], group: g}\n"
                                     "backends:\n"
                                     "  e:\n"
                                     "    kind: openai-embeddings\n"
                                     "    url: http://h:1/v1\n"
                                     "    model: m\n"
                                     "  h: {kind: http-json, url: http://h}\n"
                                     "steps:\n"
                                     "  - {name: s, backends: [e, h]}\n"
                                     "sink:\n"
                                     "  postgres:\n");
    const struct sl_config_backend *e, *h;

    (void)state;
    assert_int_equal(cfg->log_level, SL_LOG_INFO);
    assert_null(cfg->replica_id);
    assert_int_equal(cfg->shutdown_timeout_ms, 30000);
    assert_int_equal(cfg->source.max_message_bytes, 1048576);
    assert_int_equal(cfg->source.ordering, SL_CONFIG_ORDER_UNORDERED);
    assert_int_equal(cfg->source.payload_format, SL_CONFIG_PAYLOAD_JSON);
    assert_string_equal(cfg->source.kafka.brokers, "127.0.0.1:59092");
    assert_int_equal(cfg->source.kafka.auto_offset_reset,
                     SL_CONFIG_RESET_EARLIEST);
    assert_int_equal(cfg->source.kafka.revoke_timeout_ms, 10000);
    assert_int_equal(cfg->source.kafka.properties.cnt, 0);
    assert_int_equal(cfg->queue.capacity, 1024);
    assert_int_equal(cfg->workers.threads, 2);
    assert_int_equal(cfg->workers.max_inflight, 64);
    e = sl_config_backend_find(cfg, "e");
    h = sl_config_backend_find(cfg, "h");
    assert_string_equal(e->input, "{{text}}");
    assert_int_equal(e->batch_max, 64);
    assert_int_equal(e->batch_wait_ms, 5);
    assert_int_equal(e->timeout_ms, 30000);
    assert_int_equal(e->max_concurrency, 64);
    assert_int_equal(e->retry.max_attempts, 4);
    assert_int_equal(e->retry.base_ms, 100);
    assert_int_equal(e->breaker.failures, 5);
    assert_true(e->rate_limit_rps == 0);
    assert_null(e->api_key_env);
    assert_int_equal(h->method, SL_CONFIG_HTTP_POST);
    assert_string_equal(h->result_pointer, "");
    assert_null(h->body);
    assert_int_equal(cfg->steps[0].mode, SL_CONFIG_MODE_ALL);
    assert_int_equal(cfg->steps[0].on_error, SL_CONFIG_ON_ERROR_FAIL);
    assert_int_equal(cfg->steps[0].deadline_ms, 60000);
    assert_true(cfg->sink.present);
    assert_string_equal(
        cfg->sink.postgres.dsn,
        "host=127.0.0.1 port=55432 dbname=sluice user=postgres");
    assert_string_equal(cfg->sink.postgres.table, "sluice_results");
    assert_string_equal(cfg->sink.postgres.dead_letter_table,
                        "sluice_dead_letters");
    assert_true(cfg->sink.postgres.create_table);
    assert_int_equal(cfg->sink.postgres.batch_rows, 500);
    assert_int_equal(cfg->sink.postgres.max_batches_inflight, 4);
    assert_string_equal(cfg->sink.postgres.columns.payload, "payload");
    assert_string_equal(cfg->sink.postgres.columns.processed_at,
                        "processed_at");
    assert_string_equal(cfg->http.listen, "127.0.0.1:9464");
    assert_false(cfg->gateway.enabled);
    assert_int_equal(cfg->gateway.max_body_bytes, 1048576);
    sl_config_destroy(cfg);
}

static void test_maps_keep_order(void **state)
{
    struct sl_config *cfg =
        parse_ok("version: 1\n"
                 "name: m\n"
                 "source:\n"
                 "  kind: kafka\n"
                 "  kafka:\n"
                 "    topics: [a, b]\n"
                 "    group: g\n"
                 "    properties:\n"
                 "      fetch.min.bytes: 1024\n"
                 "      enable.idempotence: true\n"
                 "      client.id: x\n"
                 "backends:\n"
                 "  z: {kind: http-json, url: 'http://h', headers: "
                 "{X-A: '1'}}\n"
                 "  a: {kind: http-json, url: 'http://h'}\n"
                 "steps: [{name: s, backends: [a]}]\n"
                 "sink: {postgres: {columns: {payload: body}}}\n");
    const struct sl_config_kvlist *p = &cfg->source.kafka.properties;

    (void)state;
    assert_int_equal(p->cnt, 3);
    assert_string_equal(p->items[0].key, "fetch.min.bytes");
    assert_string_equal(p->items[0].value, "1024");
    assert_string_equal(p->items[1].key, "enable.idempotence");
    assert_string_equal(p->items[1].value, "true");
    assert_string_equal(p->items[2].value, "x");
    assert_int_equal(cfg->backend_cnt, 2);
    assert_string_equal(cfg->backends[0].name, "z");
    assert_string_equal(cfg->backends[1].name, "a");
    assert_int_equal(cfg->backends[0].headers.cnt, 1);
    assert_string_equal(cfg->backends[0].headers.items[0].key, "X-A");
    assert_string_equal(cfg->sink.postgres.columns.payload, "body");
    assert_string_equal(cfg->sink.postgres.columns.results, "results");
    sl_config_destroy(cfg);
}

static void test_env_interpolation(void **state)
{
    struct sl_config *cfg;

    (void)state;
    setenv("SL_TEST_URL", "http://model:9000", 1);
    setenv("SL_TEST_EMPTY", "", 1);
    unsetenv("SL_TEST_UNSET");
    setenv("SL_TEST_THREADS", "7", 1);
    cfg = parse_ok("version: 1\n"
                   "name: env\n"
                   "replica_id: a$$b-${SL_TEST_UNSET:-r1}-$x\n"
                   "workers:\n"
                   "  threads: ${SL_TEST_THREADS}\n"
                   "http:\n"
                   "  listen: ${SL_TEST_EMPTY:-0.0.0.0:1234}\n"
                   "gateway: {enabled: true}\n"
                   "backends:\n"
                   "  b:\n"
                   "    kind: http-json\n"
                   "    url: ${SL_TEST_URL}/predict\n");
    assert_string_equal(cfg->replica_id, "a$b-r1-$x");
    assert_int_equal(cfg->workers.threads, 7);
    assert_string_equal(cfg->http.listen, "0.0.0.0:1234");
    assert_string_equal(cfg->backends[0].url, "http://model:9000/predict");
    sl_config_destroy(cfg);

    /* The interpolated value is what gets checked. */
    setenv("SL_TEST_THREADS", "many", 1);
    parse_errors("version: 1\n"
                 "name: env\n"
                 "gateway: {enabled: true}\n"
                 "workers:\n"
                 "  threads: ${SL_TEST_THREADS}\n",
                 "t.yaml:5:12: expected an integer between 1 and 256, got "
                 "'many' at workers.threads",
                 NULL);

    parse_errors("version: 1\n"
                 "name: env\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  b:\n"
                 "    kind: http-json\n"
                 "    url: ${SL_TEST_UNSET}/predict\n"
                 "    body: '${SL_TEST_URL'\n",
                 "t.yaml:7:10: environment variable 'SL_TEST_UNSET' is not "
                 "set (set it, or give a default: ${SL_TEST_UNSET:-default}) "
                 "at backends.b.url",
                 "t.yaml:8:11: malformed variable reference '${SL_TEST_URL' "
                 "(write ${NAME}, ${NAME:-default} or $$ for a literal '$') "
                 "at backends.b.body",
                 NULL);
    unsetenv("SL_TEST_URL");
    unsetenv("SL_TEST_EMPTY");
    unsetenv("SL_TEST_THREADS");
}

static void test_unknown_key(void **state)
{
    (void)state;
    load_errors("unknown-key.yaml",
                "tests/data/config/unknown-key.yaml:17:5: unknown key "
                "'batch_rowz' at sink.postgres.batch_rowz",
                NULL);
}

static void test_wrong_type(void **state)
{
    (void)state;
    load_errors("wrong-type.yaml",
                "tests/data/config/wrong-type.yaml:6:13: expected an integer "
                "between 1 and 1048576, got 'abc' at queue.capacity",
                "tests/data/config/wrong-type.yaml:8:13: expected an integer "
                "between 1 and 256, got a list at workers.threads",
                NULL);
}

static void test_out_of_range(void **state)
{
    (void)state;
    load_errors("out-of-range.yaml",
                "tests/data/config/out-of-range.yaml:6:12: expected an "
                "integer between 1 and 256, got '0' at workers.threads",
                "tests/data/config/out-of-range.yaml:7:17: expected an "
                "integer between 1 and 65536, got '70000' at "
                "workers.max_inflight",
                NULL);
}

static void test_missing_key(void **state)
{
    (void)state;
    load_errors("missing-key.yaml",
                "tests/data/config/missing-key.yaml:5:3: missing required key "
                "'topics' at source.kafka.topics",
                NULL);
    parse_errors("name: x\ngateway: {enabled: true}\n",
                 "t.yaml:1:1: missing required key 'version' at version", NULL);
}

static void test_bad_enum(void **state)
{
    (void)state;
    load_errors("bad-enum.yaml",
                "tests/data/config/bad-enum.yaml:3:12: expected one of debug, "
                "info, warn, error, got 'verbose' at log_level",
                NULL);
}

static void test_yaml_syntax(void **state)
{
    (void)state;
    load_errors("syntax.yaml",
                "tests/data/config/syntax.yaml:7:3: invalid YAML: wrongly "
                "indented flow sequence",
                NULL);
    parse_errors("version: 1\nname: \"x\n",
                 "t.yaml:2:8: invalid YAML: double-quoted scalar without "
                 "closing quote",
                 NULL);
    parse_errors("",
                 "t.yaml:1:1: the file is empty; a pipeline needs at "
                 "least 'version' and 'name'",
                 NULL);
    parse_errors("- a\n- b\n",
                 "t.yaml:1:3: expected a mapping of pipeline settings, got a "
                 "list",
                 NULL);
}

static void test_kind_specific_key(void **state)
{
    (void)state;
    load_errors("wrong-kind-key.yaml",
                "tests/data/config/wrong-kind-key.yaml:13:5: key 'batch_max' "
                "is only allowed when kind is openai-embeddings at "
                "backends.chat.batch_max",
                NULL);
    parse_errors("version: 1\n"
                 "name: k\n"
                 "source:\n"
                 "  kind: file\n"
                 "  file: {path: /x}\n"
                 "  kafka: {topics: [t], group: g}\n"
                 "steps: [{name: s, backends: [b]}]\n"
                 "backends:\n"
                 "  b: {kind: openai-chat, url: 'http://h/v1', model: m}\n"
                 "sink: {postgres: {}}\n",
                 "t.yaml:6:3: key 'kafka' is only allowed when source.kind is "
                 "kafka at source.kafka",
                 "t.yaml:9:3: missing required key 'messages' (required when "
                 "kind is openai-chat) at backends.b.messages",
                 NULL);
}

static void test_unknown_backend(void **state)
{
    (void)state;
    load_errors("unknown-backend.yaml",
                "tests/data/config/unknown-backend.yaml:11:19: unknown "
                "backend 'x' at steps[0].backends[1]",
                NULL);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    load_errors("duplicate-key.yaml",
                "tests/data/config/duplicate-key.yaml:6:3: duplicate key "
                "'max_concurrency' (first given at line 5) at "
                "gateway.max_concurrency",
                NULL);
    parse_errors("version: 1\n"
                 "name: d\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://h'}\n"
                 "  a: {kind: http-json, url: 'http://i'}\n",
                 "t.yaml:6:3: duplicate key 'a' (first given at line 5) at "
                 "backends.a",
                 NULL);
}

/* Bytes YAML does not allow never reach libfyaml (it hangs or crashes on
 * some of them). */
static void test_not_printable_text(void **state)
{
    (void)state;
    parse_errors("version: 1\nname: \xff\n",
                 "t.yaml:2:7: invalid YAML: the file is not UTF-8 text", NULL);
    parse_errors("version: 1\nsteps:\t\x01\n",
                 "t.yaml:2:8: invalid YAML: control characters are not "
                 "allowed",
                 NULL);
}

/*
 * Under ThreadSanitizer's allocator libfyaml does not crash on this text
 * but loops, growing: the guard then stops it after 10 s, which is the
 * error expected there (and covers that path); the crash tests run once.
 */
#if defined(__SANITIZE_THREAD__)
#define SL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SL_TSAN 1
#endif
#endif
#ifdef SL_TSAN
#define CRASH_TEXT                                                             \
    "the YAML parser (libfyaml) did not finish within 10 s on this text and "  \
    "was stopped; look for tabs or stray '?'/':' in keys"
#else
#define CRASH_TEXT                                                             \
    "the YAML parser (libfyaml) crashed on this text; look for tabs or "       \
    "stray '?'/':' in keys"
#endif

/* libfyaml 0.7.12 dies of SIGSEGV on these: the loader tries them in a
 * child process and refuses the file instead of crashing. */
static void test_parser_crash_is_an_error(void **state)
{
    struct sl_config *cfg = NULL;

    (void)state;
    load_errors("libfyaml-crash.yaml",
                "tests/data/config/libfyaml-crash.yaml: " CRASH_TEXT, NULL);
#ifndef SL_TSAN
    struct sl_config_errors errs = {0};
    parse_errors("? b: \t: b", "t.yaml: " CRASH_TEXT, NULL);
    assert_int_equal(sl_config_parse("t.yaml", "? b: \t: b\n", 10, &cfg, &errs),
                     -SL_ECONFIG);
    assert_int_equal(errs.cnt, 1);
    assert_int_equal(errs.items[0].line, 0); /* about the file as a whole */
    sl_config_errors_clear(&errs);
#endif
    /* No child is left behind, and good files still load. */
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    sl_config_destroy(parse_ok("version: 1\n"
                               "name: ok\n"
                               "gateway: {enabled: true}\n"
                               "backends:\n"
                               "  a: {kind: http-json, url: 'http://h'}\n"));
    assert_int_equal(
        sl_config_load("pipelines/review-sentiment.yaml", &cfg, NULL), 0);
    sl_config_destroy(cfg);
}

/* Run "sluice ARGS REDIR" from the repository; its exit status, and what
 * it writes to the pipe in 'out' (REDIR "2>&1 >/dev/null": stderr). */
static int run_sluice(const char *args, const char *redir, char *out,
                      size_t size)
{
    const char *bin = getenv("SLUICE_BINARY_DIR");
    char cmd[2048];
    size_t n;
    FILE *fp;
    int st;

    snprintf(cmd, sizeof(cmd), "'%s/sluice' %s %s", bin && *bin ? bin : ".",
             args, redir);
    assert_non_null(fp = popen(cmd, "r"));
    n = fread(out, 1, size - 1, fp);
    out[n] = '\0';
    st = pclose(fp);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Not built under Tsan, where every run takes the 10 s guard: the test
 * above covers the guard there (a skip would count as passed). */
#ifndef SL_TSAN
static void test_cli_parser_crash(void **state)
{
    const char *want =
        "tests/data/config/libfyaml-crash.yaml: " CRASH_TEXT "\n";
    const char *stderr_only = "2>&1 >/dev/null";
    char out[4096];

    (void)state;
    assert_int_equal(run_sluice("check tests/data/config/libfyaml-crash.yaml",
                                stderr_only, out, sizeof(out)),
                     2);
    assert_string_equal(out, want);
    assert_int_equal(run_sluice("run tests/data/config/libfyaml-crash.yaml",
                                stderr_only, out, sizeof(out)),
                     2);
    assert_string_equal(out, want);
    /* The other files are still checked, and output buffered before the
     * child was forked is written once. */
    assert_int_equal(run_sluice("check pipelines/review-sentiment.yaml "
                                "tests/data/config/libfyaml-crash.yaml",
                                stderr_only, out, sizeof(out)),
                     2);
    assert_string_equal(out, want);
    assert_int_equal(run_sluice("check pipelines/review-sentiment.yaml "
                                "tests/data/config/libfyaml-crash.yaml",
                                "2>/dev/null", out, sizeof(out)),
                     2);
    assert_string_equal(out, "pipelines/review-sentiment.yaml: ok\n");
}
#endif

/* A gateway that writes rows needs a sink: `sluice check` says so, at the
 * write_rows key, rather than `sluice run` at start-up. */
static void test_write_rows_needs_sink(void **state)
{
    const char *f = "tests/data/config/write-rows-no-sink.yaml";
    char want[512], out[4096];
    struct sl_config *cfg;

    (void)state;
    snprintf(want, sizeof(want),
             "%s:6:3: write_rows is true but the pipeline has no 'sink': add "
             "sink.postgres or set write_rows to false at gateway.write_rows",
             f);
    load_errors("write-rows-no-sink.yaml", want, NULL);
    assert_int_equal(
        run_sluice("check tests/data/config/write-rows-no-sink.yaml",
                   "2>&1 >/dev/null", out, sizeof(out)),
        2);
    assert_string_equal(out, strcat(want, "\n"));
    parse_errors("version: 1\n"
                 "name: x\n"
                 "gateway: {enabled: true, write_rows: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://h'}\n"
                 "steps: [{name: s, backends: [a]}]\n",
                 "t.yaml:3:26: write_rows is true but the pipeline has no "
                 "'sink': add sink.postgres or set write_rows to false at "
                 "gateway.write_rows",
                 NULL);
    /* With a source the sink is missing anyway: one error, not two. */
    parse_errors("version: 1\n"
                 "name: x\n"
                 "source: {kind: stdin}\n"
                 "gateway: {enabled: true, write_rows: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://h'}\n"
                 "steps: [{name: s, backends: [a]}]\n",
                 "t.yaml:1:1: missing required key 'sink' (required when "
                 "'source' is present) at sink",
                 NULL);

    /* write_rows with a sink loads. */
    cfg = parse_ok("version: 1\n"
                   "name: x\n"
                   "gateway:\n"
                   "  enabled: true\n"
                   "  write_rows: true\n"
                   "backends:\n"
                   "  a: {kind: http-json, url: 'http://h'}\n"
                   "steps: [{name: s, backends: [a]}]\n"
                   "sink: {postgres: {table: rows}}\n");
    assert_true(cfg->gateway.enabled);
    assert_true(cfg->gateway.write_rows);
    assert_true(cfg->sink.present);
    assert_false(cfg->source.present);
    sl_config_destroy(cfg);

    /* A gateway that writes no rows needs no sink. */
    cfg = parse_ok("version: 1\n"
                   "name: x\n"
                   "gateway: {enabled: true, write_rows: false}\n"
                   "backends:\n"
                   "  a: {kind: http-json, url: 'http://h'}\n"
                   "steps: [{name: s, backends: [a]}]\n");
    assert_true(cfg->gateway.enabled);
    assert_false(cfg->gateway.write_rows);
    assert_false(cfg->sink.present);
    sl_config_destroy(cfg);
    cfg = parse_ok("version: 1\n"
                   "name: x\n"
                   "gateway: {enabled: true}\n"
                   "backends:\n"
                   "  a: {kind: http-json, url: 'http://h'}\n");
    assert_false(cfg->gateway.write_rows);
    assert_false(cfg->sink.present);
    sl_config_destroy(cfg);
}

/* http.listen is what the listener can bind (an IPv4 address or
 * localhost), checked by `sluice check` rather than at start-up. */
static void test_listen_is_ipv4(void **state)
{
    struct sl_config *cfg;

    (void)state;
    cfg = parse_ok("version: 1\n"
                   "name: x\n"
                   "gateway: {enabled: true}\n"
                   "http: {listen: 'localhost:0'}\n");
    assert_string_equal(cfg->http.listen, "localhost:0");
    sl_config_destroy(cfg);
    parse_errors("version: 1\n"
                 "name: x\n"
                 "gateway: {enabled: true}\n"
                 "http:\n"
                 "  listen: example.com:9464\n",
                 "t.yaml:5:11: expected host:port with an IPv4 address or "
                 "'localhost' as host and a port between 0 and 65535, got "
                 "'example.com:9464' at http.listen",
                 NULL);
    parse_errors("version: 1\n"
                 "name: x\n"
                 "gateway: {enabled: true}\n"
                 "http:\n"
                 "  listen: 999.1.1.1:80\n",
                 "t.yaml:5:11: expected host:port with an IPv4 address or "
                 "'localhost' as host and a port between 0 and 65535, got "
                 "'999.1.1.1:80' at http.listen",
                 NULL);
}

/* A librdkafka setting sluice manages itself is refused by the loader. */
static void test_managed_kafka_property(void **state)
{
    (void)state;
    parse_errors(
        "version: 1\n"
        "name: x\n"
        "source:\n"
        "  kind: kafka\n"
        "  kafka:\n"
        "    topics: [t]\n"
        "    group: g\n"
        "    properties:\n"
        "      fetch.wait.max.ms: 10\n"
        "      enable.auto.offset.store: true\n"
        "backends:\n"
        "  a: {kind: http-json, url: 'http://h'}\n"
        "steps: [{name: s, backends: [a]}]\n"
        "sink: {postgres: {}}\n",
        "t.yaml:10:7: kafka property 'enable.auto.offset.store' is "
        "managed by sluice (offsets are stored only once processed); "
        "remove it at source.kafka.properties.enable.auto.offset.store",
        NULL);
}

static void test_secret_literal(void **state)
{
    (void)state;
    load_errors("secret.yaml",
                "tests/data/config/secret.yaml:7:5: unknown key 'password' "
                "(secrets must not be written in the file; use password_env "
                "or password_file) at sink.postgres.password",
                NULL);
    parse_errors("version: 1\n"
                 "name: s\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://h', api_key: k}\n"
                 "sink:\n"
                 "  postgres: {dsn: 'host=h password=x'}\n",
                 "t.yaml:5:41: unknown key 'api_key' (secrets must not be "
                 "written in the file; use api_key_env or api_key_file) at "
                 "backends.a.api_key",
                 "t.yaml:7:19: expected a libpq connection string without a "
                 "password (use password_env or password_file), got a value "
                 "that is not shown (it may hold a secret) at "
                 "sink.postgres.dsn",
                 NULL);
}

static void test_many_errors(void **state)
{
    const char *f = "tests/data/config/many-errors.yaml";
    char e[10][256];

    (void)state;
    snprintf(e[0], sizeof(e[0]),
             "%s:1:1: missing required key 'sink' (required when 'source' "
             "is present) at sink",
             f);
    snprintf(e[1], sizeof(e[1]), "%s:1:10: expected 1, got '2' at version", f);
    snprintf(e[2], sizeof(e[2]),
             "%s:2:7: expected a name of 1 to 64 lowercase letters, digits, "
             "'_' or '-', got 'Bad Name' at name",
             f);
    snprintf(e[3], sizeof(e[3]),
             "%s:3:1: missing required key 'kafka' (required when "
             "source.kind is kafka) at source.kafka",
             f);
    snprintf(e[4], sizeof(e[4]),
             "%s:5:3: key 'redis' is only allowed when source.kind is "
             "redis-stream or redis-list at source.redis",
             f);
    snprintf(e[5], sizeof(e[5]),
             "%s:8:13: expected an integer between 1 and 1048576, got '0' "
             "at queue.capacity",
             f);
    snprintf(e[6], sizeof(e[6]), "%s:9:3: unknown key 'extra' at queue.extra",
             f);
    snprintf(e[7], sizeof(e[7]),
             "%s:13:10: expected a URL starting with http:// or https:// "
             "(without a password), got a value that is not shown (it may hold "
             "a secret) at backends.m.url",
             f);
    snprintf(e[8], sizeof(e[8]),
             "%s:16:16: unknown backend 'nope' at steps[0].backends[0]", f);
    load_errors("many-errors.yaml", e[0], e[1], e[2], e[3], e[4], e[5], e[6],
                e[7], e[8], NULL);
}

static void test_cross_checks(void **state)
{
    (void)state;
    parse_errors("version: 1\nname: idle\n",
                 "t.yaml:1:1: nothing to do: give a 'source' or set "
                 "gateway.enabled to true at source",
                 NULL);
    parse_errors("version: 1\n"
                 "name: x\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://h', result_pointer: "
                 "label}\n"
                 "  b:\n"
                 "    kind: http-json\n"
                 "    url: http://h\n"
                 "    retry: {base_ms: 500, max_ms: 100}\n"
                 "steps:\n"
                 "  - {name: s, backends: [a]}\n"
                 "  - {name: s, backends: [b]}\n",
                 "t.yaml:5:57: expected a JSON pointer (empty or starting "
                 "with '/'), got 'label' at backends.a.result_pointer",
                 "t.yaml:9:22: base_ms (500) must not exceed max_ms (100) at "
                 "backends.b.retry.base_ms",
                 "t.yaml:12:12: duplicate step name 's' (also steps[0]) at "
                 "steps[1].name",
                 NULL);
}

static void test_source_needs_steps_and_sink(void **state)
{
    (void)state;
    parse_errors("version: 1\n"
                 "name: x\n"
                 "source:\n"
                 "  kind: stdin\n"
                 "steps:\n",
                 "t.yaml:1:1: missing required key 'sink' (required when "
                 "'source' is present) at sink",
                 "t.yaml:5:1: missing required key 'steps' (required when "
                 "'source' is present) at steps",
                 NULL);
    parse_errors("version: 1\n"
                 "name: x\n"
                 "gateway:\n"
                 "  enabled: yes\n"
                 "sink:\n",
                 "t.yaml:4:12: expected true or false, got 'yes' at "
                 "gateway.enabled",
                 "t.yaml:5:1: missing required key 'postgres' at "
                 "sink.postgres",
                 NULL);
}

static void test_aliases(void **state)
{
    struct sl_config *cfg = parse_ok("version: 1\n"
                                     "name: a\n"
                                     "gateway: {enabled: true}\n"
                                     "backends:\n"
                                     "  a: &common\n"
                                     "    kind: http-json\n"
                                     "    url: &u http://h/x\n"
                                     "  b: *common\n"
                                     "  c: {kind: http-json, url: *u}\n");

    (void)state;
    assert_int_equal(cfg->backend_cnt, 3);
    assert_string_equal(cfg->backends[1].url, "http://h/x");
    assert_string_equal(cfg->backends[2].url, "http://h/x");
    sl_config_destroy(cfg);
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: &common {kind: http-json, url: 'http://h'}\n"
                 "  c:\n"
                 "    <<: *common\n",
                 "t.yaml:6:3: missing required key 'kind' at backends.c.kind",
                 "t.yaml:6:3: missing required key 'url' at backends.c.url",
                 "t.yaml:7:5: merge keys ('<<') are not supported; repeat the "
                 "settings or use an alias ('*name') for a whole value at "
                 "backends.c.<<",
                 NULL);
}

static void test_missing_file(void **state)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = (struct sl_config *)&errs;

    (void)state;
    assert_int_equal(sl_config_load("tests/data/config/nope.yaml", &cfg, &errs),
                     -SL_ENOTFOUND);
    assert_null(cfg);
    assert_int_equal(errs.cnt, 1);
    assert_string_equal(errs.items[0].text,
                        "tests/data/config/nope.yaml: cannot open: No such "
                        "file or directory");
    sl_config_errors_clear(&errs);
    assert_int_equal(
        sl_config_load("tests/data/config/unknown-key.yaml", &cfg, NULL),
        -SL_ECONFIG);
    sl_config_destroy(NULL);
    sl_config_errors_clear(NULL);
}

/* ---- headers and secret sources (hardening #4, #5, #9) ---- */

/* A header value that would end its line is refused, literal or ${VAR}. */
static void test_header_injection(void **state)
{
    (void)state;
    setenv("SL_TEST_HDR", "a\r\nX-Injected: yes", 1);
    parse_errors("version: 1\n"
                 "name: h\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a:\n"
                 "    kind: http-json\n"
                 "    url: http://h\n"
                 "    headers:\n"
                 "      X-A: \"a\\r\\nInjected: yes\"\n"
                 "      X-B: ${SL_TEST_HDR}\n"
                 "      'Bad Name': x\n"
                 "      X-C: \"tab\\tis fine\"\n"
                 "      X-D: \"nul\\0\"\n",
                 "t.yaml:9:12: a header value must not hold CR, LF, NUL or "
                 "another control character (it would end the header line "
                 "and start another) at backends.a.headers.X-A",
                 "t.yaml:10:12: a header value must not hold CR, LF, NUL or "
                 "another control character (it would end the header line "
                 "and start another) at backends.a.headers.X-B",
                 "t.yaml:11:7: expected a header name (an RFC 9110 token: "
                 "letters, digits and !#$%&'*+-.^_`|~), got 'Bad Name' at "
                 "backends.a.headers.Bad Name",
                 "t.yaml:13:12: a value must not contain NUL bytes at "
                 "backends.a.headers.X-D",
                 NULL);
    unsetenv("SL_TEST_HDR");
    assert_true(sl_config_header_name_ok("X-Api_Key.1!#$%&'*+^`|~"));
    assert_false(sl_config_header_name_ok(""));
    assert_false(sl_config_header_name_ok("X:A"));
    assert_false(sl_config_header_value_ok("a\rb"));
    assert_false(sl_config_header_value_ok("a\x7f"));
    assert_true(sl_config_header_value_ok("caf\xc3\xa9 \t ok"));
}

/* Credentials in headers and Kafka properties: only as value_env/_file. */
static void test_credential_values(void **state)
{
    struct sl_config *cfg;

    (void)state;
    setenv("SL_TEST_CRED", "sk-from-env", 1);
    parse_errors("version: 1\n"
                 "name: c\n"
                 "source:\n"
                 "  kind: kafka\n"
                 "  kafka:\n"
                 "    topics: [t]\n"
                 "    group: g\n"
                 "    properties:\n"
                 "      sasl.username: u\n"
                 "      sasl.password: hunter2\n"
                 "      SSL.Key.PEM: ${SL_TEST_CRED}\n"
                 "backends:\n"
                 "  a:\n"
                 "    kind: http-json\n"
                 "    url: http://h\n"
                 "    headers:\n"
                 "      authorization: Bearer sk-in-the-file\n"
                 "      X-Api-Key: ${SL_TEST_CRED}\n"
                 "      X-Trace: {value: x}\n"
                 "      X-Other: {}\n"
                 "      x-trace: b\n"
                 "steps: [{name: s, backends: [a]}]\n"
                 "sink: {postgres: {}}\n",
                 "t.yaml:10:22: kafka property 'sasl.password' carries a "
                 "credential: it must not be written in the file, nor come "
                 "from ${VAR}; write sasl.password: {value_env: NAME} or "
                 "{value_file: PATH} at source.kafka.properties.sasl.password",
                 "t.yaml:11:20: kafka property 'SSL.Key.PEM' carries a "
                 "credential: it must not be written in the file, nor come "
                 "from ${VAR}; write SSL.Key.PEM: {value_env: NAME} or "
                 "{value_file: PATH} at source.kafka.properties.SSL.Key.PEM",
                 "t.yaml:17:22: header 'authorization' carries a credential: "
                 "it must not be written in the file, nor come from ${VAR}; "
                 "write authorization: {value_env: NAME} or {value_file: "
                 "PATH} at backends.a.headers.authorization",
                 "t.yaml:18:18: header 'X-Api-Key' carries a credential: it "
                 "must not be written in the file, nor come from ${VAR}; "
                 "write X-Api-Key: {value_env: NAME} or {value_file: PATH} at "
                 "backends.a.headers.X-Api-Key",
                 "t.yaml:19:17: unknown key 'value' (secrets must not be "
                 "written in the file; use value_env or value_file) at "
                 "backends.a.headers.X-Trace.value",
                 "t.yaml:19:17: expected {value_env: NAME} or {value_file: "
                 "PATH} at backends.a.headers.X-Trace",
                 "t.yaml:20:7: expected {value_env: NAME} or {value_file: "
                 "PATH}, got an empty mapping at backends.a.headers.X-Other",
                 "t.yaml:21:7: duplicate header 'x-trace' (header names are "
                 "case-insensitive; also 'X-Trace') at "
                 "backends.a.headers.x-trace",
                 NULL);

    /* The way to do it: read at start-up, never stored by the loader. */
    cfg = parse_ok("version: 1\n"
                   "name: c\n"
                   "gateway: {enabled: true}\n"
                   "backends:\n"
                   "  a:\n"
                   "    kind: http-json\n"
                   "    url: http://h\n"
                   "    headers:\n"
                   "      X-Plain: '1'\n"
                   "      Authorization: {value_env: SL_TEST_CRED}\n");
    const struct sl_config_kvlist *h = &cfg->backends[0].headers;
    assert_int_equal(h->cnt, 2);
    assert_string_equal(h->items[1].key, "Authorization");
    assert_null(h->items[1].value);
    assert_string_equal(h->items[1].value_env, "SL_TEST_CRED");
    assert_null(h->items[1].value_file);
    char errstr[256], *v;
    assert_int_equal(
        sl_config_kv_value(&h->items[1], 0, "w", &v, errstr, sizeof(errstr)),
        0);
    assert_string_equal(v, "sk-from-env");
    free(v);
    assert_int_equal(
        sl_config_kv_value(&h->items[0], 0, "w", &v, errstr, sizeof(errstr)),
        0);
    assert_string_equal(v, "1");
    free(v);
    unsetenv("SL_TEST_CRED");
    assert_int_equal(
        sl_config_kv_value(&h->items[1], 0, "w", &v, errstr, sizeof(errstr)),
        -SL_ESECRET);
    assert_null(v);
    assert_string_equal(errstr,
                        "w: environment variable SL_TEST_CRED is not set");
    sl_config_destroy(cfg);

    /* The secret given where its variable's name goes is not echoed. */
    parse_errors("version: 1\n"
                 "name: c\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a:\n"
                 "    kind: http-json\n"
                 "    url: http://h\n"
                 "    api_key_env: sk-live-123\n"
                 "    headers: {X-Key: {value_env: sk-live-456}}\n",
                 "t.yaml:8:18: expected an environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*), got a value that is not shown (it "
                 "may hold a secret) at backends.a.api_key_env",
                 "t.yaml:9:34: expected an environment variable name "
                 "([A-Za-z_][A-Za-z0-9_]*), got a value that is not shown (it "
                 "may hold a secret) at backends.a.headers.X-Key.value_env",
                 NULL);

    assert_true(sl_config_header_is_secret("Proxy-Authorization"));
    assert_true(sl_config_header_is_secret("COOKIE"));
    assert_true(sl_config_header_is_secret("X-Goog-Api-Key"));
    assert_false(sl_config_header_is_secret("X-Mock-Fault"));
    assert_true(sl_config_kafka_property_is_secret("ssl.keystore.password"));
    assert_true(sl_config_kafka_property_is_secret("sasl.jaas.config"));
    assert_true(
        sl_config_kafka_property_is_secret("sasl.oauthbearer.client.secret"));
    assert_false(sl_config_kafka_property_is_secret("ssl.certificate.pem"));
    assert_false(sl_config_kafka_property_is_secret("ssl.key.location"));
    assert_false(sl_config_kafka_property_is_secret("sasl.username"));
}

/*
 * What `sluice run` would refuse about a secret's source is an error at
 * its key, found without reading the secret.
 */
static void test_secret_sources(void **state)
{
    char dir[] = "/tmp/sl-cfg-secret.XXXXXX", open_pw[96], ok_pw[96];
    char text[2048], want[6][400];
    FILE *f;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(open_pw, sizeof(open_pw), "%s/open.pw", dir);
    snprintf(ok_pw, sizeof(ok_pw), "%s/ok.pw", dir);
    assert_non_null(f = fopen(open_pw, "w"));
    fputs("pw\n", f);
    fclose(f);
    assert_int_equal(chmod(open_pw, 0644), 0);
    assert_non_null(f = fopen(ok_pw, "w"));
    fputs("pw\n", f);
    fclose(f);
    assert_int_equal(chmod(ok_pw, 0600), 0);
    unsetenv("SL_TEST_UNSET");
    setenv("SL_TEST_EMPTY", "", 1);
    snprintf(text, sizeof(text),
             "version: 1\n"
             "name: s\n"
             "source:\n"
             "  kind: redis-list\n"
             "  redis: {key: k, password_env: SL_TEST_UNSET}\n"
             "backends:\n"
             "  a:\n"
             "    kind: http-json\n"
             "    url: http://h\n"
             "    api_key_file: %s/missing.key\n"
             "    headers: {X-Key: {value_env: SL_TEST_EMPTY}}\n"
             "  b:\n"
             "    kind: http-json\n"
             "    url: http://h\n"
             "    api_key_env: SL_TEST_EMPTY\n"
             "    api_key_file: %s\n"
             "    headers: {Authorization: {value_file: %s}}\n"
             "steps: [{name: s, backends: [a, b]}]\n"
             "sink:\n"
             "  postgres:\n"
             "    password_file: %s\n",
             dir, ok_pw, ok_pw, open_pw);
    snprintf(want[0], sizeof(want[0]),
             "t.yaml:5:33: environment variable SL_TEST_UNSET is not set at "
             "source.redis.password_env");
    snprintf(want[1], sizeof(want[1]),
             "t.yaml:10:19: file %s/missing.key: cannot open: No such file "
             "or directory at backends.a.api_key_file",
             dir);
    snprintf(want[2], sizeof(want[2]),
             "t.yaml:11:34: environment variable SL_TEST_EMPTY is empty at "
             "backends.a.headers.X-Key.value_env");
    snprintf(want[3], sizeof(want[3]),
             "t.yaml:16:5: give api_key_env or api_key_file, not both at "
             "backends.b.api_key_file");
    snprintf(want[4], sizeof(want[4]),
             "t.yaml:17:15: header 'Authorization' and api_key_env both set "
             "the Authorization header; keep one at "
             "backends.b.headers.Authorization");
    snprintf(want[5], sizeof(want[5]),
             "t.yaml:21:20: file %s is readable by group or others (mode "
             "0644); refusing it: chmod 600 %s at sink.postgres.password_file",
             open_pw, open_pw);
    parse_errors(text, want[0], want[1], want[2], want[3], want[4], want[5],
                 NULL);
    unlink(open_pw);
    unlink(ok_pw);
    rmdir(dir);
    unsetenv("SL_TEST_EMPTY");
}

/* hardening #7: JSON templates are rendered once at load time. */
static void test_json_template_probe(void **state)
{
    (void)state;
    parse_errors(
        "version: 1\n"
        "name: a\n"
        "gateway: {enabled: true}\n"
        "backends:\n"
        "  quoted:\n"
        "    kind: http-json\n"
        "    url: http://h/x\n"
        "    body: '{\"text\": \"{{text}}\"}'\n"
        "  colon: {kind: http-json, url: 'http://h/x', body: "
        "'{\"text\" {{text}}}'}\n"
        "  emb:\n"
        "    kind: openai-embeddings\n"
        "    url: http://h/v1\n"
        "    model: m\n"
        "    input: '{{.}}'\n"
        "  ok: {kind: http-json, url: 'http://h/x', body: "
        "'{\"t\": {{text}}, \"all\": {{.}}}'}\n",
        "t.yaml:8:11: placeholder {{text}} is inside a JSON string, but it is "
        "replaced by a JSON value, quotes included: write {{text}} without "
        "quotes around it at backends.quoted.body",
        "t.yaml:9:53: template does not render to JSON when its fields hold "
        "strings: ':' expected at {{text}} at backends.colon.body",
        "t.yaml:14:12: template renders to a JSON object, not to a string at "
        "backends.emb.input",
        NULL);
    /* A ${VAR} in a body is checked as interpolated, and not echoed. */
    setenv("SLUICE_TEST_BODY", "\"{{text}}\"", 1);
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  b: {kind: http-json, url: 'http://h/x', body: "
                 "'{\"t\": ${SLUICE_TEST_BODY}}'}\n",
                 "t.yaml:5:49: placeholder {{text}} is inside a JSON string, "
                 "but it is replaced by a JSON value, quotes included: write "
                 "{{text}} without quotes around it at backends.b.body",
                 NULL);
    unsetenv("SLUICE_TEST_BODY");
}

/* hardening #8: a second YAML document is refused, not ignored. */
static void test_one_document(void **state)
{
    (void)state;
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "---\n"
                 "version: 2\n"
                 "name: b\n",
                 "t.yaml:4:1: a second YAML document starts here; a pipeline "
                 "file holds one document (remove this '---' and what follows "
                 "it, or give each pipeline a file of its own)",
                 NULL);
    /* Even an empty one, and after an end marker. */
    parse_errors("version: 1\nname: a\ngateway: {enabled: true}\n...\n---\n",
                 "t.yaml:5:1: a second YAML document starts here; a pipeline "
                 "file holds one document (remove this '---' and what follows "
                 "it, or give each pipeline a file of its own)",
                 NULL);
    /* A start marker, an end marker and comments are one document. */
    sl_config_destroy(parse_ok("---\nversion: 1\nname: a\n"
                               "gateway: {enabled: true}\n...\n# end\n"));
}

/* hardening #8: an anchored value is judged where an alias uses it, and
 * the error says so, with where the value is written. */
static void test_alias_errors_at_use(void **state)
{
    (void)state;
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "workers: {threads: &n 0}\n"
                 "queue:\n"
                 "  capacity: *n\n",
                 "t.yaml:4:23: expected an integer between 1 and 256, got '0' "
                 "at workers.threads",
                 "t.yaml:6:13: expected an integer between 1 and 1048576, got "
                 "'0' (through alias '*n' to 4:23) at queue.capacity",
                 NULL);
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: {kind: http-json, url: 'http://x'}\n"
                 "steps:\n"
                 "  - &st {name: s, backends: [a]}\n"
                 "  - *st\n",
                 "t.yaml:8:5: duplicate step name 's' (also steps[0]) "
                 "(through alias '*st' to 7:10) at steps[1].name",
                 NULL);
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  a: &b\n"
                 "    kind: openai-chat\n"
                 "    url: http://x/v1\n"
                 "    model: m\n"
                 "    messages: [{role: user, content: hi}]\n"
                 "  c: *b\n"
                 "  d: {kind: http-json, url: 'http://x'}\n"
                 "steps:\n"
                 "  - {name: s, backends: [a]}\n"
                 "sink: *b\n",
                 "t.yaml:14:7: unknown key 'kind' (through alias '*b' to 6:5) "
                 "at sink.kind",
                 "t.yaml:14:7: unknown key 'url' (through alias '*b' to 7:5) "
                 "at sink.url",
                 "t.yaml:14:7: unknown key 'model' (through alias '*b' to "
                 "8:5) at sink.model",
                 "t.yaml:14:7: unknown key 'messages' (through alias '*b' to "
                 "9:5) at sink.messages",
                 "t.yaml:14:7: missing required key 'postgres' (through alias "
                 "'*b' to 6:5) at sink.postgres",
                 NULL);
}

/* A vector column names a backend whose result can be an array; its
 * errors are reported as every other check's (structure #16: an aliased
 * value says where it is written, as at queue.capacity above). */
static void test_vector_column_backend(void **state)
{
    (void)state;
    parse_errors("version: 1\n"
                 "name: a\n"
                 "gateway: {enabled: true}\n"
                 "backends:\n"
                 "  chat: {kind: openai-chat, url: 'http://x/v1', model: m,\n"
                 "         messages: [{role: user, content: hi}]}\n"
                 "steps:\n"
                 "  - {name: s, backends: [&c chat]}\n"
                 "sink:\n"
                 "  postgres:\n"
                 "    columns:\n"
                 "      vectors: {v1: nope, v2: chat, v3: *c}\n",
                 "t.yaml:12:21: unknown backend 'nope': a vector column takes "
                 "the result of one of the pipeline's backends at "
                 "sink.postgres.columns.vectors.v1",
                 "t.yaml:12:31: backend 'chat' is openai-chat, whose result is "
                 "an object, not an array of numbers at "
                 "sink.postgres.columns.vectors.v2",
                 "t.yaml:12:41: backend 'chat' is openai-chat, whose result is "
                 "an object, not an array of numbers (through alias '*c' to "
                 "8:29) at sink.postgres.columns.vectors.v3",
                 NULL);
}

/* embeddings speed-up (b64): encoding_format, openai-embeddings only. */
static void test_encoding_format_key(void **state)
{
    static const char head[] =
        "version: 1\n"
        "name: a\n"
        "gateway: {enabled: true}\n"
        "steps: [{name: s, backends: [e, f]}]\n"
        "backends:\n"
        "  e: {kind: openai-embeddings, url: 'http://x/v1',"
        " model: m}\n";
    char text[1024];
    struct sl_config *cfg;

    (void)state;
    snprintf(text, sizeof(text),
             "%s  f: {kind: openai-embeddings, url: 'http://x/v1', model: m,\n"
             "      encoding_format: base64}\n",
             head);
    cfg = parse_ok(text);
    assert_int_equal(sl_config_backend_find(cfg, "e")->encoding_format,
                     SL_CONFIG_ENCODING_FLOAT);
    assert_int_equal(sl_config_backend_find(cfg, "f")->encoding_format,
                     SL_CONFIG_ENCODING_BASE64);
    sl_config_destroy(cfg);

    snprintf(text, sizeof(text),
             "%s  f: {kind: openai-chat, url: 'http://x/v1', model: m,\n"
             "      messages: [{role: user, content: hi}],\n"
             "      encoding_format: float}\n"
             "  g: {kind: openai-embeddings, url: 'http://x/v1', model: m,\n"
             "      encoding_format: base32}\n",
             head);
    parse_errors(text,
                 "t.yaml:9:7: key 'encoding_format' is only allowed when kind "
                 "is openai-embeddings at backends.f.encoding_format",
                 "t.yaml:11:24: expected one of float, base64, got 'base32' "
                 "at backends.g.encoding_format",
                 NULL);
}

/* hardening #8: whatever a ${VAR} or a block scalar holds, each error is
 * one line of text. */
static void test_error_stays_one_line(void **state)
{
    (void)state;
    setenv("SL_TEST_NASTY", "a\nb\r\tc\x1b[31m\x7f\xff", 1);
    parse_errors("version: 1\n"
                 "name: ${SL_TEST_NASTY}\n"
                 "gateway: {enabled: true}\n"
                 "replica_id: |\n"
                 "  two\n"
                 "  lines\n"
                 "workers: {threads: \"${SL_TEST_NASTY}\"}\n",
                 "t.yaml:2:7: expected a name of 1 to 64 lowercase letters, "
                 "digits, '_' or '-', got 'a\\nb\\r\\tc\\x1b[31m\\x7f\\xff' at "
                 "name",
                 "t.yaml:7:20: expected an integer between 1 and 256, got "
                 "'a\\nb\\r\\tc\\x1b[31m\\x7f\\xff' at workers.threads",
                 NULL);
    unsetenv("SL_TEST_NASTY");
}

/* hardening #9: a FIFO, a device or a directory is refused at once (a FIFO
 * without a writer used to block `sluice check`); standard input or a pipe
 * is read through sl_config_load_fd(). */
static void test_not_a_regular_file(void **state)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg;
    char fifo[64], want[256], out[4096], cmd[128];
    int fds[2];

    (void)state;
    snprintf(fifo, sizeof(fifo), "/tmp/sluice-test-fifo-%d", (int)getpid());
    unlink(fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(sl_config_load(fifo, &cfg, &errs), -SL_EINVAL);
    assert_null(cfg);
    assert_int_equal(errs.cnt, 1);
    snprintf(want, sizeof(want),
             "%s: not a regular file (it is a FIFO); give the path of a "
             "pipeline file",
             fifo);
    assert_string_equal(errs.items[0].text, want);
    sl_config_errors_clear(&errs);
    assert_int_equal(sl_config_load("/dev/null", &cfg, &errs), -SL_EINVAL);
    assert_string_equal(errs.items[0].text,
                        "/dev/null: not a regular file (it is a character "
                        "device); give the path of a pipeline file");
    sl_config_errors_clear(&errs);
    assert_int_equal(sl_config_load("tests", &cfg, &errs), -SL_EINVAL);
    assert_string_equal(errs.items[0].text,
                        "tests: not a regular file (it is a directory); give "
                        "the path of a pipeline file");
    sl_config_errors_clear(&errs);

    /* Both commands, exit 2 (no writer ever opens the FIFO). */
    snprintf(want, sizeof(want),
             "%s: not a regular file (it is a FIFO); give the path of a "
             "pipeline file\n",
             fifo);
    snprintf(cmd, sizeof(cmd), "check %s", fifo);
    assert_int_equal(run_sluice(cmd, "2>&1 >/dev/null", out, sizeof(out)), 2);
    assert_string_equal(out, want);
    snprintf(cmd, sizeof(cmd), "run %s", fifo);
    assert_int_equal(run_sluice(cmd, "2>&1 >/dev/null", out, sizeof(out)), 2);
    assert_string_equal(out, want);
    unlink(fifo);

    /* A pipe through the descriptor entry point. */
    static const char text[] = "version: 1\nname: p\ngateway: {enabled: "
                               "true}\nqueue: {capacity: 0}\n";
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], text, sizeof(text) - 1),
                     (ssize_t)sizeof(text) - 1);
    close(fds[1]);
    assert_int_equal(sl_config_load_fd("<stdin>", fds[0], &cfg, &errs),
                     -SL_ECONFIG);
    assert_int_equal(errs.cnt, 1);
    assert_string_equal(errs.items[0].text,
                        "<stdin>:4:19: expected an integer between 1 and "
                        "1048576, got '0' at queue.capacity");
    sl_config_errors_clear(&errs);
    close(fds[0]);
}

/* log_format: json by default, text on request, nothing else. */
static void test_log_format_key(void **state)
{
    (void)state;
    struct sl_config *cfg = parse_ok("version: 1\nname: l\n"
                                     "gateway: {enabled: true}\n");
    assert_int_equal(cfg->log_format, SL_LOG_FORMAT_JSON);
    sl_config_destroy(cfg);
    cfg = parse_ok("version: 1\nname: l\nlog_format: text\n"
                   "gateway: {enabled: true}\n");
    assert_int_equal(cfg->log_format, SL_LOG_FORMAT_TEXT);
    sl_config_destroy(cfg);
    parse_errors("version: 1\nname: l\nlog_format: logfmt\n"
                 "gateway: {enabled: true}\n",
                 "t.yaml:3:13: expected one of json, text, got 'logfmt' at "
                 "log_format",
                 NULL);
}

/* The parts of each error, for tools: the text is made of them. */
static void test_error_fields(void **state)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;
    const char *text = "version: 1\n"
                       "name: a\n"
                       "gateway: {enabled: true}\n"
                       "workers: {threads: &n 0}\n"
                       "queue:\n"
                       "  capacity: *n\n";

    (void)state;
    assert_int_equal(sl_config_parse("t.yaml", text, strlen(text), &cfg, &errs),
                     -SL_ECONFIG);
    assert_int_equal(errs.cnt, 2);
    assert_string_equal(errs.items[1].file, "t.yaml");
    assert_int_equal(errs.items[1].line, 6);
    assert_int_equal(errs.items[1].column, 13);
    assert_string_equal(errs.items[1].path, "queue.capacity");
    assert_string_equal(errs.items[1].message,
                        "expected an integer between 1 and 1048576, got '0' "
                        "(through alias '*n' to 4:23)");
    json_t *arr = json_array();
    assert_int_equal(sl_config_errors_json(arr, "t.yaml", -SL_ECONFIG, &errs),
                     0);
    char *dump = json_dumps(json_array_get(arr, 0), JSON_COMPACT);
    assert_string_equal(
        dump, "{\"file\":\"t.yaml\",\"line\":4,\"column\":23,\"path\":"
              "\"workers.threads\",\"message\":\"expected an integer between 1 "
              "and 256, got '0'\"}");
    free(dump);
    json_decref(arr);
    sl_config_errors_clear(&errs);

    /* About the file, not a place in it: no line, column or path. */
    assert_int_equal(sl_config_load("tests/data/config/nope.yaml", &cfg, &errs),
                     -SL_ENOTFOUND);
    assert_int_equal(errs.items[0].line, 0);
    assert_null(errs.items[0].path);
    assert_string_equal(errs.items[0].file, "tests/data/config/nope.yaml");
    assert_string_equal(errs.items[0].message,
                        "cannot open: No such file or directory");
    arr = json_array();
    assert_int_equal(sl_config_errors_json(arr, "tests/data/config/nope.yaml",
                                           -SL_ENOTFOUND, &errs),
                     0);
    dump = json_dumps(arr, JSON_COMPACT);
    assert_string_equal(dump, "[{\"file\":\"tests/data/config/nope.yaml\","
                              "\"line\":null,\"column\":null,\"path\":null,"
                              "\"message\":\"cannot open: No such file or "
                              "directory\"}]");
    free(dump);
    json_decref(arr);
    sl_config_errors_clear(&errs);
}

/* Past SL_CONFIG_MAX_ERRORS, the JSON says how many were left out, as
 * the text does. */
static void test_errors_json_dropped(void **state)
{
    char text[16384];
    size_t n = (size_t)snprintf(text, sizeof(text), "version: 1\nname: a\n");
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;

    (void)state;
    for (int i = 0; i < SL_CONFIG_MAX_ERRORS + 5; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "k%d: 1\n", i);
    assert_int_equal(sl_config_parse("t.yaml", text, n, &cfg, &errs),
                     -SL_ECONFIG);
    assert_int_equal(errs.cnt, SL_CONFIG_MAX_ERRORS);
    json_t *arr = json_array();
    assert_int_equal(sl_config_errors_json(arr, "t.yaml", -SL_ECONFIG, &errs),
                     0);
    assert_int_equal(json_array_size(arr), SL_CONFIG_MAX_ERRORS + 1);
    char *last =
        json_dumps(json_array_get(arr, SL_CONFIG_MAX_ERRORS), JSON_COMPACT);
    assert_string_equal(last, "{\"file\":\"t.yaml\",\"line\":null,\"column\":"
                              "null,\"path\":null,\"message\":\"5 more errors "
                              "not shown\"}");
    free(last);
    json_decref(arr);
    sl_config_errors_clear(&errs);
}

/* The effective pipeline: defaults filled in, ${VAR} applied, other kinds'
 * keys left out, secrets as their source and never their value, and
 * strings that plain YAML would change quoted (the text reads back). */
static void test_to_yaml(void **state)
{
    char dir[] = "/tmp/sluice-yaml-XXXXXX", pw[64], text[2048];
    struct sl_config *cfg;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(pw, sizeof(pw), "%s/pw", dir);
    FILE *fp = fopen(pw, "w");
    assert_non_null(fp);
    fputs("s3cret-file\n", fp);
    fclose(fp);
    chmod(pw, 0600);
    setenv("YAML_TEST_KEY", "sk-s3cret-env", 1);
    setenv("YAML_TEST_URL", "http://h:1/v1", 1);
    snprintf(text, sizeof(text),
             "version: 1\n"
             "name: demo\n"
             "gateway: {enabled: true}\n"
             "backends:\n"
             "  b:\n"
             "    kind: http-json\n"
             "    url: ${YAML_TEST_URL}\n"
             "    api_key_env: YAML_TEST_KEY\n"
             "    headers:\n"
             "      X-Tenant: \"42\"\n"
             "      X-Api-Key: {value_file: %s}\n"
             "      X-Note: \" a: b # c\\t\"\n"
             "    body: '{\"t\": {{text}}}'\n"
             "steps:\n"
             "  - {name: s, backends: [b]}\n",
             pw);
    cfg = parse_ok(text);
    char *yaml = sl_config_to_yaml(cfg);
    assert_non_null(yaml);
    assert_null(strstr(yaml, "s3cret"));
    assert_null(strstr(yaml, "model"));    /* not for http-json */
    assert_null(strstr(yaml, "source:"));  /* none given */
    assert_null(strstr(yaml, "api_key_")); /* shown as the secret */
    assert_non_null(strstr(yaml, "version: 1\nname: demo\nlog_level: info\n"
                                 "log_format: json\n"
                                 "shutdown_timeout_ms: 30000\n"
                                 "queue:\n  capacity: 1024\n"));
    assert_non_null(strstr(yaml, "    url: http://h:1/v1\n"
                                 "    api_key: \"<from env YAML_TEST_KEY>\"\n"
                                 "    timeout_ms: 30000\n"));
    snprintf(text, sizeof(text),
             "    headers:\n"
             "      X-Tenant: \"42\"\n"
             "      X-Api-Key: \"<from file %s>\"\n"
             "      X-Note: \" a: b # c\\t\"\n"
             "    body: \"{\\\"t\\\": {{text}}}\"\n"
             "    result_pointer: \"\"\n",
             pw);
    assert_non_null(strstr(yaml, text));
    assert_non_null(strstr(yaml, "steps:\n- name: s\n  backends:\n  - b\n"
                                 "  mode: all\n"));
    free(yaml);
    sl_config_destroy(cfg);
    unsetenv("YAML_TEST_KEY");
    unsetenv("YAML_TEST_URL");
    unlink(pw);
    rmdir(dir);
}

/* Print 'cfg', load what was printed, print that: the same text, and
 * 'cfg2' for the caller (sl_config_destroy()). */
static char *yaml_fixpoint(const struct sl_config *cfg,
                           struct sl_config **cfg2p)
{
    char *yaml = sl_config_to_yaml(cfg), *again;

    assert_non_null(yaml);
    *cfg2p = parse_ok(yaml);
    again = sl_config_to_yaml(*cfg2p);
    assert_non_null(again);
    if (strcmp(yaml, again))
        fail_msg("printed:\n%s\nreads back as:\n%s", yaml, again);
    free(again);
    return yaml;
}

/* Without secrets the printed pipeline is a pipeline: it loads, with the
 * same values (strings that plain YAML would turn into numbers, booleans,
 * comments, tags or trimmed text among them), and prints the same. */
static void test_to_yaml_reads_back(void **state)
{
    static const char *const topics[] = {
        "123", "true", "no",   "null",   "~",   " lead",     "trail ",
        "#x",  "- x",  "a: b", "!t",     "&a",  "*a",        "@x",
        "`x",  "%x",   "'q'",  "\"dq\"", "é",   "tab\there", "0x1F",
        "1e3", ".5",   "a #b", "[x]",    "{y}", ",",         "?"};
    char text[4096], path[512];
    size_t n;
    struct sl_config *cfg, *cfg2;
    DIR *dir;
    struct dirent *de;

    (void)state;
    n = (size_t)snprintf(text, sizeof(text),
                         "version: 1\nname: rb\nsource:\n  kind: kafka\n"
                         "  kafka:\n    group: g\n    topics:\n");
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++) {
        json_t *j = json_string(topics[i]);
        char *q = json_dumps(j, JSON_ENCODE_ANY);
        n += (size_t)snprintf(text + n, sizeof(text) - n, "      - %s\n", q);
        free(q);
        json_decref(j);
    }
    snprintf(text + n, sizeof(text) - n,
             "    properties: {\"x.y\": \"a: b\", \"#k\": 7}\n"
             "backends:\n  b: {kind: http-json, url: \"http://h:1/\", "
             "rate_limit_rps: 0.1, headers: {X-A: \"v w\"}}\n"
             "steps:\n  - {name: s, backends: [b]}\nsink: {postgres: {}}\n");
    cfg = parse_ok(text);
    free(yaml_fixpoint(cfg, &cfg2));
    assert_int_equal(cfg2->source.kafka.topics.cnt,
                     sizeof(topics) / sizeof(topics[0]));
    for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
        assert_string_equal(cfg2->source.kafka.topics.items[i], topics[i]);
    assert_string_equal(cfg2->source.kafka.properties.items[1].key, "#k");
    assert_string_equal(cfg2->source.kafka.properties.items[1].value, "7");
    assert_true(cfg2->backends[0].rate_limit_rps == 0.1);
    sl_config_destroy(cfg);
    sl_config_destroy(cfg2);

    /* Every example pipeline. */
    assert_non_null(dir = opendir("pipelines"));
    while ((de = readdir(dir)) != NULL) {
        struct sl_config_errors errs = {0};
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml"))
            continue;
        snprintf(path, sizeof(path), "pipelines/%s", de->d_name);
        assert_int_equal(sl_config_load(path, &cfg, &errs), 0);
        free(yaml_fixpoint(cfg, &cfg2));
        sl_config_destroy(cfg);
        sl_config_destroy(cfg2);
    }
    closedir(dir);
}

/* ---- the configuration reference ---- */

/* A set of key paths, as the reference writes them. */
struct keyset {
    char *items[512]; /* owned */
    size_t cnt;
};

static bool keyset_has(const struct keyset *ks, const char *path)
{
    for (size_t i = 0; i < ks->cnt; i++)
        if (!strcmp(ks->items[i], path))
            return true;
    return false;
}

static void keyset_add(struct keyset *ks, const char *path)
{
    assert_true(ks->cnt < sizeof(ks->items) / sizeof(ks->items[0]));
    if (!keyset_has(ks, path))
        ks->items[ks->cnt++] = strdup(path);
}

static void keyset_clear(struct keyset *ks)
{
    for (size_t i = 0; i < ks->cnt; i++)
        free(ks->items[i]);
    ks->cnt = 0;
}

/*
 * Every key path of schema 's' under 'path', walked as the loader
 * descends (parse_value: a mapping's keys, each entry of a name map, each
 * item of a list, the {value_env, value_file} form of a map's values).
 * Fails on a key without a one-line description.
 */
static void schema_paths(const struct sl_config_schema *s, const char *path,
                         struct keyset *ks)
{
    char kpath[512], sub[sizeof(kpath) + 8];

    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];
        const char *d = k->desc;

        snprintf(kpath, sizeof(kpath), "%s%s%s", path, *path ? "." : "",
                 k->name);
        if (!d || strlen(d) < 10 || strchr(d, '\n') || d[strlen(d) - 1] != '.')
            fail_msg("key %s has no one-line description (a sentence "
                     "ending in '.': .desc in lib/config_schema.c)",
                     kpath);
        keyset_add(ks, kpath);
        if (!k->sub)
            continue;
        snprintf(sub, sizeof(sub), "%s%s", kpath,
                 k->type == SL_KT_OBJLIST ? "[]"
                 : k->type == SL_KT_OBJ   ? ""
                                          : ".<name>");
        schema_paths(k->sub, sub, ks);
    }
}

/* The reference as sluice config-reference prints it (free()). */
static char *reference_text(void)
{
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);

    assert_non_null(fp);
    assert_int_equal(sl_config_reference(fp), 0);
    fclose(fp);
    return text;
}

/* The key paths of the reference's table rows: "| `path` | ...". */
static void reference_paths(const char *text, struct keyset *ks)
{
    for (const char *p = text; (p = strstr(p, "\n| `")) != NULL;) {
        const char *b = p + 4, *e = strchr(b, '`');
        char path[512];
        assert_non_null(e);
        snprintf(path, sizeof(path), "%.*s", (int)(e - b), b);
        keyset_add(ks, path);
        p = e;
    }
}

/* docs/configuration.md is what sluice config-reference prints now. */
static void test_reference_is_current(void **state)
{
    FILE *fp = fopen("docs/configuration.md", "r");
    char *text = reference_text(), *doc = NULL;
    size_t cap = 0;

    (void)state;
    assert_non_null(fp);
    ssize_t n = getdelim(&doc, &cap, '\0', fp);
    fclose(fp);
    assert_true(n > 0);
    if (strcmp(doc, text))
        fail_msg("docs/configuration.md is stale: run "
                 "'build/sluice config-reference > docs/configuration.md'");
    free(doc);
    free(text);
}

/* Every key has a description, and the reference lists exactly the keys
 * of the schema walk. */
static void test_reference_lists_schema(void **state)
{
    struct keyset schema = {0}, ref = {0};
    char *text = reference_text();

    (void)state;
    schema_paths(&sl_config_schema_root, "", &schema);
    reference_paths(text, &ref);
    assert_true(schema.cnt > 100);
    for (size_t i = 0; i < schema.cnt; i++)
        if (!keyset_has(&ref, schema.items[i]))
            fail_msg("key %s is accepted but not in the reference",
                     schema.items[i]);
    for (size_t i = 0; i < ref.cnt; i++)
        if (!keyset_has(&schema, ref.items[i]))
            fail_msg("the reference lists %s, which is no key", ref.items[i]);
    assert_int_equal(schema.cnt, ref.cnt);
    keyset_clear(&schema);
    keyset_clear(&ref);
    free(text);
}

/*
 * A pipeline text holding key path 'path' (with its last segment replaced
 * by 'last' when not NULL): "a.<name>.b[].c" gives
 * {a: {n: {b: [{c: x}]}}}.
 */
static void probe_text(const char *path, const char *last, char *out,
                       size_t size)
{
    char segs[16][128], inner[2048], tmp[2048 + 256];
    size_t n = 0;

    for (const char *p = path; *p; n++) {
        size_t len = strcspn(p, ".");
        assert_true(n < 16);
        snprintf(segs[n], sizeof(segs[n]), "%.*s", (int)len, p);
        p += len + (p[len] == '.');
    }
    if (last)
        snprintf(segs[n - 1], sizeof(segs[n - 1]), "%s", last);
    snprintf(inner, sizeof(inner), "x");
    for (size_t i = n; i-- > 0;) {
        size_t len = strlen(segs[i]);
        if (!strcmp(segs[i], "<name>"))
            snprintf(tmp, sizeof(tmp), "{n: %s}", inner);
        else if (len > 2 && !strcmp(segs[i] + len - 2, "[]"))
            snprintf(tmp, sizeof(tmp), "{%.*s: [%s]}", (int)(len - 2), segs[i],
                     inner);
        else
            snprintf(tmp, sizeof(tmp), "{%s: %s}", segs[i], inner);
        assert_true(strlen(tmp) < sizeof(inner));
        memcpy(inner, tmp, strlen(tmp) + 1);
    }
    snprintf(out, size, "%s\n", inner);
}

/* The errors of loading 'text', joined by newlines, in out[size]. */
static void probe_errors(const char *text, char *out, size_t size)
{
    struct sl_config_errors errs = {0};
    struct sl_config *cfg = NULL;
    size_t o = 0;

    sl_config_parse("probe.yaml", text, strlen(text), &cfg, &errs);
    out[0] = '\0';
    for (size_t i = 0; i < errs.cnt && o < size; i++)
        o += (size_t)snprintf(out + o, size - o, "%s\n", errs.items[i].text);
    sl_config_destroy(cfg);
    sl_config_errors_clear(&errs);
}

/*
 * Key path 'path' of an example pipeline (its keys as written under
 * 'fyn'), checked against the reference's paths 'ref': a key is listed,
 * or its map takes names of the user's (a "P.<name>" path exists).
 */
static void example_paths(struct fy_node *fyn, const char *path,
                          const struct keyset *ref, const char *file)
{
    char kpath[512], named[512];
    void *it = NULL;

    if (fy_node_is_sequence(fyn)) {
        struct fy_node *item;
        snprintf(kpath, sizeof(kpath), "%s[]", path);
        while ((item = fy_node_sequence_iterate(fyn, &it)) != NULL)
            if (fy_node_is_mapping(item))
                example_paths(item, kpath, ref, file);
        return;
    }
    if (!fy_node_is_mapping(fyn))
        return;
    struct fy_node_pair *fynp;
    while ((fynp = fy_node_mapping_iterate(fyn, &it)) != NULL) {
        const char *key = fy_node_get_scalar0(fy_node_pair_key(fynp));
        struct fy_node *val = fy_node_pair_value(fynp);
        assert_non_null(key);
        snprintf(kpath, sizeof(kpath), "%s%s%s", path, *path ? "." : "", key);
        snprintf(named, sizeof(named), "%s.<name>", path);
        if (keyset_has(ref, kpath)) {
            example_paths(val, kpath, ref, file);
            continue;
        }
        bool free_form = false;
        for (size_t i = 0; i < ref->cnt && *path; i++)
            free_form |= !strncmp(ref->items[i], named, strlen(named));
        if (!free_form)
            fail_msg("%s: key %s is not in the reference", file, kpath);
        example_paths(val, named, ref, file);
    }
}

/*
 * The reference lists every key the loader accepts: each listed key is
 * accepted where the reference says (a file holding just it draws no
 * "unknown key", while another name in its place does), and every key of
 * the example pipelines is listed.
 */
static void test_reference_keys_accepted(void **state)
{
    struct keyset ref = {0};
    char *text = reference_text(), doc[4096], errs[16384];
    DIR *dir = opendir("pipelines");
    struct dirent *de;
    int files = 0;

    (void)state;
    reference_paths(text, &ref);
    for (size_t i = 0; i < ref.cnt; i++) {
        probe_text(ref.items[i], NULL, doc, sizeof(doc));
        probe_errors(doc, errs, sizeof(errs));
        if (strstr(errs, "unknown key"))
            fail_msg("%s (as %s) is refused:\n%s", ref.items[i], doc, errs);
        probe_text(ref.items[i], "zz_nokey", doc, sizeof(doc));
        probe_errors(doc, errs, sizeof(errs));
        if (!strstr(errs, "unknown key 'zz_nokey'") &&
            !strstr(ref.items[i], "<name>"))
            fail_msg("the probe %s draws no unknown key:\n%s", doc, errs);
    }
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        size_t len = strlen(de->d_name);
        char path[512];
        if (len < 6 || strcmp(de->d_name + len - 5, ".yaml"))
            continue;
        snprintf(path, sizeof(path), "pipelines/%s", de->d_name);
        struct fy_document *fyd = fy_document_build_from_file(NULL, path);
        assert_non_null(fyd);
        example_paths(fy_document_root(fyd), "", &ref, path);
        fy_document_destroy(fyd);
        files++;
    }
    closedir(dir);
    assert_true(files >= 4);
    keyset_clear(&ref);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipelines_load),
        cmocka_unit_test(test_review_sentiment_values),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_maps_keep_order),
        cmocka_unit_test(test_env_interpolation),
        cmocka_unit_test(test_unknown_key),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_out_of_range),
        cmocka_unit_test(test_missing_key),
        cmocka_unit_test(test_bad_enum),
        cmocka_unit_test(test_yaml_syntax),
        cmocka_unit_test(test_kind_specific_key),
        cmocka_unit_test(test_unknown_backend),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_write_rows_needs_sink),
        cmocka_unit_test(test_listen_is_ipv4),
        cmocka_unit_test(test_managed_kafka_property),
        cmocka_unit_test(test_secret_literal),
        cmocka_unit_test(test_not_printable_text),
        cmocka_unit_test(test_parser_crash_is_an_error),
#ifndef SL_TSAN
        cmocka_unit_test(test_cli_parser_crash),
#endif
        cmocka_unit_test(test_many_errors),
        cmocka_unit_test(test_cross_checks),
        cmocka_unit_test(test_source_needs_steps_and_sink),
        cmocka_unit_test(test_aliases),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_header_injection),
        cmocka_unit_test(test_credential_values),
        cmocka_unit_test(test_secret_sources),
        cmocka_unit_test(test_json_template_probe),
        cmocka_unit_test(test_one_document),
        cmocka_unit_test(test_alias_errors_at_use),
        cmocka_unit_test(test_vector_column_backend),
        cmocka_unit_test(test_encoding_format_key),
        cmocka_unit_test(test_error_stays_one_line),
        cmocka_unit_test(test_not_a_regular_file),
        cmocka_unit_test(test_log_format_key),
        cmocka_unit_test(test_error_fields),
        cmocka_unit_test(test_errors_json_dropped),
        cmocka_unit_test(test_to_yaml),
        cmocka_unit_test(test_to_yaml_reads_back),
        cmocka_unit_test(test_reference_is_current),
        cmocka_unit_test(test_reference_lists_schema),
        cmocka_unit_test(test_reference_keys_accepted),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
