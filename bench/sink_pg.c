/*
 * Benchmark of the PostgreSQL sink: rows/s through sl_sink_pg at batch
 * sizes 1, 100 and 1000, beside a plain COPY FROM STDIN of the same rows
 * into the same kind of table, and beside the other candidate write form
 * (COPY into a temp table, then INSERT ... SELECT ... ON CONFLICT).
 * Prints a markdown table.  Needs a server: SLUICE_PG_DSN (default
 * host=127.0.0.1 port=55432 dbname=sluice user=postgres); rows with -n.
 */
#include "clock.h"
#include "log.h"
#include "msg.h"
#include "row.h"
#include "sink_pg.h"

#include <jansson.h>
#include <libpq-fe.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PG_DSN "host=127.0.0.1 port=55432 dbname=sluice user=postgres"

static const char *dsn;
static long n_rows = 100000;

struct acks {
    pthread_mutex_t mu; /* guards n */
    long n;             /* messages acked durable */
};

static void on_ack(void *arg, struct sl_msg *msg, int err)
{
    struct acks *a = arg;

    if (err == 0) {
        pthread_mutex_lock(&a->mu);
        a->n++;
        pthread_mutex_unlock(&a->mu);
    }
    sl_msg_destroy(msg);
}

static int fmt_payload(char *buf, size_t size, long i)
{
    return snprintf(buf, size,
                    "{\"text\":\"review number %ld: the product works as "
                    "described\",\"user\":{\"id\":%ld}}",
                    i, i % 977);
}

static PGconn *db(void)
{
    PGconn *c = PQconnectdb(dsn);

    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "bench: cannot connect: %s", PQerrorMessage(c));
        exit(1);
    }
    return c;
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);

    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
}

/* Rows/s through the sink at 'batch' rows per transaction. */
static double run_sink(int batch, long n, const char *table)
{
    struct sl_sink_pg_conf conf = {0};
    struct acks a = {PTHREAD_MUTEX_INITIALIZER, 0};
    struct sl_sink_pg *sink;
    struct sl_row **rows;
    char errstr[256], payload[256], key[32], dead[80];
    int64_t t0, t1;
    long i, done;

    snprintf(dead, sizeof(dead), "%s_dl", table);
    conf.dsn = dsn;
    conf.table = table;
    conf.dead_letter_table = dead;
    conf.create_table = 1;
    conf.batch_rows = batch;
    conf.flush_ms = 5;
    conf.max_batches_inflight = 8;
    conf.backlog_rows = 20000;
    sink = sl_sink_pg_new(&conf, on_ack, &a, errstr, sizeof(errstr));
    if (!sink) {
        fprintf(stderr, "bench: %s\n", errstr);
        exit(1);
    }
    /* Warm up: connect and create the tables before timing. */
    for (;;) {
        struct sl_sink_pg_stats st;

        sl_sink_pg_stats(sink, &st);
        if (st.state == SL_SINK_PG_READY)
            break;
        usleep(1000);
    }
    /* Rows are built before timing: workers build them in parallel. */
    rows = calloc((size_t)n, sizeof(*rows));
    for (i = 0; i < n; i++) {
        struct sl_msg *msg = NULL;
        int pl = fmt_payload(payload, sizeof(payload), i);
        int kl = snprintf(key, sizeof(key), "k%ld", i);

        sl_msg_new(&msg, SL_SOURCE_KAFKA, "reviews", 0, i, NULL, key,
                   (size_t)kl, payload, (size_t)pl, NULL, NULL, 0);
        rows[i] = sl_row_new_result(
            msg, json_pack("{s:s,s:f}", "label", "positive", "score", 0.93),
            NULL, json_pack("{s:i}", "sentiment_ms", 12), "w1");
    }
    t0 = sl_mono_ms();
    for (i = 0; i < n; i++)
        sl_sink_pg_submit(sink, rows[i], -1);
    sl_sink_pg_drain(sink, -1);
    t1 = sl_mono_ms();
    pthread_mutex_lock(&a.mu);
    done = a.n;
    pthread_mutex_unlock(&a.mu);
    sl_sink_pg_destroy(sink);
    free(rows);
    if (done != n)
        fprintf(stderr, "bench: only %ld of %ld rows acked\n", done, n);
    return (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
}

/* One COPY text-format line for row 'i' (values need no escaping). */
static int copy_line(char *buf, size_t size, long i, const char *ts)
{
    char payload[256];

    fmt_payload(payload, sizeof(payload), i);
    return snprintf(buf, size,
                    "kafka\treviews\t0\t%ld\t\tk%ld\t%s\t\\N\t"
                    "{\"label\":\"positive\",\"score\":0.93}\t\\N\t"
                    "{\"sentiment_ms\":12}\tw1\t%s\n",
                    i, i, payload, ts);
}

static const char *COLS = "(source, topic, partition, \"offset\", entry_id, "
                          "key, payload, payload_raw, results, errors, "
                          "timings, worker, received_at)";

static void copy_rows(PGconn *c, const char *target, long from, long to,
                      const char *ts)
{
    char sql[512], line[512];
    PGresult *r;
    long i;

    snprintf(sql, sizeof(sql), "COPY %s %s FROM STDIN", target, COLS);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        fprintf(stderr, "bench: %s: %s", sql, PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
    for (i = from; i < to; i++) {
        int len = copy_line(line, sizeof(line), i, ts);

        PQputCopyData(c, line, len);
    }
    PQputCopyEnd(c, NULL);
    r = PQgetResult(c);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench: COPY: %s", PQresultErrorMessage(r));
        exit(1);
    }
    PQclear(r);
    while ((r = PQgetResult(c)))
        PQclear(r);
}

static void now_text(char *buf, size_t size)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S+00", &tm);
}

/* Same table as the sink creates (copied with LIKE from a sink table). */
static void like_table(PGconn *c, const char *table, const char *model)
{
    char sql[512];

    snprintf(sql, sizeof(sql),
             "CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING "
             "CONSTRAINTS INCLUDING INDEXES)",
             table, model);
    exec_or_die(c, sql);
}

/* Rows/s of one plain COPY FROM STDIN of all rows. */
static double run_copy(long n, const char *table, const char *model)
{
    PGconn *c = db();
    char ts[64];
    int64_t t0, t1;

    like_table(c, table, model);
    now_text(ts, sizeof(ts));
    t0 = sl_mono_ms();
    copy_rows(c, table, 0, n, ts);
    t1 = sl_mono_ms();
    PQfinish(c);
    return (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
}

/* Rows/s of COPY into a temp table + INSERT ... ON CONFLICT, per batch. */
static double run_copy_upsert(long n, int batch, const char *table,
                              const char *model)
{
    PGconn *c = db();
    char ts[64], sql[512];
    int64_t t0, t1;
    long i;

    like_table(c, table, model);
    now_text(ts, sizeof(ts));
    snprintf(sql, sizeof(sql),
             "CREATE TEMP TABLE stage (LIKE %s INCLUDING DEFAULTS) "
             "ON COMMIT DELETE ROWS",
             table);
    exec_or_die(c, sql);
    t0 = sl_mono_ms();
    for (i = 0; i < n; i += batch) {
        long to = i + batch < n ? i + batch : n;

        exec_or_die(c, "BEGIN");
        copy_rows(c, "stage", i, to, ts);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s %s SELECT source, topic, partition, "
                 "\"offset\", entry_id, key, payload, payload_raw, results, "
                 "errors, timings, worker, received_at FROM stage "
                 "ON CONFLICT DO NOTHING",
                 table, COLS);
        exec_or_die(c, sql);
        exec_or_die(c, "COMMIT");
    }
    t1 = sl_mono_ms();
    PQfinish(c);
    return (double)n * 1000.0 / (double)(t1 - t0 ? t1 - t0 : 1);
}

int main(int argc, char **argv)
{
    static const int batches[] = {1, 100, 1000};
    char base[64], t[96], model[96];
    double copy, r;
    int opt;
    size_t k;

    while ((opt = getopt(argc, argv, "n:")) != -1) {
        if (opt == 'n')
            n_rows = atol(optarg);
    }
    dsn = getenv("SLUICE_PG_DSN") && *getenv("SLUICE_PG_DSN")
              ? getenv("SLUICE_PG_DSN")
              : DEFAULT_PG_DSN;
    sl_log_set_level(SL_LOG_WARN);
    snprintf(base, sizeof(base), "bench_%ld", (long)getpid());

    snprintf(model, sizeof(model), "%s_b1000", base);
    r = run_sink(1000, n_rows, model); /* also the model table */
    snprintf(t, sizeof(t), "%s_copy", base);
    copy = run_copy(n_rows, t, model);

    printf("%ld rows per run; each run into a fresh table\n\n", n_rows);
    printf("| write form | batch | rows/s | vs COPY |\n");
    printf("| --- | ---: | ---: | ---: |\n");
    printf("| plain COPY FROM STDIN (no idempotence) | all | %.0f | 100%% |\n",
           copy);
    for (k = 0; k < sizeof(batches) / sizeof(batches[0]); k++) {
        long n = batches[k] == 1 ? n_rows / 10 : n_rows;
        double v;

        if (batches[k] == 1000) {
            v = r;
        } else {
            snprintf(t, sizeof(t), "%s_b%d", base, batches[k]);
            v = run_sink(batches[k], n, t);
        }
        printf("| sink: INSERT ... unnest(binary arrays) ON CONFLICT, "
               "pipelined | %d | %.0f | %.0f%% |\n",
               batches[k], v, 100.0 * v / copy);
    }
    for (k = 1; k < sizeof(batches) / sizeof(batches[0]); k++) {
        snprintf(t, sizeof(t), "%s_cu%d", base, batches[k]);
        r = run_copy_upsert(n_rows, batches[k], t, model);
        printf("| COPY to temp + INSERT ... SELECT ON CONFLICT, one "
               "transaction per batch | %d | %.0f | %.0f%% |\n",
               batches[k], r, 100.0 * r / copy);
    }
    return 0;
}
