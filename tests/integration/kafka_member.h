/*
 * A simulated member of a Kafka consumer group, shared by the Kafka source
 * tests (test_source_kafka.c against the broker, test_kafka_mock_faults.c
 * against librdkafka's mock cluster): a source with its queue, and a
 * thread that pops in batches of up to 8, holds each batch as a sink
 * would, then acks it shuffled, counting every ack per (partition,
 * offset); and the client and producer that feed it.  Header-only, like
 * harness.h.
 */
#ifndef SL_TEST_KAFKA_MEMBER_H
#define SL_TEST_KAFKA_MEMBER_H

#include "harness.h"

#include "err.h"
#include "queue.h"
#include "source.h"
#include "source_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>

/*
 * A client of 'bootstraps' (NULL: none, for the mock cluster's own
 * handle), in consumer group 'group' (or NULL).
 */
static inline rd_kafka_t *km_client(rd_kafka_type_t type,
                                    const char *bootstraps, const char *group)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_t *rk;

    if (bootstraps)
        assert_int_equal(rd_kafka_conf_set(kc, "bootstrap.servers", bootstraps,
                                           err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
    if (group)
        assert_int_equal(
            rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err)),
            RD_KAFKA_CONF_OK);
    if (type == RD_KAFKA_PRODUCER)
        assert_int_equal(
            rd_kafka_conf_set(kc, "linger.ms", "5", err, sizeof(err)),
            RD_KAFKA_CONF_OK);
    rk = rd_kafka_new(type, kc, err, sizeof(err));
    if (!rk)
        fail_msg("kafka: %s", err);
    return rk;
}

/*
 * Produce 'count' JSON messages of 'size' bytes ({"n":i,"pad":"xx..."}) to
 * 'topic', message i to partition i % 'partitions', and flush.
 */
static inline void km_produce(const char *bootstraps, const char *topic,
                              int partitions, int count, size_t size)
{
    rd_kafka_t *rk = km_client(RD_KAFKA_PRODUCER, bootstraps, NULL);
    char *buf = malloc(size + 64);

    assert_non_null(buf);
    for (int i = 0; i < count; i++) {
        int len = snprintf(buf, size + 64, "{\"n\":%d,\"pad\":\"", i);
        while ((size_t)len < size - 2)
            buf[len++] = 'x';
        buf[len++] = '"';
        buf[len++] = '}';
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic),
                RD_KAFKA_V_PARTITION(i % partitions),
                RD_KAFKA_V_VALUE(buf, (size_t)len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 10);
                continue;
            }
            assert_int_equal(err, 0);
            break;
        }
        rd_kafka_poll(rk, 0);
    }
    assert_int_equal(rd_kafka_flush(rk, 60000), 0);
    free(buf);
    rd_kafka_destroy(rk);
}

/* Acks per (partition, offset): 'parts' partitions of 'per' messages. */
struct km_acks {
    int parts;            /* partitions of the topic */
    int per;              /* messages per partition */
    _Atomic int *cnt;     /* parts * per ack counts */
    _Atomic int distinct; /* positions acked at least once */
};

static inline void km_acks_init(struct km_acks *a, int parts, int per)
{
    a->parts = parts;
    a->per = per;
    a->cnt = calloc((size_t)parts * (size_t)per, sizeof(*a->cnt));
    assert_non_null(a->cnt);
    atomic_init(&a->distinct, 0);
}

static inline void km_acks_free(struct km_acks *a)
{
    free((void *)a->cnt);
    a->cnt = NULL;
}

/* How many times partition 'p', offset 'o' was acked. */
static inline int km_acks_at(struct km_acks *a, int p, int o)
{
    return atomic_load(&a->cnt[(size_t)p * (size_t)a->per + (size_t)o]);
}

static inline void km_record_ack(struct km_acks *a, const struct sl_msg *msg)
{
    int p = msg->origin.partition;
    int64_t off = msg->origin.offset;

    if (!(p >= 0 && p < a->parts && off >= 0 && off < a->per))
        fail_msg("acked an unknown position: partition %d offset %lld", p,
                 (long long)off);
    if (atomic_fetch_add(&a->cnt[(size_t)p * (size_t)a->per + (size_t)off],
                         1) == 0)
        atomic_fetch_add(&a->distinct, 1);
}

/*
 * Every position was acked at least once (fail naming the first that was
 * not); returns how many acks were redeliveries.
 */
static inline long km_acks_dups(struct km_acks *a)
{
    long dups = 0;

    for (int p = 0; p < a->parts; p++)
        for (int o = 0; o < a->per; o++) {
            if (km_acks_at(a, p, o) < 1)
                fail_msg("partition %d offset %d never acked", p, o);
            dups += km_acks_at(a, p, o) - 1;
        }
    return dups;
}

/*
 * What the group of 'rk' committed for 'topic' ('parts' partitions) is
 * the log end of every partition, and that end is 'per'.
 */
static inline void km_assert_committed_to_end(rd_kafka_t *rk, const char *topic,
                                              int parts, int64_t per)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(parts);

    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    assert_int_equal(rd_kafka_committed(rk, l, 10000), 0);
    for (int p = 0; p < parts; p++) {
        int64_t lo, hi;
        assert_int_equal(
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        assert_int_equal(hi, per);
        assert_int_equal(l->elems[p].err, 0);
        if (l->elems[p].offset != hi)
            fail_msg("partition %d: committed %lld, log end %lld", p,
                     (long long)l->elems[p].offset, (long long)hi);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

/* Wait up to 'timeout_ms' for 'target' distinct acks; fail otherwise. */
static inline void km_wait_distinct(struct km_acks *a, int target,
                                    int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;

    while (atomic_load(&a->distinct) < target && h_now_ms() < deadline)
        h_pause();
    if (atomic_load(&a->distinct) < target)
        fail_msg("only %d of %d messages acked within %d ms",
                 atomic_load(&a->distinct), target, timeout_ms);
}

struct km_member {
    struct km_acks *acks;          /* where its acks are counted; shared */
    const _Atomic int *us_per_msg; /* a batch is held n times this; or NULL */
    int jitter_us;                 /* plus up to this, random; 0: none */
    struct sl_queue *q;            /* its queue; km_queue_new() */
    struct sl_source *src;         /* its source, started */
    pthread_t thread;              /* pops and acks */
    bool running;                  /* started, not yet left */
    uint64_t commit_errors;        /* failed commits, read at leave */
    unsigned seed;                 /* for the random order and hold */
    _Atomic long popped;           /* messages popped */
};

/* The queue a member's source pushes to. */
static inline struct sl_queue *km_queue_new(void)
{
    return sl_queue_new(64, (void (*)(void *))sl_msg_destroy);
}

/* Pop in batches of up to 8, hold each batch, then ack it shuffled. */
static inline void *km_member_main(void *arg)
{
    struct km_member *m = arg;
    struct sl_msg *batch[8];
    int n = 0;

    for (;;) {
        void *item;
        int rc = sl_queue_pop(m->q, &item, n ? 5 : 100);
        if (rc == 0 && item) {
            batch[n++] = item;
            atomic_fetch_add(&m->popped, 1);
        }
        if (n && (n == 8 || rc != 0 || !item)) {
            for (int i = n - 1; i > 0; i--) {
                int j = (int)(rand_r(&m->seed) % (unsigned)(i + 1));
                struct sl_msg *t = batch[i];
                batch[i] = batch[j];
                batch[j] = t;
            }
            long us = m->us_per_msg ? n * atomic_load(m->us_per_msg) : 0;
            if (m->jitter_us > 0)
                us += rand_r(&m->seed) % (unsigned)m->jitter_us;
            usleep((useconds_t)us);
            for (int i = 0; i < n; i++) {
                km_record_ack(m->acks, batch[i]);
                sl_source_ack(batch[i]);
            }
            n = 0;
        }
        if (rc == 0 && !item)
            return NULL; /* sentinel */
        if (rc == -SL_ECLOSED)
            return NULL;
    }
}

/*
 * Start the member's thread over m->q and m->src (set by the caller, the
 * source started; the member owns both from here).
 */
static inline void km_member_run(struct km_member *m, unsigned seed)
{
    m->seed = seed;
    assert_int_equal(pthread_create(&m->thread, NULL, km_member_main, m), 0);
    m->running = true;
}

/* Leave: stop, let the member drain to the sentinel, then close. */
static inline void km_member_leave(struct km_member *m)
{
    char err[512];
    int rc;

    sl_source_stop(m->src, 1);
    pthread_join(m->thread, NULL);
    rc = sl_source_close(m->src);
    if (rc != 0) {
        sl_source_error(m->src, err, sizeof(err));
        fail_msg("sl_source_close: %s (%s)", sl_strerror(rc), err);
    }
    /* Commit errors along the way (retried at the next interval). */
    m->commit_errors = atomic_load(&sl_source_stats(m->src)->errors);
    sl_source_destroy(m->src);
    sl_queue_destroy(m->q);
    m->running = false;
}

#endif
