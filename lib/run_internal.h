/*
 * The runner's state, shared by the files of the runner only: run.c (wiring
 * and lifecycle) and run_metrics.c (the /metrics exposition).  Not a
 * public interface: nothing outside lib/run*.c includes it.
 */
#ifndef SL_RUN_INTERNAL_H
#define SL_RUN_INTERNAL_H

#include "config.h"
#include "http_server.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct runner {
    const struct sl_config *cfg;
    char replica_id[128];         /* names rows, groups and logs */
    struct sl_queue *q;           /* source -> workers; NULL without one */
    struct sl_source *src;        /* NULL for a gateway-only pipeline */
    struct sl_sink_pg *sink;      /* PostgreSQL; NULL for a gateway that
                                     writes no rows */
    struct sl_infer *inf;         /* shared inference state */
    struct sl_pool *pool;         /* the workers; NULL without a source */
    struct sl_lag *lag;           /* consumer lag watcher; NULL for a
                                     source without one */
    bool src_started;             /* its thread runs: it sends sentinels */
    struct sl_gateway *gw;        /* POST /v1/process; NULL when off */
    struct sl_http_server *http;  /* /metrics, /healthz, /readyz, gateway */
    _Atomic bool draining;        /* shutdown started: /readyz says 503 */
    _Atomic bool hard_stop;       /* second signal: give up waiting */
    _Atomic int64_t inflight;     /* messages in the workers */
    _Atomic uint64_t processed;   /* rows handed to the sink */
    _Atomic uint64_t failed;      /* dead letters handed to the sink */
    _Atomic uint64_t redelivered; /* messages seen with attempts > 1 */
    _Atomic uint64_t not_durable; /* rows the sink gave back undone */
    _Atomic uint64_t given_up;    /* messages dropped without an ack: never
                                     durable (the sink gave them back, or
                                     no row could be made or handed over) */
    char fatal[512];              /* the first fatal cause, "" when none;
                                     logged last.  Main thread */
};

/*
 * GET /metrics: every family of the runner's parts in the Prometheus text
 * format.  'arg' is the runner.  HTTP server thread.
 */
void sl_run_metrics_serve(void *arg, const struct sl_http_request *req,
                          struct sl_http_response *res);

#endif
