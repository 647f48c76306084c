/*
 * The metrics operators scale and alert on, against real servers: the
 * consumer lag sluice shows agrees with the lag computed here from the
 * broker (Kafka: committed offsets and watermarks through librdkafka;
 * Redis: XINFO GROUPS) and with the rows in the table, at several moments
 * of a drain slowed by mock-infer; after a rebalance each replica shows
 * only its own partitions; sluice_build_info and the process_* families
 * are there and plausible; the Grafana dashboard and the alert rules
 * under deploy/ name only metrics a worker exports.
 */
#include "harness.h"

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>

#define N 600          /* messages drained */
#define INTERVAL 2000  /* SL_LAG_INTERVAL_MS (lib/lag.h) */
#define LAND_MS 120000 /* deadline of the drain */

enum kind { KAFKA, REDIS };

static struct h_mock mock;
static char dir[64];     /* this run's files */
static char sluice[512]; /* the binary under test */

static void write_pipeline(const char *path, enum kind kind, const char *name,
                           const char *group, const char *table, bool gateway)
{
    char yaml[4096], src[512], snk[512];

    h_sink_yaml(snk, sizeof(snk), table,
                "    batch_rows: 50\n    flush_ms: 20\n");

    if (kind == KAFKA)
        snprintf(src, sizeof(src),
                 "  kind: kafka\n"
                 "  kafka:\n"
                 "    brokers: %s\n"
                 "    topics: [%s]\n"
                 "    group: %s\n"
                 "    auto_offset_reset: earliest\n",
                 H_KAFKA, name, group);
    else
        snprintf(src, sizeof(src),
                 "  kind: redis-stream\n"
                 "  redis:\n"
                 "    url: redis://%s\n"
                 "    key: %s\n"
                 "    group: %s\n"
                 "    count: 8\n",
                 H_REDIS, name, group);
    /* 2 in flight x 40 ms: about 50 messages/s, a drain of seconds. */
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-metrics\n"
             "source:\n%s"
             "queue:\n  capacity: 16\n"
             "workers:\n  threads: 1\n  max_inflight: 2\n"
             "backends:\n" H_SENTIMENT_BACKEND
             "    headers:\n      X-Mock-Latency-Ms: \"40\"\n"
             "steps:\n"
             "  - name: analyse\n"
             "    backends: [sentiment]\n"
             "%s"
             "http:\n  listen: 127.0.0.1:0\n%s",
             src, mock.url, snk, gateway ? "gateway:\n  enabled: true\n" : "");
    h_write_file(path, yaml);
}

/* ---- the truth, from the servers ---- */

struct truth {
    enum kind kind;
    const char *name;  /* topic or stream */
    const char *group; /* consumer group */
    rd_kafka_t *rk;    /* Kafka: a consumer of the group that never joins */
    redisContext *rc;  /* Redis */
};

static void truth_open(struct truth *t)
{
    char err[512];

    if (t->kind == KAFKA) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers", H_KAFKA,
                                           err, sizeof(err)),
                         RD_KAFKA_CONF_OK);
        assert_int_equal(
            rd_kafka_conf_set(conf, "group.id", t->group, err, sizeof(err)),
            RD_KAFKA_CONF_OK);
        t->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
        if (!t->rk)
            fail_msg("rd_kafka_new: %s", err);
    } else {
        char host[64];
        int port;
        assert_int_equal(sscanf(H_REDIS, "%63[^:]:%d", host, &port), 2);
        t->rc = redisConnect(host, port);
        assert_true(t->rc && !t->rc->err);
    }
}

static void truth_close(struct truth *t)
{
    if (t->rk)
        rd_kafka_destroy(t->rk);
    if (t->rc)
        redisFree(t->rc);
}

/*
 * Messages not yet committed: Kafka, the high watermark minus the
 * committed offset (the low watermark while nothing is) over both
 * partitions; Redis, XINFO GROUPS lag + pending (N before the group
 * exists).
 */
static long long true_lag(struct truth *t)
{
    long long lag = 0;

    if (t->kind == KAFKA) {
        rd_kafka_topic_partition_list_t *l =
            rd_kafka_topic_partition_list_new(2);
        for (int p = 0; p < 2; p++)
            rd_kafka_topic_partition_list_add(l, t->name, p);
        assert_int_equal(rd_kafka_committed(t->rk, l, 10000), 0);
        for (int p = 0; p < 2; p++) {
            int64_t lo, hi, off = l->elems[p].offset;
            assert_int_equal(rd_kafka_query_watermark_offsets(t->rk, t->name, p,
                                                              &lo, &hi, 10000),
                             0);
            lag += hi - (off >= 0 ? off : lo);
        }
        rd_kafka_topic_partition_list_destroy(l);
        return lag;
    }
    redisReply *r = redisCommand(t->rc, "XINFO GROUPS %s", t->name);
    assert_non_null(r);
    lag = N;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        redisReply *g = r->element[i];
        bool ours = false;
        long long sum = 0;
        for (size_t j = 0; j + 1 < g->elements; j += 2) {
            const char *k = g->element[j]->str;
            redisReply *v = g->element[j + 1];
            if (!strcmp(k, "name"))
                ours = !strcmp(v->str, t->group);
            else if (!strcmp(k, "lag") || !strcmp(k, "pending")) {
                assert_int_equal(v->type, REDIS_REPLY_INTEGER);
                sum += v->integer;
            }
        }
        if (ours)
            lag = sum;
    }
    freeReplyObject(r);
    return lag;
}

/* ---- the drain ---- */

/* One look at the truth. */
struct look {
    int64_t done;  /* h_now_ms() once true_lag() returned */
    long long lag; /* true_lag() */
};

/*
 * Every sample of 'name' in 'text' is a number >= 0; returns their sum
 * and their count in *count.
 */
static double lag_of(const char *text, const char *name, int *count)
{
    double sum = h_prom_sum(text, name, count);
    size_t n = strlen(name);
    for (const char *s = text; s && *s;) {
        if (!strncmp(s, name, n) && s[n] == '{')
            assert_true(strtod(strstr(s, "} ") + 2, NULL) >= 0);
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return sum;
}

/*
 * Drain N messages through sluice and compare, at each look, the lag it
 * shows (M, from a refresh at most INTERVAL old) with the truth before
 * and after the scrape and with the table: the truth never rises during
 * a drain, so truth-after <= M <= the truth one interval (plus slack)
 * before; and nothing is committed before its row is durable, so
 * M >= N - rows.  Returns the port of the still running replica.
 */
static int drain_and_compare(enum kind kind, struct h_proc *proc,
                             struct truth *t, const char *table)
{
    char yaml[256];
    static struct look looks[4096];
    size_t nlooks = 0;
    double seen[8];
    int distinct = 0;
    PGconn *db = h_db();

    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, t->name);
    write_pipeline(yaml, kind, t->name, t->group, table, false);
    if (kind == KAFKA)
        h_produce("kafka://%s/%s --partitions 2 --generate %d", H_KAFKA,
                  t->name, N);
    else
        h_produce("redis://%s/%s --generate %d", H_REDIS, t->name, N);
    int port = h_sluice_start(proc, dir, yaml, "a");
    int64_t end = h_now_ms() + LAND_MS;
    const char *family = "sluice_source_lag_messages";
    for (;;) {
        assert_true(h_now_ms() < end);
        long long before = true_lag(t);
        int64_t t1 = h_now_ms();
        if (nlooks < sizeof(looks) / sizeof(looks[0]))
            looks[nlooks++] = (struct look){t1, before};
        char *text = NULL;
        assert_int_equal(h_get(port, "/metrics", &text), 200);
        long long rows = h_pg_int(db, "SELECT count(*) FROM %s", table);
        if (rows < 0)
            rows = 0; /* the table is not created yet */
        long long after = true_lag(t);
        int count = 0;
        double m = lag_of(text, family, &count);
        double age = h_prom_value(text, "sluice_source_lag_age_seconds");
        if (kind == REDIS) {
            int pc = 0;
            m += h_prom_sum(text, "sluice_source_pending_messages", &pc);
            count = count && pc ? 1 : 0;
        }
        free(text);
        if (count != (kind == KAFKA ? 2 : 1))
            continue; /* no refresh yet */
        /* The truth when the value shown was measured, or before. */
        assert_true(age >= 0 && age * 1000 <= INTERVAL + 30000);
        long long bound = N;
        for (size_t i = 0; i < nlooks; i++)
            if (looks[i].done <= t1 - (int64_t)(age * 1000) - 1)
                bound = looks[i].lag;
        if (!(m >= (double)after && m <= (double)bound &&
              m >= (double)(N - rows)))
            fail_msg("lag shown %.0f (%.3f s old); true lag %lld after the "
                     "scrape, %lld when it was measured; %lld of %d rows "
                     "durable",
                     m, age, after, bound, rows, N);
        if (m > 0 && distinct < 8 && (distinct == 0 || seen[distinct - 1] != m))
            seen[distinct++] = m;
        if (m == 0 && after == 0 && rows == N)
            break;
        h_pause();
    }
    /* Several moments of the drain, not just its two ends. */
    assert_true(distinct >= 3);
    PQfinish(db);
    return port;
}

static void test_kafka_lag(void **state)
{
    (void)state;
    char topic[96], group[96], table[96];
    struct h_proc a, b;

    h_unique(topic, sizeof(topic), "metrics_lag");
    h_unique(group, sizeof(group), "metrics_lag_g");
    h_unique(table, sizeof(table), "metrics_lag_t");
    struct truth t = {KAFKA, topic, group, NULL, NULL};
    truth_open(&t);
    int pa = drain_and_compare(KAFKA, &a, &t, table);

    /* A second replica joins: each shows its own partition only. */
    char yaml[256];
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, topic);
    int pb = h_sluice_start(&b, dir, yaml, "b");
    int64_t end = h_now_ms() + 60000;
    while (h_metric(pa, "sluice_kafka_partitions_assigned") != 1 ||
           h_metric(pb, "sluice_kafka_partitions_assigned") != 1) {
        assert_true(h_now_ms() < end);
        h_pause();
    }
    char *text = NULL;
    int count = 0;
    assert_int_equal(h_get(pa, "/metrics", &text), 200);
    lag_of(text, "sluice_source_lag_messages", &count);
    free(text);
    assert_int_equal(count, 1); /* the revoked partition is gone at once */
    end = h_now_ms() + INTERVAL + 30000;
    for (;;) { /* the new one within a refresh */
        assert_int_equal(h_get(pb, "/metrics", &text), 200);
        double m = lag_of(text, "sluice_source_lag_messages", &count);
        free(text);
        if (count == 1 && m == 0)
            break;
        assert_true(h_now_ms() < end);
        h_pause();
    }
    h_sluice_stop(&b, 30000);
    h_sluice_stop(&a, 30000);
    truth_close(&t);
}

static void test_redis_lag(void **state)
{
    (void)state;
    char key[96], group[96], table[96];
    struct h_proc a;

    h_unique(key, sizeof(key), "metrics_lag");
    h_unique(group, sizeof(group), "metrics_lag_g");
    h_unique(table, sizeof(table), "metrics_lag_r");
    struct truth t = {REDIS, key, group, NULL, NULL};
    truth_open(&t);
    drain_and_compare(REDIS, &a, &t, table);
    h_sluice_stop(&a, 30000);
    truth_close(&t);
}

/* sluice_build_info names what `sluice version` says; process_* hold. */
static void test_build_and_process(void **state)
{
    (void)state;
    char key[96], group[96], table[96], yaml[256], cmd[600], out[512];
    char version[64], commit[64], series[256];
    struct h_proc a;

    snprintf(cmd, sizeof(cmd), "%s version", sluice);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
    assert_int_equal(
        sscanf(out, "sluice %63s (commit %63[^,]", version, commit), 2);
    h_unique(key, sizeof(key), "metrics_proc");
    h_unique(group, sizeof(group), "metrics_proc_g");
    h_unique(table, sizeof(table), "metrics_proc_t");
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, key);
    write_pipeline(yaml, REDIS, key, group, table, false);
    time_t started = time(NULL);
    int port = h_sluice_start(&a, dir, yaml, "p");
    char *text = NULL;
    assert_int_equal(h_get(port, "/metrics", &text), 200);
    assert_true(h_prom_check(text) > 0);
    snprintf(series, sizeof(series),
             "sluice_build_info{version=\"%s\",commit=\"%s\"}", version,
             commit);
    assert_true(h_prom_value(text, series) == 1);
    double start = h_prom_value(text, "process_start_time_seconds");
    /* The boot time in /proc/stat is whole seconds and drifts a little
     * from the wall clock. */
    if (!(start >= (double)started - 5 && start <= (double)time(NULL) + 5))
        fail_msg("process_start_time_seconds %.3f; started at %lld", start,
                 (long long)started);
    assert_true(h_prom_value(text, "process_resident_memory_bytes") > 1e6);
    assert_true(h_prom_value(text, "process_cpu_seconds_total") >= 0);
    double fds = h_prom_value(text, "process_open_fds");
    assert_true(fds >= 3 && fds < h_prom_value(text, "process_max_fds"));
    free(text);
    h_sluice_stop(&a, 30000);
}

/* ---- the dashboard and the alerts ---- */

/* Whether 'text' has a sample line of 'series' (with or without labels). */
static bool has_sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *s = text; s && *s;) {
        if (!strncmp(s, series, n) && (s[n] == '{' || s[n] == ' '))
            return true;
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return false;
}

/* The type of family 'name' in 'text' ("counter" ...), or "" if absent. */
static const char *type_of(const char *text, const char *name, char *buf,
                           size_t size)
{
    char want[300];
    snprintf(want, sizeof(want), "# TYPE %s ", name);
    const char *t = strstr(text, want);
    buf[0] = '\0';
    if (t)
        sscanf(t + strlen(want), "%31s", buf);
    (void)size;
    return buf;
}

/*
 * The series 'name' is exported by one of the scrapes: as a family with
 * a sample, or as the _bucket, _sum or _count of a histogram family.
 */
static bool exported(char *const *texts, int ntexts, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    char type[32], base[256];

    for (int i = 0; i < ntexts; i++) {
        if (*type_of(texts[i], name, type, sizeof(type)) &&
            strcmp(type, "histogram") && has_sample(texts[i], name))
            return true;
        for (int k = 0; k < 3; k++) {
            size_t n = strlen(name), sl = strlen(suffixes[k]);
            if (n <= sl || strcmp(name + n - sl, suffixes[k]))
                continue;
            snprintf(base, sizeof(base), "%.*s", (int)(n - sl), name);
            if (!strcmp(type_of(texts[i], base, type, sizeof(type)),
                        "histogram") &&
                has_sample(texts[i], name))
                return true;
        }
    }
    return false;
}

/*
 * Every metric name (sluice_*, process_*) in 'file' is exported by one of
 * the scrapes; returns how many names the file has.
 */
static int check_names(const char *file, char *const *texts, int ntexts)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", getenv("SLUICE_SOURCE_DIR"), file);
    char *body = h_read_file(path);
    int names = 0;
    assert_non_null(body);
    for (const char *s = body; *s;) {
        bool start = (s == body || !(isalnum((unsigned char)s[-1]) ||
                                     s[-1] == '_' || s[-1] == ':'));
        if (start &&
            (!strncmp(s, "sluice_", 7) || !strncmp(s, "process_", 8))) {
            char name[256];
            size_t n = 0;
            while (
                (isalnum((unsigned char)s[n]) || s[n] == '_' || s[n] == ':') &&
                n + 1 < sizeof(name))
                n++;
            snprintf(name, sizeof(name), "%.*s", (int)n, s);
            if (!exported(texts, ntexts, name))
                fail_msg("%s names %s, which no worker exports", file, name);
            names++;
            s += n;
        } else {
            s++;
        }
    }
    free(body);
    return names;
}

/* 'in' with every 'from' replaced by 'to', into 'out' (size > 0). */
static void replace_all(const char *in, const char *from, const char *to,
                        char *out, size_t size)
{
    size_t n = 0, fl = strlen(from), tl = strlen(to);
    while (*in && n + 1 < size) {
        if (!strncmp(in, from, fl) && n + tl + 1 < size) {
            memcpy(out + n, to, tl);
            n += tl;
            in += fl;
        } else {
            out[n++] = *in++;
        }
    }
    out[n] = '\0';
}

/*
 * Every query of the dashboard as a recording rule in 'path', its Grafana
 * variables replaced ($job: any; $__rate_interval: 5m), for promtool to
 * parse.  Returns the number of queries.
 */
static int dashboard_as_rules(const char *path)
{
    char file[512], a[4096], b[4096];
    json_error_t jerr;
    snprintf(file, sizeof(file), "%s/deploy/grafana/sluice.json",
             getenv("SLUICE_SOURCE_DIR"));
    json_t *dash = json_load_file(file, 0, &jerr);
    if (!dash)
        fail_msg("%s:%d: %s", file, jerr.line, jerr.text);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "groups:\n  - name: dashboard\n    rules:\n");
    size_t i, j;
    json_t *panel, *target;
    int n = 0;
    json_array_foreach(json_object_get(dash, "panels"), i, panel)
    {
        json_array_foreach(json_object_get(panel, "targets"), j, target)
        {
            const char *expr =
                json_string_value(json_object_get(target, "expr"));
            assert_non_null(expr);
            replace_all(expr, "$__rate_interval", "5m", a, sizeof(a));
            replace_all(a, "$job", ".*", b, sizeof(b));
            json_t *q = json_string(b); /* a JSON string is YAML too */
            char *quoted = json_dumps(q, JSON_ENCODE_ANY);
            fprintf(f, "      - record: dashboard:query_%d\n        expr: %s\n",
                    ++n, quoted);
            free(quoted);
            json_decref(q);
        }
    }
    fclose(f);
    json_decref(dash);
    return n;
}

/*
 * deploy/grafana/sluice.json and deploy/prometheus/alerts.yaml name only
 * metrics a worker exports: one with a Kafka source and the gateway, one
 * with a Redis Streams source (its pending count); promtool accepts the
 * rules and parses every query of the dashboard.
 */
static void test_dashboard_and_alerts(void **state)
{
    (void)state;
    char topic[96], key[96], group[96], table[96], yk[256], yr[256];
    struct h_proc k, r;
    char *texts[2] = {NULL, NULL};

    h_unique(topic, sizeof(topic), "metrics_dash");
    h_unique(key, sizeof(key), "metrics_dash");
    h_unique(group, sizeof(group), "metrics_dash_g");
    h_unique(table, sizeof(table), "metrics_dash_t");
    h_produce("kafka://%s/%s --partitions 2 --generate 10", H_KAFKA, topic);
    snprintf(yk, sizeof(yk), "%s/%s-k.yaml", dir, topic);
    snprintf(yr, sizeof(yr), "%s/%s-r.yaml", dir, key);
    write_pipeline(yk, KAFKA, topic, group, table, true);
    write_pipeline(yr, REDIS, key, group, table, false);
    int pk = h_sluice_start(&k, dir, yk, "dk");
    int pr = h_sluice_start(&r, dir, yr, "dr");
    /* Once the lag of both is known, every family has its samples. */
    int64_t end = h_now_ms() + 60000;
    for (;;) {
        for (int i = 0; i < 2; i++) {
            free(texts[i]);
            texts[i] = NULL;
            assert_int_equal(h_get(i ? pr : pk, "/metrics", &texts[i]), 200);
        }
        if (has_sample(texts[0], "sluice_source_lag_messages") &&
            has_sample(texts[1], "sluice_source_pending_messages"))
            break;
        assert_true(h_now_ms() < end);
        h_pause();
    }
    assert_true(check_names("deploy/grafana/sluice.json", texts, 2) >= 20);
    assert_true(check_names("deploy/prometheus/alerts.yaml", texts, 2) >= 5);
    free(texts[0]);
    free(texts[1]);
    h_sluice_stop(&r, 30000);
    h_sluice_stop(&k, 30000);

    char cmd[700], out[2048];
    if (h_shell("command -v promtool", out, sizeof(out)) != 0) {
        if (h_ci())
            fail_msg("promtool is missing: scripts/setup installs it "
                     "(Debian package prometheus)");
        printf("promtool not installed (scripts/setup installs it): rules "
               "not checked\n");
        return;
    }
    snprintf(cmd, sizeof(cmd),
             "promtool check rules %s/deploy/prometheus/alerts.yaml 2>&1",
             getenv("SLUICE_SOURCE_DIR"));
    if (h_shell(cmd, out, sizeof(out)) != 0)
        fail_msg("%s:\n%s", cmd, out);
    char rules[128];
    snprintf(rules, sizeof(rules), "%s/dashboard-rules.yaml", dir);
    assert_true(dashboard_as_rules(rules) >= 20);
    snprintf(cmd, sizeof(cmd), "promtool check rules %s 2>&1", rules);
    if (h_shell(cmd, out, sizeof(out)) != 0)
        fail_msg("a query of deploy/grafana/sluice.json does not parse: "
                 "%s:\n%s",
                 cmd, out);
}

static int setup(void **state)
{
    (void)state;
    return h_group_setup(H_NEED_PG | H_NEED_REDIS | H_NEED_KAFKA, dir,
                         sizeof(dir), sluice, sizeof(sluice), &mock);
}

static int teardown(void **state)
{
    (void)state;
    return h_group_teardown(&mock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_and_process),
        cmocka_unit_test(test_redis_lag),
        cmocka_unit_test(test_kafka_lag),
        cmocka_unit_test(test_dashboard_and_alerts),
    };
    if (getenv("SLUICE_TEST_FILTER")) /* e.g. "*redis*" */
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return h_status(cmocka_run_group_tests(tests, setup, teardown));
}
