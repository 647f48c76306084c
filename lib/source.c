/*
 * The source thread shared by every kind: fetch while not stopping, apply
 * acks handed back by the sink, commit at intervals, push the sentinels
 * at shutdown, and commit synchronously at close.
 */
#include "source.h"
#include "clock.h"
#include "err.h"
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 50 /* longest fetch wait, so acks are applied promptly */

struct ack_list {
    struct sl_msg **msgs; /* acked messages, owned */
    size_t cnt;           /* used */
    size_t cap;           /* allocated */
};

struct sl_source {
    const struct sl_source_ops *ops; /* the kind */
    void *impl;                      /* the kind's state, owned */
    struct sl_queue *q;              /* borrowed */
    int commit_interval_ms;          /* between non-final commits */
    struct sl_source_stats stats;    /* counters */
    pthread_t thread;                /* the source thread */
    bool started;                    /* thread created */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* acks arrived, stop/close asked, stopped */
    struct ack_list acks; /* handed back, not yet applied */
    int sentinels;        /* to push when stopping */
    bool stop;            /* sl_source_stop() was called */
    bool stopped;         /* sentinels pushed, or the thread ended */
    bool close;           /* sl_source_close() was called */
    bool finished;        /* input exhausted */
    int error;            /* fatal error, 0 when none */
    char errstr[512];     /* its text */
};

struct sl_source *sl_source_new(const struct sl_source_ops *ops, void *impl,
                                struct sl_queue *q, int commit_interval_ms)
{
    struct sl_source *src = calloc(1, sizeof(*src));
    pthread_condattr_t attr;

    if (!src) {
        if (ops->destroy)
            ops->destroy(impl);
        return NULL;
    }
    src->ops = ops;
    src->impl = impl;
    src->q = q;
    src->commit_interval_ms =
        commit_interval_ms > 0 ? commit_interval_ms : 1000;
    pthread_mutex_init(&src->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&src->cond, &attr);
    pthread_condattr_destroy(&attr);
    return src;
}

void *sl_source_impl(struct sl_source *src)
{
    return src->impl;
}

struct sl_queue *sl_source_queue(struct sl_source *src)
{
    return src->q;
}

struct sl_source_stats *sl_source_stats(struct sl_source *src)
{
    return &src->stats;
}

int sl_source_push(struct sl_source *src, struct sl_msg *msg, int timeout_ms)
{
    msg->source = src;
    int rc = sl_queue_push(src->q, msg, timeout_ms);
    if (rc == 0)
        atomic_fetch_add(&src->stats.consumed, 1);
    return rc;
}

bool sl_source_stopping(struct sl_source *src)
{
    pthread_mutex_lock(&src->lock);
    bool stop = src->stop;
    pthread_mutex_unlock(&src->lock);
    return stop;
}

void sl_source_ack(struct sl_msg *msg)
{
    struct sl_source *src = msg->source;
    struct ack_list *l = &src->acks;

    pthread_mutex_lock(&src->lock);
    if (l->cnt == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        struct sl_msg **msgs = realloc(l->msgs, cap * sizeof(*msgs));
        if (!msgs) {
            /* Not acking only means redelivery later: never a loss. */
            pthread_mutex_unlock(&src->lock);
            sl_log(SL_LOG_ERROR, "source",
                   "out of memory recording an ack; the message will be "
                   "redelivered");
            sl_msg_destroy(msg);
            return;
        }
        l->msgs = msgs;
        l->cap = cap;
    }
    l->msgs[l->cnt++] = msg;
    pthread_cond_signal(&src->cond);
    pthread_mutex_unlock(&src->lock);
}

void sl_source_apply_acks(struct sl_source *src)
{
    struct ack_list mine;

    pthread_mutex_lock(&src->lock);
    mine = src->acks;
    src->acks = (struct ack_list){0};
    pthread_mutex_unlock(&src->lock);
    for (size_t i = 0; i < mine.cnt; i++) {
        src->ops->acked(src, mine.msgs[i]);
        atomic_fetch_add(&src->stats.acked, 1);
    }
    free(mine.msgs);
}

void sl_source_wait_acks(struct sl_source *src, int timeout_ms)
{
    struct timespec deadline;

    sl_deadline_after(&deadline, timeout_ms);
    pthread_mutex_lock(&src->lock);
    if (src->acks.cnt == 0)
        pthread_cond_timedwait(&src->cond, &src->lock, &deadline);
    pthread_mutex_unlock(&src->lock);
    sl_source_apply_acks(src);
}

static void do_commit(struct sl_source *src, bool final)
{
    int rc = src->ops->commit ? src->ops->commit(src, final) : 0;
    if (rc == 0)
        atomic_fetch_add(&src->stats.committed, 1);
    else
        atomic_fetch_add(&src->stats.errors, 1);
}

void sl_source_fail(struct sl_source *src, int err, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&src->lock);
    if (!src->error) {
        src->error = err;
        va_start(ap, fmt);
        vsnprintf(src->errstr, sizeof(src->errstr), fmt, ap);
        va_end(ap);
    }
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
}

/* Push the sentinels, retrying while the queue is full and not closing. */
static void push_sentinels(struct sl_source *src, int n)
{
    int pushed = 0;
    while (pushed < n) {
        int rc = sl_queue_push(src->q, NULL, POLL_MS);
        if (rc == 0) {
            pushed++;
            continue;
        }
        if (rc == -SL_ECLOSED)
            break;
        sl_source_apply_acks(src); /* keep the ack path moving while we wait */
        pthread_mutex_lock(&src->lock);
        bool closing = src->close;
        pthread_mutex_unlock(&src->lock);
        if (closing)
            break;
    }
}

static void *source_main(void *p)
{
    struct sl_source *src = p;
    int64_t last_commit = sl_mono_ms();
    bool fetching = true;

    for (;;) {
        pthread_mutex_lock(&src->lock);
        bool stop = src->stop, stopped = src->stopped, close = src->close;
        int sentinels = src->sentinels;
        bool failed = src->error != 0;
        pthread_mutex_unlock(&src->lock);
        if (close)
            break;

        sl_source_apply_acks(src);
        if (stop && !stopped) {
            push_sentinels(src, sentinels);
            pthread_mutex_lock(&src->lock);
            src->stopped = true;
            pthread_cond_broadcast(&src->cond);
            pthread_mutex_unlock(&src->lock);
            fetching = false;
        } else if (fetching && !stop && !failed) {
            int rc = src->ops->poll(src, POLL_MS);
            if (rc == 1) {
                fetching = false;
                pthread_mutex_lock(&src->lock);
                src->finished = true;
                pthread_cond_broadcast(&src->cond);
                pthread_mutex_unlock(&src->lock);
            } else if (rc < 0) {
                sl_source_fail(src, rc, "%s source failed: %s", src->ops->kind,
                               sl_strerror(rc));
                fetching = false;
            }
        } else {
            /* Not fetching: wait for acks or for stop/close. */
            struct timespec deadline;
            sl_deadline_after(&deadline, POLL_MS);
            pthread_mutex_lock(&src->lock);
            if (src->acks.cnt == 0 && !src->close &&
                (src->stop == src->stopped))
                pthread_cond_timedwait(&src->cond, &src->lock, &deadline);
            pthread_mutex_unlock(&src->lock);
        }
        if (sl_mono_ms() - last_commit >= src->commit_interval_ms) {
            do_commit(src, false);
            last_commit = sl_mono_ms();
        }
    }

    sl_source_apply_acks(src);
    do_commit(src, true);
    pthread_mutex_lock(&src->lock);
    src->stopped = true;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

int sl_source_start(struct sl_source *src, char *errstr, size_t errstr_size)
{
    int rc = pthread_create(&src->thread, NULL, source_main, src);
    if (rc != 0)
        return sl_seterr(sl_err_from_errno(rc), errstr, errstr_size,
                         "cannot start the source thread: %s", strerror(rc));
    src->started = true;
    return 0;
}

void sl_source_stop(struct sl_source *src, int sentinels)
{
    pthread_mutex_lock(&src->lock);
    if (!src->stop) {
        src->stop = true;
        src->sentinels = sentinels;
    }
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
}

int sl_source_wait_stopped(struct sl_source *src, int timeout_ms)
{
    struct timespec deadline;
    int rc = 0;

    sl_deadline_after(&deadline, timeout_ms < 0 ? 0 : timeout_ms);
    pthread_mutex_lock(&src->lock);
    while (!src->stopped) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&src->cond, &src->lock);
        } else if (pthread_cond_timedwait(&src->cond, &src->lock, &deadline) !=
                   0) {
            rc = src->stopped ? 0 : -SL_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&src->lock);
    return rc;
}

bool sl_source_finished(struct sl_source *src)
{
    pthread_mutex_lock(&src->lock);
    bool finished = src->finished;
    pthread_mutex_unlock(&src->lock);
    return finished;
}

int sl_source_close(struct sl_source *src)
{
    pthread_mutex_lock(&src->lock);
    src->close = true;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    if (src->started) {
        pthread_join(src->thread, NULL);
        src->started = false;
    } else {
        sl_source_apply_acks(src);
    }
    return sl_source_error(src, NULL, 0);
}

int sl_source_error(struct sl_source *src, char *errstr, size_t errstr_size)
{
    pthread_mutex_lock(&src->lock);
    int err = src->error;
    if (errstr && errstr_size)
        snprintf(errstr, errstr_size, "%s", src->errstr);
    pthread_mutex_unlock(&src->lock);
    return err;
}

void sl_source_destroy(struct sl_source *src)
{
    if (!src)
        return;
    if (src->started)
        sl_source_close(src);
    for (size_t i = 0; i < src->acks.cnt; i++)
        sl_msg_destroy(src->acks.msgs[i]);
    free(src->acks.msgs);
    if (src->ops->destroy)
        src->ops->destroy(src->impl);
    pthread_cond_destroy(&src->cond);
    pthread_mutex_destroy(&src->lock);
    free(src);
}
