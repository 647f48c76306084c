/*
 * The Kafka source against a real broker: a group whose members come and
 * go still acks every message and commits to the log end; a stalled
 * pipeline pauses the partitions without losing the group membership or
 * growing memory, and then every message arrives once, in order.
 * Needs `scripts/services start kafka`.
 */
#include "harness.h"
#include "kafka_member.h"

#include "clock.h"
#include "err.h"
#include "source_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *brokers(void)
{
    const char *v = getenv("SLUICE_KAFKA_BROKERS");
    return v && *v ? v : H_KAFKA;
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *group)
{
    return km_client(type, brokers(), group);
}

static void create_topic(const char *topic, int partitions)
{
    char err[512];
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    size_t n;

    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        fail_msg("kafka: CreateTopics(%s): %s; is it running? "
                 "scripts/services start kafka",
                 topic, ev ? rd_kafka_event_error_string(ev) : "no answer");
    const rd_kafka_topic_result_t **res = rd_kafka_CreateTopics_result_topics(
        rd_kafka_event_CreateTopics_result(ev), &n);
    assert_int_equal(n, 1);
    assert_int_equal(rd_kafka_topic_result_error(res[0]), 0);
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_destroy(rk);
}

static void produce(const char *topic, int partitions, int count, size_t size)
{
    km_produce(brokers(), topic, partitions, count, size);
}

static const struct sl_kafka_property fast_group[] = {
    {"session.timeout.ms", "6000"},
    {"heartbeat.interval.ms", "1000"},
    {"max.poll.interval.ms", "10000"},
    {"topic.metadata.refresh.interval.ms", "2000"},
};

static struct sl_source *kafka_source(const char *topic, const char *group,
                                      struct sl_queue *q, int max_inflight)
{
    const char *topics[] = {topic};
    struct sl_source_kafka_conf conf = {
        .brokers = brokers(),
        .topics = topics,
        .topic_cnt = 1,
        .group = group,
        .revoke_timeout_ms = 5000,
        .max_inflight = max_inflight,
        .properties = fast_group,
        .property_cnt = sizeof(fast_group) / sizeof(fast_group[0]),
    };
    char err[512];
    struct sl_source *src = sl_source_kafka_new(&conf, q, err, sizeof(err));
    if (!src)
        fail_msg("sl_source_kafka_new: %s", err);
    assert_int_equal(sl_source_start(src, err, sizeof(err)), 0);
    return src;
}

/* ------------------------------------------------------------------ */
/* (a) a group whose members come and go                                */

#define A_PARTS 6
#define A_COUNT 6000
#define A_PER (A_COUNT / A_PARTS)

static struct km_acks acks; /* of the group's members */

/* A member that holds each batch up to 2 ms before acking it. */
static void member_start(struct km_member *m, const char *topic,
                         const char *group, unsigned seed)
{
    m->acks = &acks;
    m->jitter_us = 2000;
    m->q = km_queue_new();
    m->src = kafka_source(topic, group, m->q, 256);
    km_member_run(m, seed);
}

static void test_group_rebalance(void **state)
{
    (void)state;
    char topic[128], group[128];
    struct km_member m[3] = {0};
    int64_t t0 = sl_mono_ms();

    h_unique(topic, sizeof(topic), "sluice-test-src-group");
    h_unique(group, sizeof(group), "sluice-test-src-group-g");
    km_acks_init(&acks, A_PARTS, A_PER);
    create_topic(topic, A_PARTS);
    produce(topic, A_PARTS, A_COUNT, 100);
    print_message("produced %d messages in %lld ms\n", A_COUNT,
                  (long long)(sl_mono_ms() - t0));

    member_start(&m[0], topic, group, 1);
    member_start(&m[1], topic, group, 2);
    km_wait_distinct(&acks, A_COUNT / 5, 60000);
    member_start(&m[2], topic, group, 3); /* joins mid-stream */
    /* The group takes the joiner in (a fast pair may have drained the
     * topic by then: the assignment still comes). */
    struct sl_source_kafka_stats js = {0};
    for (int64_t end = sl_mono_ms() + 60000;
         js.assignments == 0 && sl_mono_ms() < end; usleep(10000))
        sl_source_kafka_stats(m[2].src, &js);
    km_wait_distinct(&acks, A_COUNT / 2, 60000);
    km_member_leave(&m[0]); /* leaves midway */
    km_wait_distinct(&acks, A_COUNT, 90000);

    struct sl_source_kafka_stats st1, st2;
    sl_source_kafka_stats(m[1].src, &st1);
    sl_source_kafka_stats(m[2].src, &st2);
    print_message("member 1: %llu assignments %llu revocations; member 2: "
                  "%llu assignments; popped %ld/%ld/%ld\n",
                  (unsigned long long)st1.assignments,
                  (unsigned long long)st1.revocations,
                  (unsigned long long)st2.assignments,
                  atomic_load(&m[0].popped), atomic_load(&m[1].popped),
                  atomic_load(&m[2].popped));
    assert_true(st2.assignments >= 1); /* the joiner got work */
    /* Committed offsets reach the log end, per partition, once acked. */
    struct sl_source_kafka_partition parts[A_PARTS];
    int64_t deadline = sl_mono_ms() + 20000;
    for (;;) {
        size_t n1 = sl_source_kafka_partitions(m[1].src, parts, A_PARTS);
        size_t n2 = sl_source_kafka_partitions(
            m[2].src, parts + (n1 < A_PARTS ? n1 : A_PARTS),
            A_PARTS - (n1 < A_PARTS ? n1 : A_PARTS));
        int done = n1 + n2 == A_PARTS;
        for (size_t i = 0; done && i < n1 + n2; i++)
            done = parts[i].committed == A_PER && parts[i].lag == 0;
        if (done || sl_mono_ms() > deadline)
            break;
        usleep(50000);
    }
    km_member_leave(&m[1]);
    km_member_leave(&m[2]);

    long dups = km_acks_dups(&acks);
    print_message("all %d messages acked; %ld redelivered across "
                  "rebalances\n",
                  A_COUNT, dups);

    /* What the group committed, seen from a separate handle. */
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, group);
    km_assert_committed_to_end(rk, topic, A_PARTS, A_PER);
    rd_kafka_destroy(rk);
    km_acks_free(&acks);
    print_message("group test: %lld ms\n", (long long)(sl_mono_ms() - t0));
}

/* ------------------------------------------------------------------ */
/* (b) backpressure: a stalled consumer                                 */

#define B_PARTS 4
#define B_COUNT 100000
/*
 * RSS a paused source may take.  Under AddressSanitizer freed memory
 * waits in its quarantine and every byte has shadow, so the same
 * prefetch shows more (+4.2 MiB once in CI, against +0.3 MiB in Debug);
 * the bound there still fails the +10.5 MiB of the unbounded prefetch.
 */
#if defined(__SANITIZE_ADDRESS__)
#define B_PREFETCH_KIB (8 * 1024)
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define B_PREFETCH_KIB (8 * 1024)
#endif
#endif
#ifndef B_PREFETCH_KIB
#define B_PREFETCH_KIB (4 * 1024)
#endif

static long rss_kib(void)
{
    long pages = 0, rss = 0;
    FILE *fp = fopen("/proc/self/statm", "r");
    if (fp) {
        if (fscanf(fp, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(fp);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_backpressure(void **state)
{
    (void)state;
    char topic[128], group[128];
    const char *env = getenv("SLUICE_TEST_STALL_S");
    int stall_s = env && atoi(env) > 0 ? atoi(env) : 30;
    struct sl_queue *q = sl_queue_new(16, (void (*)(void *))sl_msg_destroy);
    struct sl_source_kafka_stats st;
    int64_t expect[B_PARTS] = {0};
    int64_t t0 = sl_mono_ms();

    h_unique(topic, sizeof(topic), "sluice-test-src-bp");
    h_unique(group, sizeof(group), "sluice-test-src-bp-g");
    create_topic(topic, B_PARTS);
    produce(topic, B_PARTS, B_COUNT, 200);
    print_message("produced %d messages in %lld ms\n", B_COUNT,
                  (long long)(sl_mono_ms() - t0));

    long rss_start = rss_kib();
    struct sl_source *src = kafka_source(topic, group, q, 65536);
    /* Nobody pops: the queue fills and the source pauses. */
    int64_t deadline = sl_mono_ms() + 30000;
    while (!(sl_queue_depth(q) == 16 &&
             atomic_load(&sl_source_stats(src)->paused)) &&
           sl_mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(sl_queue_depth(q), 16);
    assert_int_equal(atomic_load(&sl_source_stats(src)->paused), 1);
    sleep(2); /* let the fetcher settle after the pause */
    long rss0 = rss_kib();
    /*
     * What librdkafka prefetched for a queue of 16 stays within its
     * bounds (source_kafka.c: PREFETCH_*): was ~10000 messages and a
     * 1 MiB fetch per partition.
     */
    print_message("prefetched for a full queue: rss %+ld KiB\n",
                  rss0 - rss_start);
    assert_true(rss0 - rss_start < B_PREFETCH_KIB);
    sl_source_kafka_stats(src, &st);
    uint64_t assignments = st.assignments;
    print_message("stalling %d s with max.poll.interval.ms=10000 "
                  "(rss %ld KiB)\n",
                  stall_s, rss0);
    sleep((unsigned)stall_s);
    long rss1 = rss_kib();
    sl_source_kafka_stats(src, &st);
    print_message("after the stall: rss %ld KiB (%+ld), assignments %llu, "
                  "revocations %llu, lost %llu, pauses %llu\n",
                  rss1, rss1 - rss0, (unsigned long long)st.assignments,
                  (unsigned long long)st.revocations,
                  (unsigned long long)st.lost, (unsigned long long)st.pauses);
    assert_int_equal(st.assignments, assignments);
    assert_int_equal(st.revocations, 0);
    assert_int_equal(st.lost, 0);
    assert_true(rss1 - rss0 < 20 * 1024);
    assert_int_equal(atomic_load(&sl_source_stats(src)->consumed), 16);

    /* Resume: every message once, in order per partition. */
    int64_t t1 = sl_mono_ms();
    for (long got = 0; got < B_COUNT;) {
        void *item;
        int rc = sl_queue_pop(q, &item, 30000);
        if (rc != 0)
            fail_msg("queue stayed empty after %ld messages", got);
        struct sl_msg *msg = item;
        int p = msg->origin.partition;
        assert_true(p >= 0 && p < B_PARTS);
        if (msg->origin.offset != expect[p])
            fail_msg("partition %d: got offset %lld, expected %lld", p,
                     (long long)msg->origin.offset, (long long)expect[p]);
        expect[p]++;
        got++;
        sl_source_ack(msg);
    }
    print_message("drained %d messages in %lld ms\n", B_COUNT,
                  (long long)(sl_mono_ms() - t1));
    void *item;
    assert_int_equal(sl_queue_pop(q, &item, 500), -SL_ETIMEDOUT);
    sl_source_stop(src, 1);
    assert_int_equal(sl_source_wait_stopped(src, 10000), 0);
    assert_int_equal(sl_source_close(src), 0);
    sl_source_kafka_stats(src, &st);
    assert_int_equal(st.revocations, 1); /* only the close */
    sl_source_destroy(src);
    sl_queue_destroy(q);
    print_message("backpressure test: %lld ms\n",
                  (long long)(sl_mono_ms() - t0));
}

/* A bad property is named in the error. */
static void test_bad_property(void **state)
{
    (void)state;
    const char *topics[] = {"t"};
    struct sl_kafka_property props[] = {{"fetch.max.bytes", "banana"}};
    struct sl_source_kafka_conf conf = {
        .brokers = brokers(),
        .topics = topics,
        .topic_cnt = 1,
        .group = "g",
        .properties = props,
        .property_cnt = 1,
    };
    char err[512];
    struct sl_queue *q = sl_queue_new(4, NULL);
    assert_null(sl_source_kafka_new(&conf, q, err, sizeof(err)));
    assert_non_null(strstr(err, "kafka property 'fetch.max.bytes'"));
    sl_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_property),
        cmocka_unit_test(test_group_rebalance),
        cmocka_unit_test(test_backpressure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
