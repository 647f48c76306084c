/*
 * Worker threads: pop while there is room for more in flight, drive the
 * in-flight work, and on a sentinel stop popping, finish, and exit.
 *
 * A worker with work in flight and room for more waits inside progress()
 * for its own I/O; it marks itself parked first, and the queue's push
 * wakes one parked worker (ops->wakeup).  The mark is set before the last
 * look at the queue and read after a push under the queue's lock, so a
 * push either is seen by that look or finds the mark.
 */
#include "pool.h"
#include "clock.h"
#include "err.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IDLE_POP_MS 100 /* wait for work when nothing is in flight */
#define BUSY_POLL_MS 1  /* drive in-flight work between pops (no wakeup) */
#define PARK_MS 100     /* drive in-flight work; a push wakes us earlier */

struct sl_worker {
    struct sl_pool *pool;    /* back pointer */
    pthread_t thread;        /* the worker's thread */
    int id;                  /* 0..threads-1 */
    bool started;            /* thread was created */
    void *state;             /* from ops->init; set before the first park */
    _Atomic bool parked;     /* in progress() with room: wake on a push */
    _Atomic int64_t beat_ms; /* when its loop last turned */
};

struct sl_pool {
    struct sl_queue *q;            /* borrowed */
    const struct sl_pool_ops *ops; /* borrowed */
    void *arg;                     /* passed to ops->init */
    int threads;                   /* number of workers */
    int max_inflight;              /* per worker, >= 1 */
    struct sl_worker *workers;     /* 'threads' workers */
    pthread_mutex_t lock;
    pthread_cond_t done;        /* signalled when a worker stops */
    _Atomic int running;        /* workers not yet stopped */
    int first_error;            /* first init() failure, under lock */
    _Atomic unsigned next_wake; /* where the next push starts looking */
};

/* The queue's notify: a push wakes one parked worker, a close all. */
static void pool_notify(void *arg, bool closing)
{
    struct sl_pool *pool = arg;
    unsigned start =
        atomic_fetch_add_explicit(&pool->next_wake, 1, memory_order_relaxed);

    for (int i = 0; i < pool->threads; i++) {
        struct sl_worker *w =
            &pool->workers[(start + (unsigned)i) % (unsigned)pool->threads];
        if (atomic_load(&w->parked) && atomic_exchange(&w->parked, false)) {
            pool->ops->wakeup(w->state);
            if (!closing)
                return;
        }
    }
}

static void worker_stopped(struct sl_pool *pool, int err)
{
    pthread_mutex_lock(&pool->lock);
    if (err && !pool->first_error)
        pool->first_error = err;
    atomic_fetch_sub(&pool->running, 1);
    pthread_cond_broadcast(&pool->done);
    pthread_mutex_unlock(&pool->lock);
}

static void *worker_main(void *p)
{
    struct sl_worker *w = p;
    struct sl_pool *pool = w->pool;
    const struct sl_pool_ops *ops = pool->ops;
    void *state = NULL;
    int inflight = 0, rc = 0;
    bool stopping = false;

    if (ops->init && (rc = ops->init(pool->arg, w->id, &state)) < 0) {
        sl_log(SL_LOG_ERROR, "pool", "worker %d failed to start: %s", w->id,
               sl_strerror(rc));
        worker_stopped(pool, rc);
        return NULL;
    }

    w->state = state;
    while (!stopping || inflight > 0) {
        atomic_store_explicit(&w->beat_ms, sl_mono_ms(), memory_order_relaxed);
        /* Take new work while there is room and no sentinel was seen. */
        while (!stopping && inflight < pool->max_inflight) {
            void *item;
            int wait = inflight > 0 ? 0 : IDLE_POP_MS;
            if (wait == 0 && ops->wakeup)
                atomic_store(&w->parked, true); /* before the last look */
            rc = sl_queue_pop(pool->q, &item, wait);
            if (rc == -SL_ETIMEDOUT)
                break;
            atomic_store_explicit(&w->parked, false, memory_order_relaxed);
            if (rc == -SL_ECLOSED || item == NULL) {
                stopping = true; /* our sentinel, or nothing more */
                break;
            }
            /* Take a burst first, then drive it once: driving after
             * every submit costs a walk over everything in flight. */
            ops->submit(state, item);
            inflight = ops->progress ? inflight + 1 : 0;
        }
        if (inflight > 0 && ops->progress) {
            inflight =
                ops->progress(state, ops->wakeup ? PARK_MS : BUSY_POLL_MS);
            atomic_store_explicit(&w->parked, false, memory_order_relaxed);
        } else if (!ops->progress) {
            inflight = 0;
        }
    }

    if (ops->fini)
        ops->fini(state);
    worker_stopped(pool, 0);
    return NULL;
}

struct sl_pool *sl_pool_new(struct sl_queue *q, int threads, int max_inflight,
                            const struct sl_pool_ops *ops, void *arg,
                            char *errstr, size_t errstr_size)
{
    struct sl_pool *pool;

    if (threads < 1 || max_inflight < 1 || !ops || !ops->submit) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "pool needs at least one thread, one in flight and a "
                  "submit callback");
        return NULL;
    }
    pool = calloc(1, sizeof(*pool));
    if (!pool ||
        !(pool->workers = calloc((size_t)threads, sizeof(*pool->workers)))) {
        free(pool);
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    pool->q = q;
    pool->ops = ops;
    pool->arg = arg;
    pool->threads = threads;
    pool->max_inflight = max_inflight;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool->done, &attr);
    pthread_condattr_destroy(&attr);
    atomic_store(&pool->running, threads);
    if (ops->wakeup && ops->progress)
        sl_queue_set_notify(q, pool_notify, pool);

    for (int i = 0; i < threads; i++) {
        struct sl_worker *w = &pool->workers[i];
        w->pool = pool;
        w->id = i;
        int rc = pthread_create(&w->thread, NULL, worker_main, w);
        if (rc != 0) {
            sl_seterr(sl_err_from_errno(rc), errstr, errstr_size,
                      "cannot start worker thread %d: %s", i, strerror(rc));
            /* Workers that did start stop when the queue closes. */
            atomic_fetch_sub(&pool->running, threads - i);
            sl_queue_close(q);
            sl_pool_destroy(pool);
            return NULL;
        }
        w->started = true;
        char name[16]; /* the kernel keeps 15 bytes */
        snprintf(name, sizeof(name), "sl-worker-%u", (unsigned)i % 100000u);
        pthread_setname_np(w->thread, name);
    }
    return pool;
}

int sl_pool_wait(struct sl_pool *pool, int timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    if (timeout_ms > 0)
        sl_deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->running) > 0) {
        if (timeout_ms == 0) {
            rc = -SL_ETIMEDOUT;
            break;
        }
        if (timeout_ms < 0) {
            pthread_cond_wait(&pool->done, &pool->lock);
        } else if (pthread_cond_timedwait(&pool->done, &pool->lock,
                                          &deadline) != 0 &&
                   atomic_load(&pool->running) > 0) {
            rc = -SL_ETIMEDOUT;
            break;
        }
    }
    if (rc == 0)
        rc = pool->first_error;
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

int64_t sl_pool_stalled_ms(const struct sl_pool *pool)
{
    int64_t now = sl_mono_ms(), worst = 0;

    for (int i = 0; i < pool->threads; i++) {
        int64_t beat = atomic_load_explicit(&pool->workers[i].beat_ms,
                                            memory_order_relaxed);
        if (beat && now - beat > worst)
            worst = now - beat;
    }
    return worst;
}

int sl_pool_running(const struct sl_pool *pool)
{
    return atomic_load(&pool->running);
}

void sl_pool_destroy(struct sl_pool *pool)
{
    if (!pool)
        return;
    if (pool->ops->wakeup && pool->ops->progress)
        sl_queue_set_notify(pool->q, NULL, NULL); /* nobody pushes now */
    for (int i = 0; i < pool->threads; i++)
        if (pool->workers[i].started)
            pthread_join(pool->workers[i].thread, NULL);
    pthread_cond_destroy(&pool->done);
    pthread_mutex_destroy(&pool->lock);
    free(pool->workers);
    free(pool);
}
