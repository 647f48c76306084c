/*
 * PostgreSQL sink, the connection's state machine (sink thread only):
 * connecting without blocking, the setup batch (tables, prepared
 * statements), and losing the connection with capped, jittered backoff;
 * every change of state goes through sl_sink_pg_set_state().
 */
#include "sink_pg_int.h"
#include "clock.h"
#include "err.h"
#include "log.h"

#include <libpq-fe.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COMPONENT "sink"
#define CONNECT_TIMEOUT_MS 10000 /* connect, authenticate and set up */

/*
 * The connection's states, in the order a connection goes through them:
 *
 *   DISCONNECTED --sl_sink_pg_conn_start()--> CONNECTING
 *   --sl_sink_pg_conn_continue(): PQconnectPoll OK--> SETUP
 *   --setup batch synced--> READY
 *
 * and from CONNECTING, SETUP or READY back to DISCONNECTED through
 * sl_sink_pg_conn_lost(); STOPPED when the thread ends.  Only READY sends
 * batches.
 */
static const char *const state_names[] = {
    [SL_SINK_PG_DISCONNECTED] = "disconnected",
    [SL_SINK_PG_CONNECTING] = "connecting",
    [SL_SINK_PG_SETUP] = "setup",
    [SL_SINK_PG_READY] = "ready",
    [SL_SINK_PG_STOPPED] = "stopped",
};

enum sl_sink_pg_state sl_sink_pg_conn_state(const struct sl_sink_pg *sink)
{
    return (enum sl_sink_pg_state)atomic_load(&sink->state);
}

/* Every change of state goes through here, so that it can be traced. */
void sl_sink_pg_set_state(struct sl_sink_pg *sink, enum sl_sink_pg_state st)
{
    enum sl_sink_pg_state old = sl_sink_pg_conn_state(sink);

    if (old == st)
        return;
    sl_log(SL_LOG_DEBUG, COMPONENT, "postgres %s: %s -> %s", sink->where,
           state_names[old], state_names[st]);
    atomic_store(&sink->state, (int)st);
}

/*
 * Close the connection after 'what' failed because of 'cause'; every
 * in-flight batch goes back to the front of the pending list, to be
 * resent (a COMMIT whose outcome is unknown is resolved by the
 * idempotent resend).  Logs once per change of cause.
 */
void sl_sink_pg_conn_lost(struct sl_sink_pg *sink, const char *what,
                          const char *cause)
{
    struct sl_pgbatch *b, *rev = NULL;
    int64_t cap;
    int delay;
    char line[256];

    sl_sink_pg_first_line(cause && *cause ? cause : "unknown cause", line,
                          sizeof(line));
    if (sink->conn) {
        PQfinish(sink->conn);
        sink->conn = NULL;
    }
    /* Re-queue in-flight batches in order, ahead of unsent ones. */
    while ((b = sl_pgblist_pop(&sink->inflight))) {
        if (b->kind == SL_PGBATCH_SETUP) {
            sl_pgbatch_free(b);
            continue;
        }
        b->next = rev;
        rev = b;
    }
    while (rev) {
        b = rev;
        rev = rev->next;
        sl_pgbatch_reset_result(b);
        sl_pgblist_push_front(&sink->pending, b);
    }
    sl_sink_pg_set_state(sink, SL_SINK_PG_DISCONNECTED);

    cap = (int64_t)sink->backoff_min_ms
          << (sink->attempt < 20 ? sink->attempt : 20);
    if (cap > sink->backoff_max_ms)
        cap = sink->backoff_max_ms;
    delay = (int)(rand_r(&sink->rng) % (unsigned)(cap + 1));
    sink->attempt++;
    sink->next_connect_ms = sl_mono_ms() + delay;

    if (strcmp(line, sink->last_cause) != 0) {
        snprintf(sink->last_cause, sizeof(sink->last_cause), "%s", line);
        sl_log(SL_LOG_WARN, COMPONENT,
               "postgres %s: %s (%s); retrying in %d ms, %zu rows held, "
               "not acked (repeats of this cause are not logged)",
               sink->where, what, line, delay, sl_sink_pg_rows_held(sink));
    }
}

/*
 * Start connecting with the parameters built in new(): the DSN, expanded
 * by libpq, plus the keepalive and tcp_user_timeout defaults it does not
 * set, so that a silent peer ends in sl_sink_pg_conn_lost() like any other.
 */
void sl_sink_pg_conn_start(struct sl_sink_pg *sink)
{
    sl_sink_pg_set_state(sink, SL_SINK_PG_CONNECTING);
    sink->conn = PQconnectStartParams(sink->conn_keys, sink->conn_vals, 1);
    if (!sink->conn) {
        sl_sink_pg_conn_lost(sink, "cannot connect", "out of memory");
        return;
    }
    if (PQstatus(sink->conn) == CONNECTION_BAD) {
        sl_sink_pg_conn_lost(sink, "cannot connect",
                             PQerrorMessage(sink->conn));
        return;
    }
    sink->connect_events = POLLOUT; /* as if PGRES_POLLING_WRITING */
    sink->connect_deadline_ms = sl_mono_ms() + CONNECT_TIMEOUT_MS;
}

/* Send the setup batch: TOAST compression, tables, prepared statements. */
static void send_setup(struct sl_sink_pg *sink)
{
    PGconn *conn = sink->conn;
    struct sl_pgbatch *b = sl_pgbatch_new(SL_PGBATCH_SETUP, 0);
    static const Oid col_types[SL_SINK_PG_NCOLS] = {
        SL_PG_OID_TEXT_ARRAY,       SL_PG_OID_TEXT_ARRAY,
        SL_PG_OID_INT4_ARRAY,       SL_PG_OID_INT8_ARRAY,
        SL_PG_OID_TEXT_ARRAY,       SL_PG_OID_TEXT_ARRAY,
        SL_PG_OID_JSONB_ARRAY,      SL_PG_OID_BYTEA_ARRAY,
        SL_PG_OID_JSONB_ARRAY,      SL_PG_OID_JSONB_ARRAY,
        SL_PG_OID_JSONB_ARRAY,      SL_PG_OID_TEXT_ARRAY,
        SL_PG_OID_TIMESTAMPTZ_ARRAY};
    static const Oid dead_types[SL_SINK_PG_DEAD_NPARAMS] = {
        SL_PG_OID_TEXT, SL_PG_OID_TEXT,  SL_PG_OID_INT4,  SL_PG_OID_INT8,
        SL_PG_OID_TEXT, SL_PG_OID_BYTEA, SL_PG_OID_BYTEA, SL_PG_OID_TEXT,
        SL_PG_OID_TEXT, SL_PG_OID_TEXT,  SL_PG_OID_INT4};
    Oid ins_types[SL_SINK_PG_NPARAMS(SL_SINK_PG_MAX_VECTORS)];
    int nins = (int)SL_SINK_PG_NPARAMS(sink->nvec);
    int ok = 1;

    memcpy(ins_types, col_types, sizeof(col_types));
    for (size_t v = 0; v < sink->nvec; v++) {
        ins_types[SL_SINK_PG_NCOLS + 3 * v] = SL_PG_OID_FLOAT4_ARRAY;
        ins_types[SL_SINK_PG_NCOLS + 3 * v + 1] = SL_PG_OID_INT4_ARRAY;
        ins_types[SL_SINK_PG_NCOLS + 3 * v + 2] = SL_PG_OID_INT4_ARRAY;
    }
    if (!b) {
        sl_sink_pg_conn_lost(sink, "cannot set up", "out of memory");
        return;
    }
    if (sink->sql_toast)
        ok = ok && PQsendQueryParams(conn, sink->sql_toast, 0, NULL, NULL, NULL,
                                     NULL, 0),
        b->nstmt += ok;
    if (sink->sql_create)
        ok = ok && PQsendQueryParams(conn, sink->sql_create, 0, NULL, NULL,
                                     NULL, NULL, 0),
        b->nstmt += ok;
    if (sink->sql_create_dead)
        ok = ok && PQsendQueryParams(conn, sink->sql_create_dead, 0, NULL, NULL,
                                     NULL, NULL, 0),
        b->nstmt += ok;
    ok = ok && PQsendPrepare(conn, "sl_ins", sink->sql_insert, nins, ins_types);
    b->nstmt += ok;
    ok = ok && PQsendPrepare(conn, "sl_dead", sink->sql_dead,
                             SL_SINK_PG_DEAD_NPARAMS, dead_types);
    b->nstmt += ok;
    ok = ok && PQpipelineSync(conn);
    sl_pgblist_push(&sink->inflight, b);
    sl_sink_pg_set_state(sink, SL_SINK_PG_SETUP);
    if (!ok)
        sl_sink_pg_conn_lost(sink, "cannot send setup", PQerrorMessage(conn));
}

/* Server notices ("relation already exists, skipping") at debug level. */
static void on_notice(void *arg, const char *message)
{
    char line[256];

    (void)arg;
    if (!sl_log_enabled(SL_LOG_DEBUG))
        return;
    sl_sink_pg_first_line(message, line, sizeof(line));
    sl_log(SL_LOG_DEBUG, COMPONENT, "postgres notice: %s", line);
}

/* PQconnectPoll step; on success, switch to pipeline mode and set up. */
void sl_sink_pg_conn_continue(struct sl_sink_pg *sink)
{
    switch (PQconnectPoll(sink->conn)) {
    case PGRES_POLLING_READING:
        sink->connect_events = POLLIN;
        return;
    case PGRES_POLLING_WRITING:
        sink->connect_events = POLLOUT;
        return;
    case PGRES_POLLING_FAILED:
        sl_sink_pg_conn_lost(sink, "cannot connect",
                             PQerrorMessage(sink->conn));
        return;
    case PGRES_POLLING_OK:
    default:
        break;
    }
    PQsetNoticeProcessor(sink->conn, on_notice, NULL);
    if (PQsetnonblocking(sink->conn, 1) != 0 ||
        !PQenterPipelineMode(sink->conn)) {
        sl_sink_pg_conn_lost(sink, "cannot enter pipeline mode",
                             PQerrorMessage(sink->conn));
        return;
    }
    sink->connect_events = 0;
    send_setup(sink);
}
