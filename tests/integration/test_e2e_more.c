/*
 * `sluice run` end to end where the other tests do not go: the limiter's
 * rates as mock-infer and the rows see them, per-key ordering through
 * Kafka, and the Redis list source.  Needs PostgreSQL, Kafka and Redis
 * (scripts/services start) and mock-infer.
 */
#include "harness.h"

#include <hiredis/hiredis.h>

static char dir[64]; /* this run's files */

/* The sink section of a pipeline: 'table' and its dead letters. */
static void sink_yaml(char *buf, size_t size, const char *table)
{
    h_sink_yaml(buf, size, table, "    batch_rows: 50\n    flush_ms: 10\n");
}

static void kafka_yaml(char *buf, size_t size, const char *topic,
                       const char *group, const char *extra)
{
    snprintf(buf, size,
             "source:\n"
             "  kind: kafka\n%s"
             "  kafka:\n"
             "    brokers: %s\n"
             "    topics: [%s]\n"
             "    group: %s\n"
             "    auto_offset_reset: earliest\n",
             extra, H_KAFKA, topic, group);
}

/* Model tokens the rows of 'table' record (usage of backend 'chat'). */
static long long row_tokens(PGconn *db, const char *table)
{
    return h_pg_int(db,
                    "SELECT coalesce(sum((results->'chat'->'usage'->>"
                    "'prompt_tokens')::bigint + (results->'chat'->'usage'->>"
                    "'completion_tokens')::bigint), 0) FROM %s",
                    table);
}

#define RPS 20       /* rate_limit_rps of backend 'sentiment' */
#define TPM 18000    /* tokens_per_minute of backend 'chat' */
#define WINDOW 8000  /* ms measured, after the bursts */
#define LIMIT_N 1500 /* messages: more than either run can take */

/*
 * Two workers on one topic (two groups): one calls an http-json backend
 * limited to RPS requests a second, the other an openai-chat backend
 * limited to TPM tokens a minute.  Once their bursts are spent (a second
 * of requests, a minute of tokens), mock-infer's request count and the
 * usage in the rows grow at the configured rates, within 10 %.
 */
static void test_limiter_rates(void **state)
{
    char topic[96], ta[96], tb[96], src[512], snk[512], yaml[4096];
    char path_a[256], path_b[256], target[256];
    struct h_mock ma, mb;
    struct h_proc pa, pb;

    (void)state;
    h_unique(topic, sizeof(topic), "lim");
    h_unique(ta, sizeof(ta), "t_lim_rps");
    h_unique(tb, sizeof(tb), "t_lim_tpm");
    snprintf(target, sizeof(target), "kafka://%s/%s", H_KAFKA, topic);
    h_produce("'%s' --partitions 1 --generate 1500", target);
    assert_int_equal(h_mock_start(&ma), 0);
    assert_int_equal(h_mock_start(&mb), 0);

    kafka_yaml(src, sizeof(src), topic, ta, "");
    sink_yaml(snk, sizeof(snk), ta);
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: lim-rps\n%s"
             "queue:\n  capacity: 16\n"
             "workers:\n  threads: 1\n  max_inflight: 8\n"
             "backends:\n" H_SENTIMENT_BACKEND "    rate_limit_rps: %d\n"
             "steps:\n  - name: s\n    backends: [sentiment]\n%s",
             src, ma.url, RPS, snk);
    snprintf(path_a, sizeof(path_a), "%s/%s.yaml", dir, ta);
    h_write_file(path_a, yaml);

    kafka_yaml(src, sizeof(src), topic, tb, "");
    sink_yaml(snk, sizeof(snk), tb);
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: lim-tpm\n%s"
             "queue:\n  capacity: 16\n"
             "workers:\n  threads: 1\n  max_inflight: 4\n"
             "backends:\n"
             "  chat:\n"
             "    kind: openai-chat\n"
             "    url: %s/v1\n"
             "    model: m\n"
             "    messages:\n"
             "      - role: user\n"
             "        content: \"{{text}}\"\n"
             "    tokens_per_minute: %d\n"
             "steps:\n  - name: s\n    backends: [chat]\n%s",
             src, mb.url, TPM, snk);
    snprintf(path_b, sizeof(path_b), "%s/%s.yaml", dir, tb);
    h_write_file(path_b, yaml);

    h_sluice_start(&pa, dir, path_a, "lim-a");
    h_sluice_start(&pb, dir, path_b, "lim-b");
    PGconn *db = h_db();

    /* Past the bursts: RPS requests, and a minute's tokens plus a bit. */
    int64_t end = h_now_ms() + 60000;
    while (h_mock_calls(&ma, "sentiment") < RPS + 5 ||
           row_tokens(db, tb) < TPM + TPM / 60) {
        if (h_now_ms() > end) {
            h_dump_log(pb.log, 2000);
            fail_msg("the bursts were not spent within 60 s: %lld calls, "
                     "%lld tokens",
                     h_mock_calls(&ma, "sentiment"), row_tokens(db, tb));
        }
        h_pause();
    }
    int64_t t0 = h_now_ms();
    long long a0 = h_mock_calls(&ma, "sentiment");
    long long b0 = h_mock_calls(&mb, "chat"), k0 = row_tokens(db, tb);
    while (h_now_ms() < t0 + WINDOW) /* the measurement window */
        h_pause();
    int64_t t1 = h_now_ms();
    long long a1 = h_mock_calls(&ma, "sentiment");
    long long b1 = h_mock_calls(&mb, "chat"), k1 = row_tokens(db, tb);
    double s = (double)(t1 - t0) / 1000.0;
    double rps = (double)(a1 - a0) / s, tpm = (double)(k1 - k0) / s * 60.0;
    print_message("rate_limit_rps %d: %.2f requests/s; tokens_per_minute %d: "
                  "%.0f tokens/min (%.2f requests/s) over %.1f s\n",
                  RPS, rps, TPM, tpm, (double)(b1 - b0) / s, s);
    assert_true(fabs(rps - RPS) <= 0.10 * RPS);
    assert_true(fabs(tpm - TPM) <= 0.10 * TPM);
    /* Both still had work: the limits, not the stream, set the pace. */
    assert_true(h_pg_int(db, "SELECT count(*) FROM %s", ta) < LIMIT_N);
    assert_true(h_pg_int(db, "SELECT count(*) FROM %s", tb) < LIMIT_N);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", ta), 0);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", tb), 0);

    h_sluice_stop(&pa, 30000);
    h_sluice_stop(&pb, 30000);
    h_mock_stop(&ma);
    h_mock_stop(&mb);
    PQclear(
        h_pg_query(db, "DROP TABLE %s, %s_dead, %s, %s_dead", ta, ta, tb, tb));
    PQfinish(db);
}

#define ORDER_N 100 /* messages; every fifth has the key "slow" */

/*
 * source.ordering: key through Kafka, one partition, model latency drawn
 * at random per call: the messages of the key "slow" (every fifth) are
 * processed one at a time in offset order (their rows' ids rise with the
 * offset), while the other keys overtake them (a later message of another
 * key lands before an earlier "slow" one).
 */
static void test_key_order_kafka(void **state)
{
    char topic[96], table[96], src[512], snk[512], yaml[4096], path[256];
    char input[256], target[256];
    const char *lat[] = {"--latency-dist",
                         "uniform",
                         "--latency-ms",
                         "1",
                         "--latency-max-ms",
                         "40",
                         NULL};
    struct h_mock m;
    struct h_proc p;

    (void)state;
    h_unique(topic, sizeof(topic), "ord");
    h_unique(table, sizeof(table), "t_ord");
    snprintf(input, sizeof(input), "%s/%s.jsonl", dir, topic);
    FILE *f = fopen(input, "w");
    assert_non_null(f);
    for (int i = 0; i < ORDER_N; i++)
        if (i % 5 == 0)
            fprintf(f, "{\"seq\": %d, \"key\": \"slow\", \"text\": \"m %d\"}\n",
                    i, i);
        else
            fprintf(f, "{\"seq\": %d, \"key\": \"f%d\", \"text\": \"m %d\"}\n",
                    i, i, i);
    assert_int_equal(fclose(f), 0);
    snprintf(target, sizeof(target), "kafka://%s/%s", H_KAFKA, topic);
    h_produce("'%s' --partitions 1 --file '%s' --key-field key", target, input);
    assert_int_equal(h_mock_start_args(&m, lat), 0);

    kafka_yaml(src, sizeof(src), topic, table, "  ordering: key\n");
    sink_yaml(snk, sizeof(snk), table);
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: ord\n%s"
             "workers:\n  threads: 2\n  max_inflight: 16\n"
             "backends:\n" H_SENTIMENT_BACKEND
             "steps:\n  - name: s\n    backends: [sentiment]\n%s",
             src, m.url, snk);
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, table);
    h_write_file(path, yaml);
    h_sluice_start(&p, dir, path, "ord");
    PGconn *db = h_db();
    assert_int_equal(h_wait_rows(db, table, ORDER_N, 60000), ORDER_N);
    h_sluice_stop(&p, 30000);
    h_mock_stop(&m);

    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), ORDER_N);
    assert_int_equal(
        h_pg_int(db, "SELECT count(DISTINCT \"offset\") FROM %s", table),
        ORDER_N);
    /* Offsets are the seqs: one partition, produced in order. */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE \"offset\" <> "
                              "(payload->>'seq')::bigint",
                              table),
                     0);
    /* "slow": each row after the previous one, in offset order. */
    PGresult *res = h_pg_query(db,
                               "SELECT \"offset\", id FROM %s WHERE key = "
                               "'slow' ORDER BY \"offset\"",
                               table);
    assert_int_equal(PQntuples(res), ORDER_N / 5);
    for (int i = 1; i < PQntuples(res); i++)
        if (atoll(PQgetvalue(res, i, 1)) <= atoll(PQgetvalue(res, i - 1, 1)))
            fail_msg("key 'slow': offset %s landed before offset %s",
                     PQgetvalue(res, i, 0), PQgetvalue(res, i - 1, 0));
    PQclear(res);
    /* Other keys overtook "slow": later offset, earlier row. */
    long long overtaken = h_pg_int(db,
                                   "SELECT count(*) FROM %s s JOIN %s o ON "
                                   "o.key <> 'slow' AND o.\"offset\" > "
                                   "s.\"offset\" AND o.id < s.id WHERE s.key "
                                   "= 'slow'",
                                   table, table);
    print_message("%lld (slow, later other-key) pairs landed out of offset "
                  "order\n",
                  overtaken);
    assert_true(overtaken > 0);
    PQclear(h_pg_query(db, "DROP TABLE %s, %s_dead", table, table));
    PQfinish(db);
}

#define LIST_N 500

/* LLEN of 'key' on the test Redis. */
static long long llen(redisContext *rc, const char *key)
{
    redisReply *r = redisCommand(rc, "LLEN %s", key);

    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    long long n = r->integer;
    freeReplyObject(r);
    return n;
}

/*
 * source.kind: redis-list: LIST_N messages pushed by `sluice produce`
 * become exactly LIST_N rows; the list is drained and the consumer's
 * processing list is empty once the rows are durable, and stays so after
 * the SIGTERM drain.
 */
static void test_redis_list(void **state)
{
    char key[96], table[96], proc[160], snk[512], yaml[4096], path[256];
    char target[256];
    struct h_mock m;
    struct h_proc p;
    struct timeval tv = {5, 0};

    (void)state;
    h_unique(key, sizeof(key), "list");
    h_unique(table, sizeof(table), "t_list");
    snprintf(proc, sizeof(proc), "%s:processing:c1", key);
    snprintf(target, sizeof(target), "redis://%s/%s?type=list", H_REDIS, key);
    h_produce("'%s' --generate 500", target);
    redisContext *rc = redisConnectWithTimeout("127.0.0.1", H_REDIS_PORT, tv);
    assert_true(rc && !rc->err);
    assert_int_equal(llen(rc, key), LIST_N);
    assert_int_equal(h_mock_start(&m), 0);

    sink_yaml(snk, sizeof(snk), table);
    snprintf(yaml, sizeof(yaml),
             "version: 1\nname: list\n"
             "source:\n"
             "  kind: redis-list\n"
             "  redis:\n"
             "    url: redis://%s\n"
             "    key: %s\n"
             "    consumer: c1\n"
             "backends:\n" H_SENTIMENT_BACKEND
             "steps:\n  - name: s\n    backends: [sentiment]\n%s",
             H_REDIS, key, m.url, snk);
    snprintf(path, sizeof(path), "%s/%s.yaml", dir, table);
    h_write_file(path, yaml);
    h_sluice_start(&p, dir, path, "list");
    PGconn *db = h_db();
    assert_int_equal(h_wait_rows(db, table, LIST_N, 60000), LIST_N);
    int64_t end = h_now_ms() + 30000;
    while (llen(rc, key) != 0 || llen(rc, proc) != 0) {
        if (h_now_ms() > end)
            fail_msg("list %lld, processing list %lld entries after 30 s",
                     llen(rc, key), llen(rc, proc));
        h_pause();
    }
    h_sluice_stop(&p, 30000);
    h_mock_stop(&m);

    assert_int_equal(llen(rc, key), 0);
    assert_int_equal(llen(rc, proc), 0);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), LIST_N);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT (payload->>'seq')::int) "
                              "FROM %s WHERE (payload->>'seq')::int BETWEEN 0 "
                              "AND %d AND results->>'sentiment' IS NOT NULL",
                              table, LIST_N - 1),
                     LIST_N);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", table), 0);
    freeReplyObject(redisCommand(rc, "DEL %s %s %s:runs", key, proc, key));
    redisFree(rc);
    PQclear(h_pg_query(db, "DROP TABLE %s, %s_dead", table, table));
    PQfinish(db);
}

static int setup(void **state)
{
    (void)state;
    return h_group_setup(H_NEED_PG | H_NEED_KAFKA | H_NEED_REDIS, dir,
                         sizeof(dir), NULL, 0, NULL);
}

static int teardown(void **state)
{
    (void)state;
    return h_group_teardown(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_list),
        cmocka_unit_test(test_key_order_kafka),
        cmocka_unit_test(test_limiter_rates),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
