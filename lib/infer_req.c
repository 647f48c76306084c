/*
 * The HTTP requests of an inference worker: a request waits for admission
 * (concurrency cap, rate, breaker) or a retry timer, is sent through the
 * worker's libcurl multi handle, and its reply becomes values for the
 * calls it carries (infer_proto.c reads it), a retry, or errors, each
 * logged rate-limited.  The worker's thread only.
 */
#include "infer_worker_int.h"

#include "dlist.h"
#include "err.h"
#include "log.h"
#include "retry.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static void log_breaker(struct sl_infer_worker *w, size_t be, int state);
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg);
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg);

/* ---- requests ---- */

/* Set the state of 'req', keeping w->waitq the list of waiting ones. */
static void req_set_state(struct sl_infer_worker *w, struct req *req,
                          enum req_state state)
{
    bool was = req->state == REQ_WAIT, is = state == REQ_WAIT;

    req->state = state;
    if (was == is)
        return;
    if (is)
        SL_DLIST_PUSH(w->waitq, req, wprev, wnext);
    else
        SL_DLIST_UNLINK(w->waitq, req, wprev, wnext);
}

struct req *sl_infer_req_new(struct sl_infer_worker *w, size_t be,
                             size_t ncalls, char *body)
{
    struct req *req = w->req_free;

    if (req && req->calls_cap >= ncalls) {
        /* A kept one: its calls array and reply buffer serve again. */
        struct call **calls = req->calls;
        size_t calls_cap = req->calls_cap, resp_cap = req->resp_cap;
        char *resp = req->resp;
        w->req_free = req->next;
        w->req_free_cnt--;
        memset(req, 0, sizeof(*req));
        memset(calls, 0, ncalls * sizeof(*calls));
        req->calls = calls;
        req->calls_cap = calls_cap;
        req->resp = resp;
        req->resp_cap = resp_cap;
    } else {
        req = calloc(1, sizeof(*req));
        if (!req || !(req->calls = calloc(ncalls, sizeof(*req->calls)))) {
            free(req);
            free(body);
            return NULL;
        }
        req->calls_cap = ncalls;
    }
    req->be = be;
    req->body = body;
    req->due_ms = sl_mono_ms();
    req_set_state(w, req, REQ_WAIT);
    SL_DLIST_PUSH(w->reqs, req, prev, next);
    return req;
}

void sl_infer_req_attach(struct req *req, struct call *call)
{
    call->req = req;
    call->slot = req->ncalls;
    req->calls[req->ncalls++] = call;
    req->nattached++;
}

/* Keep idle 'easy' of backend 'be' configured for its next request. */
static void easy_put(struct sl_infer_worker *w, size_t be, CURL *easy)
{
    struct easy_pool *p = &w->pools[be];

    if (p->cnt < EASY_FREE_MAX)
        p->easy[p->cnt++] = easy;
    else
        curl_easy_cleanup(easy);
}

/* Whether a proxy variable libcurl reads is set. */
static bool proxy_env(void)
{
    static const char *const names[] = {
        "http_proxy",  "HTTP_PROXY", "https_proxy", "HTTPS_PROXY",
        "all_proxy",   "ALL_PROXY",  "no_proxy",    "NO_PROXY",
        "socks_proxy", "SOCKS_PROXY"};

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (getenv(names[i]))
            return true;
    return false;
}

/* Set what every request of backend 'be' shares on new handle 'e'. */
static void easy_configure(struct sl_infer_worker *w, size_t be, CURL *e)
{
    struct sl_infer_backend *b = &w->inf->be[be];
    const struct sl_config_backend *bc = b->conf;

    struct easy_pool *p = &w->pools[be];

    /* Parsed once: libcurl copies a parsed URL per transfer instead of
     * parsing the text again.  Without one, the text serves. */
    if (!p->url && (p->url = curl_url()) &&
        curl_url_set(p->url, CURLUPART_URL, b->url,
                     CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) !=
            CURLUE_OK) {
        curl_url_cleanup(p->url);
        p->url = NULL;
    }
    if (p->url)
        curl_easy_setopt(e, CURLOPT_CURLU, p->url);
    else
        curl_easy_setopt(e, CURLOPT_URL, b->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    if (!proxy_env()) {
        /* What libcurl would find in the environment on every transfer:
         * no proxy.  Said once, it looks no more. */
        curl_easy_setopt(e, CURLOPT_PROXY, "");
        curl_easy_setopt(e, CURLOPT_NOPROXY, "");
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, b->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, sl_infer_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, w);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, sl_infer_close_socket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, w);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)bc->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)bc->connect_timeout_ms);
    if (bc->low_speed_time_ms > 0 && bc->low_speed_bytes_per_s > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
                         (long)bc->low_speed_bytes_per_s);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME,
                         (long)((bc->low_speed_time_ms + 999) / 1000));
    }
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    /* Offer gzip only, not every encoding libcurl has ("deflate, gzip, br,
     * zstd"): servers that compress all have it, and each header byte
     * costs libcurl's printf engine ~100 instructions a request (perf
     * #15).  A reply in another encoding is still decoded. */
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");
    if (bc->kind == SL_CONFIG_BACKEND_HTTP_JSON &&
        bc->method == SL_CONFIG_HTTP_GET) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (bc->kind == SL_CONFIG_BACKEND_HTTP_JSON &&
               bc->method == SL_CONFIG_HTTP_PUT) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
    }
}

/* ---- failure lines ---- */

/*
 * What happens to the calls of 'req' once it gives up, as their steps say
 * (the first attached call's step: a request serves one backend).
 */
static const char *give_up_action(struct sl_infer_worker *w, struct req *req)
{
    for (size_t i = 0; i < req->ncalls; i++) {
        if (!req->calls[i])
            continue;
        const struct sl_config_step *st =
            &w->inf->cfg->steps[req->calls[i]->job->step];
        if (st->mode == SL_CONFIG_MODE_FIRST)
            return "giving up, another backend of the step may answer";
        if (st->on_error == SL_CONFIG_ON_ERROR_PARTIAL)
            return "giving up, the result records the error (on_error: "
                   "partial)";
        break;
    }
    return "giving up, the message fails (dead letter, or the gateway's "
           "error answer)";
}

void sl_infer_log_failure(struct sl_infer_worker *w, size_t be,
                          const struct call_err *ce, int attempt,
                          int max_attempts, const char *action)
{
    struct sl_infer_backend *b = &w->inf->be[be];
    const char *name = b->conf->name;
    const char *cls = sl_infer_errclass_name(ce->ec);

    if (!sl_log_enabled(SL_LOG_WARN))
        return;
    json_t *f = json_pack("{s:s, s:s, s:i}", "backend", name, "class", cls,
                          "attempt", attempt);
    if (max_attempts > 0)
        sl_log_limited(&b->log[ce->ec], sl_mono_ms(), SL_LOG_WARN, "infer", f,
                       "backend '%s' failed (%s) on attempt %d of %d: %s; %s",
                       name, cls, attempt, max_attempts, ce->text, action);
    else
        sl_log_limited(&b->log[ce->ec], sl_mono_ms(), SL_LOG_WARN, "infer", f,
                       "backend '%s' failed (%s) after %d attempt(s): %s; %s",
                       name, cls, attempt, ce->text, action);
    json_decref(f);
}

/* The line of a breaker that opened or closed ('state'). */
static void log_breaker(struct sl_infer_worker *w, size_t be, int state)
{
    struct sl_infer_backend *b = &w->inf->be[be];
    const struct sl_config_breaker *bc = &b->conf->breaker;
    json_t *f = json_pack("{s:s, s:s}", "backend", b->conf->name, "breaker",
                          sl_breaker_state_name(state));

    if (state == SL_BREAKER_OPEN)
        sl_log_limited(&b->log[SL_INFER_LOG_BREAKER_OPEN], sl_mono_ms(),
                       SL_LOG_WARN, "infer", f,
                       "backend '%s': circuit breaker open; its calls fail "
                       "fast for %d ms, then %d probe(s) test it",
                       b->conf->name, bc->open_ms,
                       bc->half_open_probes > 0 ? bc->half_open_probes : 1);
    else
        sl_log_limited(&b->log[SL_INFER_LOG_BREAKER_CLOSED], sl_mono_ms(),
                       SL_LOG_WARN, "infer", f,
                       "backend '%s': circuit breaker closed; a probe "
                       "succeeded, calls pass again",
                       b->conf->name);
    json_decref(f);
}

/* Stop the transfer of 'req' and give back what it holds. */
static void req_stop(struct sl_infer_worker *w, struct req *req,
                     enum sl_breaker_outcome outcome)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];

    if (req->easy) {
        curl_multi_remove_handle(w->multi, req->easy);
        easy_put(w, req->be, req->easy);
        req->easy = NULL;
    }
    if (req->holds_slot) {
        sl_limiter_release(be->limiter);
        req->holds_slot = false;
    }
    if (req->holds_breaker) {
        int moved = sl_breaker_record(be->breaker, outcome, sl_mono_ms());
        req->holds_breaker = false;
        if (moved >= 0)
            log_breaker(w, req->be, moved);
    }
}

/* Release 'req' for good; freed by the next sweep. */
void sl_infer_req_release(struct sl_infer_worker *w, struct req *req,
                          enum sl_breaker_outcome outcome)
{
    req_stop(w, req, outcome);
    for (size_t i = 0; i < req->ncalls; i++) {
        if (req->calls[i]) {
            req->calls[i]->req = NULL;
            req->calls[i] = NULL;
        }
    }
    req->nattached = 0;
    req_set_state(w, req, REQ_DEAD);
}

void sl_infer_req_sweep(struct sl_infer_worker *w)
{
    struct req *req = w->reqs, *next;

    for (; req; req = next) {
        next = req->next;
        if (req->state != REQ_DEAD)
            continue;
        SL_DLIST_UNLINK(w->reqs, req, prev, next);
        free(req->body);
        req->body = NULL;
        if (req->resp_cap > RESP_KEEP_MAX) {
            free(req->resp);
            req->resp = NULL;
            req->resp_cap = 0;
        }
        if (w->req_free_cnt < REQ_FREE_MAX) {
            req->next = w->req_free;
            w->req_free = req;
            w->req_free_cnt++;
            continue;
        }
        free(req->calls);
        free(req->resp);
        free(req);
    }
}

/* Fail every call still carried by 'req' with 'ce', and release it. */
static void req_fail(struct sl_infer_worker *w, struct req *req,
                     const struct call_err *ce, enum sl_breaker_outcome outcome)
{
    req_stop(w, req, outcome);
    req_set_state(w, req, REQ_DONE);
    stats_error(w, req->be, ce->ec);
    for (size_t i = 0; i < req->ncalls; i++) {
        struct call *call = req->calls[i];
        if (call) {
            call->attempts = req->attempts;
            sl_infer_call_finish(w, call, NULL, ce);
        }
    }
    sl_infer_req_release(w, req, SL_BREAKER_CANCEL);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct req *req = arg;
    size_t n = size * nmemb;

    if (req->resp_len + n > req->resp_max) {
        req->too_large = true;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    if (req->resp_len + n + 1 > req->resp_cap) {
        size_t cap = req->resp_cap ? req->resp_cap : 4096;
        while (cap < req->resp_len + n + 1)
            cap *= 2;
        char *p = realloc(req->resp, cap);
        if (!p)
            return 0;
        req->resp = p;
        req->resp_cap = cap;
    }
    memcpy(req->resp + req->resp_len, data, n);
    req->resp_len += n;
    req->resp[req->resp_len] = '\0';
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    struct req *req = arg;
    size_t n = size * nmemb;

    sl_infer_proto_retry_after(data, n, req->retry_after,
                               sizeof(req->retry_after));
    return n;
}

static void log_request(struct sl_infer_worker *w, struct req *req)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];
    json_t *f = json_object();

    if (!f)
        return;
    json_object_set_new(f, "backend", json_string(be->conf->name));
    json_object_set_new(f, "url", json_string(be->url));
    json_object_set_new(f, "attempt", json_integer(req->attempts));
    json_object_set_new(f, "inputs", json_integer((json_int_t)req->ncalls));
    if (be->has_key) /* sl_log_fields() redacts it by its name */
        json_object_set_new(f, "authorization", json_string("Bearer"));
    sl_log_fields(SL_LOG_DEBUG, "infer", f, "request to backend '%s'",
                  be->conf->name);
    json_decref(f);
}

/* Start an attempt of admitted 'req'.  Returns 0 or -SL_ENOMEM. */
static int req_send(struct sl_infer_worker *w, struct req *req)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];
    const struct sl_config_backend *bc = be->conf;
    struct easy_pool *pool = &w->pools[req->be];
    CURL *e = pool->cnt ? pool->easy[--pool->cnt] : NULL;

    if (!e) {
        if (!(e = curl_easy_init()))
            return -SL_ENOMEM;
        easy_configure(w, req->be, e);
    }
    req->resp_len = 0;
    if (req->resp)
        req->resp[0] = '\0';
    req->too_large = false;
    req->retry_after[0] = '\0';
    req->resp_max = (size_t)bc->max_response_bytes;
    curl_easy_setopt(e, CURLOPT_PRIVATE, req);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
    if (bc->kind != SL_CONFIG_BACKEND_HTTP_JSON ||
        bc->method != SL_CONFIG_HTTP_GET) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         (long)(req->body ? strlen(req->body) : 0));
    }
    if (curl_multi_add_handle(w->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return -SL_ENOMEM;
    }
    req->easy = e;
    req_set_state(w, req, REQ_RUNNING);
    req->attempts++;
    req->sent_ms = sl_mono_ms();
    atomic_fetch_add_explicit(&be->stats.requests, 1, memory_order_relaxed);
    if (req->attempts > 1)
        atomic_fetch_add_explicit(&be->stats.retries, 1, memory_order_relaxed);
    if (sl_infer_proto_of(bc->kind)->render_batch) {
        atomic_fetch_add_explicit(&be->stats.batches, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&be->stats.batched_inputs, req->nattached,
                                  memory_order_relaxed);
    }
    if (sl_log_enabled(SL_LOG_DEBUG))
        log_request(w, req);
    return 0;
}

/* Try to admit waiting 'req' at 'now'; start it when admitted. */
void sl_infer_req_admit(struct sl_infer_worker *w, struct req *req, int64_t now)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];
    struct call_err ce = {0};
    int64_t wait_ms;

    if (sl_breaker_allow(be->breaker, now)) {
        ce.ec = SL_INFER_EC_BREAKER_OPEN;
        snprintf(ce.text, sizeof(ce.text),
                 "circuit breaker of backend '%s' is open; not called",
                 be->conf->name);
        sl_infer_log_failure(w, req->be, &ce, req->attempts, 0,
                             give_up_action(w, req));
        req_fail(w, req, &ce, SL_BREAKER_CANCEL);
        return;
    }
    int err = sl_limiter_try_acquire(be->limiter, now, &wait_ms);
    if (err) {
        sl_breaker_record(be->breaker, SL_BREAKER_CANCEL, now);
        req->due_ms = now + (err == -SL_EBUSY ? BUSY_RETRY_MS : wait_ms);
        return;
    }
    req->holds_slot = true;
    req->holds_breaker = true;
    if (req_send(w, req)) {
        ce.ec = SL_INFER_EC_INTERNAL;
        snprintf(ce.text, sizeof(ce.text), "cannot start a request: %s",
                 sl_strerror(-SL_ENOMEM));
        sl_infer_log_failure(w, req->be, &ce, req->attempts, 0,
                             give_up_action(w, req));
        req_fail(w, req, &ce, SL_BREAKER_CANCEL);
    }
}

/* ---- replies ---- */

/*
 * The value of a 2xx reply for the calls of 'req' and the tokens it used
 * (debited and counted), or an error.
 */
static int parse_reply(struct sl_infer_worker *w, struct req *req,
                       json_t **valuesp, struct sl_infer_usage *usage,
                       struct call_err *ce)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];

    if (sl_infer_proto_parse(bconf(w, req->be), req->resp, req->resp_len,
                             req->ncalls, be->proto_flags, valuesp, usage,
                             ce->text, sizeof(ce->text)) < 0) {
        ce->ec = SL_INFER_EC_BAD_JSON;
        return -1;
    }
    if (usage->total >= 0) {
        sl_limiter_debit_tokens(be->limiter, usage->total, sl_mono_ms());
        atomic_fetch_add_explicit(&be->stats.tokens_prompt,
                                  (uint_fast64_t)usage->prompt,
                                  memory_order_relaxed);
        atomic_fetch_add_explicit(&be->stats.tokens_completion,
                                  (uint_fast64_t)usage->completion,
                                  memory_order_relaxed);
    }
    return 0;
}

static void observe_latency(struct sl_infer_backend *be, int64_t ms)
{
    sl_histo_observe(&be->stats.latency, (double)ms / 1000.0);
}

/* A quoted, printable head of the reply, for error messages. */
static const char *reply_head(struct req *req, char *buf, size_t size)
{
    return sl_utf8_printable(
        req->resp ? req->resp : "",
        req->resp_len < BODY_SHOWN ? req->resp_len : BODY_SHOWN, buf, size);
}

/* Retry 'req' later when the class and budget allow; true when queued. */
static bool req_retry(struct sl_infer_worker *w, struct req *req,
                      const struct call_err *ce, int64_t now)
{
    const struct sl_config_retry *rc = &bconf(w, req->be)->retry;
    int64_t delay = -1;

    if (req->attempts >= rc->max_attempts)
        return false;
    if (!sl_err_retriable(sl_infer_errclass_err(ce->ec)))
        return false;
    if (req->retry_after[0])
        delay = sl_retry_after_ms(req->retry_after, (int64_t)time(NULL),
                                  rc->retry_after_max_ms);
    if (delay < 0)
        delay = sl_retry_backoff_ms(rc, req->attempts, &w->rng);
    stats_error(w, req->be, ce->ec);
    req->due_ms = now + delay;
    req_set_state(w, req, REQ_WAIT);
    return true;
}

/* A transfer of 'req' ended with 'rc'. */
void sl_infer_req_complete(struct sl_infer_worker *w, struct req *req,
                           CURLcode rc)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];
    struct call_err ce = {0};
    int64_t now = sl_mono_ms();
    long status = 0;
    char head[BODY_SHOWN * 4 + 8];
    enum sl_breaker_outcome outcome = SL_BREAKER_FAILURE;

    curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &status);
    observe_latency(be, now - req->sent_ms);
    if (rc == CURLE_OK && status >= 200 && status < 300) {
        json_t *values;
        struct sl_infer_usage usage;
        req_stop(w, req, SL_BREAKER_SUCCESS);
        req_set_state(w, req, REQ_DONE);
        if (parse_reply(w, req, &values, &usage, &ce) == 0) {
            atomic_fetch_add_explicit(&be->stats.successes, 1,
                                      memory_order_relaxed);
            for (size_t i = 0; i < req->ncalls; i++) {
                struct call *call = req->calls[i];
                if (call) {
                    struct sl_infer_usage share =
                        sl_infer_usage_share(&usage, req->ncalls, i);
                    call->attempts = req->attempts;
                    sl_infer_call_usage(w, call, &share);
                    sl_infer_call_finish(
                        w, call, json_incref(json_array_get(values, i)), NULL);
                }
            }
            json_decref(values);
            sl_infer_req_release(w, req, SL_BREAKER_CANCEL);
            return;
        }
        sl_infer_log_failure(w, req->be, &ce, req->attempts,
                             be->conf->retry.max_attempts,
                             give_up_action(w, req));
        req_fail(w, req, &ce, SL_BREAKER_CANCEL); /* bad_json: no retry */
        return;
    }
    if (rc == CURLE_WRITE_ERROR && req->too_large) {
        ce.ec = SL_INFER_EC_TOO_LARGE;
        snprintf(ce.text, sizeof(ce.text),
                 "reply larger than max_response_bytes (%d)",
                 be->conf->max_response_bytes);
    } else if (rc == CURLE_OPERATION_TIMEDOUT) {
        ce.ec = SL_INFER_EC_TIMEOUT;
        snprintf(ce.text, sizeof(ce.text),
                 "%s (timeout_ms %d, at least %d "
                 "bytes/s over %d ms)",
                 curl_easy_strerror(rc), be->conf->timeout_ms,
                 be->conf->low_speed_bytes_per_s, be->conf->low_speed_time_ms);
    } else if (rc != CURLE_OK) {
        ce.ec = SL_INFER_EC_CONNECT;
        snprintf(ce.text, sizeof(ce.text), "%s", curl_easy_strerror(rc));
    } else {
        ce.status = status;
        ce.ec = sl_infer_proto_status_class(status);
        if (ce.ec != SL_INFER_EC_HTTP_5XX)
            outcome = SL_BREAKER_SUCCESS; /* the server is alive */
        snprintf(ce.text, sizeof(ce.text), "HTTP %ld: %s", status,
                 reply_head(req, head, sizeof(head)));
    }
    req_stop(w, req, outcome);
    if (req_retry(w, req, &ce, now)) {
        char action[64];
        for (size_t i = 0; i < req->ncalls; i++)
            if (req->calls[i])
                req->calls[i]->attempts = req->attempts;
        snprintf(action, sizeof(action), "retrying in %lld ms",
                 (long long)(req->due_ms - now));
        sl_infer_log_failure(w, req->be, &ce, req->attempts,
                             be->conf->retry.max_attempts, action);
        return;
    }
    sl_infer_log_failure(w, req->be, &ce, req->attempts,
                         be->conf->retry.max_attempts, give_up_action(w, req));
    req_fail(w, req, &ce, SL_BREAKER_CANCEL);
}
