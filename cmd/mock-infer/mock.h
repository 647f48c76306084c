/*
 * mock-infer: a fast fake OpenAI-compatible model server for tests,
 * benchmarks and the demo.  Shared declarations of its parts: the
 * deterministic model (model.c), the resume timer (timer.c) and the HTTP
 * server with its faults and counters (server.c).
 */
#ifndef SL_MOCK_H
#define SL_MOCK_H

#include "hash.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* X(name, text): the faults, by the name used in headers and --fault-rate. */
#define SL_MOCK_FAULTS(X)                                                      \
    X(NONE, "none")                                                            \
    X(500, "500")                                                              \
    X(503, "503")                                                              \
    X(429, "429")                                                              \
    X(TIMEOUT, "timeout")                                                      \
    X(TRICKLE, "trickle")                                                      \
    X(BAD_JSON, "bad-json")                                                    \
    X(HUGE, "huge")                                                            \
    X(RESET, "reset")

enum sl_mock_fault {
#define SL_MOCK_FAULT_ENUM(name, text) SL_MOCK_FAULT_##name,
    SL_MOCK_FAULTS(SL_MOCK_FAULT_ENUM)
#undef SL_MOCK_FAULT_ENUM
        SL_MOCK_FAULT_COUNT
};

/* X(name, path, stats key): the routes. */
#define SL_MOCK_ENDPOINTS(X)                                                   \
    X(CHAT, "/v1/chat/completions", "chat")                                    \
    X(EMBEDDINGS, "/v1/embeddings", "embeddings")                              \
    X(SENTIMENT, "/predict/sentiment", "sentiment")                            \
    X(NER, "/predict/ner", "ner")                                              \
    X(SUMMARY, "/predict/summary", "summary")                                  \
    X(HEALTHZ, "/healthz", "healthz")                                          \
    X(STATS, "/stats", "stats")                                                \
    X(OTHER, NULL, "other")

enum sl_mock_endpoint {
#define SL_MOCK_EP_ENUM(name, path, key) SL_MOCK_EP_##name,
    SL_MOCK_ENDPOINTS(SL_MOCK_EP_ENUM)
#undef SL_MOCK_EP_ENUM
        SL_MOCK_EP_COUNT
};

enum sl_mock_dist {
    SL_MOCK_DIST_FIXED,     /* always latency_ms */
    SL_MOCK_DIST_UNIFORM,   /* uniform in [latency_ms, latency_max_ms] */
    SL_MOCK_DIST_LOGNORMAL, /* median latency_ms, shape latency_sigma */
};

struct sl_mock_config {
    const char *listen;      /* "host:port"; port 0 = ephemeral */
    unsigned threads;        /* MHD worker threads */
    unsigned latency_ms;     /* base latency */
    enum sl_mock_dist dist;  /* how latency is drawn */
    unsigned latency_max_ms; /* uniform upper bound; lognormal cap */
    double latency_sigma;    /* lognormal shape */
    double fault_rate[SL_MOCK_FAULT_COUNT]; /* probability per request */
    uint64_t seed;                          /* for fault and latency draws */
    size_t max_body_bytes;                  /* larger request bodies get 413 */
    uint64_t huge_bytes;                    /* body size of the 'huge' fault */
    unsigned embed_dim;                     /* embedding vector length */
    unsigned timeout_hold_ms;     /* how long 'timeout' holds a request */
    unsigned trickle_interval_ms; /* one body byte per interval */
    unsigned connection_limit;    /* MHD_OPTION_CONNECTION_LIMIT */
    const char *port_file;        /* where to write the bound port, or NULL */
};

/* Counters, updated with relaxed atomics by any thread. */
struct sl_mock_stats {
    atomic_uint_fast64_t requests;                   /* all requests */
    atomic_uint_fast64_t endpoint[SL_MOCK_EP_COUNT]; /* by route */
    atomic_uint_fast64_t fault[SL_MOCK_FAULT_COUNT]; /* by injected fault */
    atomic_uint_fast64_t status_class[6];            /* [2] = 2xx ... */
    atomic_uint_fast64_t latency_us_sum;             /* over answered */
    atomic_uint_fast64_t answered;                   /* responses queued */
    atomic_int_fast64_t suspended;                   /* parked right now */
};

/* Name of a fault ("bad-json"), static. */
const char *sl_mock_fault_name(enum sl_mock_fault fault);

/* Parse a fault name; returns 0 and sets *faultp, or -SL_EINVAL. */
int sl_mock_fault_parse(const char *s, enum sl_mock_fault *faultp);

/* Stats key of an endpoint ("chat"), static. */
const char *sl_mock_endpoint_name(enum sl_mock_endpoint ep);

/* ---- model.c: deterministic answers, pure functions, any thread ---- */

/* Outputs hash their text with sl_fnv1a64() (lib/hash.h). */

/* Number of words: maximal runs of bytes other than ASCII whitespace. */
size_t sl_mock_count_words(const char *text, size_t len);

/*
 * The sentiment rule: sets *labelp to "positive", "negative" or "neutral"
 * (static) and *scorep to (50 + 10 * clamp(pos - neg, -5, 5)) / 100.0.
 */
void sl_mock_sentiment(const char *text, size_t len, const char **labelp,
                       double *scorep);

/*
 * Answer a request to 'ep' (a model route) whose body is 'body[len]'.
 *
 * Returns 0 and sets *outp to the JSON text of the 200 response (owned by
 * the caller, free()); -SL_EINVAL when the request is malformed, with the
 * reason for the client in errstr; -SL_ENOMEM.  On failure *outp is NULL.
 */
int sl_mock_model_answer(enum sl_mock_endpoint ep, const char *body, size_t len,
                         unsigned embed_dim, char **outp, char *errstr,
                         size_t errstr_size);

/* ---- timer.c: resumes suspended connections when they are due ---- */

/*
 * One per HTTP loop (server.c), used only by that loop's thread: the
 * thread that runs its daemon, so that MHD_suspend_connection() is legal
 * and no lock is needed.
 */
struct sl_mock_timer;

/*
 * A timer with room for 'max_entries' parked connections (one per
 * connection its daemon may hold).  Returns 0 and sets *timerp, or
 * -SL_ENOMEM with *timerp NULL.
 */
int sl_mock_timer_new(struct sl_mock_timer **timerp, size_t max_entries);

/*
 * Suspend 'conn' and resume it at monotonic time 'due_us' (in a later
 * sl_mock_timer_resume_due()).  Call from the MHD access handler or
 * content reader of 'conn' only, once per suspension.  After
 * sl_mock_timer_drain() the connection is resumed at once.  Never fails:
 * without room the connection is resumed at once.
 */
void sl_mock_timer_park(struct sl_mock_timer *timer,
                        struct MHD_Connection *conn, int64_t due_us);

/* Resume every connection due by 'now_us'; returns how many. */
size_t sl_mock_timer_resume_due(struct sl_mock_timer *timer, int64_t now_us);

/* The earliest due time, or -1 when nothing is parked. */
int64_t sl_mock_timer_next_us(const struct sl_mock_timer *timer);

/*
 * Resume every parked connection now, and every one parked from now on,
 * so that MHD_stop_daemon() finds none suspended.  Returns how many.
 */
size_t sl_mock_timer_drain(struct sl_mock_timer *timer);

/* Free.  NULL is a no-op.  After the daemon has stopped. */
void sl_mock_timer_destroy(struct sl_mock_timer *timer);

/* Monotonic clock in microseconds.  Any thread. */
int64_t sl_mock_now_us(void);

/* ---- server.c: the MHD daemon ---- */

struct sl_mock_server;

/*
 * Start listening on cfg->listen with cfg->threads HTTP loops (a thread
 * and an MHD daemon each, sharing one listening socket).  'cfg' is
 * borrowed and must outlive the server.  Returns 0 and sets *serverp, or
 * a negative SL_E* code with the reason in errstr.  Main thread.
 */
int sl_mock_server_start(struct sl_mock_server **serverp,
                         const struct sl_mock_config *cfg, char *errstr,
                         size_t errstr_size);

/* The bound TCP port.  Any thread. */
unsigned sl_mock_server_port(const struct sl_mock_server *server);

/* A snapshot of the counters as a JSON object (owned by the caller). */
json_t *sl_mock_server_stats_json(struct sl_mock_server *server);

/*
 * Stop accepting, answer delayed requests at once, drop held ones
 * ('timeout', 'trickle'), stop the daemon and free.  When 'statsp' is not
 * NULL it receives the final counters (owned by the caller).  NULL is a
 * no-op.  Main thread.
 */
void sl_mock_server_stop(struct sl_mock_server *server, json_t **statsp);

#endif
