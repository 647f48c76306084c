/*
 * Bounded MPMC queue: a ring buffer under one mutex with two condition
 * variables.  Waiters spin briefly before sleeping, and wake-ups are sent
 * only when somebody sleeps, so a busy hand-off rarely enters the kernel.
 */
#include "queue.h"
#include "clock.h"
#include "err.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define SPIN_ROUNDS 256 /* polls of the count before sleeping */

struct sl_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;     /* signalled on push when poppers sleep */
    pthread_cond_t not_full;      /* signalled on pop when pushers sleep */
    void **slots;                 /* ring of 'capacity' items */
    size_t capacity;              /* slots in the ring, >= 1 */
    size_t head;                  /* next slot to pop, under lock */
    _Atomic size_t count;         /* items queued; written under lock */
    int pop_waiters;              /* poppers asleep on not_empty, under lock */
    int push_waiters;             /* pushers asleep on not_full, under lock */
    _Atomic bool closed;          /* set once by sl_queue_close() */
    void (*free_item)(void *);    /* frees leftovers on destroy; may be NULL */
    void (*notify)(void *, bool); /* after a push and on close; or NULL */
    void *notify_arg;             /* its argument */
};

struct sl_queue *sl_queue_new(size_t capacity, void (*free_item)(void *))
{
    struct sl_queue *q;
    pthread_condattr_t attr;

    if (capacity < 1)
        return NULL;
    q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->slots = calloc(capacity, sizeof(*q->slots));
    if (!q->slots) {
        free(q);
        return NULL;
    }
    q->capacity = capacity;
    q->free_item = free_item;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_empty, &attr);
    pthread_cond_init(&q->not_full, &attr);
    pthread_condattr_destroy(&attr);
    return q;
}

void sl_queue_destroy(struct sl_queue *q)
{
    if (!q)
        return;
    size_t n = atomic_load(&q->count);
    for (size_t i = 0; i < n; i++) {
        void *item = q->slots[(q->head + i) % q->capacity];
        if (item && q->free_item)
            q->free_item(item);
    }
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->lock);
    free(q->slots);
    free(q);
}

/*
 * What a waiter waits for: room for a push ('want_room'), or an item to
 * pop.  Reads the count without the lock: a hint outside it, the answer
 * under it.
 */
static bool ready(const struct sl_queue *q, bool want_room)
{
    size_t n = atomic_load_explicit(&q->count, memory_order_relaxed);

    return want_room ? n < q->capacity : n > 0;
}

/*
 * Spin, without the lock, until ready() holds or the rounds run out; then
 * the caller takes the lock and checks again.  Saves a sleep and a
 * wake-up when the other side is only a moment behind.
 */
static void spin_until(const struct sl_queue *q, bool want_room)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        if (ready(q, want_room))
            return;
        if (atomic_load_explicit(&q->closed, memory_order_relaxed))
            return;
        if ((i & 31) == 31)
            sched_yield();
    }
}

/*
 * Wait on 'cond' until ready() holds, the queue closes or the deadline
 * passes.  Called and returns with the lock held.  Returns 0 when ready,
 * -SL_ECLOSED or -SL_ETIMEDOUT.
 */
static int wait_for(struct sl_queue *q, pthread_cond_t *cond, int *waiters,
                    bool want_room, int timeout_ms)
{
    struct timespec deadline;
    bool have_deadline = false;

    for (;;) {
        if (ready(q, want_room))
            return 0;
        if (atomic_load(&q->closed))
            return -SL_ECLOSED;
        if (timeout_ms == 0)
            return -SL_ETIMEDOUT;
        if (!have_deadline) {
            /* First miss: spin outside the lock before sleeping. */
            pthread_mutex_unlock(&q->lock);
            spin_until(q, want_room);
            pthread_mutex_lock(&q->lock);
            if (timeout_ms > 0)
                sl_deadline_after(&deadline, timeout_ms);
            have_deadline = true;
            continue;
        }
        (*waiters)++;
        int rc = timeout_ms > 0
                     ? pthread_cond_timedwait(cond, &q->lock, &deadline)
                     : pthread_cond_wait(cond, &q->lock);
        (*waiters)--;
        if (rc == ETIMEDOUT) {
            if (ready(q, want_room))
                return 0;
            return atomic_load(&q->closed) ? -SL_ECLOSED : -SL_ETIMEDOUT;
        }
    }
}

int sl_queue_push(struct sl_queue *q, void *item, int timeout_ms)
{
    int rc;

    pthread_mutex_lock(&q->lock);
    if (atomic_load(&q->closed)) {
        pthread_mutex_unlock(&q->lock);
        return -SL_ECLOSED;
    }
    rc = wait_for(q, &q->not_full, &q->push_waiters, true, timeout_ms);
    if (rc == 0) {
        size_t n = atomic_load_explicit(&q->count, memory_order_relaxed);
        q->slots[(q->head + n) % q->capacity] = item;
        atomic_store_explicit(&q->count, n + 1, memory_order_release);
        if (q->pop_waiters > 0)
            pthread_cond_signal(&q->not_empty);
    }
    pthread_mutex_unlock(&q->lock);
    if (rc == 0 && q->notify)
        q->notify(q->notify_arg, false);
    return rc;
}

int sl_queue_pop(struct sl_queue *q, void **itemp, int timeout_ms)
{
    int rc;

    *itemp = NULL;
    pthread_mutex_lock(&q->lock);
    rc = wait_for(q, &q->not_empty, &q->pop_waiters, false, timeout_ms);
    if (rc == 0) {
        size_t n = atomic_load_explicit(&q->count, memory_order_relaxed);
        *itemp = q->slots[q->head];
        q->slots[q->head] = NULL;
        q->head = (q->head + 1) % q->capacity;
        atomic_store_explicit(&q->count, n - 1, memory_order_release);
        if (q->push_waiters > 0)
            pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void sl_queue_close(struct sl_queue *q)
{
    pthread_mutex_lock(&q->lock);
    atomic_store(&q->closed, true);
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    if (q->notify)
        q->notify(q->notify_arg, true);
}

void sl_queue_set_notify(struct sl_queue *q,
                         void (*fn)(void *arg, bool closing), void *arg)
{
    q->notify = fn;
    q->notify_arg = arg;
}

size_t sl_queue_depth(const struct sl_queue *q)
{
    return atomic_load_explicit(&q->count, memory_order_relaxed);
}

size_t sl_queue_capacity(const struct sl_queue *q)
{
    return q->capacity;
}
