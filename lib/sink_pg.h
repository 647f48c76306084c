/*
 * The PostgreSQL sink: one thread that owns one non-blocking libpq
 * connection in pipeline mode, batches rows from a bounded backlog, writes
 * each batch in one transaction idempotently (ON CONFLICT on the origin),
 * and acks a batch's messages only after its COMMIT is durable.
 */
#ifndef SL_SINK_PG_H
#define SL_SINK_PG_H

#include "row.h"

#include <stddef.h>
#include <stdint.h>

/* Actual column names of the results table; NULL means the default. */
struct sl_sink_pg_columns {
    const char *source;      /* "source": kind of source (text) */
    const char *topic;       /* "topic": topic, stream, list (text) */
    const char *partition;   /* "partition" (int) */
    const char *offset;      /* "offset" (bigint) */
    const char *entry_id;    /* "entry_id": Redis entry id or '' (text) */
    const char *key;         /* "key" (text) */
    const char *payload;     /* "payload" (jsonb; NULL when not JSON) */
    const char *payload_raw; /* "payload_raw" (bytea; when not JSON) */
    const char *results;     /* "results" (jsonb) */
    const char *errors;      /* "errors" (jsonb) */
    const char *timings;     /* "timings" (jsonb) */
    const char *worker;      /* "worker" (text) */
    const char *received_at; /* "received_at" (timestamptz) */
};

/*
 * 'dsn' is a libpq connection string (key=value or postgresql:// URI).
 * Unless it sets them, the sink adds keepalives=1 keepalives_idle=10
 * keepalives_interval=5 keepalives_count=3 tcp_user_timeout=30000, so that
 * a connection gone silent (partition, dead host) is declared lost within
 * about 30 s and the sink reconnects and resends (once tcp_user_timeout is
 * set, Linux also ends a probed idle connection when that long has passed
 * without a reply).  The price: so is one whose server leaves sent data
 * unread for 30 s (a zero window, e.g. a backend waiting on a lock with
 * more batches queued behind it than the socket buffers hold); raise
 * tcp_user_timeout in the DSN if such stalls are expected.  tcp_user_timeout=0
 * in the DSN turns that one off; keepalives=0 turns off both (libpq sets
 * tcp_user_timeout only on a connection with keepalives).  When a service is
 * named (service= or PGSERVICE) none is added: the service file decides.
 */
/*
 * An extra `real[]` column of the results table, filled with one backend's
 * result when that is a JSON array of numbers (an embedding).
 */
struct sl_sink_pg_vector {
    const char *column;  /* column name */
    const char *backend; /* key of the result in the row's results */
};

#define SL_SINK_PG_MAX_VECTORS 16

struct sl_sink_pg_conf {
    const char *dsn;               /* libpq conninfo, without password */
    const char *password_env;      /* env var holding the password, or NULL */
    const char *password_file;     /* file (mode 0600) with it, or NULL */
    const char *table;             /* [schema.]table; "sluice_results" */
    const char *dead_letter_table; /* "sluice_dead_letters" when NULL */
    int create_table;              /* CREATE TABLE IF NOT EXISTS both */
    int batch_rows;                /* rows per transaction; 1000 when 0 */
    int flush_ms;                  /* max age of a partial batch; 100 */
    int max_batches_inflight;      /* pipelined, not yet durable; 4 */
    int backlog_rows;              /* submit() blocks beyond; 2000 */
    int reconnect_min_ms;          /* first backoff cap; 100 when 0 */
    int reconnect_max_ms;          /* backoff cap; 10000 when 0 */
    const char *application_name;  /* "sluice-sink" when NULL */
    const char *toast_compression; /* "lz4" or "pglz": the session's
                                      default_toast_compression; NULL:
                                      the server's */
    struct sl_sink_pg_columns columns;       /* results table column names */
    const struct sl_sink_pg_vector *vectors; /* vector_cnt extra real[]
                                                columns, at most
                                                SL_SINK_PG_MAX_VECTORS;
                                                copied by new() */
    size_t vector_cnt;
    int results_without_vectors; /* 1: the results column leaves out the
                                    results the vector columns store */
};

/* Connection state, as shown in metrics. */
enum sl_sink_pg_state {
    SL_SINK_PG_DISCONNECTED, /* waiting to (re)connect */
    SL_SINK_PG_CONNECTING,   /* connecting, TLS, auth */
    SL_SINK_PG_SETUP,        /* connected; tables, prepared statements */
    SL_SINK_PG_READY,        /* pipeline open, writing */
    SL_SINK_PG_STOPPED,      /* thread has exited */
};

/* A snapshot of the sink's counters. */
struct sl_sink_pg_stats {
    uint64_t rows_written;       /* rows inserted (new) */
    uint64_t duplicates;         /* rows skipped by ON CONFLICT */
    uint64_t dead_letters;       /* dead-letter rows written */
    uint64_t batches;            /* batches committed */
    uint64_t batch_latency_us;   /* sum over batches, send to commit */
    uint64_t reconnects;         /* connections after the first */
    uint64_t rows_failed;        /* rows given back with an error */
    uint64_t rows_held;          /* rows taken from the backlog, not acked */
    enum sl_sink_pg_state state; /* connection state now */
};

/*
 * Called on the sink thread once per submitted row's message.  'err' is 0
 * when the row (or its dead letter) is durable in PostgreSQL: the source
 * may commit the message's offset.  Otherwise the sink gave up on it
 * ('err' < 0: -SL_ECANCELED at drain timeout, -SL_EDATA when even the
 * dead-letter table refused it) and the offset must not be committed.
 * Either way the callee takes ownership of 'msg'.  Must not block long and
 * must not call back into the sink.
 */
typedef void sl_sink_pg_ack_cb(void *arg, struct sl_msg *msg, int err);

struct sl_sink_pg;

/*
 * Validate 'conf' (copied), read the password (password_file must not be
 * readable by group or others), and start the sink thread, which connects
 * in the background and retries with backoff: a server that is down is
 * not an error here.
 *
 * Returns the sink, or NULL with errstr set: a bad table name or conf, a
 * password unavailable or unsafe, no memory.  Main thread.
 */
struct sl_sink_pg *sl_sink_pg_new(const struct sl_sink_pg_conf *conf,
                                  sl_sink_pg_ack_cb *ack_cb, void *ack_arg,
                                  char *errstr, size_t errstr_size);

/*
 * What the rows for 'sink' carry for its vector columns: give it to
 * sl_row_of_result().  NULL when it has none (or 'sink' is NULL).  Valid
 * until sl_sink_pg_destroy().  Any thread.
 */
const struct sl_row_vectors *
sl_sink_pg_row_vectors(const struct sl_sink_pg *sink);

/*
 * Hand 'row' to the sink, waiting up to 'timeout_ms' (negative: for ever)
 * for room in the backlog: a full backlog is the backpressure that slows
 * workers and then the source.
 *
 * Returns 0 and takes ownership of 'row' (its message comes back through
 * ack_cb); -SL_ETIMEDOUT when the backlog stayed full (the caller keeps
 * 'row' and may retry); -SL_ECLOSED after sl_sink_pg_drain() (the caller
 * keeps 'row').  Any thread.
 */
int sl_sink_pg_submit(struct sl_sink_pg *sink, struct sl_row *row,
                      int timeout_ms);

/*
 * Stop taking rows, flush and commit everything held, and stop the
 * thread.  A batch whose transaction was sent runs to its end even past
 * the deadline; rows never sent by then come back through ack_cb with
 * -SL_ECANCELED.  'timeout_ms' negative waits for ever.  Returns 0 when
 * everything was durable, -SL_ETIMEDOUT otherwise.  Idempotent.  Main
 * thread.
 */
int sl_sink_pg_drain(struct sl_sink_pg *sink, int timeout_ms);

/*
 * Drain with no wait if still running, then free 'sink'.  NULL is a
 * no-op.  Main thread.
 */
void sl_sink_pg_destroy(struct sl_sink_pg *sink);

/* Snapshot of the counters into *st.  Any thread. */
void sl_sink_pg_stats(const struct sl_sink_pg *sink,
                      struct sl_sink_pg_stats *st);

struct sl_histo;

/*
 * Histograms of committed batches: rows per batch, and seconds from
 * sending a batch to its COMMIT.  Valid while 'sink' lives; read them from
 * any thread.
 */
void sl_sink_pg_histos(const struct sl_sink_pg *sink,
                       const struct sl_histo **rowsp,
                       const struct sl_histo **secondsp);

#endif
