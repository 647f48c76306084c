/*
 * The resume timer of one HTTP loop: a min-heap of suspended MHD
 * connections by due time, resumed by the loop's own thread when due.  A
 * delayed response costs a heap slot, not a thread, so latency does not
 * cap throughput; no lock, no second thread, no wake-up between threads.
 */
#include "mock.h"

#include "err.h"
#include "log.h"

#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct entry {
    int64_t due_us;              /* monotonic time to resume at */
    struct MHD_Connection *conn; /* suspended; MHD's */
};

struct sl_mock_timer {
    struct entry *heap; /* min-heap on due_us, 'cap' slots */
    size_t len;         /* entries in use */
    size_t cap;         /* fixed at creation: the bound */
    bool draining;      /* resume everything at once from now on */
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

int sl_mock_timer_new(struct sl_mock_timer **timerp, size_t max_entries)
{
    struct sl_mock_timer *timer = calloc(1, sizeof(*timer));

    *timerp = NULL;
    if (!timer)
        return -SL_ENOMEM;
    timer->cap = max_entries;
    timer->heap = calloc(max_entries, sizeof(*timer->heap));
    if (!timer->heap) {
        free(timer);
        return -SL_ENOMEM;
    }
    *timerp = timer;
    return 0;
}

void sl_mock_timer_park(struct sl_mock_timer *timer,
                        struct MHD_Connection *conn, int64_t due_us)
{
    MHD_suspend_connection(conn);
    if (timer->draining || timer->len == timer->cap) {
        /* full cannot happen: cap > the daemon's connection limit */
        MHD_resume_connection(conn);
        return;
    }
    timer->heap[timer->len] = (struct entry){due_us, conn};
    heap_up(timer->heap, timer->len);
    timer->len++;
}

size_t sl_mock_timer_resume_due(struct sl_mock_timer *timer, int64_t now_us)
{
    size_t n = 0;

    while (timer->len > 0 &&
           (timer->draining || timer->heap[0].due_us <= now_us)) {
        MHD_resume_connection(heap_pop(timer).conn);
        n++;
    }
    return n;
}

int64_t sl_mock_timer_next_us(const struct sl_mock_timer *timer)
{
    return timer->len > 0 ? timer->heap[0].due_us : -1;
}

size_t sl_mock_timer_drain(struct sl_mock_timer *timer)
{
    timer->draining = true;
    return sl_mock_timer_resume_due(timer, 0);
}

void sl_mock_timer_destroy(struct sl_mock_timer *timer)
{
    if (!timer)
        return;
    free(timer->heap);
    free(timer);
}
