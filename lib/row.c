/*
 * Rows for the sink: serialising results on the worker thread, classifying
 * payloads (jsonb or raw bytes), and dead-letter records.
 */
#include "row.h"
#include "err.h"
#include "jsontext.h"
#include "utf8.h"

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
    free(row);
}
