/*
 * Admission control per backend, shared by every worker and never
 * blocking: a cap on requests in flight (a semaphore with try-acquire
 * only), a requests-per-second token bucket and a tokens-per-minute
 * budget debited with the usage that servers report.
 */
#ifndef SL_LIMITER_H
#define SL_LIMITER_H

#include <stdint.h>

struct sl_limiter;

/*
 * A limiter allowing 'max_concurrency' requests in flight (0: no cap),
 * 'rps' requests per second (0: no limit; bursts up to max(1, rps)) and
 * 'tokens_per_minute' model tokens (0: no limit).  Returns NULL when out
 * of memory.  Any thread.
 */
struct sl_limiter *sl_limiter_new(int max_concurrency, double rps,
                                  int64_t tokens_per_minute);

/* Free.  NULL is a no-op.  Any thread, once no request holds a slot. */
void sl_limiter_destroy(struct sl_limiter *l);

/*
 * Try to start a request at monotonic time 'now_ms', without waiting.
 *
 * Returns 0 when it may start (the caller holds a slot until
 * sl_limiter_release()); -SL_EBUSY when the cap is reached (try again
 * after some request finished); -SL_ERATELIMIT when the rate or token
 * budget is spent, with *wait_msp set to when trying again makes sense.
 * Any thread.
 */
int sl_limiter_try_acquire(struct sl_limiter *l, int64_t now_ms,
                           int64_t *wait_msp);

/* Give back the slot of a started request.  Any thread. */
void sl_limiter_release(struct sl_limiter *l);

/* Debit 'tokens' model tokens used at 'now_ms'.  Any thread. */
void sl_limiter_debit_tokens(struct sl_limiter *l, int64_t tokens,
                             int64_t now_ms);

#endif
