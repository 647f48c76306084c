/*
 * Retry timing for backend calls: exponential backoff with full jitter
 * (a uniform draw in [0, min(max, base * 2^n)]) and the server's
 * Retry-After (delta-seconds or an HTTP date), capped.
 */
#ifndef SL_RETRY_H
#define SL_RETRY_H

#include "config.h"

#include <stdint.h>

/*
 * Next value of a xorshift64* generator in *state (never left 0).  Each
 * thread keeps its own state.  Any thread.
 */
uint64_t sl_retry_rand(uint64_t *state);

/*
 * The ceiling of the backoff before retry number 'retry' (1 for the wait
 * after the first failed attempt): min(rc->max_ms, rc->base_ms *
 * 2^(retry-1)), in ms.  Any thread.
 */
int64_t sl_retry_backoff_cap_ms(const struct sl_config_retry *rc, int retry);

/*
 * A full-jitter backoff before retry number 'retry': uniform in
 * [0, sl_retry_backoff_cap_ms()], drawn from *rng.  Any thread.
 */
int64_t sl_retry_backoff_ms(const struct sl_config_retry *rc, int retry,
                            uint64_t *rng);

/*
 * Parse a Retry-After header value: delta-seconds ("5") or an HTTP date
 * ("Wed, 21 Oct 2015 07:28:00 GMT", read with curl_getdate()), relative
 * to wall time 'now_s' (seconds since the epoch).  A date in the past
 * gives 0.  The result is capped at 'cap_ms'.
 *
 * Returns the delay in ms, or -1 when the value is neither form (garbage
 * is ignored: the caller falls back to its own backoff).  Any thread.
 */
int64_t sl_retry_after_ms(const char *value, int64_t now_s, int64_t cap_ms);

#endif
