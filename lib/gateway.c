/*
 * The gateway: HTTP handler threads parse and admit a request, queue it
 * for the gateway thread and wait on the request's own condition
 * variable; the gateway thread owns one sl_infer_worker, submits what
 * was queued and drives every transfer, then hands each outcome back.
 * No handler thread ever touches curl.
 */
#include "gateway.h"
#include "clock.h"
#include "dlist.h"
#include "err.h"
#include "jsontext.h"
#include "log.h"
#include "msg.h"
#include "row.h"
#include "row_submit.h"
#include "utf8.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MARGIN_MS 2000    /* budget beyond the steps' own deadlines */
#define PROGRESS_MS 1000  /* longest progress() wait; wakeup cuts it */
#define SINK_WAIT_MS 5000 /* how long a handler waits for sink room */
#define SINK_TRY_MS 100   /* per sl_sink_pg_submit() try */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

/* Latency bounds in seconds, for the 200 answers' histogram. */
static const double latency_bounds_s[] = {
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30};

enum req_state {
    REQ_QUEUED,  /* waiting for the gateway thread */
    REQ_RUNNING, /* submitted to the infer worker */
    REQ_DONE,    /* outcome filled in; off every list */
};

/* One request between its handler and the gateway thread. */
struct gw_req {
    struct gw_req *next;         /* queue or running list */
    struct gw_req *prev;         /* running list only */
    json_t *doc;                 /* the parsed body; owned, and handed
                                    to the gateway thread with 'r' */
    enum req_state state;        /* guarded by gw->mu */
    bool abandoned;              /* the handler gave up: whoever finishes
                                    the request frees it */
    pthread_cond_t cv;           /* signalled when state becomes DONE */
    enum sl_infer_status status; /* outcome, when 'stop_status' is 0 */
    json_t *results;             /* {backend: value}; owned */
    json_t *errors;              /* {backend: {...}}; owned */
    json_t *timings;             /* {backend: ms, "total": ms}; owned */
    char *reason;                /* FAILED: why; owned */
    bool decode;                 /* FAILED at rendering the templates */
    bool deadline;               /* FAILED: a step's deadline passed */
    int stop_status;             /* nonzero: answer this status with
                                    'stop_text' (503 stopping, 500 memory) */
    const char *stop_text;       /* static */
};

struct sl_gateway {
    const struct sl_config *cfg;   /* borrowed */
    struct sl_sink_pg *sink;       /* borrowed; NULL: no rows */
    char replica_id[48];           /* rows' entry_id (fits its column) */
    char worker[160];              /* rows' worker column */
    int64_t budget_ms;             /* longest wait for an outcome */
    struct sl_infer_worker *iw;    /* owned by the gateway thread */
    pthread_t thread;              /* the gateway thread */
    bool started;                  /* 'thread' is running or joinable */
    pthread_mutex_t mu;            /* guards what follows */
    pthread_cond_t cv;             /* gateway thread: work or stop */
    pthread_cond_t idle_cv;        /* drain: inflight reached 0 */
    struct gw_req *queue;          /* FIFO of REQ_QUEUED */
    struct gw_req **queue_tail;    /* its tail link */
    struct gw_req *running;        /* REQ_RUNNING, doubly linked */
    bool stop;                     /* the gateway thread must exit */
    _Atomic bool draining;         /* refuse new requests */
    _Atomic int64_t last_seq;      /* last row offset given out */
    struct sl_gateway_stats stats; /* metrics */
};

/* ---- requests ---- */

static void req_free(struct gw_req *r)
{
    if (!r)
        return;
    json_decref(r->doc);
    json_decref(r->results);
    json_decref(r->errors);
    json_decref(r->timings);
    free(r->reason);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static struct gw_req *req_new(json_t *doc)
{
    struct gw_req *r = calloc(1, sizeof(*r));
    pthread_condattr_t ca;

    if (!r)
        return NULL;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc) {
        free(r);
        return NULL;
    }
    r->doc = doc;
    return r;
}

/* Mark 'r' done and tell its handler, or free it if abandoned.  Locked. */
static void req_complete(struct gw_req *r)
{
    r->state = REQ_DONE;
    if (r->abandoned)
        req_free(r);
    else
        pthread_cond_signal(&r->cv);
}

/* The infer worker finished a request.  Gateway thread, inside progress. */
static void on_done(void *arg, void *item, const struct sl_infer_result *res)
{
    struct sl_gateway *gw = arg;
    struct gw_req *r = item;

    pthread_mutex_lock(&gw->mu);
    SL_DLIST_UNLINK(gw->running, r, prev, next);
    r->status = res->status;
    /* Copies: jansson values must not be shared between threads (even
     * their reference counts race), and the worker frees its own. */
    r->results = json_deep_copy(res->results);
    r->errors = json_deep_copy(res->errors);
    r->timings = json_deep_copy(res->timings);
    if (res->status == SL_INFER_FAILED) {
        r->reason = strdup(res->reason ? res->reason : "failed");
        r->decode = res->stage == SL_STAGE_DECODE;
        r->deadline = res->fail_class == SL_INFER_EC_DEADLINE;
    }
    if (!r->results || !r->errors || !r->timings ||
        (res->status == SL_INFER_FAILED && !r->reason)) {
        r->stop_status = 500;
        r->stop_text = "out of memory";
    }
    req_complete(r);
    pthread_mutex_unlock(&gw->mu);
}

/* ---- the gateway thread ---- */

static void *gw_main(void *arg)
{
    struct sl_gateway *gw = arg;
    int njobs = 0;

    pthread_mutex_lock(&gw->mu);
    while (!gw->stop) {
        struct gw_req *r;
        while ((r = gw->queue) != NULL) {
            gw->queue = r->next;
            if (!gw->queue)
                gw->queue_tail = &gw->queue;
            r->state = REQ_RUNNING;
            SL_DLIST_PUSH(gw->running, r, prev, next);
            json_t *doc = r->doc; /* from now on this thread's alone */
            r->doc = NULL;
            pthread_mutex_unlock(&gw->mu);
            /* 'done' runs only inside progress(): 'r' stays valid here. */
            int rc = sl_infer_worker_submit_json(gw->iw, doc, r, on_done, gw);
            json_decref(doc);
            pthread_mutex_lock(&gw->mu);
            if (rc < 0) {
                SL_DLIST_UNLINK(gw->running, r, prev, next);
                r->stop_status = 500;
                r->stop_text = "out of memory";
                req_complete(r);
            } else {
                njobs++;
            }
        }
        if (njobs > 0) {
            pthread_mutex_unlock(&gw->mu);
            /* A handler that queues a request calls wakeup: no wait is
             * lost between the unlock and the poll. */
            njobs = sl_infer_worker_progress(gw->iw, PROGRESS_MS);
            pthread_mutex_lock(&gw->mu);
        } else if (!gw->queue && !gw->stop) {
            pthread_cond_wait(&gw->cv, &gw->mu);
        }
    }
    pthread_mutex_unlock(&gw->mu);

    /* Cancels what is in flight without callbacks: answer those here. */
    sl_infer_worker_destroy(gw->iw);
    gw->iw = NULL;
    pthread_mutex_lock(&gw->mu);
    struct gw_req *lists[2] = {gw->queue, gw->running};
    gw->queue = gw->running = NULL;
    gw->queue_tail = &gw->queue;
    for (int i = 0; i < 2; i++) {
        struct gw_req *r = lists[i], *next;
        for (; r; r = next) {
            next = r->next;
            r->next = r->prev = NULL;
            r->stop_status = 503;
            r->stop_text = "the gateway is shutting down";
            req_complete(r);
        }
    }
    pthread_mutex_unlock(&gw->mu);
    return NULL;
}

/* ---- the handler ---- */

static void answer(struct sl_http_response *res, int status, json_t *doc)
{
    res->status = status;
    res->content_type = "application/json";
    res->body = doc ? sl_jsontext_dumps(doc, DUMP_FLAGS) : NULL;
    if (!res->body) {
        res->status = 500;
        res->content_type = "text/plain";
        res->body = strdup("out of memory\n");
    }
    res->body_len = res->body ? strlen(res->body) : 0;
    json_decref(doc);
}

static void answer_error(struct sl_http_response *res, int status,
                         const char *text)
{
    sl_http_response_error(res, status, text);
}

/* A row offset unique across restarts: microseconds, strictly rising. */
static int64_t next_seq(struct sl_gateway *gw)
{
    int64_t now = sl_now_us();
    int64_t prev = atomic_load(&gw->last_seq), next;

    do
        next = now > prev ? now : prev + 1;
    while (!atomic_compare_exchange_weak(&gw->last_seq, &prev, next));
    return next;
}

/*
 * Hand the row of finished request 'r' (body 'body') to the sink.
 * Returns 0, or an SL_E* code when the sink would not take it in time.
 * Handler thread.
 */
static int write_row(struct sl_gateway *gw, struct gw_req *r,
                     const struct sl_http_request *hreq)
{
    struct sl_msg *msg;
    struct sl_row *row;
    char err[256];

    int rc = sl_msg_new(&msg, SL_SOURCE_GATEWAY, "gateway", 0, next_seq(gw),
                        gw->replica_id, NULL, 0, hreq->body, hreq->body_len,
                        NULL, err, sizeof(err));
    if (rc < 0)
        return rc;
    /* Decode failures were answered 400 without a row. */
    struct sl_infer_result res = {
        .status = r->status,
        .results = r->results,
        .errors = r->errors,
        .timings = r->timings,
        .reason = r->reason,
        .stage = SL_STAGE_INFERENCE,
    };
    if (!(row = sl_row_of_result(msg, &res, false, gw->worker,
                                 sl_sink_pg_row_vectors(gw->sink)))) {
        sl_msg_destroy(msg);
        return -SL_ENOMEM;
    }
    rc = sl_row_submit(gw->sink, row, SINK_TRY_MS, sl_mono_ms() + SINK_WAIT_MS,
                       NULL);
    if (rc == 0)
        atomic_fetch_add(&gw->stats.rows, 1);
    return rc;
}

/* Fill 'res' from the outcome of 'r'.  Handler thread, unlocked. */
static void answer_outcome(struct sl_gateway *gw, struct gw_req *r,
                           const struct sl_http_request *hreq,
                           struct sl_http_response *res, int64_t t0)
{
    if (r->stop_status) {
        atomic_fetch_add(r->stop_status == 503 ? &gw->stats.unavailable
                                               : &gw->stats.failed,
                         1);
        answer_error(res, r->stop_status, r->stop_text);
        if (r->stop_status == 503)
            res->retry_after_s = 1;
        return;
    }
    if (r->status == SL_INFER_FAILED && r->decode) {
        atomic_fetch_add(&gw->stats.bad_request, 1);
        answer_error(res, 400, r->reason);
        return;
    }
    if (gw->sink) {
        int rc = write_row(gw, r, hreq);
        if (rc < 0 && r->status != SL_INFER_FAILED) {
            char text[256];
            snprintf(text, sizeof(text),
                     "results were computed but not written: the "
                     "PostgreSQL sink did not take the row (%s)",
                     rc == -SL_ETIMEDOUT ? "backlog full" : sl_strerror(rc));
            sl_log(SL_LOG_WARN, "gateway", "%s; answering 503", text);
            atomic_fetch_add(&gw->stats.unavailable, 1);
            answer_error(res, 503, text);
            res->retry_after_s = 1;
            return;
        }
    }
    if (r->status == SL_INFER_FAILED) {
        /* A step out of time is a gateway timeout, not a bad answer. */
        atomic_fetch_add(r->deadline ? &gw->stats.timed_out : &gw->stats.failed,
                         1);
        answer(res, r->deadline ? 504 : 502,
               json_pack("{s:s, s:O, s:O}", "error", r->reason, "errors",
                         r->errors, "timings", r->timings));
        return;
    }
    atomic_fetch_add(&gw->stats.ok, 1);
    sl_histo_observe(&gw->stats.latency, (double)(sl_mono_ms() - t0) / 1000.0);
    answer(res, 200,
           json_pack("{s:O, s:O, s:O}", "results", r->results, "errors",
                     r->errors, "timings", r->timings));
}

/*
 * True for a JSON media type: application/json or type/subtype+json,
 * any case, with parameters ("; charset=utf-8") allowed.
 */
static bool json_media_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t len = strcspn(ct, ";");
    while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
        len--;
    const char *slash = memchr(ct, '/', len);
    if (!slash || slash == ct || slash + 1 == ct + len)
        return false;
    if (len == 16 && !strncasecmp(ct, "application/json", 16))
        return true;
    size_t sub = (size_t)(ct + len - (slash + 1));
    return sub > 5 && !strncasecmp(ct + len - 5, "+json", 5);
}

static void leave(struct sl_gateway *gw)
{
    if (atomic_fetch_sub(&gw->stats.inflight, 1) == 1 &&
        atomic_load(&gw->draining)) {
        pthread_mutex_lock(&gw->mu);
        pthread_cond_broadcast(&gw->idle_cv);
        pthread_mutex_unlock(&gw->mu);
    }
}

void sl_gateway_serve(void *arg, const struct sl_http_request *hreq,
                      struct sl_http_response *res)
{
    struct sl_gateway *gw = arg;
    json_error_t jerr;
    char text[512];
    int64_t t0 = sl_mono_ms();

    atomic_fetch_add(&gw->stats.requests, 1);
    if (atomic_load(&gw->draining)) {
        atomic_fetch_add(&gw->stats.unavailable, 1);
        answer_error(res, 503, "draining: this replica is shutting down");
        res->retry_after_s = 1;
        return;
    }
    if (!json_media_type(hreq->content_type)) {
        char shown[64];
        const char *ct = hreq->content_type;
        if (ct)
            snprintf(text, sizeof(text),
                     "the body must be sent as Content-Type: "
                     "application/json (or a +json type), not '%s'",
                     sl_utf8_printable(ct, strlen(ct), shown, sizeof(shown)));
        else
            snprintf(text, sizeof(text),
                     "the body must be sent as Content-Type: "
                     "application/json (or a +json type); the request has "
                     "no Content-Type");
        atomic_fetch_add(&gw->stats.unsupported, 1);
        answer_error(res, 415, text);
        return;
    }
    json_t *doc =
        json_loadb(hreq->body, hreq->body_len, JSON_DECODE_ANY, &jerr);
    if (!doc) {
        snprintf(text, sizeof(text),
                 "the body is not valid JSON: %s (line %d, column %d)",
                 jerr.text, jerr.line, jerr.column);
        atomic_fetch_add(&gw->stats.bad_request, 1);
        answer_error(res, 400, text);
        return;
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        atomic_fetch_add(&gw->stats.bad_request, 1);
        answer_error(res, 400, "the body must be a JSON object");
        return;
    }
    int64_t max = gw->cfg->gateway.max_concurrency;
    if (atomic_fetch_add(&gw->stats.inflight, 1) >= max) {
        leave(gw);
        json_decref(doc);
        snprintf(text, sizeof(text),
                 "too many requests: %lld in flight is the limit "
                 "(gateway.max_concurrency); retry later",
                 (long long)max);
        atomic_fetch_add(&gw->stats.rejected, 1);
        answer_error(res, 429, text);
        res->retry_after_s = 1;
        return;
    }
    struct gw_req *r = req_new(doc);
    if (!r) {
        json_decref(doc);
        leave(gw);
        answer_error(res, 500, "out of memory");
        return;
    }

    pthread_mutex_lock(&gw->mu);
    if (gw->stop) {
        pthread_mutex_unlock(&gw->mu);
        req_free(r);
        leave(gw);
        atomic_fetch_add(&gw->stats.unavailable, 1);
        answer_error(res, 503, "draining: this replica is shutting down");
        res->retry_after_s = 1;
        return;
    }
    *gw->queue_tail = r;
    gw->queue_tail = &r->next;
    pthread_cond_signal(&gw->cv);
    sl_infer_worker_wakeup(gw->iw); /* iw lives until the thread stops */

    struct timespec until;
    sl_deadline_after(&until, gw->budget_ms);
    while (r->state != REQ_DONE) {
        if (pthread_cond_timedwait(&r->cv, &gw->mu, &until) != 0 &&
            r->state != REQ_DONE) {
            r->abandoned = true; /* the gateway thread frees it */
            pthread_mutex_unlock(&gw->mu);
            leave(gw);
            snprintf(text, sizeof(text),
                     "no outcome within %lld ms (the steps' deadlines plus a "
                     "margin)",
                     (long long)gw->budget_ms);
            atomic_fetch_add(&gw->stats.timed_out, 1);
            answer_error(res, 504, text);
            return;
        }
    }
    pthread_mutex_unlock(&gw->mu);
    answer_outcome(gw, r, hreq, res, t0);
    req_free(r);
    leave(gw);
}

/* ---- lifecycle ---- */

/* The longest a request can take: every step's deadline, plus a margin. */
static int64_t budget(const struct sl_config *cfg)
{
    int64_t total = MARGIN_MS;

    for (size_t i = 0; i < cfg->step_cnt; i++) {
        const struct sl_config_step *st = &cfg->steps[i];
        int64_t step = st->deadline_ms;
        if (step > 0) {
            total += step;
            continue;
        }
        for (size_t j = 0; j < st->backends.cnt; j++) {
            const struct sl_config_backend *bc =
                sl_config_backend_find(cfg, st->backends.items[j]);
            if (!bc)
                continue;
            int64_t n = bc->retry.max_attempts > 0 ? bc->retry.max_attempts : 1;
            int64_t b = n * bc->timeout_ms + (n - 1) * bc->retry.max_ms;
            if (b > step)
                step = b;
        }
        total += step;
    }
    return total;
}

struct sl_gateway *sl_gateway_new(const struct sl_gateway_conf *conf,
                                  char *errstr, size_t errstr_size)
{
    struct sl_gateway *gw = calloc(1, sizeof(*gw));
    pthread_condattr_t ca;
    char err[256];

    if (!gw) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    gw->cfg = conf->cfg;
    gw->sink = conf->sink;
    snprintf(gw->replica_id, sizeof(gw->replica_id), "%s",
             conf->replica_id ? conf->replica_id : "");
    snprintf(gw->worker, sizeof(gw->worker), "%s/gateway",
             conf->replica_id ? conf->replica_id : "");
    gw->budget_ms = budget(conf->cfg);
    gw->queue_tail = &gw->queue;
    sl_histo_init(
        &gw->stats.latency, latency_bounds_s,
        (int)(sizeof(latency_bounds_s) / sizeof(latency_bounds_s[0])));
    pthread_mutex_init(&gw->mu, NULL);
    pthread_cond_init(&gw->cv, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&gw->idle_cv, &ca);
    pthread_condattr_destroy(&ca);

    gw->iw = sl_infer_worker_new(conf->inf, conf->cfg->gateway.max_concurrency,
                                 err, sizeof(err));
    if (!gw->iw) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "gateway: %s", err);
        sl_gateway_destroy(gw);
        return NULL;
    }
    int rc = pthread_create(&gw->thread, NULL, gw_main, gw);
    if (rc == 0)
        pthread_setname_np(gw->thread, "sl-gateway");
    if (rc) {
        sl_seterr(sl_err_from_errno(rc), errstr, errstr_size,
                  "gateway: cannot start its thread (%s)", strerror(rc));
        sl_gateway_destroy(gw);
        return NULL;
    }
    gw->started = true;
    return gw;
}

int sl_gateway_wait_idle(struct sl_gateway *gw, int timeout_ms)
{
    struct timespec until;
    int rc = 0;

    atomic_store(&gw->draining, true);
    sl_deadline_after(&until, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&gw->mu);
    while (atomic_load(&gw->stats.inflight) > 0)
        if (pthread_cond_timedwait(&gw->idle_cv, &gw->mu, &until) != 0) {
            rc = atomic_load(&gw->stats.inflight) > 0 ? -SL_ETIMEDOUT : 0;
            break;
        }
    pthread_mutex_unlock(&gw->mu);
    return rc;
}

void sl_gateway_drain(struct sl_gateway *gw, int timeout_ms)
{
    if (!gw)
        return;
    sl_gateway_wait_idle(gw, timeout_ms);
    pthread_mutex_lock(&gw->mu);
    gw->stop = true;
    pthread_cond_signal(&gw->cv);
    if (gw->iw)
        sl_infer_worker_wakeup(gw->iw);
    pthread_mutex_unlock(&gw->mu);
    if (gw->started) {
        pthread_join(gw->thread, NULL);
        gw->started = false;
    }
}

const struct sl_gateway_stats *sl_gateway_stats(const struct sl_gateway *gw)
{
    return &gw->stats;
}

void sl_gateway_destroy(struct sl_gateway *gw)
{
    if (!gw)
        return;
    sl_gateway_drain(gw, 0);
    sl_infer_worker_destroy(gw->iw); /* only when the thread never ran */
    pthread_cond_destroy(&gw->idle_cv);
    pthread_cond_destroy(&gw->cv);
    pthread_mutex_destroy(&gw->mu);
    free(gw);
}
