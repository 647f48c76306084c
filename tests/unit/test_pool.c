/*
 * The worker pool: every worker stops exactly once on its own sentinel,
 * only after the work it holds in flight has finished, never holding more
 * than max_inflight at once.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "pool.h"
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#define THREADS 4
#define MAX_INFLIGHT 8
#define ITEMS 20000
#define STEPS_TO_FINISH 3 /* progress() calls before an item completes */

struct shared {
    _Atomic int inits;                 /* init() calls */
    _Atomic int finis[THREADS];        /* fini() calls per worker */
    _Atomic long completed;            /* items finished */
    _Atomic long left_at_fini;         /* items still held when fini ran */
    _Atomic int max_seen;              /* largest in-flight count seen */
    _Atomic unsigned char done[ITEMS]; /* one flag per finished item */
    int fail_init;                     /* make init() fail */
};

struct wstate {
    struct shared *sh;
    int id;
    uintptr_t held[MAX_INFLIGHT]; /* items in flight */
    int steps[MAX_INFLIGHT];      /* progress calls each has had */
    int n;                        /* items in flight */
};

static int w_init(void *arg, int id, void **statep)
{
    struct shared *sh = arg;
    atomic_fetch_add(&sh->inits, 1);
    if (sh->fail_init)
        return -SL_ECONN;
    struct wstate *w = calloc(1, sizeof(*w));
    w->sh = sh;
    w->id = id;
    *statep = w;
    return 0;
}

static void w_submit(void *state, void *item)
{
    struct wstate *w = state;
    if (w->n >= MAX_INFLIGHT)
        abort(); /* the pool gave more than max_inflight */
    w->held[w->n] = (uintptr_t)item;
    w->steps[w->n] = 0;
    w->n++;
    int seen = atomic_load(&w->sh->max_seen);
    while (w->n > seen &&
           !atomic_compare_exchange_weak(&w->sh->max_seen, &seen, w->n))
        ;
}

/* Simulated non-blocking I/O: an item completes after a few polls. */
static int w_progress(void *state, int timeout_ms)
{
    struct wstate *w = state;
    (void)timeout_ms;
    for (int i = 0; i < w->n;) {
        if (++w->steps[i] >= STEPS_TO_FINISH) {
            uintptr_t n = w->held[i] - 1;
            if (atomic_exchange(&w->sh->done[n], 1))
                abort(); /* finished twice */
            atomic_fetch_add(&w->sh->completed, 1);
            w->held[i] = w->held[w->n - 1];
            w->steps[i] = w->steps[w->n - 1];
            w->n--;
        } else {
            i++;
        }
    }
    return w->n;
}

static void w_fini(void *state)
{
    struct wstate *w = state;
    atomic_fetch_add(&w->sh->finis[w->id], 1);
    atomic_fetch_add(&w->sh->left_at_fini, w->n);
    free(w);
}

static const struct sl_pool_ops ops = {w_init, w_submit, w_progress, w_fini,
                                       NULL};

/*
 * A worker whose progress() waits without a timeout until it is woken,
 * like one waiting on its sockets: only the queue's push can bring it
 * back to take more.  Items finish when the test releases them.
 */
struct parked {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;         /* wakeup() was called */
    bool release;       /* finish everything held */
    int held;           /* items in flight */
    int submitted;      /* items taken so far */
    int max_timeout_ms; /* largest timeout progress() was given */
    bool waiting;       /* inside progress(), waiting to be woken */
};

static int p_init(void *arg, int id, void **statep)
{
    (void)id;
    *statep = arg;
    return 0;
}

static void p_submit(void *state, void *item)
{
    struct parked *p = state;
    (void)item;
    pthread_mutex_lock(&p->mu);
    p->held++;
    p->submitted++;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static int p_progress(void *state, int timeout_ms)
{
    struct parked *p = state;
    pthread_mutex_lock(&p->mu);
    if (timeout_ms > p->max_timeout_ms)
        p->max_timeout_ms = timeout_ms;
    p->waiting = true;
    pthread_cond_broadcast(&p->cv);
    while (!p->woken && !p->release)
        pthread_cond_wait(&p->cv, &p->mu);
    p->waiting = false;
    p->woken = false;
    if (p->release)
        p->held = 0;
    int n = p->held;
    pthread_mutex_unlock(&p->mu);
    return n;
}

static void p_wakeup(void *state)
{
    struct parked *p = state;
    pthread_mutex_lock(&p->mu);
    p->woken = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static const struct sl_pool_ops parked_ops = {p_init, p_submit, p_progress,
                                              NULL, p_wakeup};

/* Wait up to 10 s for 'want' items to have been submitted and the worker
 * to wait in progress(); the items submitted by then. */
static int wait_parked(struct parked *p, int want)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += 10;
    pthread_mutex_lock(&p->mu);
    while ((p->submitted < want || !p->waiting) &&
           pthread_cond_timedwait(&p->cv, &p->mu, &dl) == 0)
        ;
    int got = p->submitted;
    pthread_mutex_unlock(&p->mu);
    return got;
}

static void test_each_worker_stops_once_after_its_work(void **state)
{
    (void)state;
    struct shared *sh = calloc(1, sizeof(*sh));
    struct sl_queue *q = sl_queue_new(64, NULL);
    char err[256];
    struct sl_pool *pool =
        sl_pool_new(q, THREADS, MAX_INFLIGHT, &ops, sh, err, sizeof(err));

    assert_non_null(pool);
    for (uintptr_t i = 1; i <= ITEMS; i++)
        assert_int_equal(sl_queue_push(q, (void *)i, -1), 0);
    /* Nobody stops before its sentinel. */
    assert_int_equal(sl_pool_wait(pool, 20), -SL_ETIMEDOUT);
    assert_int_equal(sl_pool_running(pool), THREADS);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(sl_queue_push(q, NULL, -1), 0);
    assert_int_equal(sl_pool_wait(pool, 60000), 0);
    assert_int_equal(sl_pool_running(pool), 0);
    sl_pool_destroy(pool);

    assert_int_equal(atomic_load(&sh->inits), THREADS);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(atomic_load(&sh->finis[i]), 1);
    assert_int_equal(atomic_load(&sh->completed), ITEMS);
    assert_int_equal(atomic_load(&sh->left_at_fini), 0);
    assert_true(atomic_load(&sh->max_seen) <= MAX_INFLIGHT);
    assert_true(atomic_load(&sh->max_seen) > 1); /* concurrency > threads */
    for (int i = 0; i < ITEMS; i++)
        assert_true(atomic_load(&sh->done[i]));
    assert_int_equal(sl_queue_depth(q), 0);
    sl_queue_destroy(q);
    free(sh);
}

static void test_init_failure_is_reported(void **state)
{
    (void)state;
    struct shared *sh = calloc(1, sizeof(*sh));
    struct sl_queue *q = sl_queue_new(4, NULL);
    char err[256];

    sh->fail_init = 1;
    struct sl_pool *pool = sl_pool_new(q, 2, 1, &ops, sh, err, sizeof(err));
    assert_non_null(pool);
    assert_int_equal(sl_pool_wait(pool, 60000), -SL_ECONN);
    sl_pool_destroy(pool);
    sl_queue_destroy(q);
    free(sh);
}

static void test_closed_queue_stops_workers(void **state)
{
    (void)state;
    struct shared *sh = calloc(1, sizeof(*sh));
    struct sl_queue *q = sl_queue_new(4, NULL);
    char err[256];
    struct sl_pool *pool =
        sl_pool_new(q, 3, MAX_INFLIGHT, &ops, sh, err, sizeof(err));

    assert_non_null(pool);
    sl_queue_close(q);
    assert_int_equal(sl_pool_wait(pool, 60000), 0);
    sl_pool_destroy(pool);
    for (int i = 0; i < 3; i++)
        assert_int_equal(atomic_load(&sh->finis[i]), 1);
    sl_queue_destroy(q);
    free(sh);
}

static void test_push_wakes_a_parked_worker(void **state)
{
    (void)state;
    struct parked p = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .cv = PTHREAD_COND_INITIALIZER};
    struct sl_queue *q = sl_queue_new(8, NULL);
    char err[256];
    struct sl_pool *pool =
        sl_pool_new(q, 1, 4, &parked_ops, &p, err, sizeof(err));

    assert_non_null(pool);
    /* The worker takes the first item, then waits in progress() with room
     * for three more; each later push must bring it back. */
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(sl_queue_push(q, (void *)(uintptr_t)i, -1), 0);
        assert_int_equal(wait_parked(&p, i), i);
    }
    /* With a wake-up it may wait longer than the 1 ms poll. */
    pthread_mutex_lock(&p.mu);
    assert_true(p.max_timeout_ms > 1);
    p.release = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    assert_int_equal(sl_queue_push(q, NULL, -1), 0);
    assert_int_equal(sl_pool_wait(pool, 10000), 0);
    sl_pool_destroy(pool);
    sl_queue_destroy(q);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* An idle worker is not a stuck one; a worker stuck in progress() is. */
static void test_stalled_ms(void **state)
{
    (void)state;
    struct shared *sh = calloc(1, sizeof(*sh));
    struct parked p = {.mu = PTHREAD_MUTEX_INITIALIZER,
                       .cv = PTHREAD_COND_INITIALIZER};
    struct sl_queue *q = sl_queue_new(8, NULL), *q2 = sl_queue_new(8, NULL);
    char err[256];
    struct sl_pool *idle =
        sl_pool_new(q, 2, MAX_INFLIGHT, &ops, sh, err, sizeof(err));
    struct sl_pool *stuck =
        sl_pool_new(q2, 1, 1, &parked_ops, &p, err, sizeof(err));

    assert_non_null(idle);
    assert_non_null(stuck);
    /* Full (one in flight of one): it waits in progress() and nothing
     * wakes it. */
    assert_int_equal(sl_queue_push(q2, (void *)1, -1), 0);
    assert_int_equal(wait_parked(&p, 1), 1);
    sleep_ms(1200);
    int64_t idle_ms = sl_pool_stalled_ms(idle);
    int64_t stuck_ms = sl_pool_stalled_ms(stuck);
    print_message("idle pool stalled %lld ms, stuck pool %lld ms\n",
                  (long long)idle_ms, (long long)stuck_ms);
    assert_true(idle_ms < 1000);
    assert_true(stuck_ms >= 1000);

    sl_queue_close(q);
    pthread_mutex_lock(&p.mu);
    p.release = true;
    pthread_cond_broadcast(&p.cv);
    pthread_mutex_unlock(&p.mu);
    sl_queue_close(q2);
    assert_int_equal(sl_pool_wait(idle, 10000), 0);
    assert_int_equal(sl_pool_wait(stuck, 10000), 0);
    sl_pool_destroy(idle);
    sl_pool_destroy(stuck);
    sl_queue_destroy(q);
    sl_queue_destroy(q2);
    free(sh);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(4, NULL);
    char err[256] = "";
    assert_null(sl_pool_new(q, 0, 1, &ops, NULL, err, sizeof(err)));
    assert_string_equal(err, "pool needs at least one thread, one in flight "
                             "and a submit callback");
    sl_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_worker_stops_once_after_its_work),
        cmocka_unit_test(test_init_failure_is_reported),
        cmocka_unit_test(test_closed_queue_stops_workers),
        cmocka_unit_test(test_push_wakes_a_parked_worker),
        cmocka_unit_test(test_stalled_ms),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
