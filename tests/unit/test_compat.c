/*
 * Replies of the model servers sluice is meant to work with, as their own
 * documentation gives them (tests/data/compat, one .http file each, naming its
 * source): OpenAI, vLLM, Ollama, llama.cpp's server, Hugging Face TEI and
 * any JSON endpoint.  Each fixture goes through what the engine does with
 * a reply: the Retry-After header as libcurl hands it over, the status's
 * error class and whether it is retried, the delay taken from Retry-After,
 * and for a 2xx the reply parser (values and token usage).
 */
#include "cmocka_shim.h"

#include "err.h"
#include "infer_int.h"
#include "retry.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A fixture file: HTTP status, Retry-After (if any), body. */
struct reply {
    long status;
    bool has_retry_after;
    char retry_after[64];
    int headers; /* header lines seen */
    char *body;  /* malloc'd */
    size_t len;
};

static void load(const char *name, struct reply *r)
{
    char path[1024], line[4096];
    const char *src = getenv("SLUICE_SOURCE_DIR");

    memset(r, 0, sizeof(*r));
    snprintf(path, sizeof(path), "%s/tests/data/compat/%s",
             src && *src ? src : ".", name);
    FILE *fp = fopen(path, "r");
    if (!fp)
        fail_msg("cannot open %s", path);
    bool source = false;
    while (fgets(line, sizeof(line), fp)) {
        if (!strncmp(line, "# source: ", 10)) {
            source = true;
            continue;
        }
        if (!strncmp(line, "HTTP/", 5)) {
            r->status = strtol(strchr(line, ' ') + 1, NULL, 10);
            continue;
        }
        if (line[0] == '\n')
            break;
        /* as libcurl calls the header callback: the line with its CRLF */
        char crlf[4200];
        size_t n = strcspn(line, "\n");
        snprintf(crlf, sizeof(crlf), "%.*s\r\n", (int)n, line);
        r->headers++;
        if (sl_infer_proto_retry_after(crlf, strlen(crlf), r->retry_after,
                                       sizeof(r->retry_after)))
            r->has_retry_after = true;
    }
    if (!source || !r->status)
        fail_msg("%s: no '# source:' line or no status line", name);
    long at = ftell(fp);
    fseek(fp, 0, SEEK_END);
    r->len = (size_t)(ftell(fp) - at);
    fseek(fp, at, SEEK_SET);
    r->body = malloc(r->len + 1);
    assert_non_null(r->body);
    assert_int_equal(fread(r->body, 1, r->len, fp), r->len);
    r->body[r->len] = '\0';
    fclose(fp);
}

/* Parse a 2xx fixture as backend 'bc' with 'ncalls' calls. */
static json_t *parse_ok(const char *name, const struct sl_config_backend *bc,
                        size_t ncalls, struct sl_infer_usage *u)
{
    struct reply r;
    json_t *values = NULL;
    char text[256] = "";

    load(name, &r);
    assert_int_equal(r.status, 200);
    assert_false(r.has_retry_after);
    if (sl_infer_proto_parse(bc, r.body, r.len, ncalls, 0, &values, u, text,
                             sizeof(text)) < 0)
        fail_msg("%s: %s", name, text);
    free(r.body);
    assert_int_equal(json_array_size(values), ncalls);
    return values;
}

static void assert_usage(const struct sl_infer_usage *u, json_int_t p,
                         json_int_t c, json_int_t t)
{
    assert_int_equal(u->prompt, p);
    assert_int_equal(u->completion, c);
    assert_int_equal(u->total, t);
}

static const struct sl_config_backend chat = {
    .kind = SL_CONFIG_BACKEND_OPENAI_CHAT,
    .response_format = SL_CONFIG_RESPONSE_TEXT};
static const struct sl_config_backend chat_json = {
    .kind = SL_CONFIG_BACKEND_OPENAI_CHAT,
    .response_format = SL_CONFIG_RESPONSE_JSON};
static const struct sl_config_backend emb = {
    .kind = SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS};

/* The content string of a chat value. */
static const char *content(json_t *values)
{
    return json_string_value(
        json_object_get(json_array_get(values, 0), "content"));
}

static void test_chat_replies(void **state)
{
    struct sl_infer_usage u;
    json_t *v;

    (void)state;
    v = parse_ok("openai_chat_200.http", &chat, 1, &u);
    assert_string_equal(content(v), "positive");
    assert_usage(&u, 1117, 46, 1163);
    json_decref(v);

    v = parse_ok("vllm_chat_200.http", &chat_json, 1, &u);
    json_t *obj = json_object_get(json_array_get(v, 0), "content");
    assert_string_equal(json_string_value(json_object_get(obj, "label")),
                        "negative");
    assert_usage(&u, 32, 13, 45);
    json_decref(v);

    v = parse_ok("ollama_chat_200.http", &chat, 1, &u);
    assert_string_equal(content(v), "neutral");
    assert_usage(&u, 26, 2, 28);
    json_decref(v);

    v = parse_ok("llamacpp_chat_200.http", &chat, 1, &u);
    assert_string_equal(content(v), "positive");
    assert_usage(&u, 41, 2, 43);
    json_decref(v);
}

static void test_embedding_replies(void **state)
{
    struct sl_infer_usage u;
    json_t *v;

    (void)state;
    /* OpenAI: two inputs of one batch, usage for both. */
    v = parse_ok("openai_embeddings_200.http", &emb, 2, &u);
    assert_int_equal(json_array_size(json_array_get(v, 0)), 3);
    assert_true(fabs(json_real_value(json_array_get(json_array_get(v, 1), 2)) +
                     0.0303) < 1e-12);
    assert_usage(&u, 8, 0, 8);
    struct sl_infer_usage s0 = sl_infer_usage_share(&u, 2, 0);
    assert_usage(&s0, 4, 0, 4);
    json_decref(v);

    /* TEI's OpenAI route: the same parser. */
    v = parse_ok("tei_v1_embeddings_200.http", &emb, 1, &u);
    assert_int_equal(json_array_size(json_array_get(v, 0)), 4);
    assert_usage(&u, 7, 0, 7);
    json_decref(v);

    /* TEI's /embed and Ollama's /api/embed: http-json, result_pointer. */
    struct sl_config_backend tei = {.kind = SL_CONFIG_BACKEND_HTTP_JSON,
                                    .result_pointer = "/0"};
    v = parse_ok("tei_embed_200.http", &tei, 1, &u);
    assert_int_equal(json_array_size(json_array_get(v, 0)), 4);
    assert_true(fabs(json_real_value(json_array_get(json_array_get(v, 0), 0)) -
                     0.038483415) < 1e-12);
    assert_usage(&u, -1, -1, -1); /* http-json counts no tokens */
    json_decref(v);

    struct sl_config_backend ollama = {.kind = SL_CONFIG_BACKEND_HTTP_JSON,
                                       .result_pointer = "/embeddings/0"};
    v = parse_ok("ollama_embed_200.http", &ollama, 1, &u);
    assert_int_equal(json_array_size(json_array_get(v, 0)), 5);
    json_decref(v);
}

static void test_any_json(void **state)
{
    struct sl_infer_usage u;
    struct sl_config_backend bc = {.kind = SL_CONFIG_BACKEND_HTTP_JSON,
                                   .result_pointer = "/label"};

    (void)state;
    json_t *v = parse_ok("http_json_200.http", &bc, 1, &u);
    assert_string_equal(json_string_value(json_array_get(v, 0)), "positive");
    json_decref(v);
    bc.result_pointer = "";
    v = parse_ok("http_json_200.http", &bc, 1, &u);
    assert_true(json_is_object(json_array_get(v, 0)));
    json_decref(v);
    /* A reply in another server's shape is bad_json, with the reason. */
    char text[256];
    struct reply r;
    load("tei_embed_200.http", &r);
    assert_int_equal(sl_infer_proto_parse(&chat, r.body, r.len, 1, 0, &v, &u,
                                          text, sizeof(text)),
                     -1);
    assert_string_equal(text, "reply has no string choices[0].message.content");
    free(r.body);
}

/* An error fixture: its class, retried or not, the Retry-After delay. */
static void check_error(const char *name, enum sl_infer_errclass want,
                        bool retried, int64_t want_delay_ms)
{
    struct reply r;
    static const int64_t now_s = 946684789; /* 1999-12-31T23:59:49Z */

    load(name, &r);
    enum sl_infer_errclass ec = sl_infer_proto_status_class(r.status);
    if (ec != want)
        fail_msg("%s: HTTP %ld is class %s, want %s", name, r.status,
                 sl_infer_errclass_name(ec), sl_infer_errclass_name(want));
    assert_int_equal(sl_err_retriable(sl_infer_errclass_err(ec)), retried);
    int64_t delay = r.has_retry_after
                        ? sl_retry_after_ms(r.retry_after, now_s, 120000)
                        : -1;
    if (delay != want_delay_ms)
        fail_msg("%s: Retry-After '%s' gives %lld ms, want %lld", name,
                 r.retry_after, (long long)delay, (long long)want_delay_ms);
    free(r.body);
}

static void test_error_replies(void **state)
{
    (void)state;
    /* Retry-After honoured; x-ratelimit-* alone do not change the wait. */
    check_error("openai_429.http", SL_INFER_EC_HTTP_429, true, 20000);
    check_error("openai_500.http", SL_INFER_EC_HTTP_5XX, true, -1);
    check_error("vllm_400.http", SL_INFER_EC_HTTP_4XX, false, -1);
    check_error("ollama_404.http", SL_INFER_EC_HTTP_4XX, false, -1);
    check_error("llamacpp_503.http", SL_INFER_EC_HTTP_5XX, true, -1);
    /* TEI's overload has no Retry-After: sluice's own backoff. */
    check_error("tei_429.http", SL_INFER_EC_HTTP_429, true, -1);
    check_error("tei_413.http", SL_INFER_EC_HTTP_4XX, false, -1);
    check_error("http_503_date.http", SL_INFER_EC_HTTP_5XX, true, 10000);
}

static void test_retry_after_header_lines(void **state)
{
    char v[16];

    (void)state;
    assert_true(
        sl_infer_proto_retry_after("Retry-After: 7\r\n", 16, v, sizeof(v)));
    assert_string_equal(v, "7");
    assert_true(
        sl_infer_proto_retry_after("retry-after:\t 30 \r\n", 19, v, sizeof(v)));
    assert_string_equal(v, "30");
    /* x-ratelimit-* and look-alikes are not Retry-After */
    assert_false(sl_infer_proto_retry_after(
        "x-ratelimit-reset-requests: 20s\r\n", 33, v, sizeof(v)));
    assert_false(
        sl_infer_proto_retry_after("Retry-After-Ms: 5\r\n", 19, v, sizeof(v)));
    /* truncated to the buffer */
    assert_true(sl_infer_proto_retry_after(
        "Retry-After: Fri, 31 Dec 1999 23:59:59 GMT\r\n", 44, v, sizeof(v)));
    assert_string_equal(v, "Fri, 31 Dec 199");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_replies),
        cmocka_unit_test(test_embedding_replies),
        cmocka_unit_test(test_any_json),
        cmocka_unit_test(test_error_replies),
        cmocka_unit_test(test_retry_after_header_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
