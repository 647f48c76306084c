/*
 * A circuit breaker per backend, shared by every worker: it opens after N
 * consecutive failures, fails calls fast while open, lets a few probes
 * through once open_ms has passed (half-open), and closes on a probe's
 * success or reopens on its failure.
 */
#ifndef SL_BREAKER_H
#define SL_BREAKER_H

#include "config.h"

#include <stdint.h>

enum sl_breaker_state {
    SL_BREAKER_CLOSED,    /* calls pass; failures are counted */
    SL_BREAKER_OPEN,      /* calls fail fast until open_ms passed */
    SL_BREAKER_HALF_OPEN, /* up to half_open_probes probes pass */
};

/* How an admitted call ended. */
enum sl_breaker_outcome {
    SL_BREAKER_SUCCESS, /* the server answered sensibly */
    SL_BREAKER_FAILURE, /* timeout, connection error, 5xx ... */
    SL_BREAKER_CANCEL,  /* abandoned without an answer: neither */
};

struct sl_breaker;

/*
 * A closed breaker with the settings 'bc' (copied; failures 0 = never
 * opens).  Returns NULL when out of memory.  Any thread.
 */
struct sl_breaker *sl_breaker_new(const struct sl_config_breaker *bc);

/* Free.  NULL is a no-op.  No call may be in progress.  Any thread. */
void sl_breaker_destroy(struct sl_breaker *b);

/*
 * Ask to make a call at monotonic time 'now_ms'.  Returns 0 when the call
 * may go (the caller must report it with sl_breaker_record()), or
 * -SL_EBREAKER when it must fail fast (nothing to report).  Any thread.
 */
int sl_breaker_allow(struct sl_breaker *b, int64_t now_ms);

/*
 * Report how an allowed call ended, at monotonic time 'now_ms'.  Returns
 * the state this report moved the breaker into, so that the caller can
 * say so once: SL_BREAKER_OPEN when a failure opened it (or a probe's
 * failure reopened it), SL_BREAKER_CLOSED when a probe's success closed
 * it; -1 when the report changed nothing.  Any thread.
 */
int sl_breaker_record(struct sl_breaker *b, enum sl_breaker_outcome outcome,
                      int64_t now_ms);

/*
 * The state at 'now_ms' (an open breaker whose open_ms passed reads
 * half-open).  Any thread.
 */
enum sl_breaker_state sl_breaker_state(struct sl_breaker *b, int64_t now_ms);

/* "closed", "open", "half_open"; static.  Any thread. */
const char *sl_breaker_state_name(enum sl_breaker_state state);

#endif
