/*
 * The concurrency cap is one atomic counter (compare-and-swap below the
 * cap); the two token buckets share a mutex, refilled lazily from the
 * elapsed time on each use.
 */
#include "limiter.h"

#include "err.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct sl_limiter {
    atomic_int inflight;  /* requests holding a slot */
    int max;              /* cap; 0: none */
    pthread_mutex_t lock; /* guards the buckets */
    double rps;           /* refill of 'req_tokens' per second; 0: none */
    double req_burst;     /* capacity of 'req_tokens' */
    double req_tokens;    /* requests that may start now */
    int64_t req_ms;       /* last refill */
    double tpm;           /* refill of 'model_tokens' per minute; 0: none */
    double model_tokens;  /* may go negative after a large debit */
    int64_t model_ms;     /* last refill */
    int started;          /* the buckets have been refilled once */
};

struct sl_limiter *sl_limiter_new(int max_concurrency, double rps,
                                  int64_t tokens_per_minute)
{
    struct sl_limiter *l = calloc(1, sizeof(*l));

    if (!l)
        return NULL;
    atomic_init(&l->inflight, 0);
    l->max = max_concurrency > 0 ? max_concurrency : 0;
    pthread_mutex_init(&l->lock, NULL);
    l->rps = rps > 0 ? rps : 0;
    l->req_burst = rps > 1 ? rps : 1;
    l->req_tokens = l->req_burst;
    l->tpm = tokens_per_minute > 0 ? (double)tokens_per_minute : 0;
    l->model_tokens = l->tpm;
    return l;
}

void sl_limiter_destroy(struct sl_limiter *l)
{
    if (!l)
        return;
    pthread_mutex_destroy(&l->lock);
    free(l);
}

/* Refill both buckets up to 'now_ms'.  Lock held. */
static void refill(struct sl_limiter *l, int64_t now_ms)
{
    if (!l->started) {
        l->started = 1;
        l->req_ms = l->model_ms = now_ms;
        return;
    }
    if (now_ms > l->req_ms) {
        l->req_tokens += l->rps * (double)(now_ms - l->req_ms) / 1000.0;
        if (l->req_tokens > l->req_burst)
            l->req_tokens = l->req_burst;
        l->req_ms = now_ms;
    }
    if (now_ms > l->model_ms) {
        l->model_tokens += l->tpm * (double)(now_ms - l->model_ms) / 60000.0;
        if (l->model_tokens > l->tpm)
            l->model_tokens = l->tpm;
        l->model_ms = now_ms;
    }
}

static int take_rate(struct sl_limiter *l, int64_t now_ms, int64_t *wait_msp)
{
    int err = 0;

    if (!l->rps && !l->tpm)
        return 0;
    pthread_mutex_lock(&l->lock);
    refill(l, now_ms);
    if (l->tpm && l->model_tokens <= 0) {
        *wait_msp = (int64_t)(-l->model_tokens * 60000.0 / l->tpm) + 1;
        err = -SL_ERATELIMIT;
    } else if (l->rps && l->req_tokens < 1.0) {
        *wait_msp = (int64_t)((1.0 - l->req_tokens) * 1000.0 / l->rps) + 1;
        err = -SL_ERATELIMIT;
    } else if (l->rps) {
        l->req_tokens -= 1.0;
    }
    pthread_mutex_unlock(&l->lock);
    return err;
}

int sl_limiter_try_acquire(struct sl_limiter *l, int64_t now_ms,
                           int64_t *wait_msp)
{
    *wait_msp = 0;
    if (l->max) {
        int cur = atomic_load_explicit(&l->inflight, memory_order_relaxed);
        do {
            if (cur >= l->max)
                return -SL_EBUSY;
        } while (!atomic_compare_exchange_weak(&l->inflight, &cur, cur + 1));
    } else {
        atomic_fetch_add(&l->inflight, 1);
    }
    int err = take_rate(l, now_ms, wait_msp);
    if (err)
        atomic_fetch_sub(&l->inflight, 1);
    return err;
}

void sl_limiter_release(struct sl_limiter *l)
{
    atomic_fetch_sub(&l->inflight, 1);
}

void sl_limiter_debit_tokens(struct sl_limiter *l, int64_t tokens,
                             int64_t now_ms)
{
    if (!l->tpm || tokens <= 0)
        return;
    pthread_mutex_lock(&l->lock);
    refill(l, now_ms);
    l->model_tokens -= (double)tokens;
    pthread_mutex_unlock(&l->lock);
}
