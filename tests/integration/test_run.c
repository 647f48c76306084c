/*
 * `sluice run` end to end as an operator runs it: the built binary, real
 * Kafka, Redis and PostgreSQL (scripts/services start), mock-infer
 * started here.  10,000 messages land exactly once with mock-infer's
 * results; SIGTERM drains and a restart finishes the job; two replicas
 * share a group; /metrics is valid Prometheus text that agrees with the
 * rows; /readyz turns 503 during the drain; a bad pipeline exits 2.
 */
#include "harness.h"

#include <jansson.h>

#define COUNT 10000
#define LAND_MS 180000 /* deadline for every message to land */

enum kind { KAFKA, REDIS };

static struct h_mock mock;
static char dir[64];     /* this run's files */
static char sluice[512]; /* the binary under test */
static int have_servers; /* PostgreSQL, Redis and Kafka answer */

/* What a test pipeline varies. */
struct pipe {
    enum kind kind;    /* source */
    const char *name;  /* topic or stream */
    const char *group; /* consumer group */
    const char *table; /* results table */
    int latency_ms;    /* X-Mock-Latency-Ms on every call; 0: none */
    int threads;       /* workers */
    int inflight;      /* per worker */
    int queue;         /* queue capacity */
    int shutdown_ms;   /* shutdown_timeout_ms */
};

static void write_pipeline(const char *path, const struct pipe *p)
{
    char yaml[4096], src[512], hdr[128] = "", snk[512];

    h_sink_yaml(snk, sizeof(snk), p->table,
                "    batch_rows: 500\n    flush_ms: 20\n");

    if (p->kind == KAFKA)
        snprintf(src, sizeof(src),
                 "  kind: kafka\n"
                 "  kafka:\n"
                 "    brokers: %s\n"
                 "    topics: [%s]\n"
                 "    group: %s\n"
                 "    auto_offset_reset: earliest\n",
                 H_KAFKA, p->name, p->group);
    else
        snprintf(src, sizeof(src),
                 "  kind: redis-stream\n"
                 "  redis:\n"
                 "    url: redis://%s\n"
                 "    key: %s\n"
                 "    group: %s\n",
                 H_REDIS, p->name, p->group);
    if (p->latency_ms)
        snprintf(hdr, sizeof(hdr),
                 "    headers:\n      X-Mock-Latency-Ms: \"%d\"\n",
                 p->latency_ms);
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-run\n"
             "shutdown_timeout_ms: %d\n"
             "source:\n%s"
             "queue:\n  capacity: %d\n"
             "workers:\n  threads: %d\n  max_inflight: %d\n"
             "backends:\n"
             "  sentiment:\n"
             "    kind: http-json\n"
             "    url: %s/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /label\n%s"
             "  summary:\n"
             "    kind: http-json\n"
             "    url: %s/predict/summary\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /summary\n%s"
             "steps:\n"
             "  - name: analyse\n"
             "    backends: [sentiment, summary]\n"
             "%s"
             "http:\n  listen: 127.0.0.1:0\n",
             p->shutdown_ms ? p->shutdown_ms : 30000, src,
             p->queue ? p->queue : 1024, p->threads ? p->threads : 2,
             p->inflight ? p->inflight : 32, mock.url, hdr, mock.url, hdr, snk);
    h_write_file(path, yaml);
}

/* 'n' generated messages to topic 'name' (4 partitions) or stream 'name'. */
static void produce(enum kind kind, const char *name, int n)
{
    if (kind == KAFKA)
        h_produce("kafka://%s/%s --partitions 4 --generate %d", H_KAFKA, name,
                  n);
    else
        h_produce("redis://%s/%s --generate %d", H_REDIS, name, n);
}

/*
 * Every message has exactly one row, and every row holds what mock-infer
 * answers for its text: the sentiment rule for all rows, and a direct
 * call to mock-infer for 50 of them.
 */
static void check_rows(PGconn *db, const char *table)
{
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s", table), COUNT);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT (payload->>'seq')::int) "
                              "FROM %s",
                              table),
                     COUNT);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(*) FROM %s WHERE (payload->>'seq')"
                              "::int NOT BETWEEN 0 AND %d",
                              table, COUNT - 1),
                     0);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", table), 0);

    PGresult *res = h_pg_query(db,
                               "SELECT payload->>'text', results->>'sentiment',"
                               " results->>'summary' FROM %s ORDER BY "
                               "(payload->>'seq')::int",
                               table);
    assert_int_equal(PQntuples(res), COUNT);
    for (int i = 0; i < COUNT; i++) {
        const char *text = PQgetvalue(res, i, 0);
        if (strcmp(PQgetvalue(res, i, 1), h_mock_sentiment(text)))
            fail_msg("seq %d: sentiment '%s', mock-infer says '%s' for '%s'", i,
                     PQgetvalue(res, i, 1), h_mock_sentiment(text), text);
    }
    for (int i = 0; i < COUNT; i += COUNT / 50) {
        char url[128];
        struct h_reply rep;
        json_t *body = json_pack("{s:s}", "text", PQgetvalue(res, i, 0));
        char *req = json_dumps(body, JSON_COMPACT);
        const char *route[2] = {"sentiment", "summary"};
        const char *field[2] = {"label", "summary"};
        for (int k = 0; k < 2; k++) {
            snprintf(url, sizeof(url), "%s/predict/%s", mock.url, route[k]);
            h_http(url, req, NULL, &rep);
            assert_int_equal(rep.status, 200);
            json_t *j = json_loads(rep.body, 0, NULL);
            assert_non_null(j);
            assert_string_equal(json_string_value(json_object_get(j, field[k])),
                                PQgetvalue(res, i, 1 + k));
            json_decref(j);
            free(rep.body);
        }
        free(req);
        json_decref(body);
    }
    PQclear(res);
}

/* /metrics once everything landed: valid text, counters equal to rows. */
static void check_metrics(int port, enum kind kind, long long rows)
{
    int64_t end = h_now_ms() + 30000;
    char *text = NULL;

    /* Acks and commits trail durability a little: wait for them. */
    for (;;) {
        free(text);
        text = NULL;
        assert_int_equal(h_get(port, "/metrics", &text), 200);
        bool settled =
            h_prom_value(text, "sluice_messages_acked_total") == COUNT;
        if (kind == KAFKA)
            settled = settled &&
                      h_prom_sum(text, "sluice_kafka_committed_offset", NULL) ==
                          COUNT;
        if (settled || h_now_ms() > end)
            break;
        h_pause();
    }
    long samples = h_prom_check(text);
    if (samples <= 0)
        fail_msg("/metrics line %ld is not Prometheus text:\n%s", -samples,
                 text);
    assert_true(h_prom_value(text, "sluice_messages_processed_total") == rows);
    assert_true(h_prom_value(text, "sluice_messages_consumed_total") == COUNT);
    assert_true(h_prom_value(text, "sluice_messages_acked_total") == COUNT);
    assert_true(h_prom_value(text, "sluice_messages_failed_total") == 0);
    assert_true(h_prom_value(text, "sluice_sink_rows_written_total") == rows);
    assert_true(h_prom_value(text, "sluice_inflight") == 0);
    assert_true(h_prom_value(text, "sluice_queue_depth") == 0);
    assert_true(h_prom_value(text, "sluice_backend_requests_total{backend="
                                   "\"sentiment\"}") == COUNT);
    assert_true(h_prom_value(text, "sluice_backend_latency_seconds_count{"
                                   "backend=\"summary\"}") == COUNT);
    assert_true(h_prom_value(text, "sluice_backend_circuit_state{backend="
                                   "\"sentiment\"}") == 0);
    assert_true(h_prom_value(text, "sluice_sink_batch_rows_sum") == rows);
    if (kind == KAFKA) {
        assert_true(h_prom_sum(text, "sluice_kafka_committed_offset", NULL) ==
                    COUNT);
        assert_true(h_prom_sum(text, "sluice_kafka_lag", NULL) == 0);
        assert_true(h_prom_value(text, "sluice_kafka_partitions_assigned") ==
                    4);
    }
    print_message("/metrics: %ld samples, all valid\n", samples);
    free(text);
}

static void names(struct pipe *p, enum kind kind, const char *what, char *name,
                  char *group, char *table, size_t size)
{
    h_unique(name, size, what);
    for (char *c = name; *c; c++)
        if (*c == '_')
            *c = '-';
    h_unique(group, size, "g");
    h_unique(table, size, what);
    for (char *c = table; *c; c++)
        if (*c == '-')
            *c = '_';
    memset(p, 0, sizeof(*p));
    p->kind = kind;
    p->name = name;
    p->group = group;
    p->table = table;
}

/*
 * glibc's malloc arenas beyond the main one in process 'pid': each is an
 * anonymous heap at a 64 MiB boundary (HEAP_MAX_SIZE), its unused part
 * reserved PROT_NONE up to the next boundary.  sluice keeps to two
 * arenas (cmd/sluice/main.c: per-thread arenas each kept their thread's
 * peak, and the worker's RSS was their sum).
 */
static int malloc_arenas(pid_t pid)
{
    const unsigned long heap_max = 64ul << 20;
    unsigned long lo, hi, prev_lo = 0, prev_hi = 0, ino;
    char path[64], line[512], perms[8], prev_perms[8] = "";
    int n = 0, fields;

    snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        char name[256] = "";
        fields = sscanf(line, "%lx-%lx %7s %*s %*s %lu %255s", &lo, &hi, perms,
                        &ino, name);
        if (fields < 4)
            continue;
        bool anon = ino == 0 && !name[0];
        /* A heap grown to its whole 64 MiB has no reserve after it. */
        if (anon && !strcmp(perms, "rw-p") && lo % heap_max == 0 &&
            hi - lo == heap_max)
            n++;
        else if (anon && !strcmp(perms, "---p") && lo == prev_hi &&
                 !strcmp(prev_perms, "rw-p") && prev_lo % heap_max == 0 &&
                 hi - prev_lo == heap_max)
            n++;
        prev_lo = lo;
        prev_hi = hi;
        snprintf(prev_perms, sizeof(prev_perms), "%s", anon ? perms : "");
    }
    fclose(f);
    return n;
}

/* ---- the tests ---- */

static void to_pg(enum kind kind)
{
    char name[96], group[96], table[96], yaml[256];
    struct pipe p;
    struct h_proc proc;
    int64_t t0 = h_now_ms();

    names(&p, kind, kind == KAFKA ? "run_kafka" : "run_redis", name, group,
          table, sizeof(name));
    produce(kind, name, COUNT);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_pipeline(yaml, &p);
    int port = h_sluice_start(&proc, dir, yaml, "solo");
    PGconn *db = h_db();
    long long rows = h_wait_rows(db, table, COUNT, LAND_MS);
    int64_t landed = h_now_ms() - t0;
    if (rows != COUNT)
        h_dump_log(proc.log, 4000);
    assert_int_equal(rows, COUNT);
    check_metrics(port, kind, rows);
    /* Every thread has allocated by now: still two arenas (peak RSS). */
    int arenas = malloc_arenas(proc.pid);
    if (arenas > 1)
        fail_msg("sluice runs with %d malloc arenas besides the main one",
                 arenas);
    int64_t drain = h_sluice_stop(&proc, 30000);
    check_rows(db, table);
    PQfinish(db);
    print_message("%s: %d messages landed in %lld ms (produce included); "
                  "drain %lld ms\n",
                  kind == KAFKA ? "kafka" : "redis", COUNT, (long long)landed,
                  (long long)drain);
}

static void test_kafka_to_pg(void **state)
{
    (void)state;
    to_pg(KAFKA);
}

static void test_redis_to_pg(void **state)
{
    (void)state;
    to_pg(REDIS);
}

static void sigterm_restart(enum kind kind)
{
    char name[96], group[96], table[96], yaml[256];
    struct pipe p;
    struct h_proc proc;

    names(&p, kind, kind == KAFKA ? "restart_kafka" : "restart_redis", name,
          group, table, sizeof(name));
    p.latency_ms = 20; /* about 3,000 messages/s: SIGTERM lands mid-run */
    p.shutdown_ms = 15000;
    produce(kind, name, COUNT);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_pipeline(yaml, &p);
    h_sluice_start(&proc, dir, yaml, "first");
    PGconn *db = h_db();
    assert_true(h_wait_rows(db, table, 500, LAND_MS) >= 500);
    int64_t drain = h_sluice_stop(&proc, p.shutdown_ms);
    long long first = h_pg_int(db, "SELECT count(*) FROM %s", table);
    print_message("%s: SIGTERM after >= 500 rows: drained in %lld ms "
                  "(shutdown_timeout_ms %d), %lld rows\n",
                  kind == KAFKA ? "kafka" : "redis", (long long)drain,
                  p.shutdown_ms, first);
    assert_true(drain < p.shutdown_ms);
    assert_true(first < COUNT); /* it really stopped in the middle */
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT (payload->>'seq')::int) "
                              "FROM %s",
                              table),
                     first);

    /* The same replica again: it resumes where the commit stopped. */
    h_sluice_start(&proc, dir, yaml, "first");
    long long rows = h_wait_rows(db, table, COUNT, LAND_MS);
    if (rows != COUNT)
        h_dump_log(proc.log, 4000);
    assert_int_equal(rows, COUNT);
    h_sluice_stop(&proc, p.shutdown_ms);
    check_rows(db, table);
    PQfinish(db);
}

static void test_kafka_sigterm_restart(void **state)
{
    (void)state;
    sigterm_restart(KAFKA);
}

static void test_redis_sigterm_restart(void **state)
{
    (void)state;
    sigterm_restart(REDIS);
}

static void two_replicas(enum kind kind)
{
    char name[96], group[96], table[96], yaml[256];
    struct pipe p;
    struct h_proc a, b;

    names(&p, kind, kind == KAFKA ? "pair_kafka" : "pair_redis", name, group,
          table, sizeof(name));
    p.latency_ms = 10;
    if (kind == KAFKA)
        produce(kind, name, 0); /* the topic with its 4 partitions */
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_pipeline(yaml, &p);
    int pa = h_sluice_start(&a, dir, yaml, "replica-a");
    int pb = h_sluice_start(&b, dir, yaml, "replica-b");

    /* Both must be in the group before the messages arrive. */
    int64_t end = h_now_ms() + 60000;
    for (;;) {
        bool ready;
        if (kind == KAFKA) {
            double na = h_metric(pa, "sluice_kafka_partitions_assigned");
            double nb = h_metric(pb, "sluice_kafka_partitions_assigned");
            ready = na >= 1 && nb >= 1 && na + nb == 4;
        } else {
            ready = h_get(pa, "/readyz", NULL) == 200 &&
                    h_get(pb, "/readyz", NULL) == 200;
        }
        if (ready)
            break;
        if (h_now_ms() > end) {
            h_dump_log(a.log, 3000);
            h_dump_log(b.log, 3000);
            fail_msg("the replicas did not both join the group");
        }
        h_pause();
    }
    produce(kind, name, COUNT);
    PGconn *db = h_db();
    long long rows = h_wait_rows(db, table, COUNT, LAND_MS);
    assert_int_equal(rows, COUNT);
    h_sluice_stop(&a, 30000);
    h_sluice_stop(&b, 30000);
    long long na = h_pg_int(
        db, "SELECT count(*) FROM %s WHERE worker LIKE 'replica-a/%%'", table);
    long long nb = h_pg_int(
        db, "SELECT count(*) FROM %s WHERE worker LIKE 'replica-b/%%'", table);
    print_message("%s: replica-a %lld rows, replica-b %lld rows\n",
                  kind == KAFKA ? "kafka" : "redis", na, nb);
    assert_true(na > 0);
    assert_true(nb > 0);
    assert_int_equal(na + nb, COUNT);
    check_rows(db, table);
    PQfinish(db);
}

static void test_kafka_two_replicas(void **state)
{
    (void)state;
    two_replicas(KAFKA);
}

static void test_redis_two_replicas(void **state)
{
    (void)state;
    two_replicas(REDIS);
}

/*
 * A slow backend and a deep queue make the drain last seconds: /readyz
 * must say 503 while it runs, /metrics must stay valid, and the drain
 * must end with status 0 before shutdown_timeout_ms.
 */
static void test_readyz_during_drain(void **state)
{
    (void)state;
    char name[96], group[96], table[96], yaml[256];
    struct pipe p;
    struct h_proc proc;

    names(&p, REDIS, "drain_redis", name, group, table, sizeof(name));
    p.latency_ms = 200;
    p.threads = 1;
    p.inflight = 8; /* 40 messages/s */
    p.queue = 100;  /* about 2.5 s of work queued at SIGTERM */
    p.shutdown_ms = 20000;
    produce(REDIS, name, 1000);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    write_pipeline(yaml, &p);
    int port = h_sluice_start(&proc, dir, yaml, "drainer");
    PGconn *db = h_db();
    assert_true(h_wait_rows(db, table, 16, 60000) >= 16);
    assert_int_equal(h_get(port, "/readyz", NULL), 200);
    assert_int_equal(h_get(port, "/healthz", NULL), 200);
    char *text = NULL;
    assert_int_equal(h_get(port, "/metrics", &text), 200);
    long samples = h_prom_check(text);
    if (samples <= 0)
        fail_msg("/metrics line %ld is not Prometheus text", -samples);
    assert_true(h_prom_value(text, "sluice_inflight") > 0);
    free(text);

    int64_t t0 = h_now_ms();
    kill(proc.pid, SIGTERM);
    long st = 0;
    int64_t end = t0 + p.shutdown_ms;
    while (!h_exited(&proc) && h_now_ms() < end &&
           (st = h_get(port, "/readyz", NULL)) != 503)
        h_pause();
    int64_t seen = h_now_ms() - t0;
    assert_int_equal(st, 503);
    assert_true(proc.pid > 0); /* still draining when it said 503 */
    assert_true(h_metric(port, "sluice_draining") == 1);
    assert_true(h_wait_exit(&proc, p.shutdown_ms + 10000));
    int64_t drain = h_now_ms() - t0;
    print_message("readyz 503 after %lld ms; drain took %lld ms\n",
                  (long long)seen, (long long)drain);
    assert_int_equal(proc.status, 0);
    assert_true(drain < p.shutdown_ms);
    long long rows = h_pg_int(db, "SELECT count(*) FROM %s", table);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT (payload->>'seq')::int) "
                              "FROM %s",
                              table),
                     rows);
    assert_true(rows < 1000);
    PQfinish(db);
}

static void test_bad_pipeline(void **state)
{
    (void)state;
    char path[256], cmd[2048], check_out[4096], run_out[4096];

    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    h_write_file(path, "version: 1\n"
                       "name: Not Valid\n"
                       "source:\n"
                       "  kind: kafkaa\n"
                       "workers:\n"
                       "  threads: -3\n");
    snprintf(cmd, sizeof(cmd), "%s check %s 2>&1", sluice, path);
    int check_rc = h_shell(cmd, check_out, sizeof(check_out));
    snprintf(cmd, sizeof(cmd), "%s run %s 2>&1", sluice, path);
    int run_rc = h_shell(cmd, run_out, sizeof(run_out));
    print_message("sluice run bad.yaml: exit %d\n%s", run_rc, run_out);
    assert_int_equal(check_rc, 2);
    assert_int_equal(run_rc, 2);
    assert_non_null(strstr(run_out, "bad.yaml:"));
    assert_string_equal(run_out, check_out);

    snprintf(cmd, sizeof(cmd), "%s run %s/missing.yaml 2>&1", sluice, dir);
    run_rc = h_shell(cmd, run_out, sizeof(run_out));
    assert_int_equal(run_rc, 2);
    assert_non_null(strstr(run_out, "missing.yaml"));

    snprintf(cmd, sizeof(cmd), "%s run --help", sluice);
    assert_int_equal(h_shell(cmd, run_out, sizeof(run_out)), 0);
    assert_non_null(strstr(run_out, "Usage: sluice run PIPELINE.yaml"));
    snprintf(cmd, sizeof(cmd), "%s run 2>&1", sluice);
    assert_int_equal(h_shell(cmd, run_out, sizeof(run_out)), 2);
}

/* ---- a source that cannot redeliver, PostgreSQL unreachable ---- */

/*
 * A pipeline reading 'source' (YAML lines under source:) whose backend
 * refuses connections (each message becomes a dead letter at once) and
 * whose PostgreSQL does not answer (nothing ever becomes durable).
 */
static void write_lossy_pipeline(const char *path, const char *source,
                                 int shutdown_ms)
{
    char yaml[2048];

    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-lossy\n"
             "shutdown_timeout_ms: %d\n"
             "source:\n%s"
             "backends:\n"
             "  down:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:1/predict\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    retry:\n      max_attempts: 1\n"
             "steps:\n"
             "  - name: analyse\n"
             "    backends: [down]\n"
             "sink:\n"
             "  postgres:\n"
             "    dsn: host=127.0.0.1 port=1 dbname=sluice user=postgres\n"
             "    table: never_written\n"
             "http:\n  listen: 127.0.0.1:0\n",
             shutdown_ms, source);
    h_write_file(path, yaml);
}

/* Wait until the workers handed 3 dead letters to the (stuck) sink. */
static void wait_three_handed(struct h_proc *proc, int port)
{
    int64_t end = h_now_ms() + 30000;

    while (h_metric(port, "sluice_messages_failed_total") != 3) {
        if (h_exited(proc) || h_now_ms() > end) {
            h_dump_log(proc->log, 4000);
            fail_msg("the 3 messages were not consumed and processed");
        }
        h_pause();
    }
}

/*
 * SIGTERM (or the end of the input, then SIGTERM) with 3 messages that
 * never became durable: exit status 3, the log says 3 messages are lost,
 * and the summary counts no dead letter (none was written).  With
 * 'twice', a second SIGTERM once the drain began stops at once, long
 * before shutdown_timeout_ms ('shutdown_ms').
 */
static void expect_lost_three(struct h_proc *proc, int port, const char *kind,
                              int shutdown_ms, bool twice)
{
    char want[160];
    int64_t t0 = h_now_ms();

    kill(proc->pid, SIGTERM);
    if (twice) {
        /* (/readyz says 503 already: PostgreSQL is not connected.) */
        while (h_metric(port, "sluice_draining") != 1 && !h_exited(proc))
            h_pause();
        t0 = h_now_ms();
        kill(proc->pid, SIGTERM);
    }
    if (!h_wait_exit(proc, shutdown_ms + 10000)) {
        h_dump_log(proc->log, 4000);
        h_kill(proc);
        fail_msg("sluice did not exit after SIGTERM");
    }
    int64_t ms = h_now_ms() - t0;
    char *log = h_read_file(proc->log);
    assert_non_null(log);
    print_message("%s: exit %d %lld ms after the %s SIGTERM\n", kind,
                  proc->status, (long long)ms, twice ? "second" : "first");
    if (proc->status != 3)
        h_dump_log(proc->log, 4000);
    assert_int_equal(proc->status, 3);
    if (twice)
        assert_true(ms < shutdown_ms / 2);
    else
        assert_true(ms >= shutdown_ms); /* it waited for PostgreSQL */
    snprintf(want, sizeof(want),
             "3 messages were not made durable and are lost: a %s source "
             "cannot redeliver them (exit status 3)",
             kind);
    assert_non_null(strstr(log, want));
    assert_non_null(strstr(log, "stopped: 3 consumed, 0 processed, 0 "
                                "dead-lettered, 0 acked, 3 not durable "
                                "(lost)"));
    assert_null(strstr(log, "will be redelivered"));
    free(log);
}

static void stdin_pg_down(bool twice)
{
    char yaml[256], bin[512], log[256];
    struct h_proc proc;
    int fds[2];
    int shutdown_ms = twice ? 10000 : 2000;

    snprintf(yaml, sizeof(yaml), "%s/lossy-stdin-%d.yaml", dir, twice);
    write_lossy_pipeline(yaml, "  kind: stdin\n", shutdown_ms);
    snprintf(bin, sizeof(bin), "%s/sluice", h_bindir());
    snprintf(log, sizeof(log), "%s/lossy-stdin-%d.log", dir, twice);
    char *argv[] = {bin,     "run",      yaml,          "--replica-id",
                    "lossy", "--listen", "127.0.0.1:0", NULL};
    /* The child's standard input is a pipe that stays open. */
    assert_int_equal(pipe(fds), 0);
    int saved = dup(STDIN_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[0], STDIN_FILENO) >= 0);
    h_spawn(&proc, log, argv);
    assert_true(dup2(saved, STDIN_FILENO) >= 0);
    close(saved);
    close(fds[0]);
    const char *lines = "{\"text\": \"a\"}\n{\"text\": \"b\"}\n"
                        "{\"text\": \"c\"}\n";
    assert_int_equal(write(fds[1], lines, strlen(lines)),
                     (ssize_t)strlen(lines));
    int port = h_wait_listen(&proc, 30000);
    if (!port) {
        h_dump_log(log, 4000);
        fail_msg("sluice did not start");
    }
    wait_three_handed(&proc, port);
    /* stdin is still open: the source must not hold the drain. */
    expect_lost_three(&proc, port, "stdin", shutdown_ms, twice);
    close(fds[1]);
}

static void test_stdin_pg_down_sigterm(void **state)
{
    (void)state;
    stdin_pg_down(false);
}

static void test_stdin_pg_down_second_sigterm(void **state)
{
    (void)state;
    stdin_pg_down(true);
}

static void test_file_pg_down_end_of_input(void **state)
{
    (void)state;
    char yaml[256], input[256], src[512];
    struct h_proc proc;

    snprintf(input, sizeof(input), "%s/lossy.jsonl", dir);
    h_write_file(input, "{\"text\": \"a\"}\n{\"text\": \"b\"}\n"
                        "{\"text\": \"c\"}\n");
    snprintf(src, sizeof(src), "  kind: file\n  file:\n    path: %s\n", input);
    snprintf(yaml, sizeof(yaml), "%s/lossy-file.yaml", dir);
    write_lossy_pipeline(yaml, src, 2000);
    int port = h_sluice_start(&proc, dir, yaml, "lossy-file");
    wait_three_handed(&proc, port);
    /* The input is at its end: the worker waits for PostgreSQL (it
     * neither exits 0 nor drops the messages) until told to stop. */
    int64_t end = h_now_ms() + 30000;
    for (;;) {
        char *log = h_read_file(proc.log);
        bool said = log && strstr(log, "input finished; waiting for 3 "
                                       "messages to become durable");
        free(log);
        if (said)
            break;
        if (h_exited(&proc) || h_now_ms() > end) {
            h_dump_log(proc.log, 4000);
            fail_msg("no 'input finished; waiting' line");
        }
        h_pause();
    }
    assert_false(h_exited(&proc));
    expect_lost_three(&proc, port, "file", 2000, false);
}

/*
 * A source that fails while running (a "file" that is a directory): exit
 * 1, and the cause is the last line, after the summary.
 */
static void test_source_fatal_cause_last(void **state)
{
    (void)state;
    char yaml[256], src[256], cmd[1024], out[8192], want[256];

    snprintf(src, sizeof(src), "  kind: file\n  file:\n    path: %s\n", dir);
    snprintf(yaml, sizeof(yaml), "%s/fatal-source.yaml", dir);
    write_lossy_pipeline(yaml, src, 2000);
    snprintf(cmd, sizeof(cmd), "%s run %s --listen 127.0.0.1:0 2>&1", sluice,
             yaml);
    int rc = h_shell(cmd, out, sizeof(out));
    print_message("exit %d:\n%s", rc, out);
    assert_int_equal(rc, 1);
    const char *last = h_last_line(out);
    snprintf(want, sizeof(want),
             "\"level\":\"error\",\"component\":\"run\",\"message\":\"%s: "
             "cannot read: Is a directory\"}",
             dir);
    if (!strstr(last, want))
        fail_msg("last line is not the cause: %s", last);
    assert_non_null(strstr(out, "stopped: 0 consumed"));
}

static int setup(void **state)
{
    (void)state;
    int rc = h_group_setup(H_NEED_PG | H_NEED_REDIS | H_NEED_KAFKA, dir,
                           sizeof(dir), sluice, sizeof(sluice), &mock);
    have_servers = 1;
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    return h_group_teardown(&mock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_pipeline),
        cmocka_unit_test(test_kafka_to_pg),
        cmocka_unit_test(test_redis_to_pg),
        cmocka_unit_test(test_kafka_sigterm_restart),
        cmocka_unit_test(test_redis_sigterm_restart),
        cmocka_unit_test(test_kafka_two_replicas),
        cmocka_unit_test(test_redis_two_replicas),
        cmocka_unit_test(test_readyz_during_drain),
        cmocka_unit_test(test_stdin_pg_down_sigterm),
        cmocka_unit_test(test_stdin_pg_down_second_sigterm),
        cmocka_unit_test(test_file_pg_down_end_of_input),
        cmocka_unit_test(test_source_fatal_cause_last),
    };
    if (getenv("SLUICE_TEST_FILTER")) /* e.g. "*redis*" */
        cmocka_set_test_filter(getenv("SLUICE_TEST_FILTER"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
