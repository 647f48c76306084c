/*
 * The per-thread half of the inference engine: one libcurl multi handle
 * drives every HTTP request of the messages this worker holds.  A message
 * (job) runs its steps in order; a step fans out to its backends (calls);
 * a call is carried by a request (req), which for embeddings batches the
 * calls of many jobs.  Requests wait for admission (cap, rate, breaker)
 * or for a retry timer in the worker's wait list; nothing blocks.
 *
 * libcurl is driven by its socket interface: an epoll set holds the
 * sockets it asks for and an eventfd for wake-ups, so a wake-up costs
 * the sockets that are ready, not a walk over every transfer.
 */
#include "infer_int.h"

#include "err.h"
#include "log.h"
#include "retry.h"
#include "template.h"
#include "utf8.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define ERRTEXT 512      /* longest error message kept */
#define BODY_SHOWN 160   /* bytes of an error reply quoted in messages */
#define BUSY_RETRY_MS 1  /* at the concurrency cap: look again this soon */
#define EASY_FREE_MAX 64 /* idle easy handles kept for reuse */
#define EVENTS_MAX 64    /* socket events taken per epoll_wait() */

struct job;
struct req;

/* One backend of one step of one job. */
struct call {
    struct job *job; /* owner */
    size_t be;       /* backend index */
    struct req *req; /* carrying request; NULL when none */
    size_t slot;     /* index in req->calls */
    json_t *input;   /* embeddings: the rendered input (a string) */
    bool in_batch;   /* waiting in the worker's batch of 'be' */
    bool done;       /* finished: succeeded, failed or cancelled */
    int attempts;    /* HTTP attempts made for it */
};

struct job {
    struct job *prev, *next; /* in w->jobs, or w->finished (next only) */
    json_t *doc;             /* the payload document; owned */
    void *item;              /* handed back to done() */
    sl_infer_done_fn done;   /* completion callback */
    void *arg;               /* its argument */
    size_t step;             /* current step */
    struct call *calls;      /* the step's calls; ncalls */
    size_t ncalls;           /* number of calls */
    size_t nleft;            /* calls not yet done */
    int64_t start_ms;        /* submit time */
    int64_t step_start_ms;   /* start of the current step */
    int64_t deadline_ms;     /* absolute step deadline; 0: none */
    json_t *results;         /* {backend: value} */
    json_t *errors;          /* {backend: error} */
    json_t *timings;         /* {backend: ms} */
    bool partial;            /* some backend failed, on_error partial */
    bool failed;             /* finished FAILED */
    bool finished;           /* moved to w->finished */
    char *reason;            /* FAILED: why; owned */
    const char *stage;       /* FAILED: "decode" or "inference" */
    int fail_class;          /* FAILED by a backend: its class; else -1 */
};

enum req_state {
    REQ_NEW,     /* just made, in no list yet */
    REQ_WAIT,    /* in w->waitq: admission or retry timer */
    REQ_RUNNING, /* in the multi handle */
    REQ_DONE,    /* being completed: not to be freed by a detach */
    REQ_DEAD,    /* released; freed by the next sweep */
};

struct req {
    struct req *prev, *next;   /* in w->reqs */
    struct req *wprev, *wnext; /* in w->waitq while REQ_WAIT */
    size_t be;                 /* backend index */
    enum req_state state;      /* see above */
    struct call **calls;       /* ncalls; NULL entries were detached */
    size_t ncalls;             /* calls carried */
    size_t nattached;          /* calls not detached */
    char *body;                /* request body; owned; NULL for GET */
    int64_t due_ms;            /* REQ_WAIT: when to try again */
    int attempts;              /* attempts started */
    int64_t sent_ms;           /* start of the current attempt */
    CURL *easy;                /* REQ_RUNNING: the transfer */
    char *resp;                /* reply bytes, NUL-terminated */
    size_t resp_len;           /* bytes in resp */
    size_t resp_cap;           /* bytes allocated */
    size_t resp_max;           /* max_response_bytes */
    bool too_large;            /* the reply passed max_response_bytes */
    char retry_after[64];      /* the reply's Retry-After, or "" */
    bool holds_slot;           /* holds a limiter slot */
    bool holds_breaker;        /* admitted by the breaker: must record */
};

/* Calls of one embeddings backend waiting to be sent together. */
struct batch {
    struct call **calls; /* n calls, room for batch_max */
    size_t n;            /* calls waiting */
    int64_t first_ms;    /* when the oldest was added */
};

struct sl_infer_worker {
    struct sl_infer *inf;           /* shared engine */
    CURLM *multi;                   /* all transfers of this worker */
    struct job *jobs;               /* jobs in flight (doubly linked) */
    struct job *finished;           /* to deliver, in order (singly linked) */
    struct job **finished_tail;     /* where to append */
    struct req *reqs;               /* every request (doubly linked) */
    struct req *waitq;              /* the REQ_WAIT ones (doubly linked) */
    int64_t deadline_due_ms;        /* no job deadline passes before this */
    int64_t curl_due_ms;            /* libcurl's timer; -1 when none */
    int epfd;                       /* epoll set: sockets and wake_fd */
    int wake_fd;                    /* eventfd of sl_infer_worker_wakeup() */
    struct batch *batches;          /* per backend (embeddings only) */
    int njobs;                      /* submitted, not yet delivered */
    uint64_t rng;                   /* jitter state */
    CURL *easy_free[EASY_FREE_MAX]; /* idle handles for reuse */
    int easy_free_cnt;              /* how many */
    bool delivering;                /* inside done(): no re-entrant progress */
};

/* An error of one call, before it becomes JSON. */
struct call_err {
    enum sl_infer_errclass ec; /* class */
    long status;               /* HTTP status, 0 when none */
    char text[ERRTEXT];        /* message */
};

static void job_start_step(struct sl_infer_worker *w, struct job *job);
static void req_release(struct sl_infer_worker *w, struct req *req,
                        enum sl_breaker_outcome outcome);
static void log_breaker(struct sl_infer_worker *w, size_t be, int state);
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp);
static int on_timer(CURLM *multi, long timeout_ms, void *userp);

/* ---- jobs ---- */

static const struct sl_config_backend *bconf(struct sl_infer_worker *w,
                                             size_t be)
{
    return w->inf->be[be].conf;
}

static void job_unlink(struct sl_infer_worker *w, struct job *job)
{
    if (job->prev)
        job->prev->next = job->next;
    else
        w->jobs = job->next;
    if (job->next)
        job->next->prev = job->prev;
    job->prev = job->next = NULL;
}

static void job_free(struct job *job)
{
    for (size_t i = 0; i < job->ncalls; i++)
        json_decref(job->calls[i].input);
    free(job->calls);
    json_decref(job->doc);
    json_decref(job->results);
    json_decref(job->errors);
    json_decref(job->timings);
    free(job->reason);
    free(job);
}

/* Detach 'call' from its request or batch; it will get no answer. */
static void call_detach(struct sl_infer_worker *w, struct call *call)
{
    if (call->in_batch) {
        struct batch *b = &w->batches[call->be];
        for (size_t i = 0; i < b->n; i++) {
            if (b->calls[i] == call) {
                memmove(&b->calls[i], &b->calls[i + 1],
                        (b->n - i - 1) * sizeof(*b->calls));
                b->n--;
                break;
            }
        }
        call->in_batch = false;
    }
    struct req *req = call->req;
    if (req) {
        req->calls[call->slot] = NULL;
        call->req = NULL;
        if (--req->nattached == 0 && req->state != REQ_DONE)
            req_release(w, req, SL_BREAKER_CANCEL);
    }
}

/* Cancel the calls of the current step that are still going. */
static void job_cancel_calls(struct sl_infer_worker *w, struct job *job)
{
    for (size_t i = 0; i < job->ncalls; i++) {
        struct call *call = &job->calls[i];
        if (!call->done) {
            call_detach(w, call);
            call->done = true;
        }
    }
    job->nleft = 0;
}

/* Finish 'job' (FAILED when 'reason' is not NULL) and queue its delivery. */
static void job_finish(struct sl_infer_worker *w, struct job *job,
                       const char *stage, const char *reason)
{
    job_cancel_calls(w, job);
    job->finished = true;
    if (reason) {
        job->failed = true;
        job->stage = stage;
        job->reason = strdup(reason);
    }
    json_object_set_new(job->timings, "total",
                        json_integer(sl_mono_ms() - job->start_ms));
    job_unlink(w, job);
    job->next = NULL;
    *w->finished_tail = job;
    w->finished_tail = &job->next;
}

/* The class named 'name' in an errors entry; -1 for none. */
static int errclass_of(const char *name)
{
    for (int ec = 0; name && ec < SL_INFER_EC_COUNT; ec++)
        if (!strcmp(name, sl_infer_errclass_name((enum sl_infer_errclass)ec)))
            return ec;
    return -1;
}

/* The step's calls are all done: judge it, then go on or finish. */
static void job_step_done(struct sl_infer_worker *w, struct job *job)
{
    const struct sl_config_step *st = &w->inf->cfg->steps[job->step];
    size_t ok = 0, failed = 0;
    const char *first_failed = NULL;

    for (size_t i = 0; i < job->ncalls; i++) {
        const char *name = bconf(w, job->calls[i].be)->name;
        if (json_object_get(job->results, name))
            ok++;
        else {
            failed++;
            /* Name a backend that failed, not one cancelled by fail-fast. */
            if (!first_failed || (!json_object_get(job->errors, first_failed) &&
                                  json_object_get(job->errors, name)))
                first_failed = name;
        }
    }
    if (st->mode == SL_CONFIG_MODE_FIRST ? ok == 0 : failed > 0) {
        if (st->mode == SL_CONFIG_MODE_ALL &&
            st->on_error == SL_CONFIG_ON_ERROR_PARTIAL && ok > 0) {
            job->partial = true;
        } else {
            char reason[ERRTEXT + 128];
            json_t *e = json_object_get(job->errors, first_failed);
            const char *ec = json_string_value(json_object_get(e, "class"));
            job->fail_class = errclass_of(ec);
            snprintf(reason, sizeof(reason),
                     "step '%s': backend '%s' failed (%s) after %d "
                     "attempt(s): %s",
                     st->name, first_failed ? first_failed : "?", ec,
                     (int)json_integer_value(json_object_get(e, "attempts")),
                     json_string_value(json_object_get(e, "message")));
            /* No backend could even render the message: it is bad. */
            job_finish(
                w, job,
                ec && !strcmp(ec, sl_infer_errclass_name(SL_INFER_EC_INPUT))
                    ? "decode"
                    : "inference",
                reason);
            return;
        }
    }
    job->step++;
    job_start_step(w, job);
}

static void stats_error(struct sl_infer_worker *w, size_t be,
                        enum sl_infer_errclass ec)
{
    atomic_fetch_add_explicit(&w->inf->be[be].stats.errors[ec], 1,
                              memory_order_relaxed);
}

/* Record the error of backend 'name' in job->errors ('status' 0: none). */
static void job_set_error(struct job *job, const char *name,
                          enum sl_infer_errclass ec, long status,
                          const char *text, int attempts)
{
    json_t *e =
        json_pack("{s:s, s:s, s:i}", "class", sl_infer_errclass_name(ec),
                  "message", text, "attempts", attempts);
    if (e && status)
        json_object_set_new(e, "status", json_integer(status));
    json_object_set_new(job->errors, name, e ? e : json_null());
}

/*
 * Finish one call with a value (owned; stolen) or an error.  May finish
 * the step and the job.
 */
static void call_finish(struct sl_infer_worker *w, struct call *call,
                        json_t *value, const struct call_err *ce)
{
    struct job *job = call->job;
    const struct sl_config_step *st = &w->inf->cfg->steps[job->step];
    const char *name = bconf(w, call->be)->name;

    if (call->done) {
        json_decref(value);
        return;
    }
    call_detach(w, call);
    call->done = true;
    job->nleft--;
    json_object_set_new(job->timings, name,
                        json_integer(sl_mono_ms() - job->step_start_ms));
    if (value) {
        json_object_set_new(job->results, name, value);
        if (st->mode == SL_CONFIG_MODE_FIRST) {
            job_cancel_calls(w, job); /* keep the first, cancel the rest */
            job_step_done(w, job);
            return;
        }
    } else {
        job_set_error(job, name, ce->ec, ce->status, ce->text, call->attempts);
        if (st->mode == SL_CONFIG_MODE_ALL &&
            st->on_error == SL_CONFIG_ON_ERROR_FAIL) {
            job_cancel_calls(w, job); /* fail fast */
            job_step_done(w, job);
            return;
        }
    }
    if (job->nleft == 0)
        job_step_done(w, job);
}

/* ---- requests ---- */

/* Set the state of 'req', keeping w->waitq the list of waiting ones. */
static void req_set_state(struct sl_infer_worker *w, struct req *req,
                          enum req_state state)
{
    bool was = req->state == REQ_WAIT, is = state == REQ_WAIT;

    req->state = state;
    if (was == is)
        return;
    if (is) {
        req->wprev = NULL;
        req->wnext = w->waitq;
        if (w->waitq)
            w->waitq->wprev = req;
        w->waitq = req;
        return;
    }
    if (req->wprev)
        req->wprev->wnext = req->wnext;
    else
        w->waitq = req->wnext;
    if (req->wnext)
        req->wnext->wprev = req->wprev;
    req->wprev = req->wnext = NULL;
}

static struct req *req_new(struct sl_infer_worker *w, size_t be, size_t ncalls,
                           char *body)
{
    struct req *req = calloc(1, sizeof(*req));

    if (!req || !(req->calls = calloc(ncalls, sizeof(*req->calls)))) {
        free(req);
        free(body);
        return NULL;
    }
    req->be = be;
    req->body = body;
    req->due_ms = sl_mono_ms();
    req_set_state(w, req, REQ_WAIT);
    req->next = w->reqs;
    if (w->reqs)
        w->reqs->prev = req;
    w->reqs = req;
    return req;
}

static void req_attach(struct req *req, struct call *call)
{
    call->req = req;
    call->slot = req->ncalls;
    req->calls[req->ncalls++] = call;
    req->nattached++;
}

static void easy_put(struct sl_infer_worker *w, CURL *easy)
{
    if (w->easy_free_cnt < EASY_FREE_MAX) {
        curl_easy_reset(easy);
        w->easy_free[w->easy_free_cnt++] = easy;
    } else {
        curl_easy_cleanup(easy);
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

/*
 * The warn line of a failure of backend 'be' of class 'ce->ec', rate
 * limited per backend and class: 'attempt' made out of 'max_attempts'
 * (0: say how many were made), then 'action'.  The worker's thread; the
 * limits are shared with the other workers.
 */
static void log_failure(struct sl_infer_worker *w, size_t be,
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
        easy_put(w, req->easy);
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
static void req_release(struct sl_infer_worker *w, struct req *req,
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

static void req_sweep(struct sl_infer_worker *w)
{
    struct req *req = w->reqs, *next;

    for (; req; req = next) {
        next = req->next;
        if (req->state != REQ_DEAD)
            continue;
        if (req->prev)
            req->prev->next = req->next;
        else
            w->reqs = req->next;
        if (req->next)
            req->next->prev = req->prev;
        free(req->calls);
        free(req->body);
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
            call_finish(w, call, NULL, ce);
        }
    }
    req_release(w, req, SL_BREAKER_CANCEL);
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
    static const char name[] = "retry-after:";

    if (n > sizeof(name) - 1 && !strncasecmp(data, name, sizeof(name) - 1)) {
        const char *v = data + sizeof(name) - 1;
        size_t len = n - (sizeof(name) - 1);
        while (len > 0 && (*v == ' ' || *v == '\t')) {
            v++;
            len--;
        }
        while (len > 0 &&
               (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof(req->retry_after))
            len = sizeof(req->retry_after) - 1;
        memcpy(req->retry_after, v, len);
        req->retry_after[len] = '\0';
    }
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
    CURL *e =
        w->easy_free_cnt ? w->easy_free[--w->easy_free_cnt] : curl_easy_init();

    if (!e)
        return -SL_ENOMEM;
    req->resp_len = 0;
    if (req->resp)
        req->resp[0] = '\0';
    req->too_large = false;
    req->retry_after[0] = '\0';
    req->resp_max = (size_t)bc->max_response_bytes;
    curl_easy_setopt(e, CURLOPT_URL, be->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, req);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, be->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, req);
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
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
    if (bc->kind == SL_CONFIG_BACKEND_HTTP_JSON &&
        bc->method == SL_CONFIG_HTTP_GET) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body ? req->body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE,
                         (long)(req->body ? strlen(req->body) : 0));
        if (bc->kind == SL_CONFIG_BACKEND_HTTP_JSON &&
            bc->method == SL_CONFIG_HTTP_PUT)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "PUT");
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
static void req_admit(struct sl_infer_worker *w, struct req *req, int64_t now)
{
    struct sl_infer_backend *be = &w->inf->be[req->be];
    struct call_err ce = {0};
    int64_t wait_ms;

    if (sl_breaker_allow(be->breaker, now)) {
        ce.ec = SL_INFER_EC_BREAKER_OPEN;
        snprintf(ce.text, sizeof(ce.text),
                 "circuit breaker of backend '%s' is open; not called",
                 be->conf->name);
        log_failure(w, req->be, &ce, req->attempts, 0, give_up_action(w, req));
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
        log_failure(w, req->be, &ce, req->attempts, 0, give_up_action(w, req));
        req_fail(w, req, &ce, SL_BREAKER_CANCEL);
    }
}

/* ---- replies ---- */

/* The value of a 2xx reply for the calls of 'req', or an error. */
static int parse_reply(struct sl_infer_worker *w, struct req *req,
                       json_t **valuesp, struct call_err *ce)
{
    json_int_t tokens;

    if (sl_infer_proto_parse(bconf(w, req->be), req->resp, req->resp_len,
                             req->ncalls, valuesp, &tokens, ce->text,
                             sizeof(ce->text)) < 0) {
        ce->ec = SL_INFER_EC_BAD_JSON;
        return -1;
    }
    if (tokens >= 0)
        sl_limiter_debit_tokens(w->inf->be[req->be].limiter, tokens,
                                sl_mono_ms());
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
static void req_complete(struct sl_infer_worker *w, struct req *req,
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
        req_stop(w, req, SL_BREAKER_SUCCESS);
        req_set_state(w, req, REQ_DONE);
        if (parse_reply(w, req, &values, &ce) == 0) {
            atomic_fetch_add_explicit(&be->stats.successes, 1,
                                      memory_order_relaxed);
            for (size_t i = 0; i < req->ncalls; i++) {
                struct call *call = req->calls[i];
                if (call) {
                    call->attempts = req->attempts;
                    call_finish(w, call, json_incref(json_array_get(values, i)),
                                NULL);
                }
            }
            json_decref(values);
            req_release(w, req, SL_BREAKER_CANCEL);
            return;
        }
        log_failure(w, req->be, &ce, req->attempts,
                    be->conf->retry.max_attempts, give_up_action(w, req));
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
        ce.ec = status == 429   ? SL_INFER_EC_HTTP_429
                : status >= 500 ? SL_INFER_EC_HTTP_5XX
                                : SL_INFER_EC_HTTP_4XX;
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
        log_failure(w, req->be, &ce, req->attempts,
                    be->conf->retry.max_attempts, action);
        return;
    }
    log_failure(w, req->be, &ce, req->attempts, be->conf->retry.max_attempts,
                give_up_action(w, req));
    req_fail(w, req, &ce, SL_BREAKER_CANCEL);
}

/* ---- steps ---- */

/* Add embeddings 'call' to its backend's batch; send a full batch. */
static int batch_flush(struct sl_infer_worker *w, size_t be)
{
    struct batch *b = &w->batches[be];
    const struct sl_config_backend *bc = bconf(w, be);
    json_t *inputs = json_array();

    if (!b->n || !inputs) {
        json_decref(inputs);
        return b->n ? -SL_ENOMEM : 0;
    }
    for (size_t i = 0; i < b->n; i++)
        json_array_append(inputs, b->calls[i]->input);
    char *text = sl_infer_proto_of(bc->kind)->render_batch(bc, inputs);
    struct req *req = text ? req_new(w, be, b->n, text) : NULL;
    if (!req)
        return -SL_ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        b->calls[i]->in_batch = false;
        req_attach(req, b->calls[i]);
    }
    b->n = 0;
    return 0;
}

static void job_start_step(struct sl_infer_worker *w, struct job *job)
{
    const struct sl_config *cfg = w->inf->cfg;
    char errstr[ERRTEXT], reason[ERRTEXT + 128];

    for (size_t i = 0; i < job->ncalls; i++)
        json_decref(job->calls[i].input);
    free(job->calls);
    job->calls = NULL;
    job->ncalls = job->nleft = 0;
    if (job->step >= cfg->step_cnt) {
        job_finish(w, job, NULL, NULL);
        return;
    }
    const struct sl_config_step *st = &cfg->steps[job->step];
    job->step_start_ms = sl_mono_ms();
    job->deadline_ms =
        st->deadline_ms > 0 ? job->step_start_ms + st->deadline_ms : 0;
    if (job->deadline_ms && job->deadline_ms < w->deadline_due_ms)
        w->deadline_due_ms = job->deadline_ms;
    job->calls =
        calloc(st->backends.cnt ? st->backends.cnt : 1, sizeof(*job->calls));
    if (!job->calls) {
        job_finish(w, job, "inference", "out of memory");
        return;
    }
    /* Render everything first: a bad payload sends no request at all. */
    size_t nfailed = 0;
    for (size_t i = 0; i < st->backends.cnt; i++) {
        struct call *call = &job->calls[i];
        size_t be = w->inf->step_be[job->step][i];
        const struct sl_config_backend *bc = bconf(w, be);
        const struct sl_infer_proto *proto = sl_infer_proto_of(bc->kind);
        char *body = NULL;
        int err;

        call->job = job;
        call->be = be;
        job->ncalls++;
        if (proto->render_batch)
            err = proto->render_input(bc, job->doc, &call->input, errstr,
                                      sizeof(errstr));
        else
            err = proto->render(bc, job->doc, &body, errstr, sizeof(errstr));
        if (err) {
            free(body);
            json_decref(call->input);
            call->input = NULL;
            call->done = true;
            snprintf(reason, sizeof(reason), "%s for template of backend '%s'",
                     errstr, bc->name);
            if (err != -SL_ENOMEM)
                stats_error(w, be, SL_INFER_EC_INPUT);
            /* Where one failed backend fails the step, the message is
             * bad: dead-letter it before any request goes out.  Else
             * (on_error partial, mode first) only this backend failed. */
            if (err == -SL_ENOMEM ||
                (st->mode == SL_CONFIG_MODE_ALL &&
                 st->on_error == SL_CONFIG_ON_ERROR_FAIL)) {
                job_finish(w, job, err == -SL_ENOMEM ? "inference" : "decode",
                           reason);
                return;
            }
            job_set_error(job, bc->name, SL_INFER_EC_INPUT, 0, reason, 0);
            json_object_set_new(job->timings, bc->name, json_integer(0));
            nfailed++;
            continue;
        }
        if (body) {
            struct req *req = req_new(w, be, 1, body);
            if (!req) {
                job_finish(w, job, "inference", "out of memory");
                return;
            }
            req_attach(req, call);
        } else if (!proto->render_batch) {
            struct req *req = req_new(w, be, 1, NULL); /* GET */
            if (!req) {
                job_finish(w, job, "inference", "out of memory");
                return;
            }
            req_attach(req, call);
        }
    }
    job->nleft = job->ncalls - nfailed;
    for (size_t i = 0; i < job->ncalls; i++) {
        struct call *call = &job->calls[i];
        if (!call->input)
            continue;
        struct batch *b = &w->batches[call->be];
        if (!b->n)
            b->first_ms = sl_mono_ms();
        b->calls[b->n++] = call;
        call->in_batch = true;
        if (b->n >= (size_t)bconf(w, call->be)->batch_max &&
            batch_flush(w, call->be)) {
            job_finish(w, job, "inference", "out of memory");
            return;
        }
    }
    if (job->nleft == 0)
        job_step_done(w, job);
}

/* ---- the worker ---- */

struct sl_infer_worker *sl_infer_worker_new(struct sl_infer *inf,
                                            int max_inflight, char *errstr,
                                            size_t errstr_size)
{
    struct sl_infer_worker *w = calloc(1, sizeof(*w));
    long conns;

    if (!w)
        goto nomem;
    w->epfd = w->wake_fd = -1;
    w->inf = inf;
    w->finished_tail = &w->finished;
    w->rng = (uint64_t)sl_now_us() ^ ((uint64_t)(uintptr_t)w << 16);
    w->batches = calloc(inf->be_cnt ? inf->be_cnt : 1, sizeof(*w->batches));
    if (!w->batches)
        goto nomem;
    for (size_t i = 0; i < inf->be_cnt; i++) {
        const struct sl_config_backend *bc = inf->be[i].conf;
        if (!sl_infer_proto_of(bc->kind)->render_batch)
            continue;
        w->batches[i].calls =
            calloc((size_t)bc->batch_max, sizeof(*w->batches[i].calls));
        if (!w->batches[i].calls)
            goto nomem;
    }
    w->curl_due_ms = -1;
    w->deadline_due_ms = INT64_MAX;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = w->wake_fd};
    if (w->epfd < 0 || w->wake_fd < 0 ||
        epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->wake_fd, &ev) < 0) {
        sl_seterr(sl_err_from_errno(errno), errstr, errstr_size,
                  "cannot make the worker's event set: %s", strerror(errno));
        sl_infer_worker_destroy(w);
        return NULL;
    }
    w->multi = curl_multi_init();
    if (!w->multi)
        goto nomem;
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w);
    conns = (long)(max_inflight > 0 ? max_inflight : 1) *
            (long)(inf->be_cnt ? inf->be_cnt : 1);
    if (conns < 16)
        conns = 16;
    if (conns > 1024)
        conns = 1024;
    curl_multi_setopt(w->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    curl_multi_setopt(w->multi, CURLMOPT_MAX_HOST_CONNECTIONS, conns);
    curl_multi_setopt(w->multi, CURLMOPT_MAXCONNECTS, conns);
    return w;
nomem:
    sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    sl_infer_worker_destroy(w);
    return NULL;
}

void sl_infer_worker_destroy(struct sl_infer_worker *w)
{
    if (!w)
        return;
    while (w->jobs) {
        struct job *job = w->jobs;
        job_cancel_calls(w, job);
        job_unlink(w, job);
        job_free(job);
    }
    while (w->finished) {
        struct job *job = w->finished;
        w->finished = job->next;
        job_free(job);
    }
    for (struct req *req = w->reqs; req; req = req->next)
        if (req->state != REQ_DEAD)
            req_release(w, req, SL_BREAKER_CANCEL);
    req_sweep(w);
    for (int i = 0; i < w->easy_free_cnt; i++)
        curl_easy_cleanup(w->easy_free[i]);
    if (w->multi)
        curl_multi_cleanup(w->multi);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->wake_fd >= 0)
        close(w->wake_fd);
    for (size_t i = 0; w->batches && i < w->inf->be_cnt; i++)
        free(w->batches[i].calls);
    free(w->batches);
    free(w);
}

static struct job *job_new(struct sl_infer_worker *w, void *item,
                           sl_infer_done_fn done, void *arg)
{
    struct job *job = calloc(1, sizeof(*job));

    if (!job)
        return NULL;
    job->item = item;
    job->done = done;
    job->arg = arg;
    job->start_ms = sl_mono_ms();
    job->fail_class = -1;
    job->results = json_object();
    job->errors = json_object();
    job->timings = json_object();
    if (!job->results || !job->errors || !job->timings) {
        job_free(job);
        return NULL;
    }
    job->next = w->jobs;
    if (w->jobs)
        w->jobs->prev = job;
    w->jobs = job;
    w->njobs++;
    return job;
}

int sl_infer_worker_submit(struct sl_infer_worker *w, struct sl_msg *msg,
                           sl_infer_done_fn done, void *arg)
{
    char errstr[ERRTEXT];
    struct job *job = job_new(w, msg, done, arg);

    if (!job)
        return -SL_ENOMEM;
    if (msg->error) {
        job_finish(w, job, msg->error_stage ? msg->error_stage : "decode",
                   msg->error);
        return 0;
    }
    int raw = w->inf->cfg->source.payload_format == SL_CONFIG_PAYLOAD_RAW;
    if (sl_template_parse_payload(msg->payload, msg->payload_len, raw,
                                  &job->doc, errstr, sizeof(errstr))) {
        job_finish(w, job, "decode", errstr);
        return 0;
    }
    job_start_step(w, job);
    return 0;
}

int sl_infer_worker_submit_json(struct sl_infer_worker *w, json_t *doc,
                                void *item, sl_infer_done_fn done, void *arg)
{
    struct job *job = job_new(w, item, done, arg);

    if (!job)
        return -SL_ENOMEM;
    job->doc = json_incref(doc);
    job_start_step(w, job);
    return 0;
}

/* Step deadlines that passed by 'now'; scans the jobs only when one can
 * have passed. */
static void run_deadlines(struct sl_infer_worker *w, int64_t now)
{
    struct job *job, *jnext;
    int64_t next = INT64_MAX;

    if (now < w->deadline_due_ms)
        return;
    for (job = w->jobs; job; job = jnext) {
        jnext = job->next;
        if (!job->deadline_ms)
            continue;
        if (job->deadline_ms > now) {
            if (job->deadline_ms < next)
                next = job->deadline_ms;
            continue;
        }
        const struct sl_config_step *st = &w->inf->cfg->steps[job->step];
        struct call_err ce = {.ec = SL_INFER_EC_DEADLINE};
        snprintf(ce.text, sizeof(ce.text), "step '%s' deadline of %d ms passed",
                 st->name, st->deadline_ms);
        job->deadline_ms = 0;
        size_t step = job->step;
        /* call_finish() may finish the job or start its next step (which
         * replaces job->calls): stop when either happened. */
        for (size_t i = 0;
             i < job->ncalls && job->step == step && !job->finished; i++) {
            if (job->calls[i].done)
                continue;
            /* The attempt in flight counts: it was made. */
            if (job->calls[i].req)
                job->calls[i].attempts = job->calls[i].req->attempts;
            stats_error(w, job->calls[i].be, SL_INFER_EC_DEADLINE);
            log_failure(w, job->calls[i].be, &ce, job->calls[i].attempts, 0,
                        st->mode == SL_CONFIG_MODE_ALL &&
                                st->on_error == SL_CONFIG_ON_ERROR_PARTIAL
                            ? "the result records the error (on_error: "
                              "partial)"
                            : "the message fails (dead letter, or the "
                              "gateway's error answer)");
            call_finish(w, &job->calls[i], NULL, &ce);
        }
        /* Its next step may have a deadline of its own. */
        if (!job->finished && job->deadline_ms && job->deadline_ms < next)
            next = job->deadline_ms;
    }
    w->deadline_due_ms = next;
}

/* Deadlines, full or old batches, due admissions.  Returns the next time
 * something is due (INT64_MAX when nothing). */
static int64_t run_due(struct sl_infer_worker *w, int64_t now)
{
    int64_t next;

    run_deadlines(w, now);
    next = w->deadline_due_ms;
    for (size_t be = 0; be < w->inf->be_cnt; be++) {
        struct batch *b = &w->batches[be];
        if (!b->n)
            continue;
        int64_t due = b->first_ms + bconf(w, be)->batch_wait_ms;
        if (due <= now)
            batch_flush(w, be);
        else if (due < next)
            next = due;
    }
    struct req *req = w->waitq, *rnext;
    for (; req; req = rnext) {
        rnext = req->wnext; /* admission takes it off the list */
        if (req->due_ms <= now) {
            req_admit(w, req, now);
            /* A refusal can fail a job and release its other requests,
             * 'rnext' among them: then start again from the head. */
            if (rnext && rnext->state != REQ_WAIT)
                rnext = w->waitq;
        }
        if (req->state == REQ_WAIT && req->due_ms < next)
            next = req->due_ms;
    }
    return next;
}

/* libcurl wants 'what' on socket 's' (CURLMOPT_SOCKETFUNCTION). */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct sl_infer_worker *w = userp;
    struct epoll_event ev = {.data.fd = s};
    (void)easy;

    if (what == CURL_POLL_REMOVE) {
        /* The socket may be closed already: then the kernel dropped it. */
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
        curl_multi_assign(w->multi, s, NULL);
        return 0;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(w->epfd, op, s, &ev) < 0) {
        /* A number reused after a close libcurl did not report, or one
         * the kernel dropped: the other operation fits. */
        op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(w->epfd, op, s, &ev) < 0) {
            sl_log(SL_LOG_ERROR, "infer", "cannot watch socket %d: %s", s,
                   strerror(errno));
            return -1; /* libcurl fails the transfer */
        }
    }
    if (!socketp)
        curl_multi_assign(w->multi, s, w);
    return 0;
}

/* libcurl wants to be called in 'timeout_ms' (CURLMOPT_TIMERFUNCTION). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct sl_infer_worker *w = userp;
    (void)multi;

    w->curl_due_ms = timeout_ms < 0 ? -1 : sl_mono_ms() + timeout_ms;
    return 0;
}

/* Finish the requests whose transfers ended. */
static void collect(struct sl_infer_worker *w)
{
    int left;
    CURLMsg *m;

    while ((m = curl_multi_info_read(w->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct req *req = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        if (req && req->easy == m->easy_handle)
            req_complete(w, req, m->data.result);
    }
}

/* Run libcurl's timer when due, then finish what ended. */
static void drive(struct sl_infer_worker *w, int64_t now)
{
    int running;

    if (w->curl_due_ms >= 0 && w->curl_due_ms <= now) {
        w->curl_due_ms = -1; /* on_timer() may set it again */
        curl_multi_socket_action(w->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    collect(w);
}

/* Wait up to 'wait_ms' for sockets or a wake-up and serve them. */
static void wait_events(struct sl_infer_worker *w, int wait_ms)
{
    struct epoll_event evs[EVENTS_MAX];
    int n, running;

    n = epoll_wait(w->epfd, evs, EVENTS_MAX, wait_ms);
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (fd == w->wake_fd) {
            uint64_t v;
            if (read(w->wake_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
                sl_log(SL_LOG_WARN, "infer", "wake-up read: %s",
                       strerror(errno));
            continue;
        }
        int flags =
            ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0) |
            ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
            ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action(w->multi, fd, flags, &running);
    }
}

static void deliver(struct sl_infer_worker *w)
{
    while (w->finished) {
        struct job *job = w->finished;
        w->finished = job->next;
        if (!w->finished)
            w->finished_tail = &w->finished;
        struct sl_infer_result res = {
            .status = job->failed    ? SL_INFER_FAILED
                      : job->partial ? SL_INFER_PARTIAL
                                     : SL_INFER_OK,
            .results = job->results,
            .errors = job->errors,
            .timings = job->timings,
            .reason = job->failed ? job->reason : NULL,
            .stage = job->failed ? job->stage : NULL,
            .fail_class = job->failed ? job->fail_class : -1,
        };
        w->njobs--;
        w->delivering = true;
        job->done(job->arg, job->item, &res);
        w->delivering = false;
        job_free(job);
    }
}

int sl_infer_worker_progress(struct sl_infer_worker *w, int timeout_ms)
{
    if (w->delivering)
        return w->njobs;
    int64_t now = sl_mono_ms();
    run_due(w, now);
    drive(w, now);
    /* What drive() finished may have started a step or queued a retry:
     * admit and count those before deciding how long to wait. */
    int64_t next = run_due(w, now);
    if (!w->finished && timeout_ms > 0 && w->njobs > 0) {
        int64_t wait = timeout_ms;
        if (next != INT64_MAX && next - now < wait)
            wait = next - now;
        if (w->curl_due_ms >= 0 && w->curl_due_ms - now < wait)
            wait = w->curl_due_ms - now;
        wait_events(w, wait < 0 ? 0 : (int)wait);
        now = sl_mono_ms();
        drive(w, now);
        run_due(w, now);
        drive(w, now);
    }
    req_sweep(w);
    deliver(w);
    return w->njobs;
}

void sl_infer_worker_wakeup(struct sl_infer_worker *w)
{
    uint64_t one = 1;

    /* EAGAIN: the counter is full, so a wake-up is pending anyway. */
    if (write(w->wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        sl_log(SL_LOG_WARN, "infer", "wake-up write: %s", strerror(errno));
}
