/*
 * A finished message to the sink (row_submit.h): outcome -> row -> submit
 * with a deadline, for the worker and the gateway alike.
 */
#include "row_submit.h"

#include "clock.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

/* 'results' without the vector columns' keys: a shallow copy. */
static json_t *without_vectors(json_t *results, const struct sl_row_vectors *v)
{
    json_t *copy = json_object();
    const char *key;
    json_t *value;

    if (!copy)
        return NULL;
    json_object_foreach(results, key, value)
    {
        size_t k = 0;
        while (k < v->n && strcmp(key, v->backends[k]) != 0)
            k++;
        if (k == v->n && json_object_set(copy, key, value) < 0) {
            json_decref(copy);
            return NULL;
        }
    }
    return copy;
}

struct sl_row *sl_row_of_result(struct sl_msg *msg,
                                const struct sl_infer_result *res, bool parsed,
                                const char *worker,
                                const struct sl_row_vectors *vectors)
{
    struct sl_row_vec *vecs = NULL;
    json_t *results;
    struct sl_row *row;

    if (res->status == SL_INFER_FAILED)
        return sl_row_new_dead(msg, res->stage,
                               msg->error ? msg->error : res->reason, "",
                               msg->attempts);
    if (vectors && vectors->n) {
        char err[256];
        int rc;

        vecs = calloc(vectors->n, sizeof(*vecs));
        if (!vecs)
            return NULL;
        rc = sl_row_vectors_of(vectors, res->results, vecs, err, sizeof(err));
        if (rc < 0) {
            sl_row_vecs_free(vecs, vectors->n);
            return rc == -SL_EDATA ? sl_row_new_dead(msg, SL_STAGE_SINK, err,
                                                     "", msg->attempts)
                                   : NULL;
        }
    }
    /* The result is lent to the caller; the row takes its own. */
    if (vecs && !vectors->in_results && res->results)
        results = without_vectors(res->results, vectors);
    else
        results = json_incref(res->results);
    if (!results && res->results) {
        sl_row_vecs_free(vecs, vectors->n);
        return NULL;
    }
    row = (parsed ? sl_row_new_result_json
                  : sl_row_new_result)(msg, results, json_incref(res->errors),
                                       json_incref(res->timings), worker);
    if (!row) {
        sl_row_vecs_free(vecs, vectors ? vectors->n : 0);
        return NULL;
    }
    row->vecs = vecs;
    row->nvec = vecs ? vectors->n : 0;
    return row;
}

int sl_row_submit(struct sl_sink_pg *sink, struct sl_row *row, int try_ms,
                  int64_t deadline_ms, const _Atomic bool *stop)
{
    for (;;) {
        int rc = sl_sink_pg_submit(sink, row, try_ms);
        if (rc == 0)
            return 0;
        if (rc != -SL_ETIMEDOUT || (stop && atomic_load(stop)) ||
            (deadline_ms >= 0 && sl_mono_ms() >= deadline_ms)) {
            sl_row_destroy(row);
            return rc;
        }
    }
}
