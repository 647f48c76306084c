/*
 * bench/source_kafka: messages/s through the Kafka source into a counting
 * consumer (pop and ack at once), beside a bare librdkafka consumer
 * reading the same pre-loaded topic in the same run.  Rounds alternate
 * (raw, source, raw, source ...) with a fresh consumer group each, and the
 * medians are compared, so that a noisy neighbour hurts both sides alike;
 * process CPU time per message is reported too (steadier than wall time
 * on a shared machine).  A benchmark, not a test; needs
 * `scripts/services start kafka`.
 *
 * Usage: bench_source_kafka [messages, default 500000] [bytes 200]
 *                           [partitions 12] [queue capacity 1024]
 *                           [rounds 3]
 * BENCH_ONLY=raw|source runs one side only (for profiling).
 */
#include "clock.h"
#include "err.h"
#include "log.h"
#include "source_kafka.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *brokers = "127.0.0.1:59092";

/* One measured pass: wall rate from the first to the last message, and
 * process CPU (every thread, librdkafka's included) over the whole pass. */
struct pass {
    double rate;       /* messages/s */
    double cpu_us_msg; /* process CPU microseconds per message */
};

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_source_kafka: %s: %s\n", what, why);
    exit(1);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *group)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", brokers, err, sizeof(err));
    if (group) {
        rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
        rd_kafka_conf_set(kc, "enable.partition.eof", "false", err,
                          sizeof(err));
    } else {
        rd_kafka_conf_set(kc, "linger.ms", "20", err, sizeof(err));
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, err, sizeof(err));
    if (!rk)
        die("rd_kafka_new", err);
    return rk;
}

static void load_topic(const char *topic, int partitions, long count,
                       size_t size)
{
    char err[512];
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, 1, err, sizeof(err));
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        die("create topic", ev ? rd_kafka_event_error_string(ev) : "timeout");
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);

    char *buf = malloc(size);
    memset(buf, 'x', size);
    for (long i = 0; i < count; i++) {
        while (rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic),
                                 RD_KAFKA_V_PARTITION((int)(i % partitions)),
                                 RD_KAFKA_V_VALUE(buf, size),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) ==
               RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 10);
        rd_kafka_poll(rk, 0);
    }
    if (rd_kafka_flush(rk, 120000))
        die("produce", "flush timed out");
    free(buf);
    rd_kafka_destroy(rk);
}

/* Delete the consumer groups of 'rounds' rounds (best effort). */
static void delete_groups(const char *topic, int rounds)
{
    char err[512], name[300];
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_DeleteGroup_t *dg[32];
    size_t n = 0;
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);

    for (int r = 0; r < rounds && n + 2 <= 32; r++) {
        snprintf(name, sizeof(name), "%s-raw-%d", topic, r);
        dg[n++] = rd_kafka_DeleteGroup_new(name);
        snprintf(name, sizeof(name), "%s-src-%d", topic, r);
        dg[n++] = rd_kafka_DeleteGroup_new(name);
    }
    rd_kafka_AdminOptions_set_request_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_DeleteGroups(rk, dg, n, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev)
        rd_kafka_event_destroy(ev);
    for (size_t i = 0; i < n; i++)
        rd_kafka_DeleteGroup_destroy(dg[i]);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_destroy(rk);
}

/* Delete the topic we made (best effort: a benchmark cleans up). */
static void delete_topic(const char *topic)
{
    char err[512];
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_DeleteTopics(rk, &dt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        fprintf(stderr, "bench_source_kafka: delete topic %s: %s\n", topic,
                ev ? rd_kafka_event_error_string(ev) : "timeout");
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_destroy(rk);
}

/* Bare librdkafka: subscribe, poll, count.  Returns messages/s. */
static struct pass raw_rate(const char *topic, long count, int round)
{
    char group[256];
    double c0 = cpu_s();
    snprintf(group, sizeof(group), "%s-raw-%d", topic, round);
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, group);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    long got = 0;
    int64_t t0 = 0;
    while (got < count) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (!m->err) {
            if (got++ == 0)
                t0 = sl_mono_ms();
        }
        rd_kafka_message_destroy(m);
    }
    int64_t ms = sl_mono_ms() - t0;
    double c1 = cpu_s();
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return (struct pass){(double)(count - 1) * 1000.0 /
                             (double)(ms > 0 ? ms : 1),
                         (c1 - c0) * 1e6 / (double)count};
}

struct counter {
    struct sl_queue *q; /* popped */
    long count;         /* stop after this many */
    int64_t t0;         /* first message */
    int64_t t1;         /* last message */
};

static void *count_main(void *arg)
{
    struct counter *c = arg;
    for (long got = 0; got < c->count;) {
        void *item;
        if (sl_queue_pop(c->q, &item, 1000) != 0 || !item)
            continue;
        if (got++ == 0)
            c->t0 = sl_mono_ms();
        sl_source_ack(item);
    }
    c->t1 = sl_mono_ms();
    return NULL;
}

static struct pass source_rate(const char *topic, long count, size_t capacity,
                               int round)
{
    char group[256], err[512];
    const char *topics[] = {topic};
    double c0 = cpu_s();
    snprintf(group, sizeof(group), "%s-src-%d", topic, round);
    struct sl_source_kafka_conf conf = {
        .brokers = brokers,
        .topics = topics,
        .topic_cnt = 1,
        .group = group,
    };
    struct counter c = {
        sl_queue_new(capacity, (void (*)(void *))sl_msg_destroy), count, 0, 0};
    struct sl_source *src = sl_source_kafka_new(&conf, c.q, err, sizeof(err));
    if (!src)
        die("source", err);
    pthread_t t;
    pthread_create(&t, NULL, count_main, &c);
    if (sl_source_start(src, err, sizeof(err)))
        die("source start", err);
    pthread_join(t, NULL);
    double c1 = cpu_s();
    sl_source_stop(src, 1);
    sl_source_close(src);
    struct sl_source_kafka_stats st;
    sl_source_kafka_stats(src, &st);
    fprintf(stderr, "source: pauses %llu, dropped on refetch %llu\n",
            (unsigned long long)st.pauses, (unsigned long long)st.dropped);
    sl_source_destroy(src);
    sl_queue_destroy(c.q);
    int64_t ms = c.t1 - c.t0;
    return (struct pass){(double)(count - 1) * 1000.0 /
                             (double)(ms > 0 ? ms : 1),
                         (c1 - c0) * 1e6 / (double)count};
}

static int cmp_pass(const void *a, const void *b)
{
    double x = ((const struct pass *)a)->rate,
           y = ((const struct pass *)b)->rate;
    return x < y ? -1 : x > y;
}

static int cmp_cpu(const void *a, const void *b)
{
    double x = ((const struct pass *)a)->cpu_us_msg;
    double y = ((const struct pass *)b)->cpu_us_msg;
    return x < y ? -1 : x > y;
}

/* Median rate and median CPU of 'n' passes (each sorted on its own). */
static struct pass median(struct pass *ps, int n)
{
    struct pass m;
    qsort(ps, (size_t)n, sizeof(*ps), cmp_pass);
    m.rate = ps[n / 2].rate;
    qsort(ps, (size_t)n, sizeof(*ps), cmp_cpu);
    m.cpu_us_msg = ps[n / 2].cpu_us_msg;
    return m;
}

int main(int argc, char **argv)
{
    long count = argc > 1 ? atol(argv[1]) : 500000;
    size_t size = argc > 2 ? (size_t)atol(argv[2]) : 200;
    int partitions = argc > 3 ? atoi(argv[3]) : 12;
    size_t capacity = argc > 4 ? (size_t)atol(argv[4]) : 1024;
    int rounds = argc > 5 ? atoi(argv[5]) : 3;
    char topic[128];
    const char *env = getenv("SLUICE_KAFKA_BROKERS");
    const char *only = getenv("BENCH_ONLY");
    struct pass raw[16], src[16];

    if (env && *env)
        brokers = env;
    if (rounds < 1 || rounds > 16)
        rounds = 3;
    sl_log_set_level(SL_LOG_WARN);
    snprintf(topic, sizeof(topic), "sluice-bench-src-%ld-%lld", (long)getpid(),
             (long long)sl_now_us());
    int64_t t0 = sl_mono_ms();
    load_topic(topic, partitions, count, size);
    fprintf(stderr, "loaded %ld x %zu B into %d partitions in %lld ms\n", count,
            size, partitions, (long long)(sl_mono_ms() - t0));

    for (int r = 0; r < rounds; r++) {
        raw[r] = src[r] = (struct pass){0, 0};
        if (!only || strcmp(only, "source"))
            raw[r] = raw_rate(topic, count, r);
        if (!only || strcmp(only, "raw"))
            src[r] = source_rate(topic, count, capacity, r);
        fprintf(stderr,
                "round %d: raw %.0f msg/s %.2f us/msg, source %.0f "
                "msg/s %.2f us/msg\n",
                r + 1, raw[r].rate, raw[r].cpu_us_msg, src[r].rate,
                src[r].cpu_us_msg);
    }
    delete_groups(topic, rounds);
    delete_topic(topic);
    struct pass mr = median(raw, rounds), ms = median(src, rounds);
    printf("| consumer (median of %d alternating rounds) | messages | msg/s | "
           "CPU us/msg | rate ratio |\n",
           rounds);
    printf("| --- | ---: | ---: | ---: | ---: |\n");
    printf("| librdkafka consumer_poll | %ld | %.0f | %.2f | 100%% |\n", count,
           mr.rate, mr.cpu_us_msg);
    printf("| sluice kafka source -> queue(%zu) -> ack | %ld | %.0f | %.2f | "
           "%.0f%% |\n",
           capacity, count, ms.rate, ms.cpu_us_msg,
           mr.rate > 0 ? 100.0 * ms.rate / mr.rate : 0.0);
    printf("\ntarget: source >= 70%% of raw: %s\n",
           ms.rate >= 0.7 * mr.rate ? "met" : "NOT met");
    return 0;
}
