/*
 * bench/e2e_tool: the stage ceilings and the clean-up that bench/e2e needs
 * from the servers, measured with the bare client libraries (no sluice
 * code in the timed paths).  A helper of bench/e2e, not a bench of its
 * own: run with no arguments (as a plain bench loop would), it says so
 * and exits 0.
 *
 *   bench_e2e_tool kafka-consume BROKERS TOPIC N   bare librdkafka consumer
 *   bench_e2e_tool kafka-latency BROKERS TOPIC N   bare consumer's latency:
 *       prints "ready" once assigned and past the topic's existing
 *       messages, then takes N messages and prints "p50=.. p99=.. p999=..
 *       n=.." in ms of (now - the payload's produced_at_us): what the
 *       producer, the broker and a fetch add, with no sluice code
 *   bench_e2e_tool kafka-delete BROKERS TOPIC...   delete topics
 *   bench_e2e_tool kafka-delete-groups BROKERS GROUP...  delete groups
 *   bench_e2e_tool redis-read HOST PORT STREAM N   bare XREADGROUP COUNT 1000
 *   bench_e2e_tool pg-copy DSN TABLE               COPY FROM STDIN of TABLE's
 *                                                  rows into a copy of TABLE
 *
 * Each measurement prints one line "rate=<per second> n=<count>
 * secs=<wall> cpu_us=<process CPU per item>" on stdout.
 */
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, const char *why)
{
    fprintf(stderr, "bench_e2e_tool: %s: %s\n", what, why);
    exit(1);
}

static void report(long n, double secs, double cpu)
{
    printf("rate=%.0f n=%ld secs=%.3f cpu_us=%.3f\n",
           secs > 0 ? (double)n / secs : 0.0, n, secs,
           n > 0 ? cpu * 1e6 / (double)n : 0.0);
}

/* ------------------------------------------------------------------ */
/* Kafka                                                                */

static rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *brokers,
                                const char *group)
{
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();

    rd_kafka_conf_set(kc, "bootstrap.servers", brokers, err, sizeof(err));
    if (group) {
        rd_kafka_conf_set(kc, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(kc, "auto.offset.reset", "earliest", err,
                          sizeof(err));
        rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
    }
    rd_kafka_t *rk = rd_kafka_new(type, kc, err, sizeof(err));
    if (!rk)
        die("rd_kafka_new", err);
    return rk;
}

static int kafka_delete_groups(const char *brokers, char **groups, int cnt);

/* A consumer of 'topic' in a fresh group "<topic>-<what>-<pid>" (in
 * 'group', for consumer_done()). */
static rd_kafka_t *consumer_new(const char *brokers, const char *topic,
                                const char *what, char *group, size_t size)
{
    snprintf(group, size, "%s-%s-%ld", topic, what, (long)getpid());
    rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, brokers, group);
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

/* Close the consumer and delete its group. */
static void consumer_done(rd_kafka_t *rk, const char *brokers, char *group)
{
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    char *groups[] = {group};
    kafka_delete_groups(brokers, groups, 1);
}

/* Subscribe with a fresh group, count N messages; time from the first. */
static int kafka_consume(const char *brokers, const char *topic, long n)
{
    char group[512];
    long got = 0;
    double t0 = 0, c0 = cpu_s();

    rd_kafka_t *rk =
        consumer_new(brokers, topic, "ceiling", group, sizeof(group));
    double deadline = mono_s() + 300;
    while (got < n && mono_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (!m->err && got++ == 0)
            t0 = mono_s();
        rd_kafka_message_destroy(m);
    }
    double secs = mono_s() - t0, cpu = cpu_s() - c0;
    consumer_done(rk, brokers, group);
    if (got < n)
        die("kafka-consume", "timed out before reading every message");
    report(n - 1, secs, cpu);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* See the header: the transport's own latency at the producer's rate. */
static int kafka_latency(const char *brokers, const char *topic, long n)
{
    char group[512];
    double *lat = calloc((size_t)(n > 0 ? n : 1), sizeof(*lat));
    long got = 0;
    bool ready = false;

    if (!lat)
        die("kafka-latency", "out of memory");
    rd_kafka_t *rk =
        consumer_new(brokers, topic, "latency", group, sizeof(group));
    double deadline = mono_s() + 300, idle_since = mono_s();
    while (got < n && mono_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, ready ? 1000 : 200);
        if (!ready) {
            /* Ready once assigned and the existing messages (the
             * warm-up) have stopped coming for 0.5 s. */
            rd_kafka_topic_partition_list_t *a = NULL;
            bool assigned = rd_kafka_assignment(rk, &a) == 0 && a && a->cnt;
            if (a)
                rd_kafka_topic_partition_list_destroy(a);
            if (m)
                idle_since = mono_s();
            else if (assigned && mono_s() - idle_since > 0.5) {
                ready = true;
                printf("ready\n");
                fflush(stdout);
            }
            if (m)
                rd_kafka_message_destroy(m);
            continue;
        }
        if (!m)
            continue;
        double now = wall_us();
        if (!m->err) {
            json_t *doc = json_loadb(m->payload, m->len, 0, NULL);
            json_t *at = json_object_get(doc, "produced_at_us");
            if (json_is_integer(at))
                lat[got++] = (now - (double)json_integer_value(at)) / 1e3;
            json_decref(doc);
        }
        rd_kafka_message_destroy(m);
    }
    consumer_done(rk, brokers, group);
    if (got < n)
        die("kafka-latency", "timed out before reading every message");
    qsort(lat, (size_t)n, sizeof(*lat), cmp_double);
    printf("p50=%.3f p99=%.3f p999=%.3f n=%ld\n", lat[n / 2],
           lat[(long)((double)n * 0.99)], lat[(long)((double)n * 0.999)], n);
    free(lat);
    return 0;
}

static int kafka_delete(const char *brokers, char **topics, int cnt)
{
    char err[512];
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, brokers, NULL);
    rd_kafka_DeleteTopic_t **dt = calloc((size_t)cnt, sizeof(*dt));
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETETOPICS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    int rc = 0;

    for (int i = 0; i < cnt; i++)
        dt[i] = rd_kafka_DeleteTopic_new(topics[i]);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_DeleteTopics(rk, dt, (size_t)cnt, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        fprintf(stderr, "bench_e2e_tool: delete topics: timed out\n");
        rc = 1;
    } else {
        const rd_kafka_DeleteTopics_result_t *res =
            rd_kafka_event_DeleteTopics_result(ev);
        size_t n = 0;
        const rd_kafka_topic_result_t **tr =
            res ? rd_kafka_DeleteTopics_result_topics(res, &n) : NULL;
        for (size_t i = 0; i < n; i++)
            if (rd_kafka_topic_result_error(tr[i]) &&
                rd_kafka_topic_result_error(tr[i]) !=
                    RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
                fprintf(stderr, "bench_e2e_tool: delete %s: %s\n",
                        rd_kafka_topic_result_name(tr[i]),
                        rd_kafka_topic_result_error_string(tr[i]));
                rc = 1;
            }
        rd_kafka_event_destroy(ev);
    }
    for (int i = 0; i < cnt; i++)
        rd_kafka_DeleteTopic_destroy(dt[i]);
    free(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_destroy(rk);
    return rc;
}

/* Delete consumer groups (best effort: an unknown group is fine). */
static int kafka_delete_groups(const char *brokers, char **groups, int cnt)
{
    char err[512];
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, brokers, NULL);
    rd_kafka_DeleteGroup_t **dg = calloc((size_t)cnt, sizeof(*dg));
    rd_kafka_AdminOptions_t *ao =
        rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_DELETEGROUPS);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);

    for (int i = 0; i < cnt; i++)
        dg[i] = rd_kafka_DeleteGroup_new(groups[i]);
    rd_kafka_AdminOptions_set_request_timeout(ao, 15000, err, sizeof(err));
    rd_kafka_DeleteGroups(rk, dg, (size_t)cnt, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (ev)
        rd_kafka_event_destroy(ev);
    for (int i = 0; i < cnt; i++)
        rd_kafka_DeleteGroup_destroy(dg[i]);
    free(dg);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Redis                                                                */

/* A fresh group at 0, then XREADGROUP COUNT 1000 until N; no XACK. */
static int redis_read(const char *host, int port, const char *stream, long n)
{
    char group[128];
    long got = 0;
    redisContext *c = redisConnect(host, port);

    if (!c || c->err)
        die("redis connect", c ? c->errstr : "out of memory");
    snprintf(group, sizeof(group), "ceiling-%ld", (long)getpid());
    redisReply *r = redisCommand(c, "XGROUP CREATE %s %s 0", stream, group);
    if (!r || r->type == REDIS_REPLY_ERROR)
        die("XGROUP CREATE", r ? r->str : c->errstr);
    freeReplyObject(r);
    double t0 = mono_s(), c0 = cpu_s();
    while (got < n) {
        r = redisCommand(c, "XREADGROUP GROUP %s c COUNT 1000 STREAMS %s >",
                         group, stream);
        if (!r || r->type == REDIS_REPLY_ERROR)
            die("XREADGROUP", r ? r->str : c->errstr);
        if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
            freeReplyObject(r);
            break; /* the stream holds fewer than N */
        }
        got += (long)r->element[0]->element[1]->elements;
        freeReplyObject(r);
    }
    double secs = mono_s() - t0, cpu = cpu_s() - c0;
    r = redisCommand(c, "XGROUP DESTROY %s %s", stream, group);
    freeReplyObject(r);
    redisFree(c);
    report(got, secs, cpu);
    return 0;
}

/* ------------------------------------------------------------------ */
/* PostgreSQL                                                           */

static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static PGresult *exec_ok(PGconn *pg, const char *sql, ExecStatusType want)
{
    PGresult *res = PQexec(pg, sql);
    if (PQresultStatus(res) != want)
        die(sql, PQerrorMessage(pg));
    return res;
}

/*
 * Read TABLE's rows with COPY TO STDOUT into memory, then time COPY FROM
 * STDIN of the same bytes into a new table LIKE it (dropped afterwards).
 */
static int pg_copy(const char *dsn, const char *table)
{
    char sql[1024], copy_name[256];
    PGconn *pg = PQconnectdb(dsn);
    size_t len = 0, cap = 1 << 20;
    char *buf = malloc(cap), *chunk;
    long rows = 0;
    int n;

    if (PQstatus(pg) != CONNECTION_OK)
        die("connect", PQerrorMessage(pg));
    PQsetNoticeProcessor(pg, quiet, NULL);
    snprintf(copy_name, sizeof(copy_name), "%s_copy_ceiling", table);
    snprintf(sql, sizeof(sql), "COPY %s TO STDOUT", table);
    PQclear(exec_ok(pg, sql, PGRES_COPY_OUT));
    while ((n = PQgetCopyData(pg, &chunk, 0)) > 0) {
        if (len + (size_t)n > cap) {
            while (len + (size_t)n > cap)
                cap *= 2;
            buf = realloc(buf, cap);
            if (!buf)
                die("copy out", "out of memory");
        }
        memcpy(buf + len, chunk, (size_t)n);
        len += (size_t)n;
        rows++;
        PQfreemem(chunk);
    }
    PQclear(PQgetResult(pg));
    snprintf(sql, sizeof(sql),
             "DROP TABLE IF EXISTS %s; CREATE TABLE %s (LIKE %s INCLUDING "
             "ALL)",
             copy_name, copy_name, table);
    PQclear(exec_ok(pg, sql, PGRES_COMMAND_OK));
    double t0 = mono_s(), c0 = cpu_s();
    snprintf(sql, sizeof(sql), "COPY %s FROM STDIN", copy_name);
    PQclear(exec_ok(pg, sql, PGRES_COPY_IN));
    for (size_t off = 0; off < len; off += 65536) {
        size_t m = len - off < 65536 ? len - off : 65536;
        if (PQputCopyData(pg, buf + off, (int)m) != 1)
            die("copy in", PQerrorMessage(pg));
    }
    if (PQputCopyEnd(pg, NULL) != 1)
        die("copy end", PQerrorMessage(pg));
    PGresult *res = PQgetResult(pg);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        die("copy in", PQerrorMessage(pg));
    PQclear(res);
    double secs = mono_s() - t0, cpu = cpu_s() - c0;
    snprintf(sql, sizeof(sql), "DROP TABLE %s", copy_name);
    PQclear(exec_ok(pg, sql, PGRES_COMMAND_OK));
    PQfinish(pg);
    free(buf);
    report(rows, secs, cpu);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "bench_e2e_tool: a helper of bench/e2e (stage "
                        "ceilings, clean-up); nothing to run on its own\n");
        return 0;
    }
    if (!strcmp(argv[1], "kafka-consume") && argc == 5)
        return kafka_consume(argv[2], argv[3], atol(argv[4]));
    if (!strcmp(argv[1], "kafka-latency") && argc == 5 && atol(argv[4]) > 0)
        return kafka_latency(argv[2], argv[3], atol(argv[4]));
    if (!strcmp(argv[1], "kafka-delete") && argc >= 4)
        return kafka_delete(argv[2], argv + 3, argc - 3);
    if (!strcmp(argv[1], "kafka-delete-groups") && argc >= 4)
        return kafka_delete_groups(argv[2], argv + 3, argc - 3);
    if (!strcmp(argv[1], "redis-read") && argc == 6)
        return redis_read(argv[2], atoi(argv[3]), argv[4], atol(argv[5]));
    if (!strcmp(argv[1], "pg-copy") && argc == 4)
        return pg_copy(argv[2], argv[3]);
    fprintf(stderr,
            "usage: bench_e2e_tool kafka-consume BROKERS TOPIC N | "
            "kafka-latency BROKERS TOPIC N | "
            "kafka-delete BROKERS TOPIC... | kafka-delete-groups BROKERS "
            "GROUP... | redis-read HOST PORT "
            "STREAM N | pg-copy DSN TABLE\n");
    return 2;
}
