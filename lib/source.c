/*
 * The source thread shared by every kind: fetch while not stopping, apply
 * acks handed back by the sink, commit at intervals, push the sentinels
 * at shutdown, and commit synchronously at close.
 */
#include "source.h"
#include "clock.h"
#include "err.h"
#include "hash.h"
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

#define LANE_BUCKETS 1024 /* hash buckets for ordering lanes */
#define LANE_ID_MAX 512   /* bytes of a lane id kept */

/*
 * One key (or partition) with a message in flight, and the messages of
 * the same key waiting behind it, oldest first.  A lane exists only while
 * its key is busy.
 */
struct lane {
    struct lane *next;   /* next lane in the bucket */
    uint64_t hash;       /* of the lane id */
    char *id;            /* topic, NUL, key bytes (or partition) */
    size_t id_len;       /* bytes of id */
    struct sl_msg *head; /* first waiting message, or NULL */
    struct sl_msg *tail; /* last waiting message */
};

struct sl_source {
    const struct sl_source_ops *ops; /* the kind */
    void *impl;                      /* the kind's state, owned */
    struct sl_queue *q;              /* borrowed */
    int commit_interval_ms;          /* between non-final commits */
    struct sl_source_stats stats;    /* counters */
    pthread_t thread;                /* the source thread */
    bool started;                    /* thread created */

    /* Ordering modes; source thread only. */
    enum sl_source_ordering ordering; /* SL_SOURCE_UNORDERED: no lanes */
    struct lane **lanes;              /* hash buckets of busy lanes */
    size_t max_waiting;               /* cap on messages waiting in lanes */
    size_t waiting;                   /* messages waiting in lanes */
    struct sl_msg *ready;             /* released from a lane, not yet queued */
    struct sl_msg *ready_tail;        /* last of them */

    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* acks arrived, stop/close asked, stopped */
    struct ack_list acks; /* handed back, not yet applied */
    int sentinels;        /* to push when stopping */
    bool stop;            /* sl_source_stop() was called */
    bool stopped;         /* sentinels pushed, or the thread ended */
    bool close;           /* sl_source_close() was called */
    bool finished;        /* input exhausted */
    int error;            /* fatal error, 0 when none */
    int final_commit;     /* result of the commit at close */
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

const char *sl_source_kind(const struct sl_source *src)
{
    return src->ops->kind;
}

bool sl_source_redelivers(const struct sl_source *src)
{
    return src->ops->redelivers;
}

void sl_source_set_ordering(struct sl_source *src,
                            enum sl_source_ordering ordering,
                            size_t max_waiting)
{
    src->max_waiting = max_waiting > 0 ? max_waiting : 1;
    if (ordering != SL_SOURCE_UNORDERED && !src->lanes &&
        !(src->lanes = calloc(LANE_BUCKETS, sizeof(*src->lanes)))) {
        sl_log(SL_LOG_ERROR, "source",
               "out of memory setting up ordering; messages run unordered");
        return;
    }
    src->ordering = ordering;
}

/*
 * The lane id of 'msg' in buf[LANE_ID_MAX]: topic, a NUL, then the key
 * bytes (by key) or the partition number.  Returns its length, or 0 when
 * the message may run beside any other (keyless, by key).
 */
static size_t lane_id(const struct sl_source *src, const struct sl_msg *msg,
                      char *buf)
{
    const char *topic = msg->origin.topic ? msg->origin.topic : "";
    size_t tlen = strlen(topic), room;

    if (src->ordering == SL_SOURCE_BY_KEY && !msg->key)
        return 0;
    if (tlen > LANE_ID_MAX / 2)
        tlen = LANE_ID_MAX / 2;
    memcpy(buf, topic, tlen);
    buf[tlen] = '\0';
    room = LANE_ID_MAX - tlen - 1;
    if (src->ordering == SL_SOURCE_BY_PARTITION) {
        memcpy(buf + tlen + 1, &msg->origin.partition, sizeof(int32_t));
        return tlen + 1 + sizeof(int32_t);
    }
    size_t klen = msg->key_len < room ? msg->key_len : room;
    memcpy(buf + tlen + 1, msg->key, klen);
    return tlen + 1 + klen;
}

/*
 * Where the lane of 'msg' is (or would be linked) in its bucket; NULL when
 * the message has no lane.  Fills id, *lenp and *hashp.
 */
static struct lane **lane_find(struct sl_source *src, const struct sl_msg *msg,
                               char *id, size_t *lenp, uint64_t *hashp)
{
    *lenp = lane_id(src, msg, id);
    if (*lenp == 0)
        return NULL;
    uint64_t h = sl_fnv1a64(SL_FNV1A64_INIT, id, *lenp);
    *hashp = h;
    struct lane **lp = &src->lanes[h % LANE_BUCKETS];
    while (*lp && ((*lp)->hash != h || (*lp)->id_len != *lenp ||
                   memcmp((*lp)->id, id, *lenp) != 0))
        lp = &(*lp)->next;
    return lp;
}

int sl_source_push(struct sl_source *src, struct sl_msg *msg, int timeout_ms)
{
    char id[LANE_ID_MAX];
    size_t len = 0;
    uint64_t hash = 0;
    struct lane **lp = NULL, *l = NULL;

    msg->source = src;
    msg->order_next = NULL;
    if (src->ordering != SL_SOURCE_UNORDERED)
        lp = lane_find(src, msg, id, &len, &hash);
    if (lp && *lp) {
        /* Its key is busy: wait behind the message in flight. */
        if (src->waiting >= src->max_waiting)
            return -SL_ETIMEDOUT;
        l = *lp;
        if (l->tail)
            l->tail->order_next = msg;
        else
            l->head = msg;
        l->tail = msg;
        src->waiting++;
        atomic_fetch_add(&src->stats.consumed, 1);
        return 0;
    }
    if (lp) {
        /* The key becomes busy with this message. */
        l = calloc(1, sizeof(*l));
        if (!l || !(l->id = malloc(len))) {
            free(l);
            return -SL_ETIMEDOUT; /* out of memory: try again later */
        }
        memcpy(l->id, id, len);
        l->id_len = len;
        l->hash = hash;
    }
    int rc = sl_queue_push(src->q, msg, timeout_ms);
    if (rc == 0) {
        atomic_fetch_add(&src->stats.consumed, 1);
        if (l) {
            l->next = *lp;
            *lp = l;
        }
    } else if (l) {
        free(l->id);
        free(l);
    }
    return rc;
}

/*
 * 'msg' was acked: the next message of its lane may run (it goes to the
 * ready list), or the lane is idle and goes away.  Source thread, before
 * the kind frees 'msg'.
 */
static void lane_release(struct sl_source *src, const struct sl_msg *msg)
{
    char id[LANE_ID_MAX];
    size_t len;
    uint64_t hash;
    struct lane **lp = lane_find(src, msg, id, &len, &hash);

    if (!lp || !*lp)
        return;
    struct lane *l = *lp;
    if (l->head) {
        struct sl_msg *next = l->head;
        l->head = next->order_next;
        if (!l->head)
            l->tail = NULL;
        next->order_next = NULL;
        src->waiting--;
        if (src->ready_tail)
            src->ready_tail->order_next = next;
        else
            src->ready = next;
        src->ready_tail = next;
        return; /* the lane stays busy with 'next' */
    }
    *lp = l->next;
    free(l->id);
    free(l);
}

/*
 * Queue the released messages, waiting up to 'timeout_ms' for room.
 * Returns true when none is left.  Source thread.
 */
static bool flush_ready(struct sl_source *src, int timeout_ms)
{
    while (src->ready) {
        struct sl_msg *msg = src->ready;
        if (sl_queue_push(src->q, msg, timeout_ms) != 0)
            return false;
        src->ready = msg->order_next;
        if (!src->ready)
            src->ready_tail = NULL;
        timeout_ms = 0;
    }
    return true;
}

/*
 * Free the lanes and every message waiting in them (never acked, so they
 * will be redelivered).  At destroy.
 */
static void lanes_free(struct sl_source *src)
{
    for (size_t b = 0; src->lanes && b < LANE_BUCKETS; b++) {
        while (src->lanes[b]) {
            struct lane *l = src->lanes[b];
            src->lanes[b] = l->next;
            while (l->head) {
                struct sl_msg *msg = l->head;
                l->head = msg->order_next;
                sl_msg_destroy(msg);
            }
            free(l->id);
            free(l);
        }
    }
    free(src->lanes);
    while (src->ready) {
        struct sl_msg *msg = src->ready;
        src->ready = msg->order_next;
        sl_msg_destroy(msg);
    }
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
        if (src->ordering != SL_SOURCE_UNORDERED)
            lane_release(src, mine.msgs[i]);
        src->ops->acked(src, mine.msgs[i]);
        atomic_fetch_add(&src->stats.acked, 1);
    }
    free(mine.msgs);
    if (src->ready)
        flush_ready(src, 0);
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

static int do_commit(struct sl_source *src, bool final)
{
    int rc = src->ops->commit ? src->ops->commit(src, final) : 0;
    if (rc == 0)
        atomic_fetch_add(&src->stats.committed, 1);
    else
        atomic_fetch_add(&src->stats.errors, 1);
    return rc;
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

/*
 * Push the sentinels, retrying while the queue is full and not closing.
 * Messages waiting for their key go first: sentinels come after every
 * message handed over.
 */
static void push_sentinels(struct sl_source *src, int n)
{
    int pushed = 0;
    while (src->waiting > 0 || src->ready) {
        sl_source_wait_acks(src, POLL_MS);
        flush_ready(src, POLL_MS);
        pthread_mutex_lock(&src->lock);
        bool closing = src->close;
        pthread_mutex_unlock(&src->lock);
        if (closing)
            return;
    }
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
    int rc = do_commit(src, true);
    pthread_mutex_lock(&src->lock);
    src->final_commit = rc;
    src->stopped = true;
    pthread_cond_broadcast(&src->cond);
    pthread_mutex_unlock(&src->lock);
    return NULL;
}

int sl_source_start(struct sl_source *src, char *errstr, size_t errstr_size)
{
    int rc = pthread_create(&src->thread, NULL, source_main, src);
    if (rc == 0)
        pthread_setname_np(src->thread, "sl-source");
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
    int err = sl_source_error(src, NULL, 0);
    return err ? err : src->final_commit;
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
    lanes_free(src);
    if (src->ops->destroy)
        src->ops->destroy(src->impl);
    pthread_cond_destroy(&src->cond);
    pthread_mutex_destroy(&src->lock);
    free(src);
}
