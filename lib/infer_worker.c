/*
 * The per-thread half of the inference engine: one libcurl multi handle
 * drives every HTTP request of the messages this worker holds.  A message
 * (job) runs its steps in order; a step fans out to its backends (calls);
 * a call is carried by a request (req), which for embeddings batches the
 * calls of many jobs.  Requests wait for admission (cap, rate, breaker)
 * or for a retry timer in the worker's wait list; nothing blocks.  This
 * file holds the jobs, their steps and the event loop; infer_req.c the
 * requests.
 *
 * libcurl is driven by its socket interface: an epoll set holds the
 * sockets it asks for and an eventfd for wake-ups, so a wake-up costs
 * the sockets that are ready, not a walk over every transfer.
 */
#include "infer_worker_int.h"

#include "dlist.h"
#include "err.h"
#include "log.h"
#include "template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void job_start_step(struct sl_infer_worker *w, struct job *job);
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp);
static int on_timer(CURLM *multi, long timeout_ms, void *userp);

/* ---- jobs ---- */

static void job_unlink(struct sl_infer_worker *w, struct job *job)
{
    SL_DLIST_UNLINK(w->jobs, job, prev, next);
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
            sl_infer_req_release(w, req, SL_BREAKER_CANCEL);
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
                       enum sl_row_stage stage, const char *reason)
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
            const char *msg = json_string_value(json_object_get(e, "message"));
            job->fail_class = errclass_of(ec);
            snprintf(reason, sizeof(reason),
                     "step '%s': backend '%s' failed (%s) after %d "
                     "attempt(s): %s",
                     st->name, first_failed ? first_failed : "?", ec ? ec : "?",
                     (int)json_integer_value(json_object_get(e, "attempts")),
                     msg ? msg : "");
            /* No backend could even render the message: it is bad. */
            job_finish(
                w, job,
                ec && !strcmp(ec, sl_infer_errclass_name(SL_INFER_EC_INPUT))
                    ? SL_STAGE_DECODE
                    : SL_STAGE_INFERENCE,
                reason);
            return;
        }
    }
    job->step++;
    job_start_step(w, job);
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

void sl_infer_call_usage(struct sl_infer_worker *w, struct call *call,
                         const struct sl_infer_usage *u)
{
    json_t *j = sl_infer_usage_json(u), *all;

    if (!j || call->done)
        goto out;
    all = json_object_get(call->job->timings, "usage");
    if (!all) {
        all = json_object();
        if (json_object_set_new(call->job->timings, "usage", all))
            goto out;
    }
    json_object_set(all, bconf(w, call->be)->name, j);
out:
    json_decref(j);
}

/*
 * Finish one call with a value (owned; stolen) or an error.  May finish
 * the step and the job.
 */
void sl_infer_call_finish(struct sl_infer_worker *w, struct call *call,
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
    struct req *req = text ? sl_infer_req_new(w, be, b->n, text) : NULL;
    if (!req)
        return -SL_ENOMEM;
    for (size_t i = 0; i < b->n; i++) {
        b->calls[i]->in_batch = false;
        sl_infer_req_attach(req, b->calls[i]);
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
        job_finish(w, job, SL_STAGE_INFERENCE, NULL); /* done: no stage */
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
        job_finish(w, job, SL_STAGE_INFERENCE, "out of memory");
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
            err = proto->render(&w->inf->be[be], job->doc, &body, errstr,
                                sizeof(errstr));
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
                job_finish(w, job,
                           err == -SL_ENOMEM ? SL_STAGE_INFERENCE
                                             : SL_STAGE_DECODE,
                           reason);
                return;
            }
            job_set_error(job, bc->name, SL_INFER_EC_INPUT, 0, reason, 0);
            json_object_set_new(job->timings, bc->name, json_integer(0));
            nfailed++;
            continue;
        }
        if (body) {
            struct req *req = sl_infer_req_new(w, be, 1, body);
            if (!req) {
                job_finish(w, job, SL_STAGE_INFERENCE, "out of memory");
                return;
            }
            sl_infer_req_attach(req, call);
        } else if (!proto->render_batch) {
            struct req *req = sl_infer_req_new(w, be, 1, NULL); /* GET */
            if (!req) {
                job_finish(w, job, SL_STAGE_INFERENCE, "out of memory");
                return;
            }
            sl_infer_req_attach(req, call);
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
            job_finish(w, job, SL_STAGE_INFERENCE, "out of memory");
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
    w->pools = calloc(inf->be_cnt ? inf->be_cnt : 1, sizeof(*w->pools));
    if (!w->batches || !w->pools)
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
            sl_infer_req_release(w, req, SL_BREAKER_CANCEL);
    sl_infer_req_sweep(w);
    while (w->req_free) {
        struct req *req = w->req_free;
        w->req_free = req->next;
        free(req->calls);
        free(req->resp);
        free(req);
    }
    for (size_t b = 0; w->pools && b < w->inf->be_cnt; b++)
        for (int i = 0; i < w->pools[b].cnt; i++)
            curl_easy_cleanup(w->pools[b].easy[i]);
    /* Closes the cached connections through sl_infer_close_socket(). */
    if (w->multi)
        curl_multi_cleanup(w->multi);
    for (size_t b = 0; w->pools && b < w->inf->be_cnt; b++)
        curl_url_cleanup(w->pools[b].url);
    free(w->pools);
    free(w->socks);
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
    SL_DLIST_PUSH(w->jobs, job, prev, next);
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
        job_finish(w, job, msg->error_stage, msg->error);
        return 0;
    }
    int raw = w->inf->cfg->source.payload_format == SL_CONFIG_PAYLOAD_RAW;
    if (sl_template_parse_payload(msg->payload, msg->payload_len, raw,
                                  &job->doc, errstr, sizeof(errstr))) {
        job_finish(w, job, SL_STAGE_DECODE, errstr);
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
        /* sl_infer_call_finish() may finish the job or start its next step
         * (which replaces job->calls): stop when either happened. */
        for (size_t i = 0;
             i < job->ncalls && job->step == step && !job->finished; i++) {
            if (job->calls[i].done)
                continue;
            /* The attempt in flight counts: it was made. */
            if (job->calls[i].req)
                job->calls[i].attempts = job->calls[i].req->attempts;
            stats_error(w, job->calls[i].be, SL_INFER_EC_DEADLINE);
            sl_infer_log_failure(
                w, job->calls[i].be, &ce, job->calls[i].attempts, 0,
                st->mode == SL_CONFIG_MODE_ALL &&
                        st->on_error == SL_CONFIG_ON_ERROR_PARTIAL
                    ? "the result records the error (on_error: "
                      "partial)"
                    : "the message fails (dead letter, or the "
                      "gateway's error answer)");
            sl_infer_call_finish(w, &job->calls[i], NULL, &ce);
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
            sl_infer_req_admit(w, req, now);
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

/* The entry of socket 's', grown as needed; NULL when out of memory. */
static struct sockw *sock_entry(struct sl_infer_worker *w, curl_socket_t s)
{
    if (s < 0)
        return NULL;
    if (s >= w->nsocks) {
        int n = w->nsocks ? w->nsocks : 64;
        while (n <= s)
            n *= 2;
        struct sockw *p = realloc(w->socks, (size_t)n * sizeof(*p));
        if (!p)
            return NULL;
        memset(p + w->nsocks, 0, (size_t)(n - w->nsocks) * sizeof(*p));
        w->socks = p;
        w->nsocks = n;
    }
    return &w->socks[s];
}

/* Take socket 's' out of the epoll set (if there). */
static void sock_forget(struct sl_infer_worker *w, curl_socket_t s)
{
    if (s < 0 || s >= w->nsocks || !w->socks[s].in_set)
        return;
    /* ENOENT: closed already, and the kernel dropped it. */
    epoll_ctl(w->epfd, EPOLL_CTL_DEL, s, NULL);
    w->socks[s].in_set = w->socks[s].wanted = false;
}

/* An entry for socket 's' that is not registered and not ours. */
static void sock_clear(struct sl_infer_worker *w, curl_socket_t s)
{
    if (s >= 0 && s < w->nsocks)
        w->socks[s] = (struct sockw){0};
}

curl_socket_t sl_infer_open_socket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *addr)
{
    struct sl_infer_worker *w = clientp;
    (void)purpose;

    curl_socket_t s =
        socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    if (s < 0)
        return CURL_SOCKET_BAD;
    struct sockw *sw = sock_entry(w, s);
    if (sw) /* a new socket, maybe under a reused number */
        *sw = (struct sockw){.ours = true};
    return s;
}

int sl_infer_close_socket(void *clientp, curl_socket_t s)
{
    sock_forget(clientp, s);
    sock_clear(clientp, s);
    return close(s);
}

/*
 * libcurl wants 'what' on socket 's' (CURLMOPT_SOCKETFUNCTION).  A socket
 * stays in the epoll set when its transfer ends (CURL_POLL_REMOVE): the
 * connection's next transfer usually wants the same events, and then
 * costs no epoll_ctl().  An idle socket that turns readable (the peer
 * closed it) is taken out by wait_events().
 */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp,
                     void *socketp)
{
    struct sl_infer_worker *w = userp;
    struct epoll_event ev = {.data.fd = s};
    (void)easy;
    (void)socketp;

    if (what == CURL_POLL_REMOVE) {
        if (s >= 0 && s < w->nsocks) {
            if (w->socks[s].ours) {
                w->socks[s].wanted = false; /* stays registered */
            } else {
                sock_forget(w, s);
                sock_clear(w, s);
            }
        }
        return 0;
    }
    struct sockw *sw = sock_entry(w, s);
    if (!sw) {
        sl_log(SL_LOG_ERROR, "infer", "cannot watch socket %d: %s", s,
               sl_strerror(-SL_ENOMEM));
        return -1;
    }
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) |
                ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (sw->ours && sw->in_set && sw->events == ev.events) {
        sw->wanted = true;
        return 0;
    }
    int op = sw->in_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(w->epfd, op, s, &ev) < 0) {
        /* A number reused after a close libcurl did not report, or one
         * the kernel dropped: the other operation fits. */
        op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(w->epfd, op, s, &ev) < 0) {
            sw->in_set = sw->wanted = false;
            sl_log(SL_LOG_ERROR, "infer", "cannot watch socket %d: %s", s,
                   strerror(errno));
            return -1; /* libcurl fails the transfer */
        }
    }
    sw->in_set = sw->wanted = true;
    sw->events = ev.events;
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
            sl_infer_req_complete(w, req, m->data.result);
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
        if (fd >= w->nsocks || !w->socks[fd].wanted) {
            /* An idle connection's socket: libcurl checks the connection
             * before it reuses it; stop hearing about it. */
            sock_forget(w, fd);
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
            .stage = job->stage,
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
    sl_infer_req_sweep(w);
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
