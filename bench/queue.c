/*
 * bench/queue: hand-off rate of the bounded queue, in messages/s, for
 * 1->1, 1->4 and 4->4 producers->consumers.  A benchmark, not a test.
 *
 * Usage: bench_queue [messages per run, default 4000000] [capacity 1024]
 */
#include "clock.h"
#include "queue.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

struct run {
    struct sl_queue *q;
    long per_producer;
};

static void *producer(void *p)
{
    struct run *r = p;
    for (long i = 0; i < r->per_producer; i++)
        if (sl_queue_push(r->q, (void *)(uintptr_t)(i + 1), -1) != 0)
            abort();
    return NULL;
}

static void *consumer(void *p)
{
    struct run *r = p;
    for (;;) {
        void *item;
        if (sl_queue_pop(r->q, &item, -1) != 0)
            abort();
        if (!item)
            return NULL;
    }
}

static double measure(int producers, int consumers, long total, size_t capacity)
{
    pthread_t pt[16], ct[16];
    struct run r = {sl_queue_new(capacity, NULL), total / producers};
    int64_t t0 = sl_mono_ms();

    for (int i = 0; i < consumers; i++)
        pthread_create(&ct[i], NULL, consumer, &r);
    for (int i = 0; i < producers; i++)
        pthread_create(&pt[i], NULL, producer, &r);
    for (int i = 0; i < producers; i++)
        pthread_join(pt[i], NULL);
    for (int i = 0; i < consumers; i++)
        sl_queue_push(r.q, NULL, -1);
    for (int i = 0; i < consumers; i++)
        pthread_join(ct[i], NULL);
    int64_t ms = sl_mono_ms() - t0;
    sl_queue_destroy(r.q);
    return (double)(r.per_producer * producers) * 1000.0 /
           (double)(ms > 0 ? ms : 1);
}

int main(int argc, char **argv)
{
    long total = argc > 1 ? atol(argv[1]) : 4000000;
    size_t capacity = argc > 2 ? (size_t)atol(argv[2]) : 1024;
    static const int shapes[][2] = {{1, 1}, {1, 4}, {4, 4}};
    const double target = 2000000.0;

    printf("bench/queue: %ld messages per run, capacity %zu, best of 3\n\n",
           total, capacity);
    printf("| producers -> consumers | messages/s | vs 2,000,000 target |\n");
    printf("|---|---:|---:|\n");
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        double best = 0;
        for (int rep = 0; rep < 3; rep++) {
            double rate = measure(shapes[s][0], shapes[s][1], total, capacity);
            if (rate > best)
                best = rate;
        }
        printf("| %d -> %d | %.0f | %.2fx |\n", shapes[s][0], shapes[s][1],
               best, best / target);
    }
    return 0;
}
