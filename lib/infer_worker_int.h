/*
 * Internals of one inference worker shared by its two files:
 * infer_worker.c (jobs, steps, the event loop) and infer_req.c (HTTP
 * requests: admission, sending, replies, retries).  Everything here
 * belongs to the worker's thread.  Not for other modules.
 */
#ifndef SL_INFER_WORKER_INT_H
#define SL_INFER_WORKER_INT_H

#include "infer_int.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define ERRTEXT 512      /* longest error message kept */
#define BODY_SHOWN 160   /* bytes of an error reply quoted in messages */
#define BUSY_RETRY_MS 1  /* at the concurrency cap: look again this soon */
#define EASY_FREE_MAX 64 /* idle easy handles kept per backend */
#define REQ_FREE_MAX 256 /* finished requests kept for reuse */
#define RESP_KEEP_MAX (64 * 1024) /* largest reply buffer a kept req keeps */
#define EVENTS_MAX 64             /* socket events taken per epoll_wait() */

struct job;
struct req;

/* One backend of one step of one job. */
struct call {
    struct job *job; /* owner */
    size_t be;       /* backend index */
    struct req *req; /* carrying request; NULL when none */
    size_t slot;     /* index in req->calls */
    json_t *input;   /* embeddings: the rendered input (a string) */
    bool in_batch;   /* waiting in the worker's batch of 'be' */
    bool done;       /* finished: succeeded, failed or cancelled */
    int attempts;    /* HTTP attempts made for it */
};

struct job {
    struct job *prev, *next; /* in w->jobs, or w->finished (next only) */
    json_t *doc;             /* the payload document; owned */
    void *item;              /* handed back to done() */
    sl_infer_done_fn done;   /* completion callback */
    void *arg;               /* its argument */
    size_t step;             /* current step */
    struct call *calls;      /* the step's calls; ncalls */
    size_t ncalls;           /* number of calls */
    size_t nleft;            /* calls not yet done */
    int64_t start_ms;        /* submit time */
    int64_t step_start_ms;   /* start of the current step */
    int64_t deadline_ms;     /* absolute step deadline; 0: none */
    json_t *results;         /* {backend: value} */
    json_t *errors;          /* {backend: error} */
    json_t *timings;         /* {backend: ms} */
    bool partial;            /* some backend failed, on_error partial */
    bool failed;             /* finished FAILED */
    bool finished;           /* moved to w->finished */
    char *reason;            /* FAILED: why; owned */
    enum sl_row_stage stage; /* FAILED: where (msg.h) */
    int fail_class;          /* FAILED by a backend: its class; else -1 */
};

enum req_state {
    REQ_NEW,     /* just made, in no list yet */
    REQ_WAIT,    /* in w->waitq: admission or retry timer */
    REQ_RUNNING, /* in the multi handle */
    REQ_DONE,    /* being completed: not to be freed by a detach */
    REQ_DEAD,    /* released; freed by the next sweep */
};

struct req {
    struct req *prev, *next;   /* in w->reqs */
    struct req *wprev, *wnext; /* in w->waitq while REQ_WAIT */
    size_t be;                 /* backend index */
    enum req_state state;      /* see above */
    struct call **calls;       /* ncalls; NULL entries were detached */
    size_t ncalls;             /* calls carried */
    size_t calls_cap;          /* room in calls (kept across reuse) */
    size_t nattached;          /* calls not detached */
    char *body;                /* request body; owned; NULL for GET */
    int64_t due_ms;            /* REQ_WAIT: when to try again */
    int attempts;              /* attempts started */
    int64_t sent_ms;           /* start of the current attempt */
    CURL *easy;                /* REQ_RUNNING: the transfer */
    char *resp;                /* reply bytes, NUL-terminated; kept */
    size_t resp_len;           /* bytes in resp */
    size_t resp_cap;           /* bytes allocated */
    size_t resp_max;           /* max_response_bytes */
    bool too_large;            /* the reply passed max_response_bytes */
    char retry_after[64];      /* the reply's Retry-After, or "" */
    bool holds_slot;           /* holds a limiter slot */
    bool holds_breaker;        /* admitted by the breaker: must record */
};

/*
 * Idle easy handles of one backend, configured for it (URL, headers,
 * callbacks, timeouts): a request sets only its body and owner.
 */
struct easy_pool {
    CURL *easy[EASY_FREE_MAX]; /* idle handles */
    int cnt;                   /* how many */
    CURLU *url;                /* the backend's URL, parsed once; or NULL */
};

/*
 * What the worker's epoll set holds for one socket number.  A socket
 * libcurl opened through sl_infer_open_socket() stays registered between
 * transfers on its connection (libcurl says CURL_POLL_REMOVE at each
 * transfer's end): the next transfer's ADD then costs no system call.
 * It leaves the set when libcurl closes it (sl_infer_close_socket()), so a
 * reused number never inherits state.  Any other socket (one libcurl
 * makes without those callbacks, such as a resolver's) leaves the set at
 * CURL_POLL_REMOVE, as before.
 */
struct sockw {
    uint32_t events; /* registered events; valid when in_set */
    bool in_set;     /* registered in w->epfd */
    bool wanted;     /* libcurl watches it now */
    bool ours;       /* opened by sl_infer_open_socket(), not yet closed */
};

/* Calls of one embeddings backend waiting to be sent together. */
struct batch {
    struct call **calls; /* n calls, room for batch_max */
    size_t n;            /* calls waiting */
    int64_t first_ms;    /* when the oldest was added */
};

struct sl_infer_worker {
    struct sl_infer *inf;       /* shared engine */
    CURLM *multi;               /* all transfers of this worker */
    struct job *jobs;           /* jobs in flight (doubly linked) */
    struct job *finished;       /* to deliver, in order (singly linked) */
    struct job **finished_tail; /* where to append */
    struct req *reqs;           /* every request (doubly linked) */
    struct req *waitq;          /* the REQ_WAIT ones (doubly linked) */
    int64_t deadline_due_ms;    /* no job deadline passes before this */
    int64_t curl_due_ms;        /* libcurl's timer; -1 when none */
    int epfd;                   /* epoll set: sockets and wake_fd */
    int wake_fd;                /* eventfd of sl_infer_worker_wakeup() */
    struct batch *batches;      /* per backend (embeddings only) */
    int njobs;                  /* submitted, not yet delivered */
    uint64_t rng;               /* jitter state */
    struct easy_pool *pools;    /* per backend: idle easy handles */
    struct req *req_free;       /* finished requests kept for reuse */
    int req_free_cnt;           /* how many */
    struct sockw *socks;        /* per socket number; nsocks */
    int nsocks;                 /* entries in socks */
    bool delivering;            /* inside done(): no re-entrant progress */
};

/* An error of one call, before it becomes JSON. */
struct call_err {
    enum sl_infer_errclass ec; /* class */
    long status;               /* HTTP status, 0 when none */
    char text[ERRTEXT];        /* message */
};

static inline const struct sl_config_backend *bconf(struct sl_infer_worker *w,
                                                    size_t be)
{
    return w->inf->be[be].conf;
}

/* Count a failure of class 'ec' of backend 'be'. */
static inline void stats_error(struct sl_infer_worker *w, size_t be,
                               enum sl_infer_errclass ec)
{
    atomic_fetch_add_explicit(&w->inf->be[be].stats.errors[ec], 1,
                              memory_order_relaxed);
}

/* ---- jobs (infer_worker.c) ---- */

/*
 * Finish one call with a value (owned; stolen) or an error.  May finish
 * the step and the job.
 */
void sl_infer_call_finish(struct sl_infer_worker *w, struct call *call,
                          json_t *value, const struct call_err *ce);

/*
 * Record the tokens 'u' a call used in its job's timings, under
 * "usage": {backend: {prompt_tokens, completion_tokens, total_tokens}}
 * (nothing when 'u' reports none).  Before sl_infer_call_finish().
 */
void sl_infer_call_usage(struct sl_infer_worker *w, struct call *call,
                         const struct sl_infer_usage *u);

/* libcurl opens a socket for the worker 'clientp'
 * (CURLOPT_OPENSOCKETFUNCTION): it starts outside the epoll set. */
curl_socket_t sl_infer_open_socket(void *clientp, curlsocktype purpose,
                                   struct curl_sockaddr *addr);

/* libcurl closes socket 's' of the worker 'clientp'
 * (CURLOPT_CLOSESOCKETFUNCTION): it leaves the epoll set. */
int sl_infer_close_socket(void *clientp, curl_socket_t s);

/* ---- requests (infer_req.c) ---- */

/*
 * A request of backend 'be' for 'ncalls' calls with 'body' (owned; NULL
 * for a GET), waiting for admission in w->waitq; NULL when out of memory
 * ('body' is then freed).
 */
struct req *sl_infer_req_new(struct sl_infer_worker *w, size_t be,
                             size_t ncalls, char *body);

/* Carry 'call' in 'req' (in the next free slot). */
void sl_infer_req_attach(struct req *req, struct call *call);

/* Try to admit waiting 'req' at 'now'; start it when admitted. */
void sl_infer_req_admit(struct sl_infer_worker *w, struct req *req,
                        int64_t now);

/* A transfer of 'req' ended with 'rc': values, a retry, or errors. */
void sl_infer_req_complete(struct sl_infer_worker *w, struct req *req,
                           CURLcode rc);

/* Release 'req' for good, with 'outcome' for the breaker; freed by the
 * next sweep. */
void sl_infer_req_release(struct sl_infer_worker *w, struct req *req,
                          enum sl_breaker_outcome outcome);

/* Free the released requests. */
void sl_infer_req_sweep(struct sl_infer_worker *w);

/*
 * The warn line of a failure of backend 'be' of class 'ce->ec', rate
 * limited per backend and class: 'attempt' made out of 'max_attempts'
 * (0: say how many were made), then 'action'.  The worker's thread; the
 * limits are shared with the other workers.
 */
void sl_infer_log_failure(struct sl_infer_worker *w, size_t be,
                          const struct call_err *ce, int attempt,
                          int max_attempts, const char *action);

#endif
