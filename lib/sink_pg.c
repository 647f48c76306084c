/*
 * PostgreSQL sink, thread side: one thread owns one non-blocking libpq
 * connection in pipeline mode; it forms batches from the backlog, sends up
 * to max_batches_inflight of them, acks a batch's messages after its
 * commit, bisects batches PostgreSQL refuses for data, and reconnects with
 * capped exponential backoff, resending every batch not known durable.
 * The connection's states and their changes are in sink_pg_state.c.
 */
#include "sink_pg_int.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "metrics.h"
#include "queue.h"
#include "secret.h"

#include <libpq-fe.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define COMPONENT "sink"
#define QNAME_MAX 160

void sl_sink_pg_histos(const struct sl_sink_pg *sink,
                       const struct sl_histo **rowsp,
                       const struct sl_histo **secondsp)
{
    *rowsp = &sink->h_rows;
    *secondsp = &sink->h_seconds;
}

/* ---- batches ---- */

/* Give every row of 'b' back through ack_cb with 'err', and free 'b'. */
static void batch_give_back(struct sl_sink_pg *sink, struct sl_pgbatch *b,
                            int err)
{
    size_t i;

    for (i = 0; i < b->n; i++) {
        struct sl_row *row = b->rows[i];

        sink->ack_cb(sink->ack_arg, row->msg, err);
        row->msg = NULL;
        sl_row_destroy(row);
        if (err)
            atomic_fetch_add(&sink->n_failed, 1);
        atomic_fetch_sub(&sink->n_held, 1);
    }
    b->n = 0;
    sl_pgbatch_free(b);
}

/* ---- sending ---- */

static int send_dead(struct sl_sink_pg *sink, const struct sl_row *row)
{
    static const int fmts[SL_SINK_PG_DEAD_NPARAMS] = {1, 1, 1, 1, 1, 1,
                                                      1, 1, 1, 1, 1};
    struct sl_sink_pg_dead_params p;

    sl_sink_pg_encode_dead(row, &p);
    return PQsendQueryPrepared(sink->conn, "sl_dead", SL_SINK_PG_DEAD_NPARAMS,
                               p.vals, p.lens, fmts, 0);
}

/* Send 'b' as one transaction: the pipeline's implicit one, to the sync. */
static int send_batch(struct sl_sink_pg *sink, struct sl_pgbatch *b)
{
    enum { MAXP = SL_SINK_PG_NPARAMS(SL_SINK_PG_MAX_VECTORS) };
    const char *vals[MAXP];
    int lens[MAXP], fmts[MAXP];
    int np = (int)SL_SINK_PG_NPARAMS(sink->nvec);
    size_t r;
    int i;

    sl_pgbatch_reset_result(b);
    b->n_result = 0;
    for (r = 0; r < b->n; r++)
        b->n_result += b->rows[r]->kind == SL_ROW_RESULT;
    if (b->n_result) {
        if (sl_sink_pg_encode_results(sink->arr, sink->nvec, b->rows, b->n) < 0)
            return -SL_ENOMEM;
        for (i = 0; i < np; i++) {
            vals[i] = (const char *)sink->arr[i].buf;
            lens[i] = (int)sink->arr[i].len;
            fmts[i] = 1;
        }
        if (!PQsendQueryPrepared(sink->conn, "sl_ins", np, vals, lens, fmts, 0))
            return -SL_ECONN;
        b->nstmt++;
    }
    for (r = 0; r < b->n; r++) {
        if (b->rows[r]->kind != SL_ROW_DEAD)
            continue;
        if (!send_dead(sink, b->rows[r]))
            return -SL_ECONN;
        b->nstmt++;
    }
    if (!PQpipelineSync(sink->conn))
        return -SL_ECONN;
    b->sent_us = sl_mono_ms() * 1000;
    return 0;
}

/* ---- results ---- */

/* A data error in 'b': split it, or turn its bad row into a dead letter. */
static void batch_data_error(struct sl_sink_pg *sink, struct sl_pgbatch *b)
{
    struct sl_pgbatch *nb;
    size_t first;

    if (b->err_stmt == 0 && b->n_result > 0) {
        if (b->n_result == 1) {
            size_t r;

            for (r = 0; r < b->n; r++) {
                struct sl_row *row = b->rows[r];

                if (row->kind != SL_ROW_RESULT)
                    continue;
                char org[160];
                sl_log(SL_LOG_WARN, COMPONENT,
                       "postgres refused row %s: SQLSTATE %s (%s); writing it "
                       "to the dead-letter table",
                       sl_origin_format(&row->msg->origin, org, sizeof(org)),
                       b->sqlstate, b->errmsg);
                /* On ENOMEM the row is resent as is: it fails again,
                 * is never lost, and is retried. */
                (void)sl_row_make_dead(row, SL_STAGE_SINK, b->errmsg,
                                       b->sqlstate);
            }
            sl_pgblist_push_front(&sink->pending, b);
            return;
        }
        sl_sink_pg_bisect(b->n_result, &first);
        nb = sl_pgbatch_new(SL_PGBATCH_ROWS, b->n);
        if (!nb) {
            sl_pgblist_push_front(&sink->pending, b); /* retry whole */
            return;
        }
        /* nb: result rows [first, n_result); b keeps the rest + dead. */
        sl_pgbatch_move_rows(b, nb, SL_ROW_RESULT, first, b->n_result);
        sl_pgblist_push_front(&sink->pending, nb);
        sl_pgblist_push_front(&sink->pending, b);
        return;
    }
    /* A dead-letter row was refused: give that one up, resend the rest. */
    size_t r = sl_pgbatch_dead_row(b, b->err_stmt);

    if (r < b->n) {
        struct sl_row *row = b->rows[r];
        char org[160];

        sl_log(SL_LOG_ERROR, COMPONENT,
               "postgres refused dead letter %s: SQLSTATE %s (%s); its "
               "message is not acked",
               sl_origin_format(&row->msg->origin, org, sizeof(org)),
               b->sqlstate, b->errmsg);
        nb = sl_pgbatch_new(SL_PGBATCH_ROWS, 1);
        if (nb) {
            sl_pgbatch_move_rows(b, nb, -1, r, r + 1);
            batch_give_back(sink, nb, -SL_EDATA);
        }
    }
    if (b->n)
        sl_pgblist_push_front(&sink->pending, b);
    else
        sl_pgbatch_free(b);
}

/* The sync of 'b' arrived: everything in it is durable, or it failed. */
static void batch_done(struct sl_sink_pg *sink, struct sl_pgbatch *b)
{
    if (b->kind == SL_PGBATCH_SETUP) {
        if (b->err_stmt >= 0) {
            char cause[300];

            snprintf(cause, sizeof(cause), "SQLSTATE %s: %s", b->sqlstate,
                     b->errmsg);
            sl_pgbatch_free(b);
            sl_sink_pg_conn_lost(sink, "cannot set up tables", cause);
            return;
        }
        sl_pgbatch_free(b);
        sl_sink_pg_set_state(sink, SL_SINK_PG_READY);
        if (sink->ever_connected)
            atomic_fetch_add(&sink->n_reconnects, 1);
        sl_log(SL_LOG_INFO, COMPONENT,
               "postgres %s: connected (after %d failed attempts), %zu rows "
               "held",
               sink->where, sink->attempt, sl_sink_pg_rows_held(sink));
        sink->ever_connected = 1;
        sink->attempt = 0;
        sink->last_cause[0] = '\0';
        return;
    }
    if (b->err_stmt < 0 && b->got == b->nstmt) {
        size_t dead = b->n - b->n_result;

        uint64_t took_us = (uint64_t)(sl_mono_ms() * 1000 - b->sent_us);
        atomic_fetch_add(&sink->n_batches, 1);
        atomic_fetch_add(&sink->latency_us, took_us);
        sl_histo_observe(&sink->h_rows, (double)b->n);
        sl_histo_observe(&sink->h_seconds, (double)took_us / 1e6);
        atomic_fetch_add(&sink->n_rows, (uint64_t)b->affected);
        atomic_fetch_add(&sink->n_dups, b->n_result - (uint64_t)b->affected);
        atomic_fetch_add(&sink->n_dead, dead);
        batch_give_back(sink, b, 0);
        return;
    }
    if (b->err_stmt >= 0 && b->err_stmt < b->nstmt &&
        sl_sink_pg_is_data_error(b->sqlstate)) {
        batch_data_error(sink, b);
        return;
    }
    char cause[300];

    snprintf(cause, sizeof(cause), "SQLSTATE %s: %s",
             b->sqlstate[0] ? b->sqlstate : "?????", b->errmsg);
    sl_pgblist_push_front(&sink->inflight, b); /* conn_lost re-queues it */
    sl_sink_pg_conn_lost(sink, "batch failed", cause);
}

/* Read what arrived; returns -1 when the connection was lost. */
static int read_results(struct sl_sink_pg *sink)
{
    int nulls = 0;

    if (!PQconsumeInput(sink->conn)) {
        sl_sink_pg_conn_lost(sink, "connection lost",
                             PQerrorMessage(sink->conn));
        return -1;
    }
    while (sink->conn && sink->inflight.head) {
        struct sl_pgbatch *b = sink->inflight.head;
        PGresult *res;
        ExecStatusType st;

        if (PQisBusy(sink->conn))
            break;
        res = PQgetResult(sink->conn);
        if (!res) {
            if (b->expect_null) {
                b->expect_null = 0;
                continue;
            }
            if (++nulls > 1)
                break;
            continue;
        }
        nulls = 0;
        st = PQresultStatus(res);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            sl_pgblist_pop(&sink->inflight);
            batch_done(sink, b);
            continue;
        }
        b->expect_null = 1;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
            if (b->kind == SL_PGBATCH_ROWS && b->got == 0 && b->n_result)
                b->affected = strtol(PQcmdTuples(res), NULL, 10);
        } else if (st != PGRES_PIPELINE_ABORTED && b->err_stmt < 0) {
            const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);

            b->err_stmt = b->got;
            snprintf(b->sqlstate, sizeof(b->sqlstate), "%s", ss ? ss : "");
            sl_sink_pg_first_line(
                PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                    ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                    : PQresultErrorMessage(res),
                b->errmsg, sizeof(b->errmsg));
        }
        b->got++;
        PQclear(res);
    }
    if (sink->conn && PQstatus(sink->conn) == CONNECTION_BAD) {
        sl_sink_pg_conn_lost(sink, "connection lost",
                             PQerrorMessage(sink->conn));
        return -1;
    }
    return 0;
}

/* ---- the thread ---- */

static void close_forming(struct sl_sink_pg *sink)
{
    if (sink->forming && sink->forming->n) {
        sl_pgblist_push(&sink->pending, sink->forming);
        sink->forming = NULL;
    }
}

/* Take rows from the backlog while batches have room. */
static void intake(struct sl_sink_pg *sink)
{
    void *item;
    int rc;

    while (!sink->backlog_done && sink->pending.len + sink->inflight.len <=
                                      (size_t)sink->max_inflight) {
        if (!sink->forming) {
            sink->forming =
                sl_pgbatch_new(SL_PGBATCH_ROWS, (size_t)sink->batch_rows);
            if (!sink->forming)
                return;
        }
        rc = sl_queue_pop(sink->backlog, &item, 0);
        if (rc == -SL_ECLOSED) {
            sink->backlog_done = 1;
            break;
        }
        if (rc < 0)
            break;
        if (!item)
            continue; /* sentinels are not used; drain() closes */
        atomic_fetch_add(&sink->n_held, 1);
        if (sink->forming->n == 0)
            sink->forming_since_ms = sl_mono_ms();
        sink->forming->rows[sink->forming->n++] = item;
        if (sink->forming->n >= (size_t)sink->batch_rows)
            close_forming(sink);
    }
}

static void send_pending(struct sl_sink_pg *sink)
{
    struct sl_pgbatch *b;
    int rc;

    while (sink->conn && sl_sink_pg_conn_state(sink) == SL_SINK_PG_READY &&
           !atomic_load(&sink->stop_now) && sink->pending.head &&
           sink->inflight.len < (size_t)sink->max_inflight) {
        b = sl_pgblist_pop(&sink->pending);
        rc = send_batch(sink, b);
        sl_pgblist_push(&sink->inflight, b);
        if (rc < 0) {
            sl_sink_pg_conn_lost(sink, "cannot send batch",
                                 rc == -SL_ENOMEM ? "out of memory"
                                                  : PQerrorMessage(sink->conn));
            return;
        }
    }
}

static void give_back_all(struct sl_sink_pg *sink, int err)
{
    struct sl_pgbatch *b;

    close_forming(sink);
    sl_pgbatch_free(sink->forming); /* empty if any */
    sink->forming = NULL;
    while ((b = sl_pgblist_pop(&sink->inflight)))
        batch_give_back(sink, b, err);
    while ((b = sl_pgblist_pop(&sink->pending)))
        batch_give_back(sink, b, err);
    /* Rows still in the (closed) backlog come back too, never silently. */
    for (;;) {
        void *item = NULL;
        struct sl_row *row;

        if (sl_queue_pop(sink->backlog, &item, 0) < 0)
            break;
        if (!(row = item))
            continue;
        sink->ack_cb(sink->ack_arg, row->msg, err);
        row->msg = NULL;
        sl_row_destroy(row);
        atomic_fetch_add(&sink->n_failed, 1);
    }
}

/*
 * Step 1 of the loop, after intake(): close the forming batch when it is
 * old enough or nothing more will come.
 */
static void close_if_due(struct sl_sink_pg *sink, int stop, int64_t now)
{
    if (sink->forming && sink->forming->n &&
        (sink->backlog_done || stop ||
         now - sink->forming_since_ms >= sink->flush_ms))
        close_forming(sink);
}

/*
 * Step 2: is the work over?  1 when everything is durable, or when the
 * drain deadline passed ('stop') and no batch is left in flight on a
 * connection (*all_durablep is then 0: a batch in flight runs to its
 * end, the rest is given back).  0 to go on.
 */
static int work_over(const struct sl_sink_pg *sink, int stop, int *all_durablep)
{
    if (sink->backlog_done && (!sink->forming || !sink->forming->n) &&
        !sink->pending.head && !sink->inflight.head)
        return 1; /* everything durable */
    if (stop && (!sink->conn || !sink->inflight.head ||
                 sl_sink_pg_conn_state(sink) == SL_SINK_PG_SETUP)) {
        *all_durablep = 0;
        return 1;
    }
    return 0;
}

/*
 * Step 3: sleep in poll() until the socket is ready for the current
 * state, rows worth a batch arrive (wake_fd), a partial batch is due, or
 * the next connection attempt is.  Returns the revents of the socket (0
 * when there is none).
 */
static short wait_for_work(struct sl_sink_pg *sink, int64_t now)
{
    struct pollfd pfd[2];
    int nfd = 1, timeout = 1000;
    uint64_t junk;
    size_t want = SIZE_MAX;

    pfd[0].fd = sink->wake_fd;
    pfd[0].events = POLLIN;
    pfd[0].revents = 0;
    if (sink->conn && PQsocket(sink->conn) >= 0) {
        int ev = POLLIN;

        if (sl_sink_pg_conn_state(sink) == SL_SINK_PG_CONNECTING)
            ev = sink->connect_events;
        else if (PQflush(sink->conn) == 1)
            ev |= POLLOUT;
        pfd[1].fd = PQsocket(sink->conn);
        pfd[1].events = (short)ev;
        pfd[1].revents = 0;
        nfd = 2;
    }
    if (!sink->conn && sink->next_connect_ms - now < timeout)
        timeout = (int)(sink->next_connect_ms - now);
    if (sink->forming && sink->forming->n) {
        int64_t left = sink->forming_since_ms + sink->flush_ms - now;

        if (left < timeout)
            timeout = (int)left;
    }
    if (timeout < 0)
        timeout = 0;
    /* Rows worth waking for: the first (its flush clock starts), or
     * enough to fill the forming batch; none while batches are at
     * their limit (a result wakes us through the socket). */
    if (sink->pending.len + sink->inflight.len <= (size_t)sink->max_inflight)
        want = sink->forming && sink->forming->n &&
                       sink->forming->n < (size_t)sink->batch_rows
                   ? (size_t)sink->batch_rows - sink->forming->n
                   : 1;
    atomic_store(&sink->wake_at, want);
    atomic_store(&sink->sleeping, 1);
    atomic_thread_fence(memory_order_seq_cst); /* see submit() */
    if (!sink->backlog_done && sl_queue_depth(sink->backlog) >= want)
        timeout = 0;
    if (poll(pfd, (nfds_t)nfd, timeout) < 0 && errno != EINTR)
        sl_log(SL_LOG_ERROR, COMPONENT, "poll: %s", strerror(errno));
    atomic_store(&sink->sleeping, 0);
    if (pfd[0].revents & POLLIN)
        (void)!read(sink->wake_fd, &junk, sizeof(junk));
    return nfd == 2 ? pfd[1].revents : 0;
}

/*
 * Step 4: the socket is ready: go on connecting, or read results (of the
 * setup batch or of row batches).  Then give up a connection that has
 * not reached READY by its deadline (sl_sink_pg_conn_start()).
 */
static void on_socket(struct sl_sink_pg *sink, short revents)
{
    enum sl_sink_pg_state st;

    if (sink->conn && revents) {
        if (sl_sink_pg_conn_state(sink) == SL_SINK_PG_CONNECTING)
            sl_sink_pg_conn_continue(sink);
        else
            read_results(sink);
    }
    st = sl_sink_pg_conn_state(sink);
    if (sink->conn && (st == SL_SINK_PG_CONNECTING || st == SL_SINK_PG_SETUP) &&
        sl_mono_ms() >= sink->connect_deadline_ms)
        sl_sink_pg_conn_lost(sink, "cannot connect", "timed out");
}

/*
 * After the loop: close the connection, give back (with -SL_ECANCELED)
 * every row not known durable, and tell drain() the outcome.
 */
static void sink_finish(struct sl_sink_pg *sink, int all_durable)
{
    if (sink->conn) {
        PQfinish(sink->conn);
        sink->conn = NULL;
    }
    if (sink->forming && !sink->forming->n) {
        sl_pgbatch_free(sink->forming);
        sink->forming = NULL;
    }
    if (!all_durable || sink->pending.head || sink->forming ||
        sl_queue_depth(sink->backlog) > 0) {
        all_durable = 0;
        give_back_all(sink, -SL_ECANCELED);
    }
    sl_sink_pg_set_state(sink, SL_SINK_PG_STOPPED);
    pthread_mutex_lock(&sink->mu);
    sink->done = 1;
    sink->all_durable = all_durable;
    pthread_cond_broadcast(&sink->cv);
    pthread_mutex_unlock(&sink->mu);
}

static void *sink_main(void *arg)
{
    struct sl_sink_pg *sink = arg;
    int all_durable = 1;

    for (;;) {
        int stop = atomic_load(&sink->stop_now);
        int64_t now;

        intake(sink);
        now = sl_mono_ms();
        close_if_due(sink, stop, now);
        if (work_over(sink, stop, &all_durable))
            break;
        if (!sink->conn && now >= sink->next_connect_ms)
            sl_sink_pg_conn_start(sink);
        send_pending(sink);
        on_socket(sink, wait_for_work(sink, now));
    }
    sink_finish(sink, all_durable);
    return NULL;
}

/* ---- the API ---- */

static char *dup_or(const char *s, const char *dflt)
{
    return strdup(s ? s : dflt);
}

static void sink_free(struct sl_sink_pg *sink)
{
    int i;

    if (sink->password) {
        sl_secret_free(sink->password);
    }
    free(sink->dsn);
    free(sink->app_name);
    free(sink->where);
    free(sink->sql_insert);
    free(sink->sql_create);
    free(sink->sql_create_dead);
    free(sink->sql_toast);
    free(sink->sql_dead);
    for (i = 0; i < SL_SINK_PG_NPARAMS(SL_SINK_PG_MAX_VECTORS); i++)
        sl_pgarr_free(&sink->arr[i]);
    for (i = 0; i < SL_SINK_PG_MAX_VECTORS; i++) {
        free(sink->vec_backends[i]);
        free(sink->vec_columns[i]);
    }
    sl_queue_destroy(sink->backlog);
    if (sink->wake_fd >= 0)
        close(sink->wake_fd);
    pthread_mutex_destroy(&sink->mu);
    pthread_cond_destroy(&sink->cv);
    free(sink);
}

static void free_row_item(void *item)
{
    sl_row_destroy(item);
}

const struct sl_row_vectors *
sl_sink_pg_row_vectors(const struct sl_sink_pg *sink)
{
    return sink && sink->nvec ? &sink->row_vectors : NULL;
}

struct sl_sink_pg *sl_sink_pg_new(const struct sl_sink_pg_conf *conf,
                                  sl_sink_pg_ack_cb *ack_cb, void *ack_arg,
                                  char *errstr, size_t errstr_size)
{
    struct sl_sink_pg *sink;
    const char *table = conf && conf->table ? conf->table : "sluice_results";
    const char *dead = conf && conf->dead_letter_table ? conf->dead_letter_table
                                                       : "sluice_dead_letters";
    char qt[QNAME_MAX], qd[QNAME_MAX];
    pthread_condattr_t ca;
    int service = 0;

    if (!conf || !ack_cb) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "postgres sink: conf and ack_cb are required");
        goto fail0;
    }
    if (sl_sink_pg_ident_check(table, "table", errstr, errstr_size) < 0 ||
        sl_sink_pg_ident_check(dead, "dead_letter_table", errstr, errstr_size) <
            0 ||
        sl_sink_pg_columns_check(&conf->columns, errstr, errstr_size) < 0 ||
        sl_sink_pg_vectors_check(&conf->columns, conf->vectors,
                                 conf->vector_cnt, errstr, errstr_size) < 0)
        goto fail0;
    if (conf->vector_cnt > SL_SINK_PG_MAX_VECTORS) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "postgres sink: %zu vector columns, at most %d",
                  conf->vector_cnt, SL_SINK_PG_MAX_VECTORS);
        goto fail0;
    }
    if (conf->batch_rows < 0 || conf->flush_ms < 0 ||
        conf->max_batches_inflight < 0 || conf->backlog_rows < 0) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "postgres sink: batch_rows, flush_ms, "
                  "max_batches_inflight and backlog_rows must be >= 0");
        goto fail0;
    }
    sl_sink_pg_ident_quote(table, qt, sizeof(qt));
    sl_sink_pg_ident_quote(dead, qd, sizeof(qd));

    sink = calloc(1, sizeof(*sink));
    if (!sink) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        goto fail0;
    }
    sink->wake_fd = -1;
    static const double batch_rows[] = {1,   10,   50,   100,  250,
                                        500, 1000, 2500, 5000, 10000};
    static const double batch_seconds[] = {
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10};
    sl_histo_init(&sink->h_rows, batch_rows,
                  (int)(sizeof(batch_rows) / sizeof(batch_rows[0])));
    sl_histo_init(&sink->h_seconds, batch_seconds,
                  (int)(sizeof(batch_seconds) / sizeof(batch_seconds[0])));
    pthread_mutex_init(&sink->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&sink->cv, &ca);
    pthread_condattr_destroy(&ca);
    sink->ack_cb = ack_cb;
    sink->ack_arg = ack_arg;
    sink->batch_rows = conf->batch_rows ? conf->batch_rows : 1000;
    sink->flush_ms = conf->flush_ms ? conf->flush_ms : 100;
    sink->max_inflight =
        conf->max_batches_inflight ? conf->max_batches_inflight : 4;
    sink->backoff_min_ms =
        conf->reconnect_min_ms > 0 ? conf->reconnect_min_ms : 100;
    sink->backoff_max_ms =
        conf->reconnect_max_ms > 0 ? conf->reconnect_max_ms : 10000;
    if (sink->backoff_max_ms < sink->backoff_min_ms)
        sink->backoff_max_ms = sink->backoff_min_ms;
    sink->rng = (unsigned)sl_now_us() ^ (unsigned)(uintptr_t)sink;
    atomic_init(&sink->state, SL_SINK_PG_DISCONNECTED);

    if (sl_sink_pg_describe_dsn(conf->dsn ? conf->dsn : "", &sink->where,
                                errstr, errstr_size) < 0 ||
        sl_sink_pg_read_password(conf, &sink->password, errstr, errstr_size) <
            0)
        goto fail1;
    sink->dsn = dup_or(conf->dsn, "");
    sink->app_name = dup_or(conf->application_name, "sluice-sink");
    sink->sql_insert = sl_sink_pg_sql_insert(qt, &conf->columns, conf->vectors,
                                             conf->vector_cnt);
    sink->sql_dead = sl_sink_pg_sql_insert_dead(qd);
    for (size_t v = 0; v < conf->vector_cnt; v++) {
        sink->vec_backends[v] = strdup(conf->vectors[v].backend);
        sink->vec_columns[v] = strdup(conf->vectors[v].column);
        if (!sink->vec_backends[v] || !sink->vec_columns[v]) {
            sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
            goto fail1;
        }
    }
    sink->nvec = conf->vector_cnt;
    sink->row_vectors = (struct sl_row_vectors){
        .backends = (const char *const *)sink->vec_backends,
        .columns = (const char *const *)sink->vec_columns,
        .n = sink->nvec,
        .in_results = !conf->results_without_vectors,
    };
    if (conf->create_table) {
        sink->sql_create = sl_sink_pg_sql_create(
            qt, &conf->columns, conf->vectors, conf->vector_cnt);
        sink->sql_create_dead = sl_sink_pg_sql_create_dead(qd);
    }
    if (conf->toast_compression &&
        !(sink->sql_toast = sl_sink_pg_sql_toast(conf->toast_compression))) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "toast_compression must be lz4 or pglz, not '%s'",
                  conf->toast_compression);
        goto fail1;
    }
    sink->backlog =
        sl_queue_new((size_t)(conf->backlog_rows ? conf->backlog_rows : 2000),
                     free_row_item);
    sink->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (!sink->dsn || !sink->app_name || !sink->sql_insert || !sink->sql_dead ||
        !sink->backlog || sink->wake_fd < 0 ||
        (conf->create_table && (!sink->sql_create || !sink->sql_create_dead))) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        goto fail1;
    }
    if (sl_sink_pg_conn_params(sink->dsn, sink->app_name, sink->password,
                               sink->conn_keys, sink->conn_vals, &service,
                               errstr, errstr_size) < 0)
        goto fail1;
    if (service)
        sl_log(SL_LOG_INFO, COMPONENT,
               "postgres %s: a service is named (dsn or PGSERVICE), so the "
               "sink's keepalive and tcp_user_timeout defaults are not "
               "applied; set them in the service file or the dsn",
               sink->where);
    if (pthread_create(&sink->thread, NULL, sink_main, sink) != 0) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "postgres sink: cannot start thread");
        goto fail1;
    }
    sink->thread_started = 1;
    pthread_setname_np(sink->thread, "sl-sink");
    sl_log(SL_LOG_INFO, COMPONENT,
           "postgres %s: sink started (table %s, dead letters %s, batch %d "
           "rows / %d ms, %d batches in flight)",
           sink->where, table, dead, sink->batch_rows, sink->flush_ms,
           sink->max_inflight);
    return sink;

fail1:
    sink_free(sink);
fail0:
    return NULL;
}

static void wake(struct sl_sink_pg *sink)
{
    uint64_t one = 1;

    (void)!write(sink->wake_fd, &one, sizeof(one));
}

int sl_sink_pg_submit(struct sl_sink_pg *sink, struct sl_row *row,
                      int timeout_ms)
{
    int rc;

    if (!sink || !row || !row->msg)
        return -SL_EINVAL;
    rc = sl_queue_push(sink->backlog, row, timeout_ms);
    /* The push, then the look at 'sleeping'; the sink stores 'sleeping'
     * then looks at the depth: one of the two sees the other. */
    atomic_thread_fence(memory_order_seq_cst);
    if (rc == 0 && atomic_load(&sink->sleeping) &&
        sl_queue_depth(sink->backlog) >= atomic_load(&sink->wake_at))
        wake(sink);
    return rc;
}

int sl_sink_pg_drain(struct sl_sink_pg *sink, int timeout_ms)
{
    struct timespec ts;
    int rc = 0;

    if (!sink)
        return 0;
    sl_queue_close(sink->backlog);
    atomic_store(&sink->draining, 1);
    wake(sink);
    sl_deadline_after(&ts, timeout_ms > 0 ? timeout_ms : 0);
    pthread_mutex_lock(&sink->mu);
    while (!sink->done && rc == 0) {
        if (timeout_ms < 0)
            pthread_cond_wait(&sink->cv, &sink->mu);
        else
            rc = pthread_cond_timedwait(&sink->cv, &sink->mu, &ts);
    }
    if (!sink->done) {
        atomic_store(&sink->stop_now, 1);
        wake(sink);
        while (!sink->done)
            pthread_cond_wait(&sink->cv, &sink->mu);
    }
    rc = sink->all_durable ? 0 : -SL_ETIMEDOUT;
    pthread_mutex_unlock(&sink->mu);
    if (sink->thread_started && !sink->joined) {
        pthread_join(sink->thread, NULL);
        sink->joined = 1;
    }
    return rc;
}

void sl_sink_pg_destroy(struct sl_sink_pg *sink)
{
    if (!sink)
        return;
    sl_sink_pg_drain(sink, 0);
    sink_free(sink);
}

void sl_sink_pg_stats(const struct sl_sink_pg *sink,
                      struct sl_sink_pg_stats *st)
{
    struct sl_sink_pg *s = (struct sl_sink_pg *)sink;

    st->rows_written = atomic_load(&s->n_rows);
    st->duplicates = atomic_load(&s->n_dups);
    st->dead_letters = atomic_load(&s->n_dead);
    st->batches = atomic_load(&s->n_batches);
    st->batch_latency_us = atomic_load(&s->latency_us);
    st->reconnects = atomic_load(&s->n_reconnects);
    st->rows_failed = atomic_load(&s->n_failed);
    st->rows_held = atomic_load(&s->n_held);
    st->state = (enum sl_sink_pg_state)atomic_load(&s->state);
}
