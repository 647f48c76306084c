/*
 * Internals shared by infer.c (the shared engine), infer_worker.c (the
 * per-thread engine) and infer_proto.c (the backend protocols).  Not for
 * other modules.
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
    bool body_safe;              /* http-json body: sl_template_json_safe() */
    unsigned proto_flags;        /* SL_PROTO_* for its replies */
    struct sl_limiter *limiter;  /* concurrency, rps, tokens */
    struct sl_breaker *breaker;  /* shared circuit breaker */
    struct sl_infer_stats stats; /* counters for metrics */
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

/* The model tokens a reply reports (its "usage"); -1: not reported. */
struct sl_infer_usage {
    json_int_t prompt;     /* usage.prompt_tokens */
    json_int_t completion; /* usage.completion_tokens (0 for embeddings) */
    json_int_t total;      /* usage.total_tokens, else prompt + completion */
};

/*
 * A backend kind's protocol (infer_proto.c).  A kind either renders one
 * request body per call ('render'), or renders each call's input
 * ('render_input') and sends the inputs of many calls in one request
 * ('render_batch').  Functions are pure: any thread.
 */
struct sl_infer_proto {
    const char *path; /* added to the backend's url ("" for none) */
    /*
     * The body for one call from payload 'doc' into *bodyp (malloc'd;
     * NULL: no body, a GET).  0, -SL_ENOMEM, or another code with errstr
     * saying why the payload does not fit the templates.
     */
    int (*render)(const struct sl_infer_backend *be, const json_t *doc,
                  char **bodyp, char *errstr, size_t errstr_size);
    /* Batched kinds: one call's input, as render() returns. */
    int (*render_input)(const struct sl_config_backend *bc, const json_t *doc,
                        json_t **inputp, char *errstr, size_t errstr_size);
    /* Batched kinds: the body for 'inputs' (stolen); NULL: no memory. */
    char *(*render_batch)(const struct sl_config_backend *bc, json_t *inputs);
    /*
     * Append to 'values' one value per call ('ncalls') from 'reply', and
     * set *usage to the tokens the reply used (left alone when the kind
     * does not count them).  0, or -1 with text saying what is wrong.
     */
    int (*parse)(const struct sl_config_backend *bc, json_t *reply,
                 size_t ncalls, unsigned flags, json_t *values,
                 struct sl_infer_usage *usage, char *text, size_t text_size);
};

/* The protocol of 'kind'; never NULL.  Any thread. */
const struct sl_infer_proto *
sl_infer_proto_of(enum sl_config_backend_kind kind);

/*
 * The values of a 2xx reply resp[resp_len] to the 'ncalls' calls of one
 * request of backend 'bc': 0 with *valuesp a JSON array of 'ncalls' values
 * (owned by the caller) and *usage the tokens it used (all -1 when the
 * reply reports none); or -1 with *valuesp NULL and text saying why the
 * reply is bad (class bad_json).  'flags': SL_PROTO_* (0: none).  Any
 * thread.
 */
int sl_infer_proto_parse(const struct sl_config_backend *bc, const char *resp,
                         size_t resp_len, size_t ncalls, unsigned flags,
                         json_t **valuesp, struct sl_infer_usage *usage,
                         char *text, size_t text_size);

/* A base64 embedding as a packed vector (vecpack.h), not an array: the
 * result only goes to a real[] column. */
#define SL_PROTO_PACK_VECTORS 1u

/*
 * The error class of a non-2xx HTTP status: http_429, http_5xx (>= 500)
 * or http_4xx (anything else).  Any thread.
 */
enum sl_infer_errclass sl_infer_proto_status_class(long status);

/*
 * When reply header line data[n] (as libcurl hands it, with its CRLF) is
 * Retry-After, its value without surrounding blanks into out[size]
 * (truncated) and true; else false and out untouched.  Any thread.
 */
bool sl_infer_proto_retry_after(const char *data, size_t n, char *out,
                                size_t size);

/*
 * Call i's share of the usage 'u' of a request carrying 'ncalls' calls:
 * each count split evenly, the remainder going one token each to the first
 * calls, so that the shares add up to 'u'.  -1 counts stay -1.
 */
struct sl_infer_usage sl_infer_usage_share(const struct sl_infer_usage *u,
                                           size_t ncalls, size_t i);

/*
 * 'u' as {"prompt_tokens", "completion_tokens", "total_tokens"} (new
 * reference), or NULL when it reports nothing.
 */
json_t *sl_infer_usage_json(const struct sl_infer_usage *u);

#endif
