/*
 * The throwaway servers that scripts/services runs: PostgreSQL answers a
 * query, Redis answers PING, and a message produced to a fresh Kafka topic
 * is consumed back unchanged. If one of these fails, every other
 * integration test will too: start them with `scripts/services start`.
 */
#include "harness.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>

#define HINT "is it running? start it with `scripts/services start`"

#define KAFKA_DEADLINE_MS 30000 /* whole round trip, create to consume */

static const char *env_or(const char *name, const char *fallback)
{
    const char *v = getenv(name);

    return v && *v ? v : fallback;
}

static void test_postgres_select_1(void **state)
{
    (void)state;
    const char *dsn = env_or("SLUICE_PG_DSN", H_PG_DSN);
    char conninfo[512];
    PGconn *conn;
    PGresult *res;

    snprintf(conninfo, sizeof(conninfo), "%s connect_timeout=5", dsn);
    conn = PQconnectdb(conninfo);
    if (PQstatus(conn) != CONNECTION_OK) {
        char msg[512];

        snprintf(msg, sizeof(msg), "postgres: cannot connect to '%s' (%s); %s",
                 dsn, PQerrorMessage(conn), HINT);
        PQfinish(conn);
        fail_msg("%s", msg);
    }
    res = PQexec(conn, "SELECT 1");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        print_error("postgres: SELECT 1 failed: %s\n", PQerrorMessage(conn));
        PQclear(res);
        PQfinish(conn);
        fail();
    }
    assert_int_equal(PQntuples(res), 1);
    assert_string_equal(PQgetvalue(res, 0, 0), "1");
    PQclear(res);
    PQfinish(conn);
}

/* Parse "redis://host:port" (the form scripts/services env prints). */
static void redis_endpoint(char *host, size_t host_size, int *port)
{
    const char *url = getenv("SLUICE_REDIS_URL");
    const char *p, *colon;

    snprintf(host, host_size, "127.0.0.1");
    *port = H_REDIS_PORT;
    if (!url || strncmp(url, "redis://", 8) != 0)
        return;
    p = url + 8;
    colon = strrchr(p, ':');
    if (!colon || (size_t)(colon - p) >= host_size)
        return;
    snprintf(host, host_size, "%.*s", (int)(colon - p), p);
    *port = atoi(colon + 1);
}

static void test_redis_ping(void **state)
{
    (void)state;
    struct timeval timeout = {5, 0};
    char host[256];
    int port;
    redisContext *c;
    redisReply *reply;

    redis_endpoint(host, sizeof(host), &port);
    c = redisConnectWithTimeout(host, port, timeout);
    if (!c || c->err) {
        print_error("redis: cannot connect to %s:%d (%s); %s\n", host, port,
                    c ? c->errstr : "out of memory", HINT);
        redisFree(c);
        fail();
    }
    redisSetTimeout(c, timeout);
    reply = redisCommand(c, "PING");
    if (!reply) {
        print_error("redis: PING failed (%s)\n", c->errstr);
        redisFree(c);
        fail();
    }
    assert_int_equal(reply->type, REDIS_REPLY_STATUS);
    assert_string_equal(reply->str, "PONG");
    freeReplyObject(reply);
    redisFree(c);
}

/* Delivery outcome of the one produced message, set by the dr callback. */
struct delivery {
    int done;                /* the callback ran */
    rd_kafka_resp_err_t err; /* its outcome */
};

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkmessage,
                        void *opaque)
{
    (void)rk;
    struct delivery *dr = opaque;

    dr->done = 1;
    dr->err = rkmessage->err;
}

static void conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char errstr[512];

    if (rd_kafka_conf_set(conf, name, value, errstr, sizeof(errstr)) !=
        RD_KAFKA_CONF_OK) {
        rd_kafka_conf_destroy(conf);
        fail_msg("kafka: %s=%s: %s", name, value, errstr);
    }
}

/* A producer (reporting into 'dr') or, with 'group', a consumer. */
static rd_kafka_t *kafka_new(rd_kafka_type_t type, const char *brokers,
                             const char *group, struct delivery *dr)
{
    char errstr[512];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    conf_set(conf, "bootstrap.servers", brokers);
    conf_set(conf, "socket.timeout.ms", "10000");
    if (type == RD_KAFKA_PRODUCER) {
        conf_set(conf, "acks", "all");
        conf_set(conf, "message.timeout.ms", "30000");
        rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
        rd_kafka_conf_set_opaque(conf, dr);
    } else {
        conf_set(conf, "group.id", group);
        conf_set(conf, "enable.auto.commit", "false");
    }
    rk = rd_kafka_new(type, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fail_msg("kafka: rd_kafka_new: %s", errstr);
    }
    return rk;
}

/* Fail fast, with a hint, when no broker answers a metadata request. */
static void kafka_require_broker(rd_kafka_t *rk, const char *brokers)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, 5000);

    if (err) {
        print_error("kafka: no metadata from %s (%s); %s\n", brokers,
                    rd_kafka_err2str(err), HINT);
        rd_kafka_destroy(rk);
        fail();
    }
    rd_kafka_metadata_destroy(md);
}

static void kafka_create_topic(rd_kafka_t *rk, const char *topic)
{
    char errstr[512];
    rd_kafka_NewTopic_t *nt;
    rd_kafka_AdminOptions_t *opts;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **results;
    size_t n = 0;

    nt = rd_kafka_NewTopic_new(topic, 1, 1, errstr, sizeof(errstr));
    assert_non_null(nt);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* Wait for the broker to finish creating it, leader included. */
    assert_int_equal(rd_kafka_AdminOptions_set_operation_timeout(
                         opts, 10000, errstr, sizeof(errstr)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_AdminOptions_set_request_timeout(
                         opts, 15000, errstr, sizeof(errstr)),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, opts, q);
    ev = rd_kafka_queue_poll(q, 20000);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    if (!ev)
        fail_msg("kafka: CreateTopics(%s) gave no result in 20 s", topic);
    if (rd_kafka_event_error(ev)) {
        print_error("kafka: CreateTopics(%s): %s\n", topic,
                    rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        fail();
    }
    res = rd_kafka_event_CreateTopics_result(ev);
    assert_non_null(res);
    results = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    if (rd_kafka_topic_result_error(results[0])) {
        print_error("kafka: creating topic %s: %s\n", topic,
                    rd_kafka_topic_result_error_string(results[0]));
        rd_kafka_event_destroy(ev);
        fail();
    }
    rd_kafka_event_destroy(ev);
}

static void test_kafka_round_trip(void **state)
{
    (void)state;
    const char *brokers = env_or("SLUICE_KAFKA_BROKERS", H_KAFKA);
    int64_t deadline = h_now_ms() + KAFKA_DEADLINE_MS;
    struct delivery dr = {0, RD_KAFKA_RESP_ERR_NO_ERROR};
    char topic[128], group[128], payload[128];
    rd_kafka_t *producer, *consumer;
    rd_kafka_topic_partition_list_t *parts;
    rd_kafka_resp_err_t err;
    int got = 0;

    h_unique(topic, sizeof(topic), "sluice-test-servers");
    h_unique(group, sizeof(group), "sluice-test-servers-group");
    h_unique(payload, sizeof(payload), "payload");

    producer = kafka_new(RD_KAFKA_PRODUCER, brokers, NULL, &dr);
    kafka_require_broker(producer, brokers);
    kafka_create_topic(producer, topic);

    err = rd_kafka_producev(
        producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(0),
        RD_KAFKA_V_VALUE(payload, strlen(payload)),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (err)
        fail_msg("kafka: produce to %s: %s", topic, rd_kafka_err2str(err));
    err = rd_kafka_flush(producer, (int)(deadline - h_now_ms()));
    if (err || !dr.done || dr.err) {
        print_error("kafka: delivery to %s failed: flush %s, report %s\n",
                    topic, rd_kafka_err2str(err),
                    dr.done ? rd_kafka_err2str(dr.err) : "never came");
        rd_kafka_destroy(producer);
        fail();
    }
    rd_kafka_destroy(producer);

    consumer = kafka_new(RD_KAFKA_CONSUMER, brokers, group, NULL);
    rd_kafka_poll_set_consumer(consumer);
    parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(parts, topic, 0)->offset =
        RD_KAFKA_OFFSET_BEGINNING;
    err = rd_kafka_assign(consumer, parts);
    rd_kafka_topic_partition_list_destroy(parts);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);

    while (!got && h_now_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 500);

        if (!m)
            continue;
        if (m->err) {
            /* Transient (e.g. leader not yet known): keep polling. */
            print_message("kafka: consumer: %s\n", rd_kafka_message_errstr(m));
        } else {
            assert_int_equal(m->len, strlen(payload));
            assert_memory_equal(m->payload, payload, m->len);
            assert_int_equal(m->offset, 0);
            got = 1;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(consumer);
    rd_kafka_destroy(consumer);
    if (!got)
        fail_msg("kafka: message '%s' not consumed back from %s within %d s",
                 payload, topic, KAFKA_DEADLINE_MS / 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postgres_select_1),
        cmocka_unit_test(test_redis_ping),
        cmocka_unit_test(test_kafka_round_trip),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
