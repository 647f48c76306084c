/*
 * A row for the sink: a processed message with its backend results, errors
 * and timings, or a dead-letter record (stage, reason, attempts).  Rows are
 * built on worker threads, where the JSON is serialised and the payload
 * classified, so that the sink thread only copies bytes.
 */
#ifndef SL_ROW_H
#define SL_ROW_H

#include "msg.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum sl_row_kind {
    SL_ROW_RESULT, /* goes to the results table */
    SL_ROW_DEAD,   /* goes to the dead-letter table */
};

/* enum sl_row_stage (where a dead letter failed) is in msg.h: a message
 * carries it from the source or the worker to its row. */

/*
 * One backend's result as a PostgreSQL real[] (float4) column value: the
 * elements of its binary array format, each a 4-byte length (4) and the
 * float4 in network order, so that the sink only copies bytes.
 */
struct sl_row_vec {
    unsigned char *elems; /* count * 8 bytes; NULL: the column is NULL */
    uint32_t count;       /* elements */
};

/*
 * Which results also go to real[] columns (sink.postgres.columns.vectors),
 * as the sink that writes the rows asks for them.
 */
struct sl_row_vectors {
    const char *const *backends; /* the result of each column, by name */
    const char *const *columns;  /* the column names, for errors */
    size_t n;                    /* columns */
    bool in_results;             /* the results column keeps them too */
};

struct sl_row {
    enum sl_row_kind kind;   /* result or dead letter */
    struct sl_msg *msg;      /* the message; owned until acked */
    char *results;           /* results as compact JSON text, or NULL */
    char *errors;            /* per-backend errors, JSON text, or NULL */
    char *timings;           /* timings, JSON text, or NULL */
    char *worker;            /* worker id, or NULL */
    int payload_json;        /* 1: payload is JSON jsonb accepts */
    enum sl_row_stage stage; /* dead letters: where it failed */
    char *error;             /* dead letters: reason, valid UTF-8 */
    char sqlstate[6];        /* dead letters: SQLSTATE, or "" */
    uint32_t attempts;       /* dead letters: deliveries so far, >= 1 */
    struct sl_row_vec *vecs; /* nvec vector columns' values, or NULL */
    size_t nvec;
};

/* "decode", "inference", "sink", "redelivery".  Static.  Any thread. */
const char *sl_row_stage_name(enum sl_row_stage stage);

/*
 * A result row for 'msg'.  Steals one reference to each of 'results',
 * 'errors' and 'timings' (each may be NULL), also on failure.  'worker' is
 * copied (may be NULL).  The JSON is serialised here, and the payload is
 * checked once for being JSON that jsonb accepts (otherwise it is stored
 * as bytes in payload_raw).
 *
 * Returns the row, which owns 'msg'; NULL on allocation failure, when
 * 'msg' still belongs to the caller.  Any thread.
 */
struct sl_row *sl_row_new_result(struct sl_msg *msg, json_t *results,
                                 json_t *errors, json_t *timings,
                                 const char *worker);

/*
 * The same for a payload already known to be a JSON object that jsonb
 * accepts: one jansson parsed without JSON_ALLOW_NUL, as the engine does
 * with payload_format json.  Saves parsing it a second time.
 */
struct sl_row *sl_row_new_result_json(struct sl_msg *msg, json_t *results,
                                      json_t *errors, json_t *timings,
                                      const char *worker);

/*
 * The real[] values of 'v's columns from 'results' (the backends' results
 * by name) into vecs[0..v->n), each NULL (elems NULL) when the backend has
 * no result.  A result that is not an array of numbers, or a number a
 * float4 cannot hold, is a data error: -SL_EDATA with the reason in
 * 'errstr'; -SL_ENOMEM.  'vecs' is the caller's to free with
 * sl_row_vecs_free(), also on failure.  Any thread.
 */
int sl_row_vectors_of(const struct sl_row_vectors *v, const json_t *results,
                      struct sl_row_vec *vecs, char *errstr,
                      size_t errstr_size);

/* Free 'n' vectors' elements and the array 'vecs' itself. */
void sl_row_vecs_free(struct sl_row_vec *vecs, size_t n);

/*
 * A dead-letter row for 'msg', which failed at 'stage' because of
 * 'error' (copied; bytes that are not UTF-8 become '?').  'sqlstate' may
 * be NULL.  Takes ownership of 'msg' on success; on failure (NULL,
 * allocation) 'msg' still belongs to the caller.  Any thread.
 */
struct sl_row *sl_row_new_dead(struct sl_msg *msg, enum sl_row_stage stage,
                               const char *error, const char *sqlstate,
                               uint32_t attempts);

/*
 * Turn result row 'row' into a dead letter in place (the sink does this
 * for rows PostgreSQL refused).  Returns 0 or -SL_ENOMEM (row unchanged).
 * The thread that owns 'row'.
 */
int sl_row_make_dead(struct sl_row *row, enum sl_row_stage stage,
                     const char *error, const char *sqlstate);

/* Free 'row', its message and its text.  NULL is a no-op.  Any thread. */
void sl_row_destroy(struct sl_row *row);

#endif
