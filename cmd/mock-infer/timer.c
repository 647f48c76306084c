/*
 * The resume timer: a min-heap of suspended MHD connections by due time
 * and one thread that resumes them when due.  A delayed response costs a
 * heap slot, not a thread, so latency does not cap throughput.
 */
#include "mock.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <time.h>

#define RESUME_BATCH 64 /* connections resumed per unlock */

struct entry {
    int64_t due_us;              /* monotonic time to resume at */
    struct MHD_Connection *conn; /* suspended; MHD's */
};

struct sl_mock_timer {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* signalled on a new earliest entry or quit */
    struct entry *heap;   /* min-heap on due_us, 'cap' slots */
    size_t len;           /* entries in use */
    size_t cap;           /* fixed at creation: the bound */
    bool draining;        /* resume everything at once from now on */
    bool quit;            /* thread must exit */
    pthread_t thread;     /* the resuming thread */
};

int64_t sl_mock_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void heap_up(struct entry *h, size_t i)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h[parent].due_us <= h[i].due_us)
            break;
        struct entry tmp = h[parent];
        h[parent] = h[i];
        h[i] = tmp;
        i = parent;
    }
}

static void heap_down(struct entry *h, size_t len, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < len && h[l].due_us < h[m].due_us)
            m = l;
        if (r < len && h[r].due_us < h[m].due_us)
            m = r;
        if (m == i)
            return;
        struct entry tmp = h[m];
        h[m] = h[i];
        h[i] = tmp;
        i = m;
    }
}

static struct entry heap_pop(struct sl_mock_timer *timer)
{
    struct entry top = timer->heap[0];

    timer->heap[0] = timer->heap[--timer->len];
    heap_down(timer->heap, timer->len, 0);
    return top;
}

static void *timer_main(void *arg)
{
    struct sl_mock_timer *timer = arg;
    struct MHD_Connection *batch[RESUME_BATCH];

    /* Wake-ups are deadlines: ask the kernel not to round them up. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    pthread_mutex_lock(&timer->lock);
    while (!timer->quit) {
        size_t n = 0;
        int64_t now = sl_mock_now_us();

        while (timer->len > 0 && n < RESUME_BATCH &&
               (timer->draining || timer->heap[0].due_us <= now))
            batch[n++] = heap_pop(timer).conn;
        if (n > 0) {
            pthread_mutex_unlock(&timer->lock);
            for (size_t i = 0; i < n; i++)
                MHD_resume_connection(batch[i]);
            pthread_mutex_lock(&timer->lock);
            continue;
        }
        if (timer->len == 0) {
            pthread_cond_wait(&timer->cond, &timer->lock);
        } else {
            int64_t due = timer->heap[0].due_us;
            struct timespec ts = {.tv_sec = due / 1000000,
                                  .tv_nsec = (due % 1000000) * 1000};
            pthread_cond_timedwait(&timer->cond, &timer->lock, &ts);
        }
    }
    pthread_mutex_unlock(&timer->lock);
    return NULL;
}

int sl_mock_timer_new(struct sl_mock_timer **timerp, size_t max_entries)
{
    struct sl_mock_timer *timer = calloc(1, sizeof(*timer));
    pthread_condattr_t attr;
    int rc;

    *timerp = NULL;
    if (!timer)
        return -SL_ENOMEM;
    timer->cap = max_entries;
    timer->heap = calloc(max_entries, sizeof(*timer->heap));
    if (!timer->heap) {
        free(timer);
        return -SL_ENOMEM;
    }
    pthread_mutex_init(&timer->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&timer->cond, &attr);
    pthread_condattr_destroy(&attr);
    rc = pthread_create(&timer->thread, NULL, timer_main, timer);
    if (rc) {
        pthread_cond_destroy(&timer->cond);
        pthread_mutex_destroy(&timer->lock);
        free(timer->heap);
        free(timer);
        return sl_err_from_errno(rc);
    }
    *timerp = timer;
    return 0;
}

void sl_mock_timer_park(struct sl_mock_timer *timer,
                        struct MHD_Connection *conn, int64_t due_us)
{
    bool now = false;

    MHD_suspend_connection(conn);
    pthread_mutex_lock(&timer->lock);
    if (timer->draining || timer->len == timer->cap) {
        now = true; /* full cannot happen: cap > MHD's connection limit */
    } else {
        timer->heap[timer->len] = (struct entry){due_us, conn};
        heap_up(timer->heap, timer->len);
        if (timer->len++ == 0 || timer->heap[0].conn == conn)
            pthread_cond_signal(&timer->cond);
    }
    pthread_mutex_unlock(&timer->lock);
    if (now)
        MHD_resume_connection(conn);
}

void sl_mock_timer_drain(struct sl_mock_timer *timer)
{
    size_t n = 0;

    pthread_mutex_lock(&timer->lock);
    timer->draining = true;
    /* Resume here rather than in the thread: when this returns, no
     * connection is left suspended without a pending resume. */
    while (timer->len > 0) {
        MHD_resume_connection(heap_pop(timer).conn);
        n++;
    }
    pthread_mutex_unlock(&timer->lock);
    if (n > 0)
        sl_log(SL_LOG_INFO, "mock-infer",
               "shutdown: resumed %zu parked connections", n);
}

void sl_mock_timer_destroy(struct sl_mock_timer *timer)
{
    if (!timer)
        return;
    pthread_mutex_lock(&timer->lock);
    timer->quit = true;
    pthread_cond_signal(&timer->cond);
    pthread_mutex_unlock(&timer->lock);
    pthread_join(timer->thread, NULL);
    pthread_cond_destroy(&timer->cond);
    pthread_mutex_destroy(&timer->lock);
    free(timer->heap);
    free(timer);
}
