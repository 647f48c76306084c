/*
 * Scale-out as an operator runs it (scripts/cluster): three replicas of a
 * Kafka pipeline share a 6-partition topic of 60,000 messages; one is
 * SIGKILLed mid-way and another started; every message lands exactly once
 * and the survivors drain and exit 0.  Needs `scripts/services start kafka
 * postgres`; prints rows/s.
 */
#include "harness.h"

#include "clock.h"

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MESSAGES 60000
#define KILL_AFTER 20000   /* rows landed before a replica is killed */
#define DEADLINE_MS 300000 /* the whole scenario */

static char srcdir[1024]; /* the repository */
static char bindir[1024]; /* sluice and mock-infer */
static char tmpdir[256];  /* pipeline file and cluster state */
static char name[96];     /* topic, group and table */
static int cluster_up;    /* scripts/cluster up ran */

static const char *env_or(const char *var, const char *fallback)
{
    const char *v = getenv(var);
    return v && *v ? v : fallback;
}

/* Run 'cmd' through the shell, its output (stdout and stderr) echoed
 * indented; returns its exit status (128: killed by a signal). */
static int run(const char *cmd)
{
    char full[4200], line[1024];
    FILE *fp;

    if (strlen(cmd) > 4096)
        fail_msg("command too long: %.80s...", cmd);
    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    fp = popen(full, "r");
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        print_message("    %s", line);
    int st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* Rows landed so far; -1 before the table exists. */
static long long rows(PGconn *pg)
{
    return h_pg_int(pg, "SELECT count(*) FROM %s", name);
}

/* A worker that exited although nobody stopped it (scripts/cluster writes
 * worker-I.rc when worker I exits, and worker-I.killed for `kill I`). */
static int exited_worker(void)
{
    char path[512];
    for (int i = 1; i <= 8; i++) {
        snprintf(path, sizeof(path), "%s/cluster/worker-%d.rc", tmpdir, i);
        if (access(path, F_OK) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/cluster/worker-%d.killed", tmpdir, i);
        if (access(path, F_OK) != 0)
            return i;
    }
    return 0;
}

/* Poll until 'want' rows landed; the rows seen (less on the deadline).
 * A worker that dies on its own fails the test at once. */
static long long wait_rows(PGconn *pg, long long want, int64_t deadline)
{
    long long n = 0;
    int dead;

    while ((n = rows(pg)) < want && sl_mono_ms() < deadline) {
        if ((dead = exited_worker())) {
            char cmd[1024];
            snprintf(
                cmd, sizeof(cmd),
                "echo worker-%d exit status: $(cat '%s/cluster/worker-%d.rc'); "
                "tail -n 15 '%s/cluster/worker-%d.log'",
                dead, tmpdir, dead, tmpdir, dead);
            run(cmd);
            fail_msg("worker-%d exited by itself with %lld rows landed", dead,
                     n);
        }
        h_pause();
    }
    return n;
}

static int setup(void **state)
{
    (void)state;
    snprintf(srcdir, sizeof(srcdir), "%s", env_or("SLUICE_SOURCE_DIR", "."));
    snprintf(bindir, sizeof(bindir), "%s", h_bindir());
    h_unique(name, sizeof(name), "deploy_scale");
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sluice-deploy-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    return 0;
}

/* Delete this test's topic (best effort: a leftover is only disk space). */
static void delete_topic(void)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "bootstrap.servers",
                      env_or("SLUICE_KAFKA_BROKERS", H_KAFKA), errstr,
                      sizeof(errstr));
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr))))
        return;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(name);
    rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 10000);
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_DeleteTopic_destroy(dt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* Whatever happened: stop the cluster, drop the tables and the topic,
 * remove tmpdir. */
static int teardown(void **state)
{
    (void)state;
    char cmd[2048];
    PGconn *pg;

    if (cluster_up) {
        snprintf(cmd, sizeof(cmd), "'%s/scripts/cluster' down", srcdir);
        run(cmd);
        cluster_up = 0;
    }
    pg = PQconnectdb(env_or("SLUICE_PG_DSN", H_PG_DSN));
    if (PQstatus(pg) == CONNECTION_OK) {
        snprintf(cmd, sizeof(cmd), "DROP TABLE IF EXISTS %s, %s_dead", name,
                 name);
        PQclear(PQexec(pg, cmd));
    }
    PQfinish(pg);
    delete_topic();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_scale_out_with_a_crash(void **state)
{
    (void)state;
    const char *brokers = env_or("SLUICE_KAFKA_BROKERS", H_KAFKA);
    char pipeline[512], cmd[4096];
    int64_t t0, deadline = sl_mono_ms() + DEADLINE_MS;
    PGconn *pg = PQconnectdb(env_or("SLUICE_PG_DSN", H_PG_DSN));

    if (PQstatus(pg) != CONNECTION_OK)
        fail_msg("postgres: %s(scripts/services start postgres)",
                 PQerrorMessage(pg));

    /* The same endpoints for the workers as for this test. */
    setenv("PG_DSN", env_or("SLUICE_PG_DSN", H_PG_DSN), 1);
    setenv("KAFKA_BROKERS", brokers, 1);
    setenv("KAFKA_GROUP", name, 1);
    setenv("SLUICE_LOG_LEVEL", "info", 1);
    snprintf(cmd, sizeof(cmd), "%s/cluster", tmpdir);
    setenv("SLUICE_CLUSTER_DIR", cmd, 1);
    snprintf(pipeline, sizeof(pipeline), "%s/pipeline.yaml", tmpdir);
    /* A short Kafka session, so that the killed replica's partitions move
     * on within seconds. */
    h_review_pipeline(srcdir, pipeline, name,
                      "    properties:\n"
                      "      session.timeout.ms: 6000\n"
                      "      heartbeat.interval.ms: 1000\n");

    print_message("producing %d messages to kafka://%s/%s (6 partitions)\n",
                  MESSAGES, brokers, name);
    snprintf(cmd, sizeof(cmd),
             "'%s/sluice' produce 'kafka://%s/%s' --generate %d "
             "--partitions 6",
             bindir, brokers, name, MESSAGES);
    assert_int_equal(run(cmd), 0);

    t0 = sl_mono_ms();
    snprintf(cmd, sizeof(cmd),
             "'%s/scripts/cluster' up --workers 3 --pipeline '%s' --bin '%s' "
             "--mock-port 0 --base-port 0 --no-services",
             srcdir, pipeline, bindir);
    cluster_up = 1;
    assert_int_equal(run(cmd), 0);

    long long n = wait_rows(pg, KILL_AFTER, deadline);
    if (n < KILL_AFTER)
        fail_msg("only %lld rows after %lld ms (wanted %d before the kill); "
                 "logs in %s/cluster",
                 n, (long long)(sl_mono_ms() - t0), KILL_AFTER, tmpdir);
    int64_t before = sl_mono_ms() - t0;
    print_message("%lld rows after %.1f s (%.0f rows/s): SIGKILL worker-2, "
                  "start worker-4\n",
                  n, (double)before / 1000,
                  (double)n * 1000 / (double)(before ? before : 1));
    snprintf(cmd, sizeof(cmd), "'%s/scripts/cluster' kill 2", srcdir);
    assert_int_equal(run(cmd), 0);
    snprintf(cmd, sizeof(cmd), "'%s/scripts/cluster' start-worker 4", srcdir);
    assert_int_equal(run(cmd), 0);

    n = wait_rows(pg, MESSAGES, deadline);
    int64_t took = sl_mono_ms() - t0;
    if (n < MESSAGES)
        fail_msg("%lld of %d rows before the deadline; logs in %s/cluster", n,
                 MESSAGES, tmpdir);
    print_message("%d rows in %.1f s: %.0f rows/s with 3 replicas, one "
                  "killed and replaced\n",
                  MESSAGES, (double)took / 1000,
                  (double)MESSAGES * 1000 / (double)(took ? took : 1));

    /* The survivors drain and exit 0 (the killed one is reported). */
    snprintf(cmd, sizeof(cmd), "'%s/scripts/cluster' down", srcdir);
    cluster_up = 0;
    assert_int_equal(run(cmd), 0);

    long long distinct =
        h_pg_int(pg, "SELECT count(DISTINCT payload->>'seq') FROM %s", name);
    long long dead = h_pg_int(pg, "SELECT count(*) FROM %s_dead", name);
    long long writers = h_pg_int(
        pg, "SELECT count(DISTINCT split_part(worker, '/', 1)) FROM %s", name);
    n = rows(pg);
    print_message("rows %lld, distinct messages %lld, dead letters %lld, "
                  "replicas that wrote rows %lld\n",
                  n, distinct, dead, writers);
    assert_int_equal(n, MESSAGES);
    assert_int_equal(distinct, MESSAGES);
    assert_int_equal(dead, 0);
    assert_true(writers >= 2);
    PQfinish(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_scale_out_with_a_crash, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
