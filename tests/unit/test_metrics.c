/*
 * Prometheus text: families, escaped labels, cumulative histogram
 * buckets; and the HTTP listener that serves them (routes, 404, 405,
 * 413, Retry-After), on a loopback port of its own.
 */
#include "cmocka_shim.h"

#include "http_server.h"
#include "metrics.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_text_format(void **state)
{
    (void)state;
    struct sl_prom p;
    static const double bounds[] = {1, 10};
    struct sl_histo h;

    sl_histo_init(&h, bounds, 2);
    sl_histo_observe(&h, 0.5);
    sl_histo_observe(&h, 5);
    sl_histo_observe(&h, 50);
    assert_int_equal(sl_prom_init(&p, 1 << 16), 0);
    sl_prom_family(&p, "sluice_messages_total", "counter", "Messages.");
    sl_prom_sample(&p, "sluice_messages_total", 42, "source", "a\"b\\c\nd",
                   NULL);
    sl_prom_sample(&p, "sluice_up", 1, NULL);
    sl_prom_histo(&p, "sluice_latency_ms", &h, "backend", "x", NULL);
    assert_string_equal(
        p.buf, "# HELP sluice_messages_total Messages.\n"
               "# TYPE sluice_messages_total counter\n"
               "sluice_messages_total{source=\"a\\\"b\\\\c\\nd\"} 42\n"
               "sluice_up 1\n"
               "sluice_latency_ms_bucket{backend=\"x\",le=\"1\"} 1\n"
               "sluice_latency_ms_bucket{backend=\"x\",le=\"10\"} 2\n"
               "sluice_latency_ms_bucket{backend=\"x\",le=\"+Inf\"} 3\n"
               "sluice_latency_ms_sum{backend=\"x\"} 55.5\n"
               "sluice_latency_ms_count{backend=\"x\"} 3\n");
    sl_prom_free(&p);
}

static void test_cap(void **state)
{
    (void)state;
    struct sl_prom p;
    assert_int_equal(sl_prom_init(&p, 32), 0);
    for (int i = 0; i < 10; i++)
        sl_prom_sample(&p, "sluice_long_metric_name", i, NULL);
    assert_true(p.truncated);
    assert_true(p.len < 32);
    sl_prom_free(&p);
}

static void hello(void *arg, const struct sl_http_request *req,
                  struct sl_http_response *res)
{
    (void)arg;
    char text[128];
    snprintf(text, sizeof(text), "%s %s %zu", req->method, req->path,
             req->body_len);
    sl_http_response_text(res, 200, "text/plain", text);
}

static void busy(void *arg, const struct sl_http_request *req,
                 struct sl_http_response *res)
{
    (void)arg;
    (void)req;
    sl_http_response_text(res, 429, "application/json", "{}");
    res->retry_after_s = 3;
}

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    strncat(arg, data, size * n < 1000 ? size * n : 1000);
    return size * n;
}

/* Request 'path'; returns the status and fills body/retry_after. */
static long fetch(int port, const char *method, const char *path,
                  const char *post, size_t post_len, char *body, char *headers)
{
    char url[128];
    CURL *c = curl_easy_init();
    long status = 0;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    body[0] = headers[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (post) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)post_len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void test_server_routes(void **state)
{
    (void)state;
    char err[256], body[1024], headers[1024];
    struct sl_http_server *srv =
        sl_http_server_new("127.0.0.1:0", 16, 2, err, sizeof(err));

    assert_non_null(srv);
    sl_http_server_route(srv, "GET", "/hello", hello, NULL);
    sl_http_server_route(srv, "POST", "/hello", hello, NULL);
    sl_http_server_route(srv, "POST", "/busy", busy, NULL);
    assert_int_equal(sl_http_server_start(srv, err, sizeof(err)), 0);
    int port = sl_http_server_port(srv);
    assert_true(port > 0);

    assert_int_equal(fetch(port, "GET", "/hello", NULL, 0, body, headers), 200);
    assert_string_equal(body, "GET /hello 0");
    assert_int_equal(
        fetch(port, "POST", "/hello", "{\"a\":1}", 7, body, headers), 200);
    assert_string_equal(body, "POST /hello 7");
    assert_int_equal(fetch(port, "GET", "/nope", NULL, 0, body, headers), 404);
    assert_int_equal(fetch(port, "DELETE", "/hello", NULL, 0, body, headers),
                     405);
    assert_int_equal(
        fetch(port, "POST", "/hello", "0123456789abcdefXYZ", 19, body, headers),
        413);
    assert_int_equal(fetch(port, "POST", "/busy", "{}", 2, body, headers), 429);
    assert_non_null(strstr(headers, "Retry-After: 3"));
    sl_http_server_destroy(srv);
}

static void test_bad_listen(void **state)
{
    (void)state;
    char err[256];
    assert_null(sl_http_server_new("nowhere", 16, 1, err, sizeof(err)));
    assert_string_equal(err, "nowhere: expected host:port");
    assert_null(sl_http_server_new("999.1.1.1:80", 16, 1, err, sizeof(err)));
    assert_string_equal(err, "999.1.1.1:80: expected an IPv4 host:port");
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_format),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_server_routes),
        cmocka_unit_test(test_bad_listen),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
