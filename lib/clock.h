/*
 * Clocks: wall time for records, monotonic time for deadlines, and the
 * absolute timespec that pthread_cond_timedwait() wants.
 */
#ifndef SL_CLOCK_H
#define SL_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Wall-clock time in microseconds.  Any thread. */
int64_t sl_now_us(void);

/* Monotonic time in milliseconds.  Any thread. */
int64_t sl_mono_ms(void);

/*
 * Set *ts to CLOCK_MONOTONIC now plus 'ms' milliseconds (ms >= 0), for
 * condition variables created with pthread_condattr_setclock(MONOTONIC).
 */
void sl_deadline_after(struct timespec *ts, int64_t ms);

#endif
