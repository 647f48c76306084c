/*
 * GET /metrics for the runner: one table lists every family (name, type,
 * help, when it is shown, how its samples are made); a scrape takes one
 * snapshot of the parts' counters and renders the table in order.
 */
#include "clock.h"
#include "err.h"
#include "gateway.h"
#include "http_server.h"
#include "infer.h"
#include "lag.h"
#include "metrics.h"
#include "queue.h"
#include "run_internal.h"
#include "sink_pg.h"
#include "source.h"
#include "source_kafka.h"
#include "source_redis.h"

#include <dirent.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef SLUICE_COMMIT
#define SLUICE_COMMIT "unknown" /* set by CMake for this file */
#endif

#define MAX_PARTITIONS 1024 /* Kafka partitions shown in /metrics */
#define MAX_BYTES (4 << 20) /* a scrape larger than this answers 500 */

/* The process as /proc/self tells it; a field is -1 when unreadable. */
struct proc {
    double cpu_seconds;   /* user + system time */
    double rss_bytes;     /* resident set */
    double vsize_bytes;   /* virtual memory */
    double start_seconds; /* start, seconds since the Unix epoch */
    double open_fds;      /* entries of /proc/self/fd */
    double max_fds;       /* RLIMIT_NOFILE soft limit */
};

/*
 * Read 'pr' as the Prometheus client libraries define the process_*
 * families: utime, stime, starttime, vsize and rss of /proc/self/stat
 * (the boot time from /proc/stat), the entries of /proc/self/fd.
 */
static void read_proc(struct proc *pr)
{
    char buf[1024];
    long tick = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    FILE *f;

    *pr = (struct proc){-1, -1, -1, -1, -1, -1};
    if ((f = fopen("/proc/self/stat", "r"))) {
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        buf[n] = '\0';
        fclose(f);
        /* The fields after the command name, which may hold spaces. */
        char *rest = strrchr(buf, ')');
        unsigned long utime, stime, vsize;
        unsigned long long start;
        long rss;
        if (rest && tick > 0 &&
            sscanf(rest + 2,
                   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d "
                   "%*d %*d %*d %*d %*d %llu %lu %ld",
                   &utime, &stime, &start, &vsize, &rss) == 5) {
            pr->cpu_seconds = (double)(utime + stime) / (double)tick;
            pr->vsize_bytes = (double)vsize;
            pr->rss_bytes = (double)rss * (double)page;
            if ((f = fopen("/proc/stat", "r"))) {
                unsigned long long btime;
                while (fgets(buf, sizeof(buf), f))
                    if (sscanf(buf, "btime %llu", &btime) == 1)
                        pr->start_seconds =
                            (double)btime + (double)start / (double)tick;
                fclose(f);
            }
        }
    }
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)))
            if (e->d_name[0] != '.')
                n++;
        closedir(d);
        pr->open_fds = n - 1; /* not the one reading the directory */
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        pr->max_fds = rl.rlim_cur == RLIM_INFINITY ? -1 : (double)rl.rlim_cur;
}

/* What one scrape reads, taken once at its start.  HTTP server thread. */
struct scrape {
    struct runner *r;                        /* borrowed */
    struct sl_prom *p;                       /* the text being written */
    struct sl_source_stats *src;             /* NULL without a source */
    struct sl_source_kafka_partition *parts; /* Kafka only; owned */
    size_t nparts;                           /* entries in 'parts' */
    struct sl_source_kafka_stats ks;         /* Kafka only */
    struct sl_source_redis_stats rs;         /* Redis only */
    struct sl_sink_pg_stats ss;              /* with a sink */
    const struct sl_histo *rows_h;           /* sink: rows per batch */
    const struct sl_histo *latency_h;        /* sink: seconds per batch */
    const struct sl_gateway_stats *gs;       /* NULL without a gateway */
    struct sl_lag_entry *lag;                /* the last lag refresh; owned */
    size_t nlag;                             /* entries in 'lag' */
    int64_t lag_ms;                          /* sl_mono_ms() it was measured */
    struct proc proc;                        /* this process */
};

/*
 * One metric family.  'shown' says whether the scrape has it (NULL:
 * always); its samples come from 'value' (one sample without labels) or
 * from 'samples' (labelled samples, or a histogram's lines).
 */
struct family {
    const char *name; /* e.g. "sluice_messages_consumed_total" */
    const char *type; /* counter, gauge or histogram */
    const char *help; /* the # HELP text */
    bool (*shown)(const struct scrape *s);
    double (*value)(const struct scrape *s);
    void (*samples)(const struct scrape *s, const char *name);
};

/* ---- when a family is shown ---- */

static bool has_source(const struct scrape *s)
{
    return s->src != NULL;
}

static bool is_kafka(const struct scrape *s)
{
    return s->src && s->r->cfg->source.kind == SL_CONFIG_SOURCE_KAFKA;
}

static bool is_redis(const struct scrape *s)
{
    enum sl_config_source_kind k = s->r->cfg->source.kind;
    return s->src && (k == SL_CONFIG_SOURCE_REDIS_STREAM ||
                      k == SL_CONFIG_SOURCE_REDIS_LIST);
}

static bool has_sink(const struct scrape *s)
{
    return s->r->sink != NULL;
}

static bool has_gateway(const struct scrape *s)
{
    return s->gs != NULL;
}

static bool has_lag(const struct scrape *s)
{
    return s->r->lag != NULL;
}

static bool is_redis_stream(const struct scrape *s)
{
    return has_lag(s) &&
           s->r->cfg->source.kind == SL_CONFIG_SOURCE_REDIS_STREAM;
}

/* ---- values of unlabelled families ---- */

#define LOAD(x) ((double)atomic_load(&(x)))

static double consumed(const struct scrape *s)
{
    return s->src ? LOAD(s->src->consumed) : 0;
}
static double acked(const struct scrape *s)
{
    return s->src ? LOAD(s->src->acked) : 0;
}
static double processed(const struct scrape *s)
{
    return LOAD(s->r->processed);
}
static double failed(const struct scrape *s)
{
    return LOAD(s->r->failed);
}
static double redelivered(const struct scrape *s)
{
    return LOAD(s->r->redelivered);
}
static double not_durable(const struct scrape *s)
{
    return LOAD(s->r->not_durable);
}
static double inflight(const struct scrape *s)
{
    return LOAD(s->r->inflight);
}
static double queue_depth(const struct scrape *s)
{
    return s->r->q ? (double)sl_queue_depth(s->r->q) : 0;
}
static double draining(const struct scrape *s)
{
    return atomic_load(&s->r->draining) ? 1 : 0;
}
static double source_errors(const struct scrape *s)
{
    return LOAD(s->src->errors);
}
static double source_paused(const struct scrape *s)
{
    return LOAD(s->src->paused);
}
static double kafka_assigned(const struct scrape *s)
{
    return (double)s->ks.assigned;
}
static double kafka_rebalances(const struct scrape *s)
{
    return (double)s->ks.assignments;
}
static double redis_redelivered(const struct scrape *s)
{
    return (double)s->rs.redelivered;
}
static double redis_claimed(const struct scrape *s)
{
    return (double)(s->rs.claimed + s->rs.reaped);
}
static double redis_acked(const struct scrape *s)
{
    return (double)s->rs.acked;
}
static double redis_reconnects(const struct scrape *s)
{
    return (double)s->rs.reconnects;
}
static double sink_written(const struct scrape *s)
{
    return (double)s->ss.rows_written;
}
static double sink_duplicates(const struct scrape *s)
{
    return (double)s->ss.duplicates;
}
static double sink_dead_letters(const struct scrape *s)
{
    return (double)s->ss.dead_letters;
}
static double sink_failed(const struct scrape *s)
{
    return (double)s->ss.rows_failed;
}
static double sink_held(const struct scrape *s)
{
    return (double)s->ss.rows_held;
}
static double sink_batches(const struct scrape *s)
{
    return (double)s->ss.batches;
}
static double sink_reconnects(const struct scrape *s)
{
    return (double)s->ss.reconnects;
}
static double sink_connected(const struct scrape *s)
{
    return s->ss.state == SL_SINK_PG_READY ? 1 : 0;
}
static double gateway_inflight(const struct scrape *s)
{
    return LOAD(s->gs->inflight);
}
static double gateway_rows(const struct scrape *s)
{
    return LOAD(s->gs->rows);
}

/* ---- labelled samples and histograms ---- */

/* One sample per assigned partition of the field at 'off'. */
static void kafka_field(const struct scrape *s, const char *name, size_t off)
{
    for (size_t i = 0; i < s->nparts; i++) {
        const struct sl_source_kafka_partition *kp = &s->parts[i];
        char part[16];
        snprintf(part, sizeof(part), "%d", (int)kp->partition);
        sl_prom_sample(s->p, name,
                       (double)*(const int64_t *)((const char *)kp + off),
                       "topic", kp->topic, "partition", part, NULL);
    }
}
static void kafka_committed(const struct scrape *s, const char *name)
{
    kafka_field(s, name, offsetof(struct sl_source_kafka_partition, committed));
}
static void kafka_lag(const struct scrape *s, const char *name)
{
    kafka_field(s, name, offsetof(struct sl_source_kafka_partition, lag));
}
static void kafka_inflight(const struct scrape *s, const char *name)
{
    kafka_field(s, name, offsetof(struct sl_source_kafka_partition, inflight));
}

static void sink_rows_h(const struct scrape *s, const char *name)
{
    sl_prom_histo(s->p, name, s->rows_h, NULL);
}
static void sink_latency_h(const struct scrape *s, const char *name)
{
    sl_prom_histo(s->p, name, s->latency_h, NULL);
}

/* One sample per backend of the counter at 'off' in its stats. */
static void backend_field(const struct scrape *s, const char *name, size_t off)
{
    for (size_t i = 0; i < s->r->cfg->backend_cnt; i++) {
        const char *bs = (const char *)sl_infer_stats(s->r->inf, i);
        sl_prom_sample(
            s->p, name,
            (double)atomic_load((const atomic_uint_fast64_t *)(bs + off)),
            "backend", s->r->cfg->backends[i].name, NULL);
    }
}
static void backend_requests(const struct scrape *s, const char *name)
{
    backend_field(s, name, offsetof(struct sl_infer_stats, requests));
}
static void backend_successes(const struct scrape *s, const char *name)
{
    backend_field(s, name, offsetof(struct sl_infer_stats, successes));
}
static void backend_retries(const struct scrape *s, const char *name)
{
    backend_field(s, name, offsetof(struct sl_infer_stats, retries));
}
static void backend_errors(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->r->cfg->backend_cnt; i++) {
        const struct sl_infer_stats *bs = sl_infer_stats(s->r->inf, i);
        for (int e = 0; e < SL_INFER_EC_COUNT; e++)
            sl_prom_sample(s->p, name, LOAD(bs->errors[e]), "backend",
                           s->r->cfg->backends[i].name, "class",
                           sl_infer_errclass_name(e), NULL);
    }
}
static void backend_tokens(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->r->cfg->backend_cnt; i++) {
        const struct sl_infer_stats *bs = sl_infer_stats(s->r->inf, i);
        const char *be = s->r->cfg->backends[i].name;
        sl_prom_sample(s->p, name, LOAD(bs->tokens_prompt), "backend", be,
                       "type", "prompt", NULL);
        sl_prom_sample(s->p, name, LOAD(bs->tokens_completion), "backend", be,
                       "type", "completion", NULL);
    }
}
static void backend_breaker(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->r->cfg->backend_cnt; i++)
        sl_prom_sample(s->p, name, (double)sl_infer_breaker_state(s->r->inf, i),
                       "backend", s->r->cfg->backends[i].name, NULL);
}
static void backend_latency(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->r->cfg->backend_cnt; i++)
        sl_prom_histo(s->p, name, &sl_infer_stats(s->r->inf, i)->latency,
                      "backend", s->r->cfg->backends[i].name, NULL);
}

static void gateway_responses(const struct scrape *s, const char *name)
{
    static const struct {
        const char *code;
        size_t off;
    } codes[] = {
        {"200", offsetof(struct sl_gateway_stats, ok)},
        {"400", offsetof(struct sl_gateway_stats, bad_request)},
        {"415", offsetof(struct sl_gateway_stats, unsupported)},
        {"429", offsetof(struct sl_gateway_stats, rejected)},
        {"502", offsetof(struct sl_gateway_stats, failed)},
        {"503", offsetof(struct sl_gateway_stats, unavailable)},
        {"504", offsetof(struct sl_gateway_stats, timed_out)},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        const _Atomic uint64_t *c =
            (const _Atomic uint64_t *)((const char *)s->gs + codes[i].off);
        sl_prom_sample(s->p, name, (double)atomic_load(c), "code",
                       codes[i].code, NULL);
    }
}
static void gateway_latency(const struct scrape *s, const char *name)
{
    sl_prom_histo(s->p, name, &s->gs->latency, NULL);
}

/* Every answer of the listener by status, the server's own 404, 405 and
 * 413 included; statuses never sent are left out. */
static void http_responses(const struct scrape *s, const char *name)
{
    for (int code = 100; code <= 599; code++) {
        uint64_t n = sl_http_server_responses(s->r->http, code);
        char c[12];
        if (!n)
            continue;
        snprintf(c, sizeof(c), "%d", code);
        sl_prom_sample(s->p, name, (double)n, "code", c, NULL);
    }
}

/*
 * Kafka: one sample per partition assigned now that the last refresh
 * measured (one just assigned shows from the refresh that follows the
 * rebalance; one taken away is gone at once).  Redis: one per stream.
 */
static void source_lag(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->nlag; i++) {
        const struct sl_lag_entry *e = &s->lag[i];
        char part[16];
        bool assigned = false;
        if (e->lag < 0)
            continue; /* Redis could not tell: see lag.c */
        if (e->partition < 0) {
            sl_prom_sample(s->p, name, (double)e->lag, "stream", e->topic,
                           "group", s->r->cfg->source.redis.group, NULL);
            continue;
        }
        for (size_t j = 0; j < s->nparts && !assigned; j++)
            assigned = s->parts[j].partition == e->partition &&
                       !strcmp(s->parts[j].topic, e->topic);
        if (!assigned)
            continue;
        snprintf(part, sizeof(part), "%d", (int)e->partition);
        sl_prom_sample(s->p, name, (double)e->lag, "topic", e->topic,
                       "partition", part, NULL);
    }
}
static void source_pending(const struct scrape *s, const char *name)
{
    for (size_t i = 0; i < s->nlag; i++)
        if (s->lag[i].pending >= 0)
            sl_prom_sample(s->p, name, (double)s->lag[i].pending, "stream",
                           s->lag[i].topic, "group",
                           s->r->cfg->source.redis.group, NULL);
}

static void source_lag_age(const struct scrape *s, const char *name)
{
    if (s->lag_ms > 0)
        sl_prom_sample(s->p, name, (double)(sl_mono_ms() - s->lag_ms) / 1000.0,
                       NULL);
}

static void build_info(const struct scrape *s, const char *name)
{
    (void)s;
    sl_prom_sample(s->p, name, 1, "version", SLUICE_VERSION, "commit",
                   SLUICE_COMMIT, NULL);
}

static void replica_info(const struct scrape *s, const char *name)
{
    const struct sl_config *cfg = s->r->cfg;
    sl_prom_sample(s->p, name, 1, "replica", s->r->replica_id, "pipeline",
                   cfg->name, "source",
                   cfg->source.present
                       ? sl_config_source_kind_name(cfg->source.kind)
                       : "none",
                   NULL);
}

/* A process_* value; left out when /proc could not tell. */
static void proc_field(const struct scrape *s, const char *name, double v)
{
    if (v >= 0)
        sl_prom_sample(s->p, name, v, NULL);
}
static void proc_cpu(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.cpu_seconds);
}
static void proc_rss(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.rss_bytes);
}
static void proc_vsize(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.vsize_bytes);
}
static void proc_start(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.start_seconds);
}
static void proc_fds(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.open_fds);
}
static void proc_max_fds(const struct scrape *s, const char *name)
{
    proc_field(s, name, s->proc.max_fds);
}

/* ---- the table ---- */

static const struct family families[] = {
    /* messages through the runner */
    {"sluice_messages_consumed_total", "counter",
     "Messages taken from the source into the queue.", NULL, consumed, NULL},
    {"sluice_messages_acked_total", "counter",
     "Messages durable in PostgreSQL and acked to the source.", NULL, acked,
     NULL},
    {"sluice_messages_processed_total", "counter",
     "Messages whose results went to the sink.", NULL, processed, NULL},
    {"sluice_messages_failed_total", "counter",
     "Messages whose processing failed; they go to the dead-letter table.",
     NULL, failed, NULL},
    {"sluice_messages_retried_total", "counter",
     "Messages processed again after an earlier delivery that was never "
     "acked (delivery count > 1).",
     NULL, redelivered, NULL},
    {"sluice_messages_not_durable_total", "counter",
     "Messages the sink gave back undone; not acked, so redelivered unless "
     "the source cannot (file, stdin).",
     NULL, not_durable, NULL},
    {"sluice_inflight", "gauge", "Messages in the workers now.", NULL, inflight,
     NULL},
    {"sluice_queue_depth", "gauge", "Messages waiting in the bounded queue.",
     NULL, queue_depth, NULL},
    {"sluice_draining", "gauge", "1 once shutdown started.", NULL, draining,
     NULL},
    /* the source */
    {"sluice_source_errors_total", "counter",
     "Fetch or commit errors of the source.", has_source, source_errors, NULL},
    {"sluice_source_paused", "gauge",
     "1 while fetching is paused by backpressure.", has_source, source_paused,
     NULL},
    {"sluice_kafka_committed_offset", "gauge",
     "Next offset to read as stored for commit, per assigned partition (-1 "
     "until known).",
     is_kafka, NULL, kafka_committed},
    {"sluice_kafka_lag", "gauge",
     "High watermark minus committed offset (-1 if unknown).", is_kafka, NULL,
     kafka_lag},
    {"sluice_kafka_inflight", "gauge",
     "Messages of the partition handed over and not yet acked.", is_kafka, NULL,
     kafka_inflight},
    {"sluice_kafka_partitions_assigned", "gauge",
     "Partitions assigned to this replica now.", is_kafka, kafka_assigned,
     NULL},
    {"sluice_kafka_rebalances_total", "counter",
     "Rebalances that assigned partitions to this replica.", is_kafka,
     kafka_rebalances, NULL},
    {"sluice_redis_redelivered_total", "counter",
     "Own pending entries read again after a restart.", is_redis,
     redis_redelivered, NULL},
    {"sluice_redis_claimed_total", "counter",
     "Entries taken over from idle consumers (XAUTOCLAIM) or reaped from "
     "dead ones.",
     is_redis, redis_claimed, NULL},
    {"sluice_redis_acked_total", "counter",
     "Entries acknowledged on the server (XACK or LREM).", is_redis,
     redis_acked, NULL},
    {"sluice_redis_reconnects_total", "counter", "Reconnections to Redis.",
     is_redis, redis_reconnects, NULL},
    {"sluice_source_lag_messages", "gauge",
     "Messages the group is behind, refreshed every 2 s and after a "
     "rebalance: Kafka per assigned partition (high watermark minus the "
     "committed offset), Redis Streams per group (XINFO GROUPS lag: not yet "
     "delivered).",
     has_lag, NULL, source_lag},
    {"sluice_source_pending_messages", "gauge",
     "Redis Streams: entries delivered to the group and not yet acked "
     "(XINFO GROUPS pending).",
     is_redis_stream, NULL, source_pending},
    {"sluice_source_lag_age_seconds", "gauge",
     "Seconds since the lag shown was measured (at most the 2 s refresh "
     "period plus the time the brokers take to answer).",
     has_lag, NULL, source_lag_age},
    /* the sink */
    {"sluice_sink_rows_written_total", "counter",
     "Rows inserted into the results table.", has_sink, sink_written, NULL},
    {"sluice_sink_duplicates_skipped_total", "counter",
     "Redelivered rows skipped by ON CONFLICT DO NOTHING.", has_sink,
     sink_duplicates, NULL},
    {"sluice_sink_dead_letters_total", "counter",
     "Rows written to the dead-letter table.", has_sink, sink_dead_letters,
     NULL},
    {"sluice_sink_rows_failed_total", "counter",
     "Rows the sink gave back with an error.", has_sink, sink_failed, NULL},
    {"sluice_sink_rows_held", "gauge",
     "Rows taken from the backlog and not yet durable.", has_sink, sink_held,
     NULL},
    {"sluice_sink_batches_total", "counter", "Transactions committed.",
     has_sink, sink_batches, NULL},
    {"sluice_sink_batch_rows", "histogram",
     "Rows per committed batch (results, duplicates and dead letters).",
     has_sink, NULL, sink_rows_h},
    {"sluice_sink_batch_latency_seconds", "histogram",
     "Time from sending a batch to its COMMIT.", has_sink, NULL,
     sink_latency_h},
    {"sluice_sink_reconnects_total", "counter",
     "PostgreSQL connections after the first.", has_sink, sink_reconnects,
     NULL},
    {"sluice_sink_connected", "gauge", "1 when the sink's connection is ready.",
     has_sink, sink_connected, NULL},
    /* the backends */
    {"sluice_backend_requests_total", "counter", "HTTP attempts sent.", NULL,
     NULL, backend_requests},
    {"sluice_backend_successes_total", "counter", "Attempts that worked.", NULL,
     NULL, backend_successes},
    {"sluice_backend_retries_total", "counter", "Attempts after the first.",
     NULL, NULL, backend_retries},
    {"sluice_backend_errors_total", "counter", "Failed attempts by class.",
     NULL, NULL, backend_errors},
    {"sluice_backend_tokens_total", "counter",
     "Model tokens the replies' usage reports (OpenAI kinds).", NULL, NULL,
     backend_tokens},
    {"sluice_backend_circuit_state", "gauge",
     "Breaker state: 0 closed, 1 open, 2 half-open.", NULL, NULL,
     backend_breaker},
    {"sluice_backend_latency_seconds", "histogram",
     "Latency of each HTTP attempt.", NULL, NULL, backend_latency},
    /* the gateway */
    {"sluice_gateway_responses_total", "counter",
     "Answers of POST /v1/process by status.", has_gateway, NULL,
     gateway_responses},
    {"sluice_gateway_inflight", "gauge",
     "Gateway requests being processed now.", has_gateway, gateway_inflight,
     NULL},
    {"sluice_gateway_rows_total", "counter",
     "Gateway rows handed to the sink (gateway.write_rows).", has_gateway,
     gateway_rows, NULL},
    {"sluice_gateway_latency_seconds", "histogram",
     "Time to answer a successful POST /v1/process.", has_gateway, NULL,
     gateway_latency},
    /* the HTTP listener */
    {"sluice_http_responses_total", "counter",
     "Answers of the HTTP listener by status, every path.", NULL, NULL,
     http_responses},
    /* the build and the process */
    {"sluice_build_info", "gauge",
     "Always 1; the labels name the version and the commit built.", NULL, NULL,
     build_info},
    {"sluice_replica_info", "gauge",
     "Always 1; the labels name this replica (--replica-id), its pipeline "
     "and its source kind.",
     NULL, NULL, replica_info},
    {"process_cpu_seconds_total", "counter",
     "Total user and system CPU time spent in seconds.", NULL, NULL, proc_cpu},
    {"process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
     NULL, NULL, proc_rss},
    {"process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
     NULL, NULL, proc_vsize},
    {"process_start_time_seconds", "gauge",
     "Start time of the process since unix epoch in seconds.", NULL, NULL,
     proc_start},
    {"process_open_fds", "gauge", "Number of open file descriptors.", NULL,
     NULL, proc_fds},
    {"process_max_fds", "gauge", "Maximum number of open file descriptors.",
     NULL, NULL, proc_max_fds},
};

/* Take the scrape's snapshot.  Returns 0 or -SL_ENOMEM. */
static int snapshot(struct scrape *s, struct runner *r, struct sl_prom *p)
{
    *s = (struct scrape){.r = r, .p = p};
    if (r->src) {
        s->src = sl_source_stats(r->src);
        if (is_kafka(s)) {
            s->parts = calloc(MAX_PARTITIONS, sizeof(*s->parts));
            if (!s->parts)
                return -SL_ENOMEM;
            s->nparts =
                sl_source_kafka_partitions(r->src, s->parts, MAX_PARTITIONS);
            if (s->nparts > MAX_PARTITIONS)
                s->nparts = MAX_PARTITIONS;
            sl_source_kafka_stats(r->src, &s->ks);
        } else if (is_redis(s)) {
            sl_source_redis_stats(r->src, &s->rs);
        }
    }
    if (r->sink) {
        sl_sink_pg_stats(r->sink, &s->ss);
        sl_sink_pg_histos(r->sink, &s->rows_h, &s->latency_h);
    }
    if (r->gw)
        s->gs = sl_gateway_stats(r->gw);
    if (r->lag) {
        if (!(s->lag = calloc(MAX_PARTITIONS, sizeof(*s->lag))))
            return -SL_ENOMEM;
        s->nlag = sl_lag_get(r->lag, s->lag, MAX_PARTITIONS, &s->lag_ms);
    }
    read_proc(&s->proc);
    return 0;
}

void sl_run_metrics_serve(void *arg, const struct sl_http_request *req,
                          struct sl_http_response *res)
{
    struct scrape s;
    struct sl_prom p;
    (void)req;

    s.parts = NULL;
    s.lag = NULL;
    if (sl_prom_init(&p, MAX_BYTES) < 0 || snapshot(&s, arg, &p) < 0) {
        free(s.parts);
        free(s.lag);
        sl_prom_free(&p);
        sl_http_response_text(res, 500, "text/plain", "out of memory\n");
        return;
    }
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        const struct family *f = &families[i];
        if (f->shown && !f->shown(&s))
            continue;
        sl_prom_family(&p, f->name, f->type, f->help);
        if (f->value)
            sl_prom_sample(&p, f->name, f->value(&s), NULL);
        else
            f->samples(&s, f->name);
    }
    free(s.parts);
    free(s.lag);
    if (p.truncated) {
        sl_prom_free(&p);
        sl_http_response_text(res, 500, "text/plain",
                              "metrics exceed their buffer\n");
        return;
    }
    res->status = 200;
    res->content_type = "text/plain; version=0.0.4";
    res->body = p.buf; /* handed to the server, which frees it */
    res->body_len = p.len;
}
