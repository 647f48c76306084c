/*
 * A finished message to the sink (row_submit.h): outcome -> row -> submit
 * with a deadline, for the worker and the gateway alike.
 */
#include "row_submit.h"

#include "clock.h"
#include "err.h"

struct sl_row *sl_row_of_result(struct sl_msg *msg,
                                const struct sl_infer_result *res, bool parsed,
                                const char *worker)
{
    if (res->status == SL_INFER_FAILED)
        return sl_row_new_dead(msg, res->stage,
                               msg->error ? msg->error : res->reason, "",
                               msg->attempts);
    /* The result is lent to the caller; the row takes its own. */
    return (parsed ? sl_row_new_result_json : sl_row_new_result)(
        msg, json_incref(res->results), json_incref(res->errors),
        json_incref(res->timings), worker);
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
