/*
 * Ordering modes at dispatch: by key, two messages with the same key are
 * never in flight at once and run in their order, while other keys move
 * on; by partition, one message per partition.  Unordered lets them all
 * run.  Workers here finish messages in random order.
 */
#include "cmocka_shim.h"

#include "clock.h"
#include "err.h"
#include "source.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MESSAGES 20000
#define KEYS 7
#define WORKER_HOLD 16 /* messages a worker holds before acking one */

/* A source kind that hands over MESSAGES messages with keys k0..k6. */
struct fake {
    int next;            /* next message to build */
    struct sl_msg *held; /* built, not yet taken by the queue */
};

static int fake_poll(struct sl_source *src, int timeout_ms)
{
    struct fake *f = sl_source_impl(src);
    char key[8], payload[32];

    while (f->next < MESSAGES || f->held) {
        if (!f->held) {
            int n = f->next++;
            snprintf(key, sizeof(key), "k%d", n % KEYS);
            snprintf(payload, sizeof(payload), "%d", n);
            if (sl_msg_new(&f->held, SL_SOURCE_KAFKA, "t", n % 3, n, NULL,
                           n % 11 == 0 ? NULL : key,
                           n % 11 == 0 ? 0 : strlen(key), payload,
                           strlen(payload), NULL, NULL, 0) < 0)
                return -SL_ENOMEM;
            f->held->seq = n;
        }
        if (sl_source_push(src, f->held, timeout_ms) != 0)
            return 0; /* full: try again on the next poll */
        f->held = NULL;
    }
    return 1;
}

static void fake_acked(struct sl_source *src, struct sl_msg *msg)
{
    (void)src;
    sl_msg_destroy(msg);
}

static void fake_destroy(void *impl)
{
    struct fake *f = impl;
    sl_msg_destroy(f->held);
    free(f);
}

static const struct sl_source_ops fake_ops = {
    .kind = "fake",
    .poll = fake_poll,
    .acked = fake_acked,
    .destroy = fake_destroy,
};

/* What the workers saw. */
struct seen {
    enum sl_source_ordering mode;
    pthread_mutex_t lock;
    int inflight_key[KEYS]; /* in flight per key */
    int inflight_part[3];   /* in flight per partition */
    int last_of_key[KEYS];  /* last message number started per key */
    int max_key, max_part;  /* the most ever in flight at once */
    int out_of_order;       /* a key's messages started out of order */
    int done;               /* messages acked */
};

struct worker {
    struct sl_queue *q;
    struct seen *seen;
    unsigned seed;
};

static void *worker_main(void *p)
{
    struct worker *w = p;
    struct seen *s = w->seen;
    struct sl_msg *held[WORKER_HOLD];
    int n = 0;

    for (;;) {
        void *item = NULL;
        int rc = sl_queue_pop(w->q, &item, n ? 0 : 100);
        if (rc == 0 && item == NULL)
            break; /* sentinel */
        if (rc == 0) {
            struct sl_msg *msg = item;
            int num = atoi((const char *)msg->payload);
            pthread_mutex_lock(&s->lock);
            if (msg->key) {
                int k = msg->key[1] - '0';
                if (++s->inflight_key[k] > s->max_key)
                    s->max_key = s->inflight_key[k];
                if (num < s->last_of_key[k])
                    s->out_of_order++;
                s->last_of_key[k] = num;
            }
            if (++s->inflight_part[msg->origin.partition] > s->max_part)
                s->max_part = s->inflight_part[msg->origin.partition];
            pthread_mutex_unlock(&s->lock);
            held[n++] = msg;
        }
        /* Finish a random held message when full or idle. */
        if (n > 0 &&
            (n == WORKER_HOLD || rc != 0 || rand_r(&w->seed) % 3 == 0)) {
            int i = (int)(rand_r(&w->seed) % (unsigned)n);
            struct sl_msg *msg = held[i];
            held[i] = held[--n];
            pthread_mutex_lock(&s->lock);
            if (msg->key)
                s->inflight_key[msg->key[1] - '0']--;
            s->inflight_part[msg->origin.partition]--;
            s->done++;
            pthread_mutex_unlock(&s->lock);
            sl_source_ack(msg);
        }
    }
    pthread_mutex_lock(&s->lock);
    s->done += n;
    pthread_mutex_unlock(&s->lock);
    while (n > 0)
        sl_source_ack(held[--n]);
    return NULL;
}

static void run_mode(enum sl_source_ordering mode, struct seen *s)
{
    struct sl_queue *q = sl_queue_new(64, (void (*)(void *))sl_msg_destroy);
    struct sl_source *src =
        sl_source_new(&fake_ops, calloc(1, sizeof(struct fake)), q, 50);
    struct worker w[3];
    pthread_t t[3];
    char err[128];

    memset(s, 0, sizeof(*s));
    s->mode = mode;
    for (int k = 0; k < KEYS; k++)
        s->last_of_key[k] = -1;
    pthread_mutex_init(&s->lock, NULL);
    sl_source_set_ordering(src, mode, 256);
    assert_int_equal(sl_source_start(src, err, sizeof(err)), 0);
    for (int i = 0; i < 3; i++) {
        w[i] = (struct worker){q, s, (unsigned)i + 1};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    int64_t deadline = sl_mono_ms() + 60000;
    while (!sl_source_finished(src) && sl_mono_ms() < deadline)
        usleep(1000);
    assert_true(sl_source_finished(src));
    sl_source_stop(src, 3);
    assert_int_equal(sl_source_wait_stopped(src, 60000), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sl_source_close(src), 0);
    assert_int_equal(atomic_load(&sl_source_stats(src)->consumed), MESSAGES);
    assert_int_equal(atomic_load(&sl_source_stats(src)->acked), MESSAGES);
    sl_source_destroy(src);
    sl_queue_destroy(q);
    pthread_mutex_destroy(&s->lock);
    assert_int_equal(s->done, MESSAGES);
}

static void test_by_key(void **state)
{
    (void)state;
    struct seen s;
    run_mode(SL_SOURCE_BY_KEY, &s);
    assert_int_equal(s.max_key, 1);      /* never two of a key at once */
    assert_int_equal(s.out_of_order, 0); /* and in their order */
    assert_true(s.max_part > 1);         /* other keys were not held */
}

static void test_by_partition(void **state)
{
    (void)state;
    struct seen s;
    run_mode(SL_SOURCE_BY_PARTITION, &s);
    assert_int_equal(s.max_part, 1);
}

static void test_unordered(void **state)
{
    (void)state;
    struct seen s;
    run_mode(SL_SOURCE_UNORDERED, &s);
    assert_true(s.max_key > 1); /* the check above can fail */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_by_key),
        cmocka_unit_test(test_by_partition),
        cmocka_unit_test(test_unordered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
