/*
 * The bounded queue: FIFO order, timeouts at capacity and when empty,
 * close waking waiters, sentinels, and a 4x4 stress with nothing lost or
 * duplicated.
 */
#include "cmocka_shim.h"

#include "clock.h"
#include "err.h"
#include "queue.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define ITEM(n) ((void *)(uintptr_t)(n))

static void test_fifo_order(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(8, NULL);
    void *item;

    assert_non_null(q);
    for (uintptr_t i = 1; i <= 8; i++)
        assert_int_equal(sl_queue_push(q, ITEM(i), 0), 0);
    assert_int_equal(sl_queue_depth(q), 8);
    for (uintptr_t i = 1; i <= 8; i++) {
        assert_int_equal(sl_queue_pop(q, &item, 0), 0);
        assert_ptr_equal(item, ITEM(i));
    }
    assert_int_equal(sl_queue_depth(q), 0);
    sl_queue_destroy(q);
}

static void test_push_times_out_when_full(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(2, NULL);

    assert_int_equal(sl_queue_push(q, ITEM(1), 0), 0);
    assert_int_equal(sl_queue_push(q, ITEM(2), 0), 0);
    assert_int_equal(sl_queue_push(q, ITEM(3), 0), -SL_ETIMEDOUT);
    int64_t t0 = sl_mono_ms();
    assert_int_equal(sl_queue_push(q, ITEM(3), 50), -SL_ETIMEDOUT);
    int64_t waited = sl_mono_ms() - t0;
    assert_true(waited >= 49);
    assert_true(waited < 5000);
    assert_int_equal(sl_queue_depth(q), 2);
    sl_queue_destroy(q);
}

static void test_pop_times_out_when_empty(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(2, NULL);
    void *item = ITEM(7);

    assert_int_equal(sl_queue_pop(q, &item, 0), -SL_ETIMEDOUT);
    assert_null(item);
    int64_t t0 = sl_mono_ms();
    assert_int_equal(sl_queue_pop(q, &item, 30), -SL_ETIMEDOUT);
    assert_true(sl_mono_ms() - t0 >= 29);
    sl_queue_destroy(q);
}

struct waiter {
    struct sl_queue *q;
    int rc;
    bool push; /* wait to push rather than to pop */
};

static void *wait_forever(void *p)
{
    struct waiter *w = p;
    void *item;
    w->rc = w->push ? sl_queue_push(w->q, ITEM(9), -1)
                    : sl_queue_pop(w->q, &item, -1);
    return NULL;
}

static void test_close_wakes_waiters(void **state)
{
    (void)state;
    struct sl_queue *empty = sl_queue_new(1, NULL);
    struct sl_queue *full = sl_queue_new(1, NULL);
    struct waiter popper = {empty, 1, false}, pusher = {full, 1, true};
    pthread_t t1, t2;

    assert_int_equal(sl_queue_push(full, ITEM(1), 0), 0);
    pthread_create(&t1, NULL, wait_forever, &popper);
    pthread_create(&t2, NULL, wait_forever, &pusher);
    sl_queue_close(empty);
    sl_queue_close(full);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    assert_int_equal(popper.rc, -SL_ECLOSED);
    assert_int_equal(pusher.rc, -SL_ECLOSED);

    /* A closed queue still drains what it holds, then says closed. */
    void *item;
    assert_int_equal(sl_queue_push(full, ITEM(2), 0), -SL_ECLOSED);
    assert_int_equal(sl_queue_pop(full, &item, 0), 0);
    assert_ptr_equal(item, ITEM(1));
    assert_int_equal(sl_queue_pop(full, &item, -1), -SL_ECLOSED);
    sl_queue_destroy(empty);
    sl_queue_destroy(full);
}

static void test_sentinels_come_after_messages(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(16, NULL);
    void *item;

    for (uintptr_t i = 1; i <= 10; i++)
        assert_int_equal(sl_queue_push(q, ITEM(i), 0), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sl_queue_push(q, NULL, 0), 0);
    for (uintptr_t i = 1; i <= 10; i++) {
        assert_int_equal(sl_queue_pop(q, &item, 0), 0);
        assert_ptr_equal(item, ITEM(i));
    }
    for (int i = 0; i < 3; i++) {
        item = ITEM(1);
        assert_int_equal(sl_queue_pop(q, &item, 0), 0);
        assert_null(item);
    }
    assert_int_equal(sl_queue_pop(q, &item, 0), -SL_ETIMEDOUT);
    sl_queue_destroy(q);
}

static int freed;
static void count_free(void *item)
{
    (void)item;
    freed++;
}

static void test_destroy_frees_leftovers(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(4, count_free);
    freed = 0;
    sl_queue_push(q, ITEM(1), 0);
    sl_queue_push(q, NULL, 0); /* sentinels are not freed */
    sl_queue_push(q, ITEM(2), 0);
    sl_queue_destroy(q);
    assert_int_equal(freed, 2);
}

#define STRESS_PRODUCERS 4
#define STRESS_CONSUMERS 4
#define STRESS_TOTAL 1000000

struct stress {
    struct sl_queue *q;
    _Atomic unsigned char *seen; /* one flag per message */
    _Atomic long dups;           /* messages popped twice */
    _Atomic long popped;         /* messages popped */
    _Atomic int sentinels;       /* sentinels popped */
};

struct stress_arg {
    struct stress *s;
    int id;
};

static void *stress_producer(void *p)
{
    struct stress_arg *a = p;
    long per = STRESS_TOTAL / STRESS_PRODUCERS;
    for (long i = 0; i < per; i++) {
        uintptr_t n = (uintptr_t)(a->id * per + i) + 1;
        if (sl_queue_push(a->s->q, ITEM(n), -1) != 0)
            abort();
    }
    return NULL;
}

static void *stress_consumer(void *p)
{
    struct stress *s = p;
    for (;;) {
        void *item;
        if (sl_queue_pop(s->q, &item, -1) != 0)
            abort();
        if (!item) {
            atomic_fetch_add(&s->sentinels, 1);
            return NULL; /* one sentinel stops one consumer */
        }
        uintptr_t n = (uintptr_t)item - 1;
        if (atomic_exchange(&s->seen[n], 1))
            atomic_fetch_add(&s->dups, 1);
        atomic_fetch_add(&s->popped, 1);
    }
}

static void test_stress_4x4_nothing_lost(void **state)
{
    (void)state;
    struct stress s = {0};
    struct stress_arg args[STRESS_PRODUCERS];
    pthread_t prod[STRESS_PRODUCERS], cons[STRESS_CONSUMERS];

    s.q = sl_queue_new(1024, NULL);
    s.seen = calloc(STRESS_TOTAL, 1);
    assert_non_null(s.seen);
    for (int i = 0; i < STRESS_CONSUMERS; i++)
        pthread_create(&cons[i], NULL, stress_consumer, &s);
    for (int i = 0; i < STRESS_PRODUCERS; i++) {
        args[i] = (struct stress_arg){&s, i};
        pthread_create(&prod[i], NULL, stress_producer, &args[i]);
    }
    for (int i = 0; i < STRESS_PRODUCERS; i++)
        pthread_join(prod[i], NULL);
    for (int i = 0; i < STRESS_CONSUMERS; i++)
        assert_int_equal(sl_queue_push(s.q, NULL, -1), 0);
    for (int i = 0; i < STRESS_CONSUMERS; i++)
        pthread_join(cons[i], NULL);

    long missing = 0;
    for (long i = 0; i < STRESS_TOTAL; i++)
        missing += !s.seen[i];
    assert_int_equal(missing, 0);
    assert_int_equal(atomic_load(&s.dups), 0);
    assert_int_equal(atomic_load(&s.popped), STRESS_TOTAL);
    assert_int_equal(atomic_load(&s.sentinels), STRESS_CONSUMERS);
    assert_int_equal(sl_queue_depth(s.q), 0);
    free((void *)s.seen);
    sl_queue_destroy(s.q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fifo_order),
        cmocka_unit_test(test_push_times_out_when_full),
        cmocka_unit_test(test_pop_times_out_when_empty),
        cmocka_unit_test(test_close_wakes_waiters),
        cmocka_unit_test(test_sentinels_come_after_messages),
        cmocka_unit_test(test_destroy_frees_leftovers),
        cmocka_unit_test(test_stress_4x4_nothing_lost),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
