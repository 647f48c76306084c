/*
 * The inference engine: runs a message through the pipeline's steps,
 * calling model servers with non-blocking HTTP (one libcurl multi handle
 * per worker).  sl_infer is shared by every worker (per-backend caps,
 * rate limits, breakers, API keys, counters); sl_infer_worker belongs to
 * one thread and keeps many messages in flight.
 */
#ifndef SL_INFER_H
#define SL_INFER_H

#include "breaker.h"
#include "config.h"
#include "metrics.h"
#include "msg.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdint.h>

/*
 * X(name, text, code): error classes of a backend call, their name in the
 * errors JSON, and the SL_E* code whose sl_err_retriable() decides whether
 * a call that failed so is tried again.
 */
#define SL_INFER_ERRCLASSES(X)                                                 \
    X(TIMEOUT, "timeout", ETIMEDOUT)    /* request or low-speed timeout */     \
    X(CONNECT, "connect", ECONN)        /* connect, reset, nothing received */ \
    X(HTTP_5XX, "http_5xx", EHTTP)      /* 5xx status */                       \
    X(HTTP_429, "http_429", ERATELIMIT) /* 429 Too Many Requests */            \
    X(HTTP_4XX, "http_4xx", EPROTO)     /* other 4xx: never retried */         \
    X(BAD_JSON, "bad_json", EPROTO)    /* reply not JSON or not as expected */ \
    X(TOO_LARGE, "too_large", ETOOBIG) /* reply past max_response_bytes */     \
    X(BREAKER_OPEN, "breaker_open", EBREAKER) /* failed fast, breaker open */  \
    X(DEADLINE, "deadline", EDEADLINE) /* the step's deadline_ms passed */     \
    X(INPUT, "input", EDECODE)         /* the message cannot be rendered */    \
    X(INTERNAL, "internal", ENOMEM)    /* out of memory, curl setup failure */

enum sl_infer_errclass {
#define SL_INFER_EC_ENUM(name, text, code) SL_INFER_EC_##name,
    SL_INFER_ERRCLASSES(SL_INFER_EC_ENUM)
#undef SL_INFER_EC_ENUM
        SL_INFER_EC_COUNT
};

/* "timeout", "http_5xx" ...; static, never NULL.  Any thread. */
const char *sl_infer_errclass_name(enum sl_infer_errclass ec);

/*
 * The SL_E* code (negative) of class 'ec', the third column above: whether
 * a failure of that class is retried is sl_err_retriable() of it.  Any
 * thread.
 */
int sl_infer_errclass_err(enum sl_infer_errclass ec);

/* Counters of one backend, for metrics.  Relaxed atomics, any thread. */
struct sl_infer_stats {
    atomic_uint_fast64_t requests;                  /* HTTP attempts sent */
    atomic_uint_fast64_t successes;                 /* attempts that worked */
    atomic_uint_fast64_t errors[SL_INFER_EC_COUNT]; /* failures by class */
    atomic_uint_fast64_t retries;                   /* attempts after 1st */
    struct sl_histo latency;                        /* seconds per attempt */
    atomic_uint_fast64_t batches;        /* embeddings: batch requests */
    atomic_uint_fast64_t batched_inputs; /* embeddings: inputs sent */
    atomic_uint_fast64_t tokens_prompt;  /* OpenAI kinds: usage reported */
    atomic_uint_fast64_t tokens_completion;
};

enum sl_infer_status {
    SL_INFER_OK,      /* every backend of every step succeeded */
    SL_INFER_PARTIAL, /* on_error partial: some backends failed */
    SL_INFER_FAILED,  /* dead-letter the message: see 'reason' */
};

/*
 * The outcome of one message.  Borrowed for the duration of the done
 * callback: json_incref() what you keep.
 */
struct sl_infer_result {
    enum sl_infer_status status; /* OK, PARTIAL or FAILED */
    json_t *results;             /* {backend: value}; never NULL */
    json_t *errors;              /* {backend: {class, message, attempts,
                                    status?}}; never NULL */
    json_t *timings;             /* {backend: ms, ..., "total": ms} */
    const char *reason;          /* FAILED: why, for the dead-letter table;
                                    else NULL */
    enum sl_row_stage stage;     /* FAILED: SL_STAGE_DECODE (bad payload),
                                    _INFERENCE or the message's own
                                    error_stage; else meaningless */
    int fail_class;              /* FAILED by a backend: the
                                    sl_infer_errclass of the failure named
                                    in 'reason' (SL_INFER_EC_DEADLINE: the
                                    step's deadline passed); else -1 */
};

/*
 * Called on the worker's thread (inside sl_infer_worker_progress()) when
 * a message finished.  'item' is what was submitted (the sl_msg, or the
 * opaque of sl_infer_worker_submit_json()); it is the caller's again.
 */
typedef void (*sl_infer_done_fn)(void *arg, void *item,
                                 const struct sl_infer_result *res);

struct sl_infer;
struct sl_infer_worker;

/*
 * The shared engine for 'cfg' (borrowed; it must outlive the engine):
 * per-backend limiters and breakers, request headers, API keys read from
 * api_key_env / api_key_file and header values from value_env /
 * value_file (lib/secret.h's rules: a file readable by group or others is
 * refused); a header value holding CR, LF or another control character is
 * refused.  Keys are never logged.
 *
 * Returns NULL with the reason in errstr: -SL_ESECRET cases (unset
 * variable, unsafe or unreadable file, a value that would end its header
 * line), out of memory.  Main thread,
 * after curl_global_init().
 */
struct sl_infer *sl_infer_new(const struct sl_config *cfg, char *errstr,
                              size_t errstr_size);

/* Free.  Every worker must be destroyed first.  NULL is a no-op. */
void sl_infer_destroy(struct sl_infer *inf);

/* Counters of backend 'i' (index in cfg->backends).  Any thread. */
const struct sl_infer_stats *sl_infer_stats(const struct sl_infer *inf,
                                            size_t i);

/* The breaker state of backend 'i' now.  Any thread. */
enum sl_breaker_state sl_infer_breaker_state(const struct sl_infer *inf,
                                             size_t i);

/*
 * A worker of 'inf' keeping up to 'max_inflight' messages in flight
 * (used to size connection pools; submit does not refuse beyond it).
 * Returns NULL with the reason in errstr.  The worker belongs to the
 * thread that uses it from then on.  Any thread.
 */
struct sl_infer_worker *sl_infer_worker_new(struct sl_infer *inf,
                                            int max_inflight, char *errstr,
                                            size_t errstr_size);

/*
 * Cancel every message in flight without calling their done callbacks
 * (their items stay the caller's), and free.  NULL is a no-op.  The
 * worker's thread.
 */
void sl_infer_worker_destroy(struct sl_infer_worker *w);

/*
 * Start processing 'msg' (borrowed until 'done' is called for it).  A
 * message already marked with msg->error, or whose payload cannot be
 * rendered, finishes FAILED on the next progress.
 *
 * Returns 0 ('done' will be called exactly once, from
 * sl_infer_worker_progress()); -SL_ENOMEM ('done' will never be called).
 * The worker's thread.
 */
int sl_infer_worker_submit(struct sl_infer_worker *w, struct sl_msg *msg,
                           sl_infer_done_fn done, void *arg);

/*
 * As sl_infer_worker_submit() for an already parsed document 'doc' (a
 * gateway request body; a reference is taken), with 'item' passed back
 * to 'done'.  The worker's thread.
 */
int sl_infer_worker_submit_json(struct sl_infer_worker *w, json_t *doc,
                                void *item, sl_infer_done_fn done, void *arg);

/*
 * Drive transfers, timers and deadlines for up to 'timeout_ms' (0: do not
 * wait), calling 'done' for each message that finished.  Returns how many
 * messages are still in flight.  The worker's thread.
 */
int sl_infer_worker_progress(struct sl_infer_worker *w, int timeout_ms);

/* Make a progress() waiting in another thread return early.  Any thread. */
void sl_infer_worker_wakeup(struct sl_infer_worker *w);

#endif
