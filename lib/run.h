/*
 * The worker end to end: source -> bounded queue -> worker pool (inference
 * steps) -> PostgreSQL sink -> ack.  sl_run() wires the parts from a
 * loaded pipeline and runs until the input ends or a signal arrives, then
 * shuts down by sentinel.
 */
#ifndef SL_RUN_H
#define SL_RUN_H

#include "config.h"

struct sl_run_opts {
    const char *replica_id; /* names this replica; NULL: host name + pid */
    const char *listen;     /* overrides http.listen; NULL: the file's */
};

/* Exit status: messages a source cannot redeliver were not made durable. */
#define SL_RUN_EXIT_LOST 3

/*
 * Run the pipeline 'cfg' (borrowed).  SIGINT, SIGTERM and SIGHUP start a
 * graceful drain bounded by shutdown_timeout_ms; a second signal stops at
 * once.  Nothing that is not durable is ever committed.
 *
 * Returns the exit status: 0 after a clean drain, 1 for a fatal runtime
 * error (its cause is the last log line), SL_RUN_EXIT_LOST when messages
 * of a source that cannot redeliver them (file, stdin) were consumed and
 * never made durable (their count is logged; this wins over 1).  Main
 * thread, before any other thread exists.
 */
int sl_run(const struct sl_config *cfg, const struct sl_run_opts *opts);

#endif
