/*
 * mock-infer end to end: starts the built binary on an ephemeral port and
 * checks over HTTP that every route gives its documented answer, that each
 * fault looks to a client as it should, that every request of many
 * keep-alive connections at once is answered, and that SIGTERM stops it
 * cleanly.
 */
#include "harness.h"

#include "hash.h"

#include <jansson.h>

#define START_DEADLINE_MS 10000 /* port file and /healthz */
#define EXIT_DEADLINE_MS 10000  /* exit after SIGTERM */
#define BODY_KEEP (1024 * 1024) /* bytes of a reply kept for checks */
#define HUGE_BYTES (64ULL * 1024 * 1024)

static struct h_mock srv; /* the server under test */

struct reply {
    CURLcode rc;          /* curl's result */
    long status;          /* HTTP status, 0 without one */
    char *body;           /* first BODY_KEEP bytes, NUL-terminated */
    size_t len;           /* bytes kept */
    uint64_t total;       /* bytes received */
    char retry_after[64]; /* Retry-After value, or "" */
    int64_t elapsed_us;   /* wall time of the transfer */
    long connects;        /* new connections made */
};

/* The documented hash of mock-infer's deterministic outputs. */
static uint64_t fnv1a64(const char *s)
{
    return sl_fnv1a64(SL_FNV1A64_INIT, s, strlen(s));
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct reply *rep = arg;
    size_t n = size * nmemb, keep = n;

    if (rep->len + keep > BODY_KEEP)
        keep = BODY_KEEP - rep->len;
    memcpy(rep->body + rep->len, data, keep);
    rep->len += keep;
    rep->body[rep->len] = '\0';
    rep->total += n;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct reply *rep = arg;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";

    if (n > sizeof(name) - 1 && !strncasecmp(data, name, sizeof(name) - 1)) {
        const char *v = data + sizeof(name) - 1;
        size_t vlen = n - (sizeof(name) - 1);
        while (vlen > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            vlen--;
        }
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
            vlen--;
        if (vlen >= sizeof(rep->retry_after))
            vlen = sizeof(rep->retry_after) - 1;
        memcpy(rep->retry_after, v, vlen);
        rep->retry_after[vlen] = '\0';
    }
    return n;
}

struct call {
    const char *method;     /* "GET" or "POST" */
    const char *path;       /* "/predict/ner" */
    const char *body;       /* POST body, or NULL */
    const char *headers[6]; /* NULL-terminated extra headers */
    long timeout_ms;        /* 0 = 10 s */
    long low_speed_limit;   /* bytes/s, 0 = off */
    long low_speed_time;    /* seconds */
};

/* Perform 'c' on 'curl' (reused for keep-alive) or a fresh handle. */
static void perform(CURL *curl, const struct call *c, struct reply *rep)
{
    struct curl_slist *hdrs = NULL;
    char url[256];
    bool own = !curl;

    memset(rep, 0, sizeof(*rep));
    rep->body = malloc(BODY_KEEP + 1);
    assert_non_null(rep->body);
    rep->body[0] = '\0';
    if (own)
        curl = curl_easy_init();
    assert_non_null(curl);
    snprintf(url, sizeof(url), "%s%s", srv.url, c->path);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPGET, 1L);
    if (!strcmp(c->method, "POST")) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, c->body ? c->body : "");
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
    }
    for (size_t i = 0; i < 6 && c->headers[i]; i++)
        hdrs = curl_slist_append(hdrs, c->headers[i]);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, rep);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, rep);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS,
                     c->timeout_ms ? c->timeout_ms : 10000L);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, c->low_speed_limit);
    curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, c->low_speed_time);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);

    int64_t t0 = h_now_us();
    rep->rc = curl_easy_perform(curl);
    rep->elapsed_us = h_now_us() - t0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &rep->status);
    curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &rep->connects);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (own)
        curl_easy_cleanup(curl);
}

static void reply_free(struct reply *rep)
{
    free(rep->body);
    rep->body = NULL;
}

/* POST 'body' to 'path' and expect 'status'; returns the parsed body. */
static json_t *post_json(const char *path, const char *body, long status)
{
    struct call c = {.method = "POST", .path = path, .body = body};
    struct reply rep;
    json_error_t jerr;

    perform(NULL, &c, &rep);
    assert_int_equal(rep.rc, CURLE_OK);
    assert_int_equal(rep.status, status);
    json_t *j = json_loads(rep.body, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, rep.body);
    reply_free(&rep);
    return j;
}

/* POST and compare the raw body byte for byte. */
static void expect_body(const char *path, const char *body,
                        const char *expected)
{
    struct call c = {.method = "POST", .path = path, .body = body};
    struct reply rep;

    perform(NULL, &c, &rep);
    assert_int_equal(rep.rc, CURLE_OK);
    assert_int_equal(rep.status, 200);
    assert_string_equal(rep.body, expected);
    reply_free(&rep);
}

/* Start mock-infer and wait until /healthz answers "ok". */
static int start_server(void **state)
{
    (void)state;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (h_mock_start(&srv) != 0)
        return -1;
    int64_t deadline = h_now_ms() + START_DEADLINE_MS;
    for (;;) {
        struct call c = {
            .method = "GET", .path = "/healthz", .timeout_ms = 1000};
        struct reply rep;
        perform(NULL, &c, &rep);
        bool ok =
            rep.rc == CURLE_OK && rep.status == 200 && !strcmp(rep.body, "ok");
        reply_free(&rep);
        if (ok)
            return 0;
        if (h_now_ms() > deadline) {
            h_mock_stop(&srv);
            return -1;
        }
        h_pause();
    }
}

static int stop_server(void **state)
{
    (void)state;
    h_mock_cleanup(&srv);
    curl_global_cleanup();
    return 0;
}

static void test_chat_plain(void **state)
{
    (void)state;
    const char *text = "I love this, it is great!";
    json_t *j = post_json(
        "/v1/chat/completions",
        "{\"model\":\"mock-1\",\"temperature\":0,\"messages\":["
        "{\"role\":\"system\",\"content\":\"You are a classifier\"},"
        "{\"role\":\"user\",\"content\":\"ignore me\"},"
        "{\"role\":\"assistant\",\"content\":null},"
        "{\"role\":\"user\",\"content\":\"I love this, it is great!\"}]}",
        200);
    char id[64];

    snprintf(id, sizeof(id), "chatcmpl-%016llx",
             (unsigned long long)fnv1a64(text));
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    assert_string_equal(json_string_value(json_object_get(j, "object")),
                        "chat.completion");
    assert_int_equal(json_integer_value(json_object_get(j, "created")), 0);
    assert_string_equal(json_string_value(json_object_get(j, "model")),
                        "mock-1");
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    assert_int_equal(json_integer_value(json_object_get(choice, "index")), 0);
    assert_string_equal(
        json_string_value(json_object_get(choice, "finish_reason")), "stop");
    json_t *msg = json_object_get(choice, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")),
                        "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")),
                        "label: positive");
    /* 4 + 2 + 0 + 6 words of prompt; "label: positive" is 2. */
    json_t *usage = json_object_get(j, "usage");
    assert_int_equal(
        json_integer_value(json_object_get(usage, "prompt_tokens")), 12);
    assert_int_equal(
        json_integer_value(json_object_get(usage, "completion_tokens")), 2);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")),
                     14);
    json_decref(j);
}

static void test_chat_json_object(void **state)
{
    (void)state;
    json_t *j = post_json(
        "/v1/chat/completions",
        "{\"model\":\"m\",\"response_format\":{\"type\":\"json_object\"},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Bad, BAD and "
        "awful.\"}]}",
        200);
    json_t *choice = json_array_get(json_object_get(j, "choices"), 0);
    const char *content = json_string_value(
        json_object_get(json_object_get(choice, "message"), "content"));

    /* diff = -3: score (50 - 30) / 100.0 */
    assert_string_equal(content, "{\"label\":\"negative\",\"score\":0.2}");
    json_t *usage = json_object_get(j, "usage");
    assert_int_equal(
        json_integer_value(json_object_get(usage, "prompt_tokens")), 4);
    assert_int_equal(
        json_integer_value(json_object_get(usage, "completion_tokens")), 1);
    json_decref(j);
}

static void test_embeddings(void **state)
{
    (void)state;
    const char *inputs[] = {"hello world", "sluice"};
    json_t *j = post_json("/v1/embeddings",
                          "{\"model\":\"emb\",\"input\":[\"hello world\","
                          "\"sluice\"]}",
                          200);
    json_t *data = json_object_get(j, "data");

    assert_string_equal(json_string_value(json_object_get(j, "object")),
                        "list");
    assert_int_equal(json_array_size(data), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *item = json_array_get(data, i);
        json_t *vec = json_object_get(item, "embedding");
        uint64_t h = fnv1a64(inputs[i]);
        assert_string_equal(json_string_value(json_object_get(item, "object")),
                            "embedding");
        assert_int_equal(json_integer_value(json_object_get(item, "index")),
                         (json_int_t)i);
        assert_int_equal(json_array_size(vec), 8);
        for (unsigned d = 0; d < 8; d++) {
            double want = (double)((h >> (d * 8)) & 0xff) / 255.0;
            double got = json_real_value(json_array_get(vec, d));
            if (got != want)
                fail_msg("input %zu element %u: got %.17g, want %.17g", i, d,
                         got, want);
        }
    }
    json_t *usage = json_object_get(j, "usage");
    assert_int_equal(
        json_integer_value(json_object_get(usage, "prompt_tokens")), 3);
    json_decref(j);

    /* A single string is one input. */
    j = post_json("/v1/embeddings", "{\"model\":\"emb\",\"input\":\"sluice\"}",
                  200);
    assert_int_equal(json_array_size(json_object_get(j, "data")), 1);
    json_decref(j);
}

static void test_predict(void **state)
{
    (void)state;
    /* great, love: +2; terrible: -1 */
    expect_body("/predict/sentiment",
                "{\"text\":\"Great product, but terrible support. Love "
                "it!\"}",
                "{\"label\":\"positive\",\"score\":0.6}");
    expect_body("/predict/sentiment", "{\"text\":\"it arrived\"}",
                "{\"label\":\"neutral\",\"score\":0.5}");
    expect_body("/predict/sentiment",
                "{\"text\":\"bad bad bad bad bad bad worst\"}",
                "{\"label\":\"negative\",\"score\":0.0}");
    expect_body("/predict/ner",
                "{\"text\":\"Alice met Bob, in Paris. then london! NASA?!\"}",
                "{\"entities\":[{\"text\":\"Alice\",\"type\":\"PROPER\"},"
                "{\"text\":\"Bob\",\"type\":\"PROPER\"},"
                "{\"text\":\"Paris\",\"type\":\"PROPER\"},"
                "{\"text\":\"NASA\",\"type\":\"PROPER\"}]}");
    expect_body("/predict/summary",
                "{\"text\":\" one two\\tthree four  five six seven eight "
                "nine ten\\n\"}",
                "{\"summary\":\"one two three four five six seven "
                "eight\",\"words\":10}");
}

static void test_bad_requests(void **state)
{
    (void)state;
    json_t *j = post_json("/predict/sentiment", "{\"text\": ", 400);
    json_t *err = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(err, "type")),
                        "invalid_request_error");
    assert_non_null(json_string_value(json_object_get(err, "message")));
    json_decref(j);

    j = post_json("/predict/ner", "{\"txt\":\"Alice\"}", 400);
    err = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(err, "message")),
                        "missing field 'text'");
    json_decref(j);

    j = post_json("/predict/summary", "{\"text\":42}", 400);
    json_decref(j);
    j = post_json("/v1/chat/completions", "{\"model\":\"m\"}", 400);
    json_decref(j);
    j = post_json("/v1/nope", "{}", 404);
    json_decref(j);

    struct call c = {.method = "GET", .path = "/predict/ner"};
    struct reply rep;
    perform(NULL, &c, &rep);
    assert_int_equal(rep.status, 405);
    reply_free(&rep);
}

static void test_body_limit(void **state)
{
    (void)state;
    size_t n = 1024 * 1024 + 100;
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, ' ', n);
    memcpy(body, "{\"text\":\"", 9);
    body[n - 2] = '"';
    body[n - 1] = '}';
    body[n] = '\0';
    struct call c = {.method = "POST", .path = "/predict/ner", .body = body};
    struct reply rep;
    perform(NULL, &c, &rep);
    assert_int_equal(rep.status, 413);
    reply_free(&rep);
    free(body);
}

static void test_keepalive(void **state)
{
    (void)state;
    CURL *curl = curl_easy_init();
    struct call c = {.method = "POST",
                     .path = "/predict/sentiment",
                     .body = "{\"text\":\"good\"}"};
    struct reply rep;

    perform(curl, &c, &rep);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.connects, 1);
    reply_free(&rep);
    perform(curl, &c, &rep);
    assert_int_equal(rep.status, 200);
    assert_int_equal(rep.connects, 0); /* the connection was reused */
    reply_free(&rep);
    curl_easy_cleanup(curl);
}

static void fault_call(const char *fault, const char *extra, struct reply *rep,
                       long timeout_ms)
{
    char h[64];
    struct call c = {.method = "POST",
                     .path = "/predict/sentiment",
                     .body = "{\"text\":\"a good day\"}",
                     .timeout_ms = timeout_ms};

    snprintf(h, sizeof(h), "X-Mock-Fault: %s", fault);
    c.headers[0] = h;
    c.headers[1] = extra;
    perform(NULL, &c, rep);
}

static void test_fault_statuses(void **state)
{
    (void)state;
    struct reply rep;

    fault_call("500", NULL, &rep, 0);
    assert_int_equal(rep.rc, CURLE_OK);
    assert_int_equal(rep.status, 500);
    assert_non_null(strstr(rep.body, "\"error\""));
    reply_free(&rep);

    fault_call("503", NULL, &rep, 0);
    assert_int_equal(rep.status, 503);
    assert_string_equal(rep.retry_after, "1");
    reply_free(&rep);

    fault_call("429", NULL, &rep, 0);
    assert_int_equal(rep.status, 429);
    assert_string_equal(rep.retry_after, "1");
    reply_free(&rep);

    fault_call("429", "X-Mock-Retry-After: 7", &rep, 0);
    assert_int_equal(rep.status, 429);
    assert_string_equal(rep.retry_after, "7");
    reply_free(&rep);

    fault_call("no-such-fault", NULL, &rep, 0);
    assert_int_equal(rep.status, 400);
    reply_free(&rep);
}

static void test_fault_reset(void **state)
{
    (void)state;
    struct reply rep;

    fault_call("reset", NULL, &rep, 0);
    assert_int_not_equal(rep.rc, CURLE_OK);
    assert_true(rep.rc == CURLE_GOT_NOTHING || rep.rc == CURLE_RECV_ERROR);
    assert_int_equal(rep.status, 0);
    reply_free(&rep);
}

static void test_fault_bad_json(void **state)
{
    (void)state;
    struct reply rep;
    json_error_t jerr;

    fault_call("bad-json", NULL, &rep, 0);
    assert_int_equal(rep.rc, CURLE_OK);
    assert_int_equal(rep.status, 200);
    assert_true(rep.len > 0);
    assert_null(json_loadb(rep.body, rep.len, 0, &jerr));
    reply_free(&rep);
}

static void test_fault_huge(void **state)
{
    (void)state;
    struct reply rep;
    json_error_t jerr;

    fault_call("huge", NULL, &rep, 30000);
    assert_int_equal(rep.rc, CURLE_OK);
    assert_int_equal(rep.status, 200);
    assert_true(rep.total == HUGE_BYTES);
    assert_memory_equal(rep.body, "{\"data\":\"xxxx", 13);
    assert_null(json_loadb(rep.body, rep.len, 0, &jerr)); /* only a prefix */
    reply_free(&rep);
}

static void test_fault_timeout(void **state)
{
    (void)state;
    struct reply rep;

    fault_call("timeout", NULL, &rep, 1000);
    assert_int_equal(rep.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(rep.status, 0);
    /* Held until the client's 1 s timeout: libcurl's clock may call it a
     * few ms early (seen once: just under 1,000,000 us). */
    assert_true(rep.elapsed_us >= 900000);
    assert_true(rep.elapsed_us < 5000000);
    reply_free(&rep);
}

static void test_fault_trickle(void **state)
{
    (void)state;
    struct reply rep;
    struct call c = {.method = "POST",
                     .path = "/predict/sentiment",
                     .body = "{\"text\":\"a good day\"}",
                     .headers = {"X-Mock-Fault: trickle"},
                     .timeout_ms = 30000,
                     /* 2 bytes/s is far below 100 bytes/s for 1 s */
                     .low_speed_limit = 100,
                     .low_speed_time = 1};

    perform(NULL, &c, &rep);
    assert_int_equal(rep.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(rep.status, 200); /* headers came at once */
    assert_true(rep.len < 10);         /* the body did not */
    assert_true(rep.elapsed_us >= 1000000);
    assert_true(rep.elapsed_us < 10000000); /* the low-speed limit, not the
                                               30 s timeout */
    reply_free(&rep);
}

static void test_fault_times(void **state)
{
    (void)state;
    char key[64];
    long want[] = {500, 500, 200, 200};

    snprintf(key, sizeof(key), "X-Mock-Fault-Key: retry-%ld", (long)getpid());
    for (size_t i = 0; i < 4; i++) {
        struct call c = {
            .method = "POST",
            .path = "/predict/sentiment",
            .body = "{\"text\":\"good\"}",
            .headers = {"X-Mock-Fault: 500", "X-Mock-Fault-Times: 2", key}};
        struct reply rep;
        perform(NULL, &c, &rep);
        assert_int_equal(rep.rc, CURLE_OK);
        assert_int_equal(rep.status, want[i]);
        if (want[i] == 200)
            assert_string_equal(rep.body,
                                "{\"label\":\"positive\",\"score\":0.6}");
        reply_free(&rep);
    }
}

static void test_latency(void **state)
{
    (void)state;
    struct call c = {.method = "POST",
                     .path = "/predict/summary",
                     .body = "{\"text\":\"slow\"}",
                     .headers = {"X-Mock-Latency-Ms: 50"}};
    struct reply rep;

    perform(NULL, &c, &rep);
    assert_int_equal(rep.status, 200);
    assert_true(rep.elapsed_us >= 50000);
    reply_free(&rep);
}

static void test_stats(void **state)
{
    (void)state;
    struct call c = {.method = "GET", .path = "/stats"};
    struct reply rep;
    json_error_t jerr;

    perform(NULL, &c, &rep);
    assert_int_equal(rep.status, 200);
    json_t *j = json_loads(rep.body, 0, &jerr);
    assert_non_null(j);
    assert_true(json_integer_value(json_object_get(j, "requests")) > 10);
    json_t *eps = json_object_get(j, "endpoints");
    assert_true(json_integer_value(json_object_get(eps, "chat")) >= 2);
    json_t *faults = json_object_get(j, "faults");
    assert_true(json_integer_value(json_object_get(faults, "429")) >= 2);
    json_decref(j);
    reply_free(&rep);
}

/* ---- many keep-alive connections, as sluice's workers hold them ---- */

#define LOAD_DEADLINE_MS 10000 /* for every request of a round */
#define LOAD_CONNS_MAX 256

/* The request every load connection sends, and the whole answer to it. */
static const char load_request[] =
    "POST /predict/sentiment HTTP/1.1\r\nHost: mock\r\n"
    "Content-Type: application/json\r\nContent-Length: 15\r\n\r\n"
    "{\"text\":\"good\"}";
static const char load_answer_body[] = "{\"label\":\"positive\",\"score\":0.6}";

struct load_conn {
    int fd;         /* keep-alive connection to the server */
    char buf[1024]; /* the answer so far */
    size_t len;     /* bytes in buf */
    bool waiting;   /* a request is out and not answered yet */
};

static struct h_mock load_srv; /* a server of its own, with its options */

static int load_srv_teardown(void **state)
{
    (void)state;
    if (load_srv.proc.pid > 0)
        kill(load_srv.proc.pid, SIGCONT); /* in case a test left it stopped */
    h_mock_cleanup(&load_srv);
    memset(&load_srv, 0, sizeof(load_srv));
    return 0;
}

static void load_connect(struct load_conn *c, size_t n, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

    for (size_t i = 0; i < n; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_true(c[i].fd >= 0);
        if (connect(c[i].fd, (struct sockaddr *)&sa, sizeof(sa)))
            fail_msg("connect to mock-infer: %s", strerror(errno));
    }
}

static void load_close(struct load_conn *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        close(c[i].fd);
}

static void load_send(struct load_conn *c)
{
    ssize_t w = write(c->fd, load_request, sizeof(load_request) - 1);

    assert_int_equal(w, (ssize_t)(sizeof(load_request) - 1));
    c->len = 0;
    c->waiting = true;
}

/* True once c->buf holds a whole answer; checks it is the expected one. */
static bool load_answered(struct load_conn *c)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);

    if (!end)
        return false;
    size_t head = (size_t)(end + 4 - c->buf);
    size_t body = sizeof(load_answer_body) - 1;
    if (c->len < head + body)
        return false;
    c->buf[c->len] = '\0';
    if (strncmp(c->buf, "HTTP/1.1 200 ", 13) ||
        !strcasestr(c->buf, "\r\nContent-Length: 32\r\n") ||
        c->len != head + body || strcmp(c->buf + head, load_answer_body))
        fail_msg("unexpected answer: %s", c->buf);
    return true;
}

/*
 * Collect the answers of every waiting connection of 'c[n]' until all
 * are in or the deadline passes; with 'sent', each answered connection
 * sends its next request while fewer than 'total' were sent (counted in
 * *sent).  Returns how many requests were answered.
 */
static size_t load_collect(struct load_conn *c, size_t n, size_t *sent,
                           size_t total, int64_t deadline_ms)
{
    struct pollfd pfd[LOAD_CONNS_MAX];
    size_t answered = 0, waiting = 0;

    assert_true(n <= LOAD_CONNS_MAX);
    for (size_t i = 0; i < n; i++)
        waiting += c[i].waiting;
    while (waiting > 0) {
        int64_t left = deadline_ms - h_now_ms();
        if (left <= 0)
            break;
        for (size_t i = 0; i < n; i++)
            pfd[i] = (struct pollfd){.fd = c[i].waiting ? c[i].fd : -1,
                                     .events = POLLIN};
        int k = poll(pfd, (nfds_t)n, (int)left);
        assert_true(k >= 0 || errno == EINTR);
        for (size_t i = 0; k > 0 && i < n; i++) {
            if (!pfd[i].revents)
                continue;
            ssize_t r = read(c[i].fd, c[i].buf + c[i].len,
                             sizeof(c[i].buf) - 1 - c[i].len);
            if (r <= 0)
                fail_msg("mock-infer closed connection %zu (%zu answered)", i,
                         answered);
            c[i].len += (size_t)r;
            if (!load_answered(&c[i]))
                continue;
            c[i].waiting = false;
            waiting--;
            answered++;
            if (sent && *sent < total) {
                load_send(&c[i]);
                (*sent)++;
                waiting++;
            }
        }
    }
    return answered;
}

/* How many established connections to 'port' have at least 'min_bytes'
 * waiting in the server's receive queue (from /proc/net/tcp). */
static size_t server_rx_sockets(int port, size_t min_bytes)
{
    FILE *f = fopen("/proc/net/tcp", "r");
    char line[512];
    size_t n = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        unsigned lport, st, rx;
        if (sscanf(line, " %*u: %*x:%x %*x:%*x %x %*x:%x", &lport, &st, &rx) ==
                3 &&
            (int)lport == port && st == 1 /* ESTABLISHED */ && rx >= min_bytes)
            n++;
    }
    fclose(f);
    return n;
}

/*
 * 128 connections to one HTTP thread each send a request at the same
 * moment.  libmicrohttpd 0.9.75's epoll loop, when epoll_wait() returned
 * a full batch of 128 events, waited again with the full timeout before
 * handling any of them: every request stayed unanswered until the
 * connection timeout (120 s).  The server is stopped (SIGSTOP) while the
 * requests arrive, so that all 128 are ready at its next epoll_wait().
 */
static void test_full_event_batch(void **state)
{
    const char *args[] = {"--threads", "1", NULL};
    struct load_conn c[128];
    size_t n = 128;

    (void)state;
    assert_int_equal(h_mock_start_args(&load_srv, args), 0);
    load_connect(c, n, load_srv.port);
    /* One answered request each: all are accepted and idle. */
    for (size_t i = 0; i < n; i++)
        load_send(&c[i]);
    assert_int_equal(load_collect(c, n, NULL, 0, h_now_ms() + LOAD_DEADLINE_MS),
                     n);

    /* Stopped means every thread of it: waitpid() reports the stop once
     * the last one has stopped. */
    int st;
    assert_int_equal(kill(load_srv.proc.pid, SIGSTOP), 0);
    assert_int_equal(waitpid(load_srv.proc.pid, &st, WUNTRACED),
                     load_srv.proc.pid);
    assert_true(WIFSTOPPED(st));
    for (size_t i = 0; i < n; i++)
        load_send(&c[i]);
    int64_t end = h_now_ms() + LOAD_DEADLINE_MS;
    while (server_rx_sockets(load_srv.port, sizeof(load_request) - 1) < n) {
        if (h_now_ms() > end)
            fail_msg("the requests did not reach the server's sockets "
                     "(%zu of %zu)",
                     server_rx_sockets(load_srv.port, 1), n);
        h_pause();
    }
    assert_int_equal(kill(load_srv.proc.pid, SIGCONT), 0);

    size_t answered =
        load_collect(c, n, NULL, 0, h_now_ms() + LOAD_DEADLINE_MS);
    if (answered != n)
        fail_msg("%zu of %zu requests answered within %d ms", answered, n,
                 LOAD_DEADLINE_MS);
    load_close(c, n);
}

/*
 * The latency bench's shape: 256 keep-alive connections, 2 threads,
 * 20 ms per answer; every one of 5120 requests is answered.
 */
static void test_latency_many_connections(void **state)
{
    const char *args[] = {"--threads", "2", "--latency-ms", "20", NULL};
    struct load_conn c[LOAD_CONNS_MAX];
    size_t n = LOAD_CONNS_MAX, total = 20 * LOAD_CONNS_MAX, sent = 0;

    (void)state;
    assert_int_equal(h_mock_start_args(&load_srv, args), 0);
    load_connect(c, n, load_srv.port);
    for (size_t i = 0; i < n; i++, sent++)
        load_send(&c[i]);
    size_t answered = 0;
    for (;;) {
        size_t before = answered;
        /* The deadline restarts with every answer: a stall is the time
         * without one. */
        answered +=
            load_collect(c, n, &sent, total, h_now_ms() + LOAD_DEADLINE_MS);
        if (answered == total || answered == before)
            break;
    }
    if (answered != total)
        fail_msg("%zu of %zu requests answered (%zu sent); none for %d ms",
                 answered, total, sent, LOAD_DEADLINE_MS);
    load_close(c, n);
}

/* Last: the server must stop on SIGTERM with a summary line. */
static void test_sigterm(void **state)
{
    (void)state;
    char log[128];

    /* A request held by 'timeout' must not keep it from stopping. */
    struct reply rep;
    fault_call("timeout", NULL, &rep, 200);
    reply_free(&rep);

    assert_int_equal(kill(srv.proc.pid, SIGTERM), 0);
    assert_true(h_wait_exit(&srv.proc, EXIT_DEADLINE_MS));
    assert_int_equal(srv.proc.status, 0); /* exited, with status 0 */

    snprintf(log, sizeof(log), "%s/mock.log", srv.dir);
    FILE *f = fopen(log, "r");
    char line[8192];
    json_t *summary = NULL;
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "message"));
        if (m && !strncmp(m, "stopped:", 8)) {
            json_decref(summary);
            summary = j;
        } else {
            json_decref(j);
        }
    }
    fclose(f);
    assert_non_null(summary);
    assert_true(json_integer_value(json_object_get(summary, "requests")) > 10);
    assert_true(json_is_object(json_object_get(summary, "endpoints")));
    assert_true(json_is_object(json_object_get(summary, "faults")));
    assert_true(json_is_integer(json_object_get(summary, "mean_latency_us")));
    json_decref(summary);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_plain),
        cmocka_unit_test(test_chat_json_object),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_bad_requests),
        cmocka_unit_test(test_body_limit),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_fault_statuses),
        cmocka_unit_test(test_fault_reset),
        cmocka_unit_test(test_fault_bad_json),
        cmocka_unit_test(test_fault_huge),
        cmocka_unit_test(test_fault_timeout),
        cmocka_unit_test(test_fault_trickle),
        cmocka_unit_test(test_fault_times),
        cmocka_unit_test(test_latency),
        cmocka_unit_test(test_stats),
        cmocka_unit_test_teardown(test_full_event_batch, load_srv_teardown),
        cmocka_unit_test_teardown(test_latency_many_connections,
                                  load_srv_teardown),
        cmocka_unit_test(test_sigterm),
    };

    return cmocka_run_group_tests(tests, start_server, stop_server);
}
