/*
 * Retries, timeouts and the breaker against a real model server that fails
 * mid-stream: our VADER server (scripts/models_server.py, started here on
 * its own port) is first frozen (SIGSTOP: requests time out), then killed
 * (SIGKILL: connections reset and refused) and started again on the same
 * port while sluice runs.  With retries that outlast the outage every
 * message lands exactly once as a row with VADER's label; with a breaker,
 * the calls it refuses are dead letters and it closes again after the
 * restart.  Nothing lost, nothing doubled.
 */
#include "models.h"

#define GENERATED 2000 /* plus M_EXTRA hand-written texts */
#define TIMEOUT_MS 1000
#define LAND_MS 120000
#define PHASE_MS 60000 /* deadline of each wait below */

static char dir[64];

struct vader {
    struct h_proc proc; /* the server */
    char port_file[128];
    int port; /* 0: any, then the one it bound */
};

/*
 * Start the server on v->port (0: a free one) and wait until it writes
 * its port file.  A restart on the same port may find it briefly held (a
 * client's ephemeral port in TIME_WAIT): it tries again until the deadline.
 */
static void vader_start(struct vader *v)
{
    char script[1024], port[16], log[128];
    int64_t end = h_now_ms() + PHASE_MS;

    snprintf(script, sizeof(script), "%s/scripts/models_server.py", m_srcdir());
    snprintf(v->port_file, sizeof(v->port_file), "%s/vader.port", dir);
    snprintf(log, sizeof(log), "%s/vader.log", dir);
    for (;;) {
        unlink(v->port_file);
        snprintf(port, sizeof(port), "%d", v->port);
        char *argv[] = {
            (char *)m_python(), script,     "--port",    port, "--port-file",
            v->port_file,       "--models", "sentiment", NULL};
        h_spawn(&v->proc, log, argv);
        for (;;) {
            FILE *f = fopen(v->port_file, "r");
            int p = 0;
            if (f) {
                if (fscanf(f, "%d", &p) != 1)
                    p = 0;
                fclose(f);
            }
            if (p > 0) {
                v->port = p;
                return;
            }
            if (h_exited(&v->proc) || h_now_ms() > end)
                break;
            h_pause();
        }
        if (h_now_ms() > end) {
            h_dump_log(log, 3000);
            h_kill(&v->proc);
            fail_msg("the VADER server did not start on port %d", v->port);
        }
        h_pause();
    }
}

/* Wait until 'series' of sluice's /metrics is at least 'want'. */
static double wait_metric(int port, const char *series, double want)
{
    int64_t end = h_now_ms() + PHASE_MS;
    double v;

    while (!((v = h_metric(port, series)) >= want)) {
        if (h_now_ms() > end)
            fail_msg("%s stayed at %g (waited for %g)", series, v, want);
        h_pause();
    }
    return v;
}

static long long rows(PGconn *db, const char *table)
{
    return h_pg_int(db, "SELECT count(*) FROM %s", table);
}

static void test_stop_and_restart_mid_stream(void **state)
{
    (void)state;
    char stream[96], group[112], table[96], yaml[256], backends[1024];
    struct h_proc proc;
    struct vader v = {0};
    int64_t t0 = h_now_ms();

    vader_start(&v);
    m_names("models_restart", stream, group, table, sizeof(stream));
    int n = m_produce(dir, stream, GENERATED);
    /* Retries outlast any outage below; the breaker never fails a call. */
    snprintf(backends, sizeof(backends),
             "  sentiment:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:%d/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /label\n"
             "    timeout_ms: %d\n"
             "    connect_timeout_ms: %d\n"
             "    retry: {max_attempts: 100, base_ms: 50, max_ms: 500}\n"
             "    breaker: {failures: 0}\n",
             v.port, TIMEOUT_MS, TIMEOUT_MS);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    m_write_pipeline(yaml, stream, group, backends, "sentiment", 100000, table);
    int port = h_sluice_start(&proc, dir, yaml, "restart");
    PGconn *db = h_db();
    const char *timeouts = "sluice_backend_errors_total{backend=\"sentiment\","
                           "class=\"timeout\"}";
    const char *connects = "sluice_backend_errors_total{backend=\"sentiment\","
                           "class=\"connect\"}";

    /* Frozen: requests in flight and new ones time out, and are retried. */
    assert_true(h_wait_rows(db, table, n / 10, PHASE_MS) >= n / 10);
    kill(v.proc.pid, SIGSTOP);
    long long at_stop = rows(db, table);
    wait_metric(port, timeouts, 1);
    kill(v.proc.pid, SIGCONT);

    /* Killed: resets and refused connections, retried until it is back. */
    assert_true(h_wait_rows(db, table, n / 2, PHASE_MS) >= n / 2);
    h_kill(&v.proc);
    long long at_kill = rows(db, table);
    double refused = wait_metric(port, connects, 1);
    wait_metric(port, connects, refused + 3); /* a few retries while down */
    vader_start(&v);

    long long got = m_wait_done(db, table, n, LAND_MS);
    int64_t landed = h_now_ms() - t0;
    if (got != n)
        h_dump_log(proc.log, 4000);
    assert_int_equal(got, n);
    double retries =
        h_metric(port, "sluice_backend_retries_total{backend=\"sentiment\"}");
    double nt = h_metric(port, timeouts), nc = h_metric(port, connects);
    h_sluice_stop(&proc, 30000);
    h_kill(&v.proc);
    print_message("frozen at %lld rows, killed at %lld of %d; %.0f timeouts, "
                  "%.0f connect errors, %.0f retries; all landed in %lld ms\n",
                  at_stop, at_kill, n, nt, nc, retries, (long long)landed);
    assert_true(at_stop < n && at_kill < n); /* really mid-stream */
    assert_true(retries >= nt + nc);
    m_check_once(db, table, n);

    /* And each row holds the real answer, also from the restarted server. */
    PGresult *res = h_pg_query(db,
                               "SELECT payload->>'seq', payload->>'text', "
                               "results->>'sentiment' FROM %s ORDER BY "
                               "(payload->>'seq')::int",
                               table);
    json_t *want = m_expect(dir, "sentiment", res);
    for (int i = 0; i < n; i++) {
        const char *label = json_string_value(
            json_object_get(json_array_get(want, (size_t)i), "label"));
        if (strcmp(PQgetvalue(res, i, 2), label))
            fail_msg("seq %s: row says %s, VADER says %s for '%s'",
                     PQgetvalue(res, i, 0), PQgetvalue(res, i, 2), label,
                     PQgetvalue(res, i, 1));
    }
    json_decref(want);
    PQclear(res);
    PQfinish(db);
}

/* Every seq 0..n-1 is once in 'table' or its dead letters, not twice. */
#define BOTH                                                                   \
    "SELECT (payload->>'seq')::int s FROM %s UNION ALL "                       \
    "SELECT (convert_from(payload, 'UTF8')::jsonb->>'seq')::int FROM %s_dead"
static void check_rows_or_dead_once(PGconn *db, const char *table, int n)
{
    char sql[512];

    snprintf(sql, sizeof(sql), BOTH, table, table);
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM (%s) a", sql), n);
    assert_int_equal(h_pg_int(db,
                              "SELECT count(DISTINCT s) FROM (%s) a WHERE s "
                              "BETWEEN 0 AND %d",
                              sql, n - 1),
                     n);
}

/*
 * The breaker against the same server killed mid-stream: it opens, the
 * calls it refuses are dead-lettered at once with the reason (none lost:
 * each message is a row or a dead letter, once); after the restart it goes
 * half-open, one probe closes it, and every later message is a row.
 */
static void test_breaker_opens_and_closes(void **state)
{
    (void)state;
    char stream[96], group[112], table[96], yaml[256], backends[1024];
    struct h_proc proc;
    struct vader v = {0};
    const char *circuit = "sluice_backend_circuit_state{backend=\"sentiment\"}";

    vader_start(&v);
    m_names("models_breaker", stream, group, table, sizeof(stream));
    int n1 = m_produce(dir, stream, 1000);
    snprintf(backends, sizeof(backends),
             "  sentiment:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:%d/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /label\n"
             "    timeout_ms: %d\n"
             "    connect_timeout_ms: %d\n"
             "    retry: {max_attempts: 2, base_ms: 50, max_ms: 100}\n"
             "    breaker: {failures: 5, open_ms: 1000, half_open_probes: 1}\n",
             v.port, TIMEOUT_MS, TIMEOUT_MS);
    snprintf(yaml, sizeof(yaml), "%s/%s.yaml", dir, table);
    m_write_pipeline(yaml, stream, group, backends, "sentiment", 30000, table);
    int port = h_sluice_start(&proc, dir, yaml, "breaker");
    PGconn *db = h_db();

    /* Killed: the breaker opens and fails the rest of the stream fast. */
    assert_true(h_wait_rows(db, table, n1 / 10, PHASE_MS) >= n1 / 10);
    h_kill(&v.proc);
    long long at_kill = rows(db, table);
    wait_metric(port, circuit, 1);
    assert_int_equal(m_wait_done(db, table, n1, LAND_MS), n1);
    long long dead1 = h_pg_int(db, "SELECT count(*) FROM %s_dead", table);
    long long refused = h_pg_int(db,
                                 "SELECT count(*) FROM %s_dead WHERE error "
                                 "LIKE '%%circuit breaker%%is open%%'",
                                 table);
    double fast = h_metric(port, "sluice_backend_errors_total{backend="
                                 "\"sentiment\",class=\"breaker_open\"}");

    /* Back: half-open after open_ms, one probe closes it. */
    vader_start(&v);
    wait_metric(port, circuit, 2);
    m_produce_more(dir, stream, n1, 1);
    assert_int_equal(m_wait_done(db, table, n1 + 1, PHASE_MS), n1 + 1);
    assert_true(h_metric(port, circuit) == 0);
    int n = n1 + 1 + 500;
    m_produce_more(dir, stream, n1 + 1, 500);
    assert_int_equal(m_wait_done(db, table, n, LAND_MS), n);
    assert_true(h_metric(port, circuit) == 0);
    h_sluice_stop(&proc, 30000);
    h_kill(&v.proc);

    long long rows_all = rows(db, table);
    print_message("killed at %lld rows of %d: breaker open, %lld dead letters "
                  "(%lld refused by the breaker, %.0f calls failed fast); "
                  "restarted: closed after one probe, %lld rows in all\n",
                  at_kill, n1, dead1, refused, fast, rows_all);
    assert_true(at_kill < n1);
    assert_true(dead1 > 0 && refused > 0 && fast >= (double)refused);
    /* Nothing after the restart was dead-lettered. */
    assert_int_equal(h_pg_int(db, "SELECT count(*) FROM %s_dead", table),
                     dead1);
    assert_int_equal(rows_all + dead1, n);
    check_rows_or_dead_once(db, table, n);
    PQfinish(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stop_and_restart_mid_stream),
        cmocka_unit_test(test_breaker_opens_and_closes),
    };
    int rc;

    m_require_common();
    h_tmpdir(dir, sizeof(dir));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
