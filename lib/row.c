/*
 * Rows for the sink: serialising results on the worker thread, classifying
 * payloads (jsonb or raw bytes), and dead-letter records.
 */
#include "row.h"
#include "byteorder.h"
#include "err.h"
#include "jsontext.h"
#include "utf8.h"
#include "vecpack.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl_row_stage_name(enum sl_row_stage stage)
{
    switch (stage) {
    case SL_STAGE_DECODE:
        return "decode";
    case SL_STAGE_INFERENCE:
        return "inference";
    case SL_STAGE_SINK:
        return "sink";
    case SL_STAGE_REDELIVERY:
        return "redelivery";
    }
    return "unknown";
}

/* Compact JSON text of 'j' (NULL for NULL), each real as short as it came;
 * drops the reference. */
static int dump_steal(json_t *j, char **outp)
{
    *outp = NULL;
    if (!j)
        return 0;
    *outp = sl_jsontext_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(j);
    return *outp ? 0 : -SL_ENOMEM;
}

/* "an object", "a string", ... for errors about a JSON value. */
static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        break;
    }
    return "null";
}

/* Room in 'out' for 'n' float4 elements: -SL_EDATA past a real[]'s size. */
static int vec_alloc(const char *column, const char *backend, size_t n,
                     struct sl_row_vec *out, char *errstr, size_t errstr_size)
{
    if (n > 0x3fffffff / 8)
        return sl_seterr(-SL_EDATA, errstr, errstr_size,
                         "vector column \"%s\": backend %s's result has %zu "
                         "numbers, more than a real[] takes",
                         column, backend, n);
    out->elems = malloc(n ? n * 8 : 1);
    if (!out->elems)
        return -SL_ENOMEM;
    out->count = (uint32_t)n;
    return 0;
}

/* Element 'i' of 'out': its length (4) and the float4 'bits', each in
 * network order, as PostgreSQL's binary array format has them. */
static void vec_put(struct sl_row_vec *out, size_t i, uint32_t bits)
{
    sl_put_be32(out->elems + i * 8, 4);
    sl_put_be32(out->elems + i * 8 + 4, bits);
}

/* One result 'a' as float4 elements into 'out'. */
static int vec_of(const char *column, const char *backend, const json_t *a,
                  struct sl_row_vec *out, char *errstr, size_t errstr_size)
{
    size_t n, i;
    const unsigned char *le = sl_vecpack_get(a, &n);
    int rc;

    if (le) { /* finite float32s, little-endian: only the byte order */
        if ((rc = vec_alloc(column, backend, n, out, errstr, errstr_size)) < 0)
            return rc;
        for (i = 0; i < n; i++)
            vec_put(out, i, sl_get_le32(le + i * 4));
        return 0;
    }
    if (!json_is_array(a))
        return sl_seterr(-SL_EDATA, errstr, errstr_size,
                         "vector column \"%s\": backend %s's result is %s, "
                         "not an array of numbers",
                         column, backend, json_kind(a));
    n = json_array_size(a);
    if ((rc = vec_alloc(column, backend, n, out, errstr, errstr_size)) < 0)
        return rc;
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(a, i);
        double d;
        float f;
        uint32_t bits;

        if (!json_is_number(e))
            return sl_seterr(-SL_EDATA, errstr, errstr_size,
                             "vector column \"%s\": backend %s's result "
                             "[%zu] is %s, not a number",
                             column, backend, i, json_kind(e));
        d = json_number_value(e);
        f = (float)d;
        /* As PostgreSQL's float4in: out of range both ways is an error. */
        if (isinf(f) || (f == 0.0f && d != 0.0))
            return sl_seterr(-SL_EDATA, errstr, errstr_size,
                             "vector column \"%s\": backend %s's result "
                             "[%zu] = %g is out of range for type real",
                             column, backend, i, d);
        memcpy(&bits, &f, 4);
        vec_put(out, i, bits);
    }
    return 0;
}

int sl_row_vectors_of(const struct sl_row_vectors *v, const json_t *results,
                      struct sl_row_vec *vecs, char *errstr, size_t errstr_size)
{
    for (size_t k = 0; k < v->n; k++) {
        const json_t *a = json_object_get(results, v->backends[k]);
        int rc;

        if (!a)
            continue;
        rc = vec_of(v->columns[k], v->backends[k], a, &vecs[k], errstr,
                    errstr_size);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void sl_row_vecs_free(struct sl_row_vec *vecs, size_t n)
{
    if (!vecs)
        return;
    for (size_t k = 0; k < n; k++)
        free(vecs[k].elems);
    free(vecs);
}

static void row_free_text(struct sl_row *row)
{
    free(row->results);
    free(row->errors);
    free(row->timings);
    free(row->worker);
    free(row->error);
}

/* payload_json: 1 known to be JSON jsonb accepts, -1 to be checked. */
static struct sl_row *new_result(struct sl_msg *msg, json_t *results,
                                 json_t *errors, json_t *timings,
                                 const char *worker, int payload_json)
{
    struct sl_row *row = calloc(1, sizeof(*row));
    char *r = NULL, *e = NULL, *t = NULL;
    int rc = 0;

    rc |= dump_steal(results, &r);
    rc |= dump_steal(errors, &e);
    rc |= dump_steal(timings, &t);
    if (row) {
        row->results = r;
        row->errors = e;
        row->timings = t;
    }
    if (!row || rc != 0 || (worker && !(row->worker = strdup(worker)))) {
        if (row)
            row_free_text(row);
        else
            free(r), free(e), free(t);
        free(row);
        return NULL;
    }
    row->kind = SL_ROW_RESULT;
    row->msg = msg;
    row->attempts = msg->attempts ? msg->attempts : 1;
    if (payload_json > 0) {
        row->payload_json = 1;
    } else if (msg->payload && msg->payload_len) {
        /* No JSON_ALLOW_NUL: jsonb refuses \u0000 (22P05). */
        json_t *j = json_loadb((const char *)msg->payload, msg->payload_len,
                               JSON_DECODE_ANY, NULL);
        row->payload_json = j != NULL;
        json_decref(j);
    }
    return row;
}

struct sl_row *sl_row_new_result(struct sl_msg *msg, json_t *results,
                                 json_t *errors, json_t *timings,
                                 const char *worker)
{
    return new_result(msg, results, errors, timings, worker, -1);
}

struct sl_row *sl_row_new_result_json(struct sl_msg *msg, json_t *results,
                                      json_t *errors, json_t *timings,
                                      const char *worker)
{
    return new_result(msg, results, errors, timings, worker, 1);
}

struct sl_row *sl_row_new_dead(struct sl_msg *msg, enum sl_row_stage stage,
                               const char *error, const char *sqlstate,
                               uint32_t attempts)
{
    struct sl_row *row = calloc(1, sizeof(*row));

    if (!row)
        return NULL;
    row->msg = msg;
    if (sl_row_make_dead(row, stage, error, sqlstate) < 0) {
        free(row);
        return NULL;
    }
    row->attempts = attempts ? attempts : 1;
    return row;
}

int sl_row_make_dead(struct sl_row *row, enum sl_row_stage stage,
                     const char *error, const char *sqlstate)
{
    const char *e = error ? error : "";
    char *copy = sl_utf8_sanitize(e, strlen(e));

    if (!copy)
        return -SL_ENOMEM;
    free(row->error);
    row->error = copy;
    row->kind = SL_ROW_DEAD;
    row->stage = stage;
    row->sqlstate[0] = '\0';
    if (sqlstate) {
        strncpy(row->sqlstate, sqlstate, sizeof(row->sqlstate) - 1);
        row->sqlstate[sizeof(row->sqlstate) - 1] = '\0';
    }
    if (!row->attempts)
        row->attempts = row->msg && row->msg->attempts ? row->msg->attempts : 1;
    return 0;
}

void sl_row_destroy(struct sl_row *row)
{
    if (!row)
        return;
    sl_msg_destroy(row->msg);
    row_free_text(row);
    sl_row_vecs_free(row->vecs, row->nvec);
    free(row);
}
