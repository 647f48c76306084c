/*
 * Internals of the PostgreSQL sink shared by its files and its unit
 * tests: identifier checks, SQL text, parameters and the bisection of
 * failed batches (sink_pg_sql.c); connection parameters, DSN and password
 * (sink_pg_conn.c); the batches the thread keeps (sink_pg_batch.c); the
 * sink itself, whose thread runs in sink_pg.c and whose connection's
 * states change in sink_pg_state.c.  Not part of the public API.
 */
#ifndef SL_SINK_PG_INT_H
#define SL_SINK_PG_INT_H

#include "metrics.h"
#include "queue.h"
#include "sink_pg.h"

#include <libpq-fe.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Type OIDs used for parameters (pg_type.dat; stable across versions). */
#define SL_PG_OID_BYTEA 17
#define SL_PG_OID_INT8 20
#define SL_PG_OID_INT4 23
#define SL_PG_OID_TEXT 25
#define SL_PG_OID_TIMESTAMPTZ 1184
#define SL_PG_OID_JSONB 3802
#define SL_PG_OID_BYTEA_ARRAY 1001
#define SL_PG_OID_INT4_ARRAY 1007
#define SL_PG_OID_TEXT_ARRAY 1009
#define SL_PG_OID_INT8_ARRAY 1016
#define SL_PG_OID_TIMESTAMPTZ_ARRAY 1185
#define SL_PG_OID_JSONB_ARRAY 3807
#define SL_PG_OID_FLOAT4 700
#define SL_PG_OID_FLOAT4_ARRAY 1021

/* Number of columns of the results INSERT (and of its parameters). */
#define SL_SINK_PG_NCOLS 13

/* Number of parameters of the dead-letter upsert. */
#define SL_SINK_PG_DEAD_NPARAMS 11

/*
 * Check that 'name' is [schema.]ident with each part matching
 * [A-Za-z_][A-Za-z0-9_]{0,62}.  Returns 0 or -SL_ECONFIG with errstr
 * naming 'what' ("table").  Any thread.
 */
int sl_sink_pg_ident_check(const char *name, const char *what, char *errstr,
                           size_t errstr_size);

/*
 * Write 'name' (already checked) double-quoted, part by part, into
 * buf[size] ("s"."t").  Returns 0 or -SL_ETOOBIG.  Any thread.
 */
int sl_sink_pg_ident_quote(const char *name, char *buf, size_t size);

/*
 * A one-dimensional array in PostgreSQL's binary format (array_recv):
 * header, then a length-prefixed value (or -1 for NULL) per element.
 */
struct sl_pgarr {
    unsigned char *buf; /* the encoded array; owned */
    size_t len;         /* bytes used */
    size_t cap;         /* bytes allocated */
    uint32_t count;     /* elements added */
    int has_null;       /* some element is NULL */
};

/* Start an empty array of element type 'elem_oid', keeping any buffer of a
 * previous one.  0 or -SL_ENOMEM. */
int sl_pgarr_begin(struct sl_pgarr *a, uint32_t elem_oid);

/* Append one element of 'len' bytes ('data' NULL: SQL NULL). */
int sl_pgarr_add(struct sl_pgarr *a, const void *data, size_t len);

/* Append a big-endian int32 / int64 element. */
int sl_pgarr_add_i32(struct sl_pgarr *a, int32_t v);
int sl_pgarr_add_i64(struct sl_pgarr *a, int64_t v);

/* Append a jsonb element: version byte 1 then the JSON text (NULL: NULL). */
int sl_pgarr_add_jsonb(struct sl_pgarr *a, const char *text, size_t len);

/* Append 'count' elements already in the binary format ('len' bytes, each
 * a length and its bytes).  0, -SL_ENOMEM or -SL_ETOOBIG. */
int sl_pgarr_add_elems(struct sl_pgarr *a, const void *elems, size_t len,
                       uint32_t count);

/* Patch the header (count, NULL flag); the array is ready to send. */
void sl_pgarr_finish(struct sl_pgarr *a);

/* Free the buffer.  Zeroed 'a' is fine. */
void sl_pgarr_free(struct sl_pgarr *a);

/*
 * Check the column names of 'c' (NULL: default): each a plain identifier,
 * no schema.  Returns 0 or -SL_ECONFIG with errstr naming the column.
 */
int sl_sink_pg_columns_check(const struct sl_sink_pg_columns *c, char *errstr,
                             size_t errstr_size);

/* Parameters of the results INSERT with 'nvec' vector columns: per
 * vector the real[] of all rows' elements, and per row its start (1-based;
 * NULL: no vector) and length. */
#define SL_SINK_PG_NPARAMS(nvec) (SL_SINK_PG_NCOLS + 3 * (nvec))

/*
 * Fill a[0..SL_SINK_PG_NPARAMS(nvec)) (begun afresh, buffers kept) with
 * the columns of the SL_ROW_RESULT rows among rows[0..n), in the order of
 * sl_sink_pg_sql_insert()'s parameters; a row without vectors (nvec 0)
 * gets NULL in each vector column.  0 or -SL_ENOMEM.  Sink thread.
 */
int sl_sink_pg_encode_results(struct sl_pgarr *a, size_t nvec,
                              struct sl_row *const *rows, size_t n);

/* The dead-letter upsert's parameters for one row, all in binary format. */
struct sl_sink_pg_dead_params {
    const char *vals[SL_SINK_PG_DEAD_NPARAMS]; /* borrow the row, or point into
                                                  the below */
    int lens[SL_SINK_PG_DEAD_NPARAMS];         /* bytes of each */
    unsigned char part[4];                     /* partition, int4 */
    unsigned char off[8];                      /* offset, int8 */
    unsigned char att[4];                      /* attempts, int4 */
};

/* Fill *p for 'row'; valid while both live.  Sink thread. */
void sl_sink_pg_encode_dead(const struct sl_row *row,
                            struct sl_sink_pg_dead_params *p);

/*
 * Data errors (not retriable: sl_err_retriable()) are bisected and end as
 * dead letters; every other error is treated as the connection's problem
 * and the batch is resent.  Any thread.
 */
int sl_sink_pg_is_data_error(const char *sqlstate);

/*
 * Split 'n' rows (n >= 2) of a failed batch: the first half is
 * [0, *firstp), the second [*firstp, n).  Both halves are non-empty.
 */
void sl_sink_pg_bisect(size_t n, size_t *firstp);

/*
 * The SQL text for the results INSERT with UNNEST over the
 * SL_SINK_PG_NPARAMS(nvec) array parameters, into quoted table 'qtable'
 * with column names from 'cols' (NULL fields: defaults), and the 'nvec'
 * real[] columns 'vecs', each a slice of its real[] parameter (the row's
 * start and length) or NULL.  Returns malloc'd text or NULL.
 */
char *sl_sink_pg_sql_insert(const char *qtable,
                            const struct sl_sink_pg_columns *cols,
                            const struct sl_sink_pg_vector *vecs, size_t nvec);

/* CREATE TABLE IF NOT EXISTS for the results table. */
char *sl_sink_pg_sql_create(const char *qtable,
                            const struct sl_sink_pg_columns *cols,
                            const struct sl_sink_pg_vector *vecs, size_t nvec);

/*
 * Check the names of 'nvec' vector columns: identifiers without a dot,
 * none a logical column's name in 'cols' or another vector's, each with a
 * backend.  0 or -SL_ECONFIG with errstr.
 */
int sl_sink_pg_vectors_check(const struct sl_sink_pg_columns *cols,
                             const struct sl_sink_pg_vector *vecs, size_t nvec,
                             char *errstr, size_t errstr_size);

/* CREATE TABLE IF NOT EXISTS for the dead-letter table. */
char *sl_sink_pg_sql_create_dead(const char *qtable);

/*
 * The session's default_toast_compression set to 'method' ("lz4" or
 * "pglz"), where the server has it: a DO block that turns a refusal
 * (PostgreSQL before 14, a server built without lz4) into a notice, so the
 * setup batch still succeeds.  NULL for another method.
 */
char *sl_sink_pg_sql_toast(const char *method);

/* The dead-letter upsert: 11 scalar parameters. */
char *sl_sink_pg_sql_insert_dead(const char *qtable);

/*
 * Connection defaults so that a silent connection (a partition, a dead
 * host: no RST, no FIN) fails in about 30 s rather than after the
 * kernel's many minutes; what each does, and what a DSN may change, is
 * said once, above struct sl_sink_pg_conf in sink_pg.h.  Keepalive probes
 * start after 10 s without traffic, every 5 s; tcp_user_timeout bounds
 * how long sent data may stay unacknowledged.
 */
#define SL_SINK_PG_KEEPALIVES "1"
#define SL_SINK_PG_KEEPALIVES_IDLE "10"     /* s */
#define SL_SINK_PG_KEEPALIVES_INTERVAL "5"  /* s */
#define SL_SINK_PG_KEEPALIVES_COUNT "3"     /* probes */
#define SL_SINK_PG_TCP_USER_TIMEOUT "30000" /* ms */

/* Entries of the keyword arrays, the closing NULL included. */
#define SL_SINK_PG_CONN_PARAMS 9

/*
 * Fill keys[] and vals[] (SL_SINK_PG_CONN_PARAMS entries each) for
 * PQconnectStartParams(keys, vals, 1): each connection default above that
 * 'dsn' (key=value or URI, read with PQconninfoParse) does not set, then
 * "dbname" = 'dsn' (libpq expands it, and its values override the ones
 * before it), "application_name" = 'app', "password" = 'password' when
 * not NULL, then NULL.  When 'dsn' or PGSERVICE names a service, no
 * default is added (the service file may set them; arrays would override
 * it) and *servicep is 1, else 0.  The arrays borrow 'dsn', 'app' and
 * 'password'.
 *
 * Returns the number of keywords; or -SL_ECONFIG with errstr set to
 * "postgres dsn: <libpq's reason>" when libpq cannot parse 'dsn' (keys[0]
 * is then NULL).  Nothing is logged.  Any thread.
 */
int sl_sink_pg_conn_params(const char *dsn, const char *app,
                           const char *password, const char **keys,
                           const char **vals, int *servicep, char *errstr,
                           size_t errstr_size);

/*
 * Copy the first line of 's' (NULL: empty) into buf[size], cut to fit.
 * Any thread.
 */
void sl_sink_pg_first_line(const char *s, char *buf, size_t size);

/*
 * Read the password named by 'conf' (password_env or password_file, with
 * the rules of lib/secret.h) into *pwp (sl_secret_free() it); *pwp is NULL
 * when neither is set.  Returns 0 or -SL_ESECRET / -SL_ENOMEM with errstr
 * naming the setting.  Any thread.
 */
int sl_sink_pg_read_password(const struct sl_sink_pg_conf *conf, char **pwp,
                             char *errstr, size_t errstr_size);

/*
 * "host:port/dbname as user" from 'dsn', for logs; never the password.
 * Returns 0 with *wherep malloc'd, or -SL_ECONFIG ("postgres dsn: ...",
 * any password in libpq's reason masked) / -SL_ENOMEM with *wherep NULL.
 * Any thread.
 */
int sl_sink_pg_describe_dsn(const char *dsn, char **wherep, char *errstr,
                            size_t errstr_size);

/* ---- batches (sink_pg_batch.c); the sink thread's own ---- */

enum sl_pgbatch_kind {
    SL_PGBATCH_ROWS,  /* rows to insert */
    SL_PGBATCH_SETUP, /* CREATE TABLE + PREPARE after connecting */
};

/* A transaction: its rows, and what came back for it. */
struct sl_pgbatch {
    struct sl_pgbatch *next;   /* in the pending or in-flight list */
    enum sl_pgbatch_kind kind; /* rows or setup */
    struct sl_row **rows;      /* rows; owned */
    size_t n;                  /* rows used */
    size_t cap;                /* rows allocated */
    size_t n_result;           /* result rows among them */
    int64_t sent_us;           /* monotonic, when sent; for latency */
    int nstmt;                 /* statements sent before the sync */
    int got;                   /* statement results received */
    int expect_null;           /* a statement's result is awaiting its NULL */
    int err_stmt;              /* first failed statement, or -1 */
    char sqlstate[6];          /* its SQLSTATE */
    char errmsg[256];          /* its message, first line */
    long affected;             /* rows the results INSERT inserted */
};

/* A FIFO of batches. */
struct sl_pgblist {
    struct sl_pgbatch *head; /* oldest */
    struct sl_pgbatch *tail; /* newest */
    size_t len;              /* batches in the list */
};

/* A batch of 'kind' with room for 'cap' rows (0: none).  NULL: no memory. */
struct sl_pgbatch *sl_pgbatch_new(enum sl_pgbatch_kind kind, size_t cap);

/* Forget the previous attempt's outcome before (re)sending. */
void sl_pgbatch_reset_result(struct sl_pgbatch *b);

/* Destroy 'b' and the rows it still holds.  NULL is a no-op. */
void sl_pgbatch_free(struct sl_pgbatch *b);

/* Append 'b' to 'l' / put it at the front / take the oldest (or NULL). */
void sl_pgblist_push(struct sl_pgblist *l, struct sl_pgbatch *b);
void sl_pgblist_push_front(struct sl_pgblist *l, struct sl_pgbatch *b);
struct sl_pgbatch *sl_pgblist_pop(struct sl_pgblist *l);

/*
 * The index of the row sent as statement 'stmt' of 'b' (the results
 * INSERT, when there are result rows, is statement 0; then one per dead
 * letter); b->n when there is none.
 */
size_t sl_pgbatch_dead_row(const struct sl_pgbatch *b, int stmt);

/*
 * Move the rows of 'b' matching 'kind' (enum sl_row_kind, or -1 for all)
 * whose rank among those is in [from, to) into 'nb' (room enough), keeping
 * the order of both.
 */
void sl_pgbatch_move_rows(struct sl_pgbatch *b, struct sl_pgbatch *nb, int kind,
                          size_t from, size_t to);

/* ---- the sink (sink_pg.c; its connection in sink_pg_state.c) ---- */

struct sl_sink_pg {
    /* configuration, immutable after new() */
    char *dsn;             /* conninfo without password; owned */
    char *password;        /* from env or file, or NULL; owned */
    char *app_name;        /* application_name; owned */
    char *where;           /* "host:port/db as user" for logs; owned */
    char *sql_insert;      /* results INSERT ... unnest */
    char *sql_create;      /* CREATE TABLE results, or NULL */
    char *sql_create_dead; /* CREATE TABLE dead letters, or NULL */
    char *sql_toast;       /* session's TOAST compression, or NULL */
    char *sql_dead;        /* dead-letter upsert */
    size_t nvec;           /* vector columns */
    char *vec_backends[SL_SINK_PG_MAX_VECTORS]; /* nvec; owned */
    char *vec_columns[SL_SINK_PG_MAX_VECTORS];  /* nvec; owned */
    struct sl_row_vectors row_vectors;          /* points at the two */
    int batch_rows;                             /* rows per batch */
    int flush_ms;                               /* max age of a partial batch */
    int max_inflight;          /* batches sent, not yet durable */
    int backoff_min_ms;        /* first backoff cap */
    int backoff_max_ms;        /* backoff cap */
    sl_sink_pg_ack_cb *ack_cb; /* gets each message back */
    void *ack_arg;             /* for ack_cb */
    /* PQconnectStartParams arguments (sl_sink_pg_conn_params()) */
    const char *conn_keys[SL_SINK_PG_CONN_PARAMS]; /* keywords, then NULL */
    const char *conn_vals[SL_SINK_PG_CONN_PARAMS]; /* borrow dsn, app_name */

    /* shared with other threads */
    struct sl_queue *backlog; /* rows from workers (bounded) */
    int wake_fd;              /* eventfd: rows arrived, drain called */
    atomic_int sleeping;      /* sink is (about to be) in poll() */
    atomic_size_t wake_at;    /* while sleeping: backlog depth worth a wake */
    atomic_int draining;      /* drain() called */
    atomic_int stop_now;      /* drain deadline passed */
    pthread_t thread;         /* the sink thread */
    int thread_started;       /* thread must be joined */
    pthread_mutex_t mu;       /* guards done, all_durable */
    pthread_cond_t cv;        /* signalled when done */
    int done;                 /* thread finished its work */
    int all_durable;          /* and every row was durable */
    int joined;               /* thread joined */

    /* counters, any thread */
    atomic_uint_fast64_t n_rows;       /* rows inserted */
    atomic_uint_fast64_t n_dups;       /* skipped by ON CONFLICT */
    atomic_uint_fast64_t n_dead;       /* dead letters written */
    atomic_uint_fast64_t n_batches;    /* batches committed */
    struct sl_histo h_rows;            /* rows per committed batch */
    struct sl_histo h_seconds;         /* send to COMMIT, per batch */
    atomic_uint_fast64_t latency_us;   /* sum of batch latencies */
    atomic_uint_fast64_t n_reconnects; /* connections after the first */
    atomic_uint_fast64_t n_failed;     /* rows given back with an error */
    atomic_uint_fast64_t n_held;       /* rows held, not yet acked */
    atomic_int state; /* enum sl_sink_pg_state; set_state() only */

    /* sink thread only */
    PGconn *conn;                /* current connection, or NULL */
    int connect_events;          /* poll events PQconnectPoll wants */
    int64_t connect_deadline_ms; /* give up connecting and set up then */
    struct sl_pgbatch *forming;  /* batch being filled, or NULL */
    int64_t forming_since_ms;    /* when its first row came */
    struct sl_pgblist pending;   /* closed, not sent */
    struct sl_pgblist inflight;  /* sent, awaiting sync */
    int backlog_done;            /* backlog closed and empty */
    int attempt;                 /* failed connects in a row */
    int64_t next_connect_ms;     /* monotonic time of next attempt */
    int ever_connected;          /* a connection has been ready */
    char last_cause[256];        /* last logged failure cause */
    unsigned rng;                /* rand_r state for jitter */
    /* parameter scratch */
    struct sl_pgarr arr[SL_SINK_PG_NPARAMS(SL_SINK_PG_MAX_VECTORS)];
};

/* Rows taken from the backlog and not yet given back.  Any thread. */
static inline size_t sl_sink_pg_rows_held(const struct sl_sink_pg *sink)
{
    return (size_t)atomic_load(&sink->n_held);
}

/*
 * The connection's state machine (its diagram is in sink_pg_state.c); sink
 * thread only, but for sl_sink_pg_conn_state().
 */

/* The state now.  Any thread (an atomic load). */
enum sl_sink_pg_state sl_sink_pg_conn_state(const struct sl_sink_pg *sink);

/* Change the state to 'st', logging the transition at debug. */
void sl_sink_pg_set_state(struct sl_sink_pg *sink, enum sl_sink_pg_state st);

/*
 * Close the connection after 'what' failed because of 'cause' (its first
 * line is logged, once per change of cause); in-flight batches go back to
 * the front of the pending list, the state to DISCONNECTED, and the next
 * attempt is scheduled after a jittered, capped backoff.
 */
void sl_sink_pg_conn_lost(struct sl_sink_pg *sink, const char *what,
                          const char *cause);

/*
 * Start connecting (CONNECTING): the DSN plus the keepalive defaults
 * (sl_sink_pg_conn_params()); a connection not READY within 10 s is given
 * up by the thread.  A failure to start goes through conn_lost().
 */
void sl_sink_pg_conn_start(struct sl_sink_pg *sink);

/*
 * One PQconnectPoll step when the socket is ready; once connected, enter
 * pipeline mode and send the setup batch (SETUP).
 */
void sl_sink_pg_conn_continue(struct sl_sink_pg *sink);

#endif
