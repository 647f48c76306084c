/*
 * sl_run(): build every part from the pipeline, start them in dependency
 * order (sink, workers, source), watch for signals and for the end of the
 * input, and stop them in the opposite order by sentinel.
 */
#include "run.h"
#include "run_internal.h"
#include "clock.h"
#include "err.h"
#include "gateway.h"
#include "http_server.h"
#include "infer.h"
#include "lag.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "queue.h"
#include "row.h"
#include "row_submit.h"
#include "secret.h"
#include "sink_pg.h"
#include "source.h"
#include "source_file.h"
#include "source_kafka.h"
#include "source_redis.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBMIT_WAIT_MS 100 /* per try when the sink's backlog is full */

/* Record the first fatal cause; it is logged last.  Main thread. */
static void set_fatal(struct runner *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void set_fatal(struct runner *r, const char *fmt, ...)
{
    va_list ap;

    if (r->fatal[0])
        return;
    va_start(ap, fmt);
    vsnprintf(r->fatal, sizeof(r->fatal), fmt, ap);
    va_end(ap);
}

struct worker {
    struct runner *r;
    struct sl_infer_worker *iw;
    int id;
    char name[160]; /* replica id / worker number */
};

/* The sink made a message durable (err 0) or gave it back. Sink thread. */
static void on_durable(void *arg, struct sl_msg *msg, int err)
{
    struct runner *r = arg;
    if (err == 0 && msg->source) {
        sl_source_ack(msg);
        return;
    }
    if (err)
        atomic_fetch_add(&r->not_durable, 1);
    if (msg->source)
        atomic_fetch_add(&r->given_up, 1);
    sl_msg_destroy(msg); /* not acked: redelivered, if the source can */
}

/* A message finished its steps.  Worker thread. */
static void on_done(void *arg, void *item, const struct sl_infer_result *res)
{
    struct worker *w = arg;
    struct runner *r = w->r;
    struct sl_msg *msg = item;
    struct sl_row *row;

    atomic_fetch_sub(&r->inflight, 1);
    if (msg->attempts > 1)
        atomic_fetch_add(&r->redelivered, 1);
    /* A json payload was parsed by the engine: an object jsonb takes. */
    row = sl_row_of_result(
        msg, res, r->cfg->source.payload_format != SL_CONFIG_PAYLOAD_RAW,
        w->name, sl_sink_pg_row_vectors(r->sink));
    atomic_fetch_add(
        res->status == SL_INFER_FAILED ? &r->failed : &r->processed, 1);
    if (!row) {
        sl_log(SL_LOG_ERROR, "worker",
               "out of memory building a row; the message is not acked");
        atomic_fetch_add(&r->given_up, 1);
        sl_msg_destroy(msg);
        return;
    }
    /* Never acked when the sink does not take it: redelivered by the
     * next run, if the source can. */
    if (sl_row_submit(r->sink, row, SUBMIT_WAIT_MS, -1, &r->hard_stop) < 0)
        atomic_fetch_add(&r->given_up, 1);
}

static int w_init(void *arg, int id, void **statep)
{
    struct runner *r = arg;
    struct worker *w = calloc(1, sizeof(*w));
    char err[256];

    if (!w)
        return -SL_ENOMEM;
    w->r = r;
    w->id = id;
    snprintf(w->name, sizeof(w->name), "%s/%d", r->replica_id, id);
    w->iw = sl_infer_worker_new(r->inf, r->cfg->workers.max_inflight, err,
                                sizeof(err));
    if (!w->iw) {
        sl_log(SL_LOG_ERROR, "worker", "worker %d: %s", id, err);
        free(w);
        return -SL_ENOMEM;
    }
    *statep = w;
    return 0;
}

static void w_submit(void *state, void *item)
{
    struct worker *w = state;
    atomic_fetch_add(&w->r->inflight, 1);
    if (sl_infer_worker_submit(w->iw, item, on_done, w) < 0) {
        atomic_fetch_sub(&w->r->inflight, 1);
        atomic_fetch_add(&w->r->given_up, 1);
        sl_msg_destroy(item); /* not acked: redelivered, if the source can */
    }
}

static int w_progress(void *state, int timeout_ms)
{
    struct worker *w = state;
    return sl_infer_worker_progress(w->iw, timeout_ms);
}

static void w_fini(void *state)
{
    struct worker *w = state;
    sl_infer_worker_destroy(w->iw);
    free(w);
}

static void w_wakeup(void *state)
{
    struct worker *w = state;
    sl_infer_worker_wakeup(w->iw);
}

static const struct sl_pool_ops worker_ops = {w_init, w_submit, w_progress,
                                              w_fini, w_wakeup};

/* ---- building the parts from the pipeline ---- */

static struct sl_source *make_source(struct runner *r, char *err, size_t errsz)
{
    const struct sl_config_source *s = &r->cfg->source;

    switch (s->kind) {
    case SL_CONFIG_SOURCE_FILE:
    case SL_CONFIG_SOURCE_STDIN: {
        struct sl_source_file_conf fc = {
            s->kind == SL_CONFIG_SOURCE_FILE ? s->file.path : NULL,
            (size_t)s->max_message_bytes, 64};
        return sl_source_file_new(&fc, r->q, err, errsz);
    }
    case SL_CONFIG_SOURCE_KAFKA: {
        const struct sl_config_kafka *k = &s->kafka;
        size_t n = k->properties.cnt;
        struct sl_kafka_property *props = calloc(n + 1, sizeof(*props));
        char **values = calloc(n + 1, sizeof(*values));
        struct sl_source *src = NULL;
        if (!props || !values) {
            sl_seterr(-SL_ENOMEM, err, errsz, "out of memory");
            goto kafka_out;
        }
        /* Values given as {value_env: ...} are secrets read only now. */
        for (size_t i = 0; i < n; i++) {
            char what[300];
            snprintf(what, sizeof(what), "kafka property '%s'",
                     k->properties.items[i].key);
            if (sl_config_kv_value(&k->properties.items[i], SL_SECRET_MULTILINE,
                                   what, &values[i], err, errsz) < 0)
                goto kafka_out;
            props[i] = (struct sl_kafka_property){k->properties.items[i].key,
                                                  values[i]};
        }
        struct sl_source_kafka_conf kc = {
            .brokers = k->brokers,
            .topics = (const char *const *)k->topics.items,
            .topic_cnt = k->topics.cnt,
            .group = k->group,
            .group_instance_id = k->group_instance_id,
            .client_id = r->replica_id,
            .auto_offset_reset = k->auto_offset_reset == SL_CONFIG_RESET_LATEST
                                     ? "latest"
                                     : "earliest",
            .revoke_timeout_ms = k->revoke_timeout_ms,
            .max_message_bytes = (size_t)s->max_message_bytes,
            .properties = props,
            .property_cnt = k->properties.cnt,
        };
        src = sl_source_kafka_new(&kc, r->q, err, errsz);
    kafka_out:
        for (size_t i = 0; values && i < n; i++)
            sl_secret_free(values[i]);
        free(values);
        free(props);
        return src;
    }
    case SL_CONFIG_SOURCE_REDIS_STREAM:
    case SL_CONFIG_SOURCE_REDIS_LIST: {
        const struct sl_config_redis *rd = &s->redis;
        struct sl_source_redis_conf rc = {
            .url = rd->url,
            .password_env = rd->password_env,
            .password_file = rd->password_file,
            .key = rd->key,
            .group = rd->group,
            .consumer = rd->consumer ? rd->consumer : r->replica_id,
            .count = rd->count,
            .block_ms = rd->block_ms,
            .min_idle_ms = rd->min_idle_ms,
            .claim_interval_ms = rd->claim_interval_ms,
            .max_deliveries = rd->max_deliveries,
            .ack_batch = rd->ack_batch,
            .max_message_bytes = (size_t)s->max_message_bytes,
            .heartbeat_ms = rd->heartbeat_ms,
        };
        return s->kind == SL_CONFIG_SOURCE_REDIS_STREAM
                   ? sl_source_redis_stream_new(&rc, r->q, err, errsz)
                   : sl_source_redis_list_new(&rc, r->q, err, errsz);
    }
    }
    snprintf(err, errsz, "unknown source kind");
    return NULL;
}

static struct sl_sink_pg *make_sink(struct runner *r, char *err, size_t errsz)
{
    const struct sl_config_postgres *pg = &r->cfg->sink.postgres;
    const struct sl_config_columns *c = &pg->columns;
    char app[192];

    snprintf(app, sizeof(app), "sluice-%s", r->replica_id);
    struct sl_sink_pg_vector vecs[16]; /* columns.vectors: at most 16 */
    size_t nvec = 0;

    for (size_t i = 0; i < c->vectors.cnt && nvec < 16; i++, nvec++) {
        vecs[nvec].column = c->vectors.items[i].key;
        vecs[nvec].backend = c->vectors.items[i].value;
    }
    struct sl_sink_pg_conf sc = {
        .dsn = pg->dsn,
        .password_env = pg->password_env,
        .password_file = pg->password_file,
        .table = pg->table,
        .dead_letter_table = pg->dead_letter_table,
        .create_table = pg->create_table,
        .batch_rows = pg->batch_rows,
        .flush_ms = pg->flush_ms,
        .max_batches_inflight = pg->max_batches_inflight,
        .backlog_rows = pg->backlog_rows,
        .application_name = app,
        .toast_compression =
            pg->toast_compression == SL_CONFIG_TOAST_LZ4    ? "lz4"
            : pg->toast_compression == SL_CONFIG_TOAST_PGLZ ? "pglz"
                                                            : NULL,
        .columns = {.source = c->source,
                    .topic = c->topic,
                    .partition = c->partition,
                    .offset = c->offset,
                    .entry_id = c->entry_id,
                    .key = c->key,
                    .payload = c->payload,
                    .results = c->results,
                    .errors = c->errors,
                    .timings = c->timings,
                    .worker = c->worker},
        .vectors = vecs,
        .vector_cnt = nvec,
        .results_without_vectors = !pg->vectors_in_results,
    };
    return sl_sink_pg_new(&sc, on_durable, r, err, errsz);
}

/* ---- observability ---- */

static void serve_healthz(void *arg, const struct sl_http_request *req,
                          struct sl_http_response *res)
{
    struct runner *r = arg;
    (void)req;
    if (r->pool && !atomic_load(&r->draining) &&
        sl_pool_stalled_ms(r->pool) > 30000) {
        sl_http_response_text(res, 503, "text/plain",
                              "a worker made no progress for 30 s\n");
        return;
    }
    sl_http_response_text(res, 200, "text/plain", "ok\n");
}

static void serve_readyz(void *arg, const struct sl_http_request *req,
                         struct sl_http_response *res)
{
    struct runner *r = arg;
    struct sl_sink_pg_stats ss;
    (void)req;

    if (atomic_load(&r->draining)) {
        sl_http_response_text(res, 503, "text/plain", "draining\n");
        return;
    }
    if (r->sink) {
        sl_sink_pg_stats(r->sink, &ss);
        if (ss.state != SL_SINK_PG_READY) {
            sl_http_response_text(res, 503, "text/plain",
                                  "postgres not connected\n");
            return;
        }
    }
    if (r->src && sl_source_error(r->src, NULL, 0)) {
        sl_http_response_text(res, 503, "text/plain", "source failed\n");
        return;
    }
    sl_http_response_text(res, 200, "text/plain", "ready\n");
}

/* ---- lifecycle ---- */

static int wait_signal(sigset_t *set, int timeout_ms)
{
    struct timespec ts = {timeout_ms / 1000, (timeout_ms % 1000) * 1000000L};
    int sig = sigtimedwait(set, NULL, &ts);
    return sig > 0 ? sig : 0;
}

static void teardown(struct runner *r)
{
    /* The HTTP server first: no handler may run once the parts go. */
    sl_http_server_destroy(r->http);
    sl_lag_destroy(r->lag);
    sl_gateway_destroy(r->gw);
    sl_pool_destroy(r->pool);
    sl_sink_pg_destroy(r->sink);
    sl_source_destroy(r->src);
    sl_infer_destroy(r->inf);
    sl_queue_destroy(r->q);
}

/*
 * Build and start every part.  Returns 0, or 1 with the cause recorded
 * (set_fatal).  Main thread.
 */
static int start_parts(struct runner *r, const struct sl_run_opts *opts)
{
    const struct sl_config *cfg = r->cfg;
    const char *listen = opts && opts->listen ? opts->listen : cfg->http.listen;
    bool gateway = cfg->gateway.enabled;
    bool want_sink =
        cfg->source.present || (gateway && cfg->gateway.write_rows);
    char err[512];

    if (cfg->source.present &&
        !(r->q = sl_queue_new((size_t)cfg->queue.capacity,
                              (void (*)(void *))sl_msg_destroy))) {
        set_fatal(r, "out of memory");
        return 1;
    }
    if (!(r->inf = sl_infer_new(cfg, err, sizeof(err)))) {
        set_fatal(r, "inference: %s", err);
        return 1;
    }
    if (want_sink && !(r->sink = make_sink(r, err, sizeof(err)))) {
        set_fatal(r, "postgres sink: %s", err);
        return 1;
    }
    if (gateway) {
        struct sl_gateway_conf gc = {cfg, r->inf,
                                     cfg->gateway.write_rows ? r->sink : NULL,
                                     r->replica_id};
        if (!(r->gw = sl_gateway_new(&gc, err, sizeof(err)))) {
            set_fatal(r, "%s", err);
            return 1;
        }
    }
    /* A gateway request holds its HTTP thread until answered: with a
     * thread per connection nothing (a scrape, a request to turn away
     * with 429) ever waits behind it.  MHD caps connections at 1024. */
    int threads = gateway ? -1 : 2;
    r->http = sl_http_server_new(listen, (size_t)cfg->gateway.max_body_bytes,
                                 threads, err, sizeof(err));
    if (!r->http) {
        set_fatal(r, "http: %s", err);
        return 1;
    }
    sl_http_server_route(r->http, "GET", "/metrics", sl_run_metrics_serve, r);
    sl_http_server_route(r->http, "GET", "/healthz", serve_healthz, r);
    sl_http_server_route(r->http, "GET", "/readyz", serve_readyz, r);
    if (gateway)
        sl_http_server_route(r->http, "POST", SL_GATEWAY_PATH, sl_gateway_serve,
                             r->gw);
    if (sl_http_server_start(r->http, err, sizeof(err)) < 0) {
        set_fatal(r, "http: %s", err);
        return 1;
    }
    if (cfg->source.present) {
        r->pool =
            sl_pool_new(r->q, cfg->workers.threads, cfg->workers.max_inflight,
                        &worker_ops, r, err, sizeof(err));
        if (!r->pool) {
            set_fatal(r, "workers: %s", err);
            return 1;
        }
        if (!(r->src = make_source(r, err, sizeof(err)))) {
            set_fatal(r, "source: %s", err);
            return 1;
        }
        static const enum sl_source_ordering orderings[] = {
            [SL_CONFIG_ORDER_UNORDERED] = SL_SOURCE_UNORDERED,
            [SL_CONFIG_ORDER_KEY] = SL_SOURCE_BY_KEY,
            [SL_CONFIG_ORDER_PARTITION] = SL_SOURCE_BY_PARTITION,
        };
        sl_source_set_ordering(r->src, orderings[cfg->source.ordering],
                               (size_t)cfg->queue.capacity);
        if (sl_source_start(r->src, err, sizeof(err)) < 0) {
            set_fatal(r, "source: %s", err);
            return 1;
        }
        r->src_started = true;
        /* Without it /metrics only lacks the lag: not fatal. */
        r->lag = sl_lag_start(cfg, r->src, err, sizeof(err));
        if (!r->lag && (cfg->source.kind == SL_CONFIG_SOURCE_KAFKA ||
                        cfg->source.kind == SL_CONFIG_SOURCE_REDIS_STREAM))
            sl_log(SL_LOG_WARN, "run", "consumer lag not watched: %s", err);
    }

    char host[128];
    const char *colon = strrchr(listen, ':');
    size_t hl = colon ? (size_t)(colon - listen) : 0;
    if (hl >= sizeof(host))
        hl = sizeof(host) - 1;
    memcpy(host, listen, hl);
    host[hl] = '\0';
    if (cfg->source.present)
        sl_log(SL_LOG_INFO, "run",
               "running pipeline '%s' as %s: %s source, %d workers x %d in "
               "flight, queue %d%s; listening on http://%s:%d",
               cfg->name, r->replica_id,
               sl_config_source_kind_name(cfg->source.kind),
               cfg->workers.threads, cfg->workers.max_inflight,
               cfg->queue.capacity,
               gateway ? ", gateway on POST " SL_GATEWAY_PATH : "", host,
               sl_http_server_port(r->http));
    else
        sl_log(
            SL_LOG_INFO, "run",
            "running pipeline '%s' as %s: gateway only (POST " SL_GATEWAY_PATH
            ", %d at once, rows %s); listening on http://%s:%d",
            cfg->name, r->replica_id, cfg->gateway.max_concurrency,
            cfg->gateway.write_rows ? "written" : "not written", host,
            sl_http_server_port(r->http));
    return 0;
}

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM";
}

/*
 * Wait up to 'wait_ms' for another signal; one asks to stop at once (sets
 * hard_stop).  True when one came.  Main thread.
 */
static bool heard_signal(struct runner *r, sigset_t *sigs, int wait_ms)
{
    int sig = wait_signal(sigs, wait_ms);
    if (!sig)
        return false;
    sl_log(SL_LOG_WARN, "run",
           "%s signal (%s): stopping now; only what is durable is "
           "committed",
           atomic_load(&r->hard_stop) ? "another" : "second", signal_name(sig));
    atomic_store(&r->hard_stop, true);
    return true;
}

/* True once a second signal asked to stop at once.  Main thread. */
static bool stop_now(struct runner *r, sigset_t *sigs)
{
    return atomic_load(&r->hard_stop) || heard_signal(r, sigs, 0);
}

/* Milliseconds until 'deadline', at most 'slice', at least 0. */
static int until(int64_t deadline, int slice)
{
    int64_t left = deadline - sl_mono_ms();
    return left <= 0 ? 0 : left < slice ? (int)left : slice;
}

struct sink_drain {
    struct sl_sink_pg *sink; /* borrowed */
    int timeout_ms;          /* for sl_sink_pg_drain() */
    int rc;                  /* its result, once 'done' */
    _Atomic bool done;       /* the drain returned */
};

static void *sink_drain_main(void *arg)
{
    struct sink_drain *d = arg;
    d->rc = sl_sink_pg_drain(d->sink, d->timeout_ms);
    atomic_store(&d->done, true);
    return NULL;
}

/*
 * Drain the sink within 'timeout_ms' on a thread of its own, so that a
 * signal is heard meanwhile (a batch already sent runs to its end, which
 * PostgreSQL may make long).  Returns sl_sink_pg_drain()'s result, or
 * -SL_ECANCELED when a signal came first: the thread is then left running
 * (and 'd' leaked) for the process to exit without it.  Main thread.
 */
static int drain_sink(struct runner *r, sigset_t *sigs, int timeout_ms)
{
    struct sink_drain *d = calloc(1, sizeof(*d));
    pthread_t t;

    if (!d || (d->sink = r->sink, d->timeout_ms = timeout_ms,
               pthread_create(&t, NULL, sink_drain_main, d) != 0)) {
        free(d);
        return sl_sink_pg_drain(r->sink, timeout_ms);
    }
    while (!atomic_load(&d->done)) {
        if (heard_signal(r, sigs, 20)) {
            pthread_detach(t);
            return -SL_ECANCELED;
        }
    }
    pthread_join(t, NULL);
    int rc = d->rc;
    free(d);
    return rc;
}

/*
 * The drain: stop the source (sentinels after its last message), stop
 * taking gateway requests and answer those in flight, let the workers
 * finish, flush the sink, commit what is durable.  Every wait gives way
 * to a second signal.  Returns false when workers still hold messages at
 * the deadline (the caller then exits without joining them).  Main
 * thread.
 */
static bool drain(struct runner *r, sigset_t *sigs)
{
    const struct sl_config *cfg = r->cfg;
    int64_t deadline = sl_mono_ms() + cfg->shutdown_timeout_ms;
    int rc = 0;

    atomic_store(&r->draining, true);
    /* Sentinels after the last message: one per worker. */
    if (r->src_started)
        sl_source_stop(r->src, cfg->workers.threads);
    else if (r->pool)
        for (int i = 0; i < cfg->workers.threads; i++)
            sl_queue_push(r->q, NULL, 1000);
    if (r->gw) {
        /* Requests in flight are answered unless a second signal comes:
         * then they are answered 503 at once. */
        while (sl_gateway_wait_idle(r->gw, until(deadline, 100)) != 0 &&
               sl_mono_ms() < deadline && !stop_now(r, sigs))
            ;
        sl_gateway_drain(r->gw, 0);
    }
    if (r->pool) {
        rc = -SL_ETIMEDOUT;
        while (sl_mono_ms() < deadline && !stop_now(r, sigs)) {
            rc = sl_pool_wait(r->pool, 100);
            if (rc != -SL_ETIMEDOUT)
                break;
        }
    }
    bool workers_done = rc != -SL_ETIMEDOUT;
    int64_t left = deadline - sl_mono_ms();
    if (atomic_load(&r->hard_stop) || left < 0)
        left = 0;
    /* Flush and commit run to completion once started (shield), unless a
     * second signal gives up on them. */
    int sink_rc = r->sink ? drain_sink(r, sigs, (int)left) : 0;
    if (sink_rc == -SL_ECANCELED)
        return false; /* the sink thread runs on: exit without it */
    if (sink_rc < 0)
        sl_log(SL_LOG_WARN, "run",
               "shutdown deadline passed: rows not yet durable are given up "
               "and their messages not acked");
    sl_lag_stop(r->lag); /* its queries end before the source closes */
    if (r->src)
        if (sl_source_close(r->src) != 0 && !sl_source_error(r->src, NULL, 0))
            sl_log(SL_LOG_WARN, "run",
                   "the final commit failed: messages acked since the last "
                   "commit will be redelivered (their rows are durable, so "
                   "nothing is written twice)");
    if (!workers_done && !atomic_load(&r->hard_stop))
        sl_log(SL_LOG_WARN, "run",
               "workers did not finish within %d ms; their messages are not "
               "acked",
               cfg->shutdown_timeout_ms);
    return workers_done;
}

/* The summary of what happened; PostgreSQL's counts are what is durable. */
static void log_summary(struct runner *r)
{
    struct sl_sink_pg_stats ss = {0};

    if (r->sink)
        sl_sink_pg_stats(r->sink, &ss);
    if (r->src) {
        struct sl_source_stats *st = sl_source_stats(r->src);
        uint64_t consumed = atomic_load(&st->consumed);
        uint64_t acked = atomic_load(&st->acked);
        uint64_t undone = consumed > acked ? consumed - acked : 0;
        char tail[96] = "";
        if (undone)
            snprintf(tail, sizeof(tail), ", %llu not durable (%s)",
                     (unsigned long long)undone,
                     sl_source_redelivers(r->src) ? "redelivered next run"
                                                  : "lost");
        /* 'processed' and 'dead-lettered' count rows PostgreSQL holds (a
         * gateway that writes rows adds its own), never rows handed over
         * and then given up. */
        sl_log(SL_LOG_INFO, "run",
               "stopped: %llu consumed, %llu processed, %llu dead-lettered, "
               "%llu acked%s",
               (unsigned long long)consumed,
               (unsigned long long)(ss.rows_written + ss.duplicates),
               (unsigned long long)ss.dead_letters, (unsigned long long)acked,
               tail);
    }
    if (r->gw) {
        const struct sl_gateway_stats *gs = sl_gateway_stats(r->gw);
        sl_log(SL_LOG_INFO, "run",
               "gateway stopped: %llu requests, %llu answered 200, %llu rows",
               (unsigned long long)atomic_load(&gs->requests),
               (unsigned long long)atomic_load(&gs->ok),
               (unsigned long long)atomic_load(&gs->rows));
    }
}

/*
 * Messages consumed and never acked, once the source is closed: a source
 * that redelivers gets them again; for one that cannot (file, stdin) they
 * are lost, said at error level, and the exit status is
 * SL_RUN_EXIT_LOST.  Returns the exit status.  Main thread.
 */
static int account_unacked(struct runner *r, int status)
{
    if (!r->src)
        return status;
    struct sl_source_stats *st = sl_source_stats(r->src);
    uint64_t consumed = atomic_load(&st->consumed);
    uint64_t acked = atomic_load(&st->acked);
    if (consumed <= acked)
        return status;
    const char *kind = sl_config_source_kind_name(r->cfg->source.kind);
    if (sl_source_redelivers(r->src)) {
        sl_log(SL_LOG_WARN, "run",
               "%llu messages were not made durable; the %s source "
               "redelivers them to the next run",
               (unsigned long long)(consumed - acked), kind);
        return status;
    }
    sl_log(SL_LOG_ERROR, "run",
           "%llu messages were not made durable and are lost: a %s source "
           "cannot redeliver them (exit status %d)",
           (unsigned long long)(consumed - acked), kind, SL_RUN_EXIT_LOST);
    return SL_RUN_EXIT_LOST;
}

int sl_run(const struct sl_config *cfg, const struct sl_run_opts *opts)
{
    struct runner *r = calloc(1, sizeof(*r));
    char err[512];
    sigset_t sigs;
    int status = 0;
    bool workers_done = true, waiting_logged = false;

    if (!r)
        return 1;
    r->cfg = cfg;
    if (opts && opts->replica_id)
        snprintf(r->replica_id, sizeof(r->replica_id), "%s", opts->replica_id);
    else if (cfg->replica_id)
        snprintf(r->replica_id, sizeof(r->replica_id), "%s", cfg->replica_id);
    else {
        char host[64] = "localhost";
        gethostname(host, sizeof(host) - 1);
        snprintf(r->replica_id, sizeof(r->replica_id), "%s-%d", host,
                 (int)getpid());
    }

    /* Every thread inherits this mask: signals are taken here only. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (start_parts(r, opts) != 0) {
        status = 1;
        if (!r->pool) /* nothing runs that a drain would have to stop */
            goto out;
        goto stop;
    }

    /* Run until a signal, the end of the input, or a fatal error. */
    for (;;) {
        int sig = wait_signal(&sigs, 200);
        if (sig) {
            sl_log(SL_LOG_INFO, "run",
                   "%s: draining (up to %d ms); a second signal stops at "
                   "once",
                   signal_name(sig), cfg->shutdown_timeout_ms);
            break;
        }
        if (r->src && sl_source_error(r->src, err, sizeof(err))) {
            set_fatal(r, "%s", err);
            sl_log(SL_LOG_ERROR, "run", "%s; draining (up to %d ms)", err,
                   cfg->shutdown_timeout_ms);
            status = 1;
            break;
        }
        if (r->src && sl_source_finished(r->src)) {
            struct sl_source_stats *st = sl_source_stats(r->src);
            uint64_t done = atomic_load(&st->acked) + atomic_load(&r->given_up);
            uint64_t consumed = atomic_load(&st->consumed);
            if (done >= consumed) {
                sl_log(SL_LOG_INFO, "run", "input finished; draining");
                break;
            }
            if (!waiting_logged)
                sl_log(SL_LOG_INFO, "run",
                       "input finished; waiting for %llu messages to become "
                       "durable (a signal stops the wait)",
                       (unsigned long long)(consumed - done));
            waiting_logged = true;
        }
    }

stop:
    workers_done = drain(r, &sigs);

out:
    log_summary(r);
    status = account_unacked(r, status);
    if (!workers_done) {
        /* Workers still hold messages: leave them; nothing of theirs
         * was committed.  Exit without joining them. */
        if (r->fatal[0])
            sl_log(SL_LOG_ERROR, "run", "%s", r->fatal);
        fflush(NULL);
        _exit(status);
    }
    teardown(r);
    /* The cause of a fatal exit is the last line an operator reads. */
    if (r->fatal[0])
        sl_log(SL_LOG_ERROR, "run", "%s", r->fatal);
    free(r);
    curl_global_cleanup();
    return status;
}
