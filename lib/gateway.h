/*
 * The gateway: POST /v1/process runs the pipeline's inference steps for
 * one JSON body and answers with the merged results, synchronously.  One
 * gateway thread owns one sl_infer_worker and keeps every request in
 * flight at once; HTTP handler threads hand it requests and wait.
 */
#ifndef SL_GATEWAY_H
#define SL_GATEWAY_H

#include "config.h"
#include "http_server.h"
#include "infer.h"
#include "metrics.h"
#include "sink_pg.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The route the gateway serves. */
#define SL_GATEWAY_PATH "/v1/process"

struct sl_gateway_conf {
    const struct sl_config *cfg; /* the pipeline (steps, gateway section);
                                    borrowed, outlives the gateway */
    struct sl_infer *inf;        /* the shared engine; borrowed */
    struct sl_sink_pg *sink;     /* where rows go when gateway.write_rows;
                                    borrowed; NULL: write no rows */
    const char *replica_id;      /* names rows (entry_id, worker); copied */
};

/* Counters for metrics.  Relaxed atomics, any thread. */
struct sl_gateway_stats {
    _Atomic uint64_t requests;    /* POSTs that reached the handler */
    _Atomic uint64_t ok;          /* 200: results returned */
    _Atomic uint64_t bad_request; /* 400: not JSON, not an object, or a
                                     field the templates need is missing */
    _Atomic uint64_t unsupported; /* 415: Content-Type is not JSON */
    _Atomic uint64_t rejected;    /* 429: over max_concurrency */
    _Atomic uint64_t failed;      /* 502: a backend failed, on_error fail */
    _Atomic uint64_t unavailable; /* 503: draining, or the sink refused */
    _Atomic uint64_t timed_out;   /* 504: a step's deadline passed, or
                                     no outcome within the budget */
    _Atomic uint64_t rows;        /* rows handed to the sink */
    _Atomic int64_t inflight;     /* requests being processed now */
    struct sl_histo latency;      /* seconds, 200 answers only */
};

struct sl_gateway;

/*
 * A gateway for 'conf' (copied; the pointers it holds are borrowed), with
 * its thread started.  Register sl_gateway_serve() with 'gw' as the
 * argument on SL_GATEWAY_PATH.
 *
 * Returns NULL with the reason in errstr (out of memory, curl setup,
 * thread creation).  Main thread.
 */
struct sl_gateway *sl_gateway_new(const struct sl_gateway_conf *conf,
                                  char *errstr, size_t errstr_size);

/*
 * The POST /v1/process handler (an sl_http_handler; 'arg' is the
 * gateway).  Blocks its HTTP thread until the outcome is known, at most
 * the sum of the step deadlines plus a margin.  Answers:
 *   200 {"results": {...}, "errors": {...}, "timings": {...}}
 *   400 {"error": "..."} for a body that is not a JSON object, or lacks a
 *       field a template needs
 *   415 {"error": "..."} for a Content-Type other than application/json
 *       or a +json type (parameters such as charset allowed)
 *   429 {"error": "..."} with Retry-After: 1 beyond gateway.max_concurrency
 *   502 {"error": reason, "errors": {...}, "timings": {...}} when a
 *       backend failed and its step has on_error: fail
 *   503 {"error": "..."} while draining, or when write_rows is set and the
 *       sink would not take the row
 *   504 {"error": reason, "errors": {...}, "timings": {...}} when a
 *       step's deadline_ms passed (the reason counts the attempts made),
 *       or {"error": "..."} when no outcome came within the budget.
 * Any HTTP server thread.
 */
void sl_gateway_serve(void *arg, const struct sl_http_request *req,
                      struct sl_http_response *res);

/*
 * Stop taking requests (503 from now on) and wait up to 'timeout_ms' for
 * those in flight to be answered.  Returns 0 once none is in flight, else
 * -SL_ETIMEDOUT; call again to wait more, or sl_gateway_drain() to give
 * up on them.  Main thread.
 */
int sl_gateway_wait_idle(struct sl_gateway *gw, int timeout_ms);

/*
 * Refuse new requests (503), wait up to 'timeout_ms' for those in flight
 * to be answered, then stop the gateway thread; requests still waiting
 * are answered 503.  Call before draining the sink, so that every row a
 * request produced reaches it.  Idempotent.  Main thread.
 */
void sl_gateway_drain(struct sl_gateway *gw, int timeout_ms);

/* Counters.  Any thread. */
const struct sl_gateway_stats *sl_gateway_stats(const struct sl_gateway *gw);

/*
 * Drain with no wait if still running, then free.  Call after the HTTP
 * server stopped: no handler may still be inside sl_gateway_serve().
 * NULL is a no-op.  Main thread.
 */
void sl_gateway_destroy(struct sl_gateway *gw);

#endif
