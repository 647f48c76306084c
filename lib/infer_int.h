/*
 * Internals shared by infer.c (the shared engine) and infer_worker.c (the
 * per-thread engine).  Not for other modules.
 */
#ifndef SL_INFER_INT_H
#define SL_INFER_INT_H

#include "breaker.h"
#include "clock.h"
#include "infer.h"
#include "limiter.h"
#include "log.h"

#include <curl/curl.h>
#include <stdbool.h>

/* Kinds of warn line per backend: each error class, then these two. */
#define SL_INFER_LOG_BREAKER_OPEN SL_INFER_EC_COUNT
#define SL_INFER_LOG_BREAKER_CLOSED (SL_INFER_EC_COUNT + 1)
#define SL_INFER_LOG_KINDS (SL_INFER_EC_COUNT + 2)

/* Shared state of one backend. */
struct sl_infer_backend {
    const struct sl_config_backend *conf; /* borrowed from the config */
    char *url;                            /* endpoint with the kind's path */
    struct curl_slist *headers;           /* read-only after new(); holds
                                             the Authorization header */
    bool has_key;                         /* an API key is configured */
    struct sl_limiter *limiter;           /* concurrency, rps, tokens */
    struct sl_breaker *breaker;           /* shared circuit breaker */
    struct sl_infer_stats stats;          /* counters for metrics */
    struct sl_log_limit log[SL_INFER_LOG_KINDS]; /* failure lines, rate
                                                    limited per kind; any
                                                    worker thread */
};

struct sl_infer {
    const struct sl_config *cfg; /* borrowed */
    struct sl_infer_backend *be; /* be_cnt, in cfg->backends order */
    size_t be_cnt;               /* number of backends */
    size_t **step_be;            /* per step: backend indices */
};

#endif
