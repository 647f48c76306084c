/*
 * sl_run(): build every part from the pipeline, start them in dependency
 * order (sink, workers, source), watch for signals and for the end of the
 * input, and stop them in the opposite order by sentinel.
 */
#include "run.h"
#include "clock.h"
#include "err.h"
#include "http_server.h"
#include "infer.h"
#include "log.h"
#include "metrics.h"
#include "pool.h"
#include "queue.h"
#include "row.h"
#include "sink_pg.h"
#include "source.h"
#include "source_file.h"
#include "source_kafka.h"
#include "source_redis.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SUBMIT_WAIT_MS 100 /* per try when the sink's backlog is full */

struct runner {
    const struct sl_config *cfg;
    char replica_id[128];         /* names rows, groups and logs */
    struct sl_queue *q;           /* source -> workers */
    struct sl_source *src;        /* NULL for a gateway-only pipeline */
    struct sl_sink_pg *sink;      /* PostgreSQL */
    struct sl_infer *inf;         /* shared inference state */
    struct sl_pool *pool;         /* the workers */
    struct sl_http_server *http;  /* /metrics, /healthz, /readyz */
    _Atomic bool draining;        /* shutdown started: /readyz says 503 */
    _Atomic bool hard_stop;       /* second signal: give up waiting */
    _Atomic int64_t inflight;     /* messages in the workers */
    _Atomic uint64_t processed;   /* rows handed to the sink */
    _Atomic uint64_t failed;      /* dead letters handed to the sink */
    _Atomic uint64_t not_durable; /* rows the sink gave back undone */
    _Atomic int64_t beat_ms[256]; /* last progress of each worker */
};

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
    sl_msg_destroy(msg); /* not acked: it will be redelivered */
}

static void hand_to_sink(struct runner *r, struct sl_row *row)
{
    for (;;) {
        int rc = sl_sink_pg_submit(r->sink, row, SUBMIT_WAIT_MS);
        if (rc == 0)
            return;
        if (rc != -SL_ETIMEDOUT || atomic_load(&r->hard_stop)) {
            /* Never acked, so redelivered by the next run. */
            sl_row_destroy(row);
            return;
        }
    }
}

/* A message finished its steps.  Worker thread. */
static void on_done(void *arg, void *item, const struct sl_infer_result *res)
{
    struct worker *w = arg;
    struct runner *r = w->r;
    struct sl_msg *msg = item;
    struct sl_row *row;

    atomic_fetch_sub(&r->inflight, 1);
    if (res->status == SL_INFER_FAILED) {
        enum sl_row_stage stage = SL_STAGE_INFERENCE;
        const char *s = msg->error ? msg->error_stage : res->stage;
        if (s && !strcmp(s, "decode"))
            stage = SL_STAGE_DECODE;
        else if (s && !strcmp(s, "redelivery"))
            stage = SL_STAGE_REDELIVERY;
        row = sl_row_new_dead(msg, stage, msg->error ? msg->error : res->reason,
                              "", msg->attempts);
        atomic_fetch_add(&r->failed, 1);
    } else {
        row = sl_row_new_result(msg, res->results, res->errors, res->timings,
                                w->name);
        atomic_fetch_add(&r->processed, 1);
    }
    if (!row) {
        sl_log(SL_LOG_ERROR, "worker",
               "out of memory building a row; the message will be "
               "redelivered");
        sl_msg_destroy(msg);
        return;
    }
    hand_to_sink(r, row);
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
        sl_msg_destroy(item); /* not acked: redelivered later */
    }
}

static int w_progress(void *state, int timeout_ms)
{
    struct worker *w = state;
    if (w->id < 256)
        atomic_store(&w->r->beat_ms[w->id], sl_mono_ms());
    return sl_infer_worker_progress(w->iw, timeout_ms);
}

static void w_fini(void *state)
{
    struct worker *w = state;
    sl_infer_worker_destroy(w->iw);
    free(w);
}

static const struct sl_pool_ops worker_ops = {w_init, w_submit, w_progress,
                                              w_fini};

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
        struct sl_kafka_property *props =
            calloc(k->properties.cnt + 1, sizeof(*props));
        if (!props)
            return NULL;
        for (size_t i = 0; i < k->properties.cnt; i++)
            props[i] = (struct sl_kafka_property){k->properties.items[i].key,
                                                  k->properties.items[i].value};
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
        struct sl_source *src = sl_source_kafka_new(&kc, r->q, err, errsz);
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
    };
    int rc;
    return sl_sink_pg_new(&sc, on_durable, r, &rc, err, errsz);
}

/* ---- observability ---- */

static void serve_metrics(void *arg, const struct sl_http_request *req,
                          struct sl_http_response *res)
{
    struct runner *r = arg;
    struct sl_prom p;
    struct sl_sink_pg_stats ss;
    (void)req;

    if (sl_prom_init(&p, 1 << 20) < 0) {
        sl_http_response_text(res, 500, "text/plain", "out of memory\n");
        return;
    }
    if (r->src) {
        struct sl_source_stats *st = sl_source_stats(r->src);
        sl_prom_family(&p, "sluice_messages_consumed_total", "counter",
                       "Messages taken from the source into the queue.");
        sl_prom_sample(&p, "sluice_messages_consumed_total",
                       (double)atomic_load(&st->consumed), NULL);
        sl_prom_family(&p, "sluice_messages_acked_total", "counter",
                       "Messages durable in PostgreSQL and acked.");
        sl_prom_sample(&p, "sluice_messages_acked_total",
                       (double)atomic_load(&st->acked), NULL);
    }
    sl_prom_family(&p, "sluice_messages_processed_total", "counter",
                   "Messages whose results went to the sink.");
    sl_prom_sample(&p, "sluice_messages_processed_total",
                   (double)atomic_load(&r->processed), NULL);
    sl_prom_family(&p, "sluice_messages_failed_total", "counter",
                   "Messages sent to the dead-letter table.");
    sl_prom_sample(&p, "sluice_messages_failed_total",
                   (double)atomic_load(&r->failed), NULL);
    sl_prom_family(&p, "sluice_inflight", "gauge",
                   "Messages in the workers now.");
    sl_prom_sample(&p, "sluice_inflight", (double)atomic_load(&r->inflight),
                   NULL);
    sl_prom_family(&p, "sluice_queue_depth", "gauge",
                   "Messages waiting in the bounded queue.");
    sl_prom_sample(&p, "sluice_queue_depth", (double)sl_queue_depth(r->q),
                   NULL);

    sl_sink_pg_stats(r->sink, &ss);
    sl_prom_family(&p, "sluice_sink_rows_written_total", "counter",
                   "Rows inserted into the results table.");
    sl_prom_sample(&p, "sluice_sink_rows_written_total",
                   (double)ss.rows_written, NULL);
    sl_prom_family(&p, "sluice_sink_duplicates_skipped_total", "counter",
                   "Redelivered rows skipped by ON CONFLICT DO NOTHING.");
    sl_prom_sample(&p, "sluice_sink_duplicates_skipped_total",
                   (double)ss.duplicates, NULL);
    sl_prom_family(&p, "sluice_sink_dead_letters_total", "counter",
                   "Rows written to the dead-letter table.");
    sl_prom_sample(&p, "sluice_sink_dead_letters_total",
                   (double)ss.dead_letters, NULL);
    sl_prom_family(&p, "sluice_sink_batches_total", "counter",
                   "Transactions committed.");
    sl_prom_sample(&p, "sluice_sink_batches_total", (double)ss.batches, NULL);
    sl_prom_family(&p, "sluice_sink_reconnects_total", "counter",
                   "PostgreSQL connections after the first.");
    sl_prom_sample(&p, "sluice_sink_reconnects_total", (double)ss.reconnects,
                   NULL);
    sl_prom_family(&p, "sluice_sink_connected", "gauge",
                   "1 when the sink's connection is ready.");
    sl_prom_sample(&p, "sluice_sink_connected",
                   ss.state == SL_SINK_PG_READY ? 1 : 0, NULL);

    static const char *const fam[][3] = {
        {"sluice_backend_requests_total", "counter", "HTTP attempts sent."},
        {"sluice_backend_retries_total", "counter",
         "Attempts after the first."},
        {"sluice_backend_errors_total", "counter", "Failed attempts by class."},
        {"sluice_backend_circuit_open", "gauge",
         "Breaker state: 0 closed, 1 open, 2 half-open."},
    };
    for (int f = 0; f < 4; f++) {
        sl_prom_family(&p, fam[f][0], fam[f][1], fam[f][2]);
        for (size_t i = 0; i < r->cfg->backend_cnt; i++) {
            const struct sl_infer_stats *bs = sl_infer_stats(r->inf, i);
            const char *name = r->cfg->backends[i].name;
            if (f == 0)
                sl_prom_sample(&p, fam[f][0],
                               (double)atomic_load(&bs->requests), "backend",
                               name, NULL);
            else if (f == 1)
                sl_prom_sample(&p, fam[f][0], (double)atomic_load(&bs->retries),
                               "backend", name, NULL);
            else if (f == 2)
                for (int e = 0; e < SL_INFER_EC_COUNT; e++)
                    sl_prom_sample(&p, fam[f][0],
                                   (double)atomic_load(&bs->errors[e]),
                                   "backend", name, "class",
                                   sl_infer_errclass_name(e), NULL);
            else
                sl_prom_sample(&p, fam[f][0],
                               (double)sl_infer_breaker_state(r->inf, i),
                               "backend", name, NULL);
        }
    }
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4";
    res->body = p.buf; /* handed to the server, which frees it */
    res->body_len = p.len;
}

static void serve_healthz(void *arg, const struct sl_http_request *req,
                          struct sl_http_response *res)
{
    struct runner *r = arg;
    (void)req;
    int64_t now = sl_mono_ms();
    int threads = r->cfg->workers.threads < 256 ? r->cfg->workers.threads : 256;
    for (int i = 0; i < threads; i++) {
        int64_t beat = atomic_load(&r->beat_ms[i]);
        if (beat && now - beat > 30000 && !atomic_load(&r->draining)) {
            sl_http_response_text(res, 503, "text/plain",
                                  "a worker made no progress for 30 s\n");
            return;
        }
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
    sl_sink_pg_stats(r->sink, &ss);
    if (ss.state != SL_SINK_PG_READY) {
        sl_http_response_text(res, 503, "text/plain",
                              "postgres not connected\n");
        return;
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
    sl_http_server_destroy(r->http);
    sl_pool_destroy(r->pool);
    sl_sink_pg_destroy(r->sink);
    sl_source_destroy(r->src);
    sl_infer_destroy(r->inf);
    sl_queue_destroy(r->q);
}

int sl_run(const struct sl_config *cfg, const struct sl_run_opts *opts)
{
    struct runner *r = calloc(1, sizeof(*r));
    char err[512];
    sigset_t sigs;
    int status = 0;

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
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    r->q = sl_queue_new((size_t)cfg->queue.capacity,
                        (void (*)(void *))sl_msg_destroy);
    if (!r->q) {
        sl_log(SL_LOG_ERROR, "run", "out of memory");
        return 1;
    }
    if (!cfg->source.present) {
        /* The gateway (POST /v1/process) is not built yet. */
        sl_log(SL_LOG_ERROR, "run",
               "pipeline '%s' has no source, and gateway mode is not "
               "available in this version",
               cfg->name);
        status = 1;
        goto out;
    }
    if (!(r->inf = sl_infer_new(cfg, err, sizeof(err)))) {
        sl_log(SL_LOG_ERROR, "run", "inference: %s", err);
        status = 1;
        goto out;
    }
    if (!(r->sink = make_sink(r, err, sizeof(err)))) {
        sl_log(SL_LOG_ERROR, "run", "postgres sink: %s", err);
        status = 1;
        goto out;
    }
    r->http = sl_http_server_new(
        opts && opts->listen ? opts->listen : cfg->http.listen,
        (size_t)cfg->gateway.max_body_bytes, 2, err, sizeof(err));
    if (!r->http) {
        sl_log(SL_LOG_ERROR, "run", "http: %s", err);
        status = 1;
        goto out;
    }
    sl_http_server_route(r->http, "GET", "/metrics", serve_metrics, r);
    sl_http_server_route(r->http, "GET", "/healthz", serve_healthz, r);
    sl_http_server_route(r->http, "GET", "/readyz", serve_readyz, r);
    if (sl_http_server_start(r->http, err, sizeof(err)) < 0) {
        sl_log(SL_LOG_ERROR, "run", "http: %s", err);
        status = 1;
        goto out;
    }
    r->pool = sl_pool_new(r->q, cfg->workers.threads, cfg->workers.max_inflight,
                          &worker_ops, r, err, sizeof(err));
    if (!r->pool) {
        sl_log(SL_LOG_ERROR, "run", "workers: %s", err);
        status = 1;
        goto out;
    }
    if (cfg->source.present) {
        if (!(r->src = make_source(r, err, sizeof(err))) ||
            sl_source_start(r->src, err, sizeof(err)) < 0) {
            sl_log(SL_LOG_ERROR, "run", "source: %s", err);
            status = 1;
            goto stop_pool;
        }
    }
    sl_log(SL_LOG_INFO, "run",
           "running pipeline '%s' as %s: %d workers x %d in flight, queue "
           "%d, metrics on %s (port %d)",
           cfg->name, r->replica_id, cfg->workers.threads,
           cfg->workers.max_inflight, cfg->queue.capacity, cfg->http.listen,
           sl_http_server_port(r->http));

    /* Run until a signal, the end of the input, or a fatal error. */
    for (;;) {
        int sig = wait_signal(&sigs, 200);
        if (sig) {
            sl_log(SL_LOG_INFO, "run",
                   "%s: draining (up to %d ms); a second signal stops at "
                   "once",
                   sig == SIGINT ? "SIGINT" : "SIGTERM",
                   cfg->shutdown_timeout_ms);
            break;
        }
        if (r->src && sl_source_error(r->src, err, sizeof(err))) {
            sl_log(SL_LOG_ERROR, "run", "%s", err);
            status = 1;
            break;
        }
        if (r->src && sl_source_finished(r->src) &&
            atomic_load(&sl_source_stats(r->src)->acked) ==
                atomic_load(&sl_source_stats(r->src)->consumed)) {
            sl_log(SL_LOG_INFO, "run", "input finished; draining");
            break;
        }
    }

stop_pool:
    atomic_store(&r->draining, true);
    {
        int64_t deadline = sl_mono_ms() + cfg->shutdown_timeout_ms;
        /* Sentinels after the last message: one per worker. */
        if (r->src)
            sl_source_stop(r->src, cfg->workers.threads);
        else
            for (int i = 0; i < cfg->workers.threads; i++)
                sl_queue_push(r->q, NULL, 1000);
        int rc = -SL_ETIMEDOUT;
        while (sl_mono_ms() < deadline) {
            rc = sl_pool_wait(r->pool, 100);
            if (rc != -SL_ETIMEDOUT)
                break;
            if (wait_signal(&sigs, 0)) {
                sl_log(SL_LOG_WARN, "run",
                       "second signal: stopping now; only what is durable "
                       "is committed");
                atomic_store(&r->hard_stop, true);
                break;
            }
        }
        bool workers_done = rc != -SL_ETIMEDOUT;
        int64_t left = deadline - sl_mono_ms();
        if (atomic_load(&r->hard_stop) || left < 0)
            left = 0;
        /* Flush and commit run to completion once started (shield). */
        if (sl_sink_pg_drain(r->sink, (int)left) < 0 && status == 0)
            sl_log(SL_LOG_WARN, "run",
                   "shutdown deadline passed: rows not yet durable are not "
                   "committed and will be redelivered");
        if (r->src)
            sl_source_close(r->src);
        if (!workers_done) {
            /* Workers still hold messages: leave them; nothing of theirs
             * was committed.  Exit without joining them. */
            sl_log(SL_LOG_WARN, "run",
                   "workers did not finish within %d ms; their messages "
                   "will be redelivered",
                   cfg->shutdown_timeout_ms);
            fflush(NULL);
            _exit(status);
        }
    }

out:
    if (r->src) {
        struct sl_source_stats *st = sl_source_stats(r->src);
        sl_log(SL_LOG_INFO, "run",
               "stopped: %llu consumed, %llu processed, %llu dead-lettered, "
               "%llu acked",
               (unsigned long long)atomic_load(&st->consumed),
               (unsigned long long)atomic_load(&r->processed),
               (unsigned long long)atomic_load(&r->failed),
               (unsigned long long)atomic_load(&st->acked));
    }
    teardown(r);
    free(r);
    curl_global_cleanup();
    return status;
}
