/*
 * A finished message to the sink: its row built from the engine's outcome
 * and handed to the PostgreSQL sink within a deadline.  The one path the
 * worker (run.c) and the gateway (gateway.c) share.
 */
#ifndef SL_ROW_SUBMIT_H
#define SL_ROW_SUBMIT_H

#include "infer.h"
#include "row.h"
#include "sink_pg.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * The row of 'msg' whose steps ended with 'res': when FAILED, a dead
 * letter at res->stage for msg->error (a message its source marked) or
 * res->reason, with msg->attempts; else a result row taking its own
 * references to res's results, errors and timings, written by 'worker'.
 * 'parsed': the engine parsed the payload as a JSON object (payload_format
 * json), so the row need not parse it again.  'vectors' (NULL: none):
 * the results that also go to real[] columns, as the sink asks
 * (sl_sink_pg_row_vectors()); one that is not an array of numbers makes
 * the row a dead letter at the sink stage with the reason, and unless
 * vectors->in_results the results column leaves them out.  Returns the
 * row, which owns
 * 'msg'; NULL when memory is short ('msg' still the caller's).  Any
 * thread.
 */
struct sl_row *sl_row_of_result(struct sl_msg *msg,
                                const struct sl_infer_result *res, bool parsed,
                                const char *worker,
                                const struct sl_row_vectors *vectors);

/*
 * Hand 'row' to 'sink', in tries of 'try_ms' while its backlog is full,
 * until 'deadline_ms' (sl_mono_ms(); negative: none) passes or '*stop'
 * (NULL: never) is set.  Returns 0 when the sink took the row, else the
 * last sl_sink_pg_submit() error (-SL_ETIMEDOUT: still full), the row
 * destroyed and its message not acked.  Any thread but the sink's.
 */
int sl_row_submit(struct sl_sink_pg *sink, struct sl_row *row, int try_ms,
                  int64_t deadline_ms, const _Atomic bool *stop);

#endif
