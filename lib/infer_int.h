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

#include <curl/curl.h>
#include <stdbool.h>

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
};

struct sl_infer {
    const struct sl_config *cfg; /* borrowed */
    struct sl_infer_backend *be; /* be_cnt, in cfg->backends order */
    size_t be_cnt;               /* number of backends */
    size_t **step_be;            /* per step: backend indices */
};

#endif
