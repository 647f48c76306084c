/*
 * The Kafka source's fetch waker, for librdkafka before 2.4 only.  Delete
 * this file (and source_kafka_waker.h, and its calls in
 * source_kafka.c) once librdkafka 2.4 is the minimum.
 */
#include "source_kafka_waker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * librdkafka before 2.4 stops fetching a partition while its local queue
 * is above queued.min.messages or queued.max.messages.kbytes (counted
 * over the whole consumer queue), and looks again only when its broker
 * thread next wakes up: up to a second later (2.4 made this
 * fetch.queue.backoff.ms).  A source that drains faster than that refill
 * then starves for most of every second.  Any request to the broker wakes
 * its thread, so when we empty the queue a helper thread sends a cheap
 * one (ListOffsets, through rd_kafka_query_watermark_offsets()); it runs
 * off the source thread because the reply can queue behind a Fetch that
 * the broker holds for up to fetch.wait.max.ms.
 */
#define WAKE_BEFORE_VERSION 0x02040000 /* 2.4.0: no waker needed */
#define WAKE_TIMEOUT_MS 1000           /* bound on a fetcher wake-up request */

struct sl_source_kafka_waker {
    rd_kafka_t *rk;       /* the consumer, borrowed */
    pthread_t thread;     /* runs waker_main() */
    bool started;         /* 'thread' was created */
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* a wake-up was asked, or stop */
    bool pending;         /* a wake-up is asked or under way */
    bool stop;            /* leave waker_main() */
    char topic[256];      /* partition to query (its leader is woken) */
    int32_t partition;    /* its id */
};

static void *waker_main(void *arg)
{
    struct sl_source_kafka_waker *w = arg;
    char topic[sizeof(w->topic)];
    int32_t partition;
    int64_t lo, hi;

    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->pending && !w->stop)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop)
            break;
        memcpy(topic, w->topic, sizeof(topic));
        partition = w->partition;
        pthread_mutex_unlock(&w->lock);
        /* The answer does not matter: sending the request wakes the thread. */
        rd_kafka_query_watermark_offsets(w->rk, topic, partition, &lo, &hi,
                                         WAKE_TIMEOUT_MS);
        pthread_mutex_lock(&w->lock);
        w->pending = false;
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

struct sl_source_kafka_waker *sl_source_kafka_waker_new(rd_kafka_t *rk)
{
    struct sl_source_kafka_waker *w;

    if (rd_kafka_version() >= WAKE_BEFORE_VERSION)
        return NULL;
    if (!(w = calloc(1, sizeof(*w))))
        return NULL;
    w->rk = rk;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if (pthread_create(&w->thread, NULL, waker_main, w) != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w);
        return NULL;
    }
    pthread_setname_np(w->thread, "sl-kafka-waker");
    w->started = true;
    return w;
}

void sl_source_kafka_waker_destroy(struct sl_source_kafka_waker *w)
{
    if (!w)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = true;
    pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&w->lock);
    if (w->started)
        pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

bool sl_source_kafka_waker_busy(struct sl_source_kafka_waker *w)
{
    bool busy;

    pthread_mutex_lock(&w->lock);
    busy = w->pending;
    pthread_mutex_unlock(&w->lock);
    return busy;
}

void sl_source_kafka_waker_wake(struct sl_source_kafka_waker *w,
                                const char *topic, int32_t partition)
{
    pthread_mutex_lock(&w->lock);
    if (!w->pending) {
        snprintf(w->topic, sizeof(w->topic), "%s", topic);
        w->partition = partition;
        w->pending = true;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
}
