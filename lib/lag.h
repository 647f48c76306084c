/*
 * Consumer lag of the source, for /metrics: a thread of its own asks the
 * servers every SL_LAG_INTERVAL_MS (and at once after a Kafka rebalance)
 * how far the group is behind, so that neither a scrape nor the source
 * thread ever waits on a broker.  Kafka: per assigned partition, the high
 * watermark minus the group's committed offset.  Redis Streams: XINFO
 * GROUPS' lag (entries not yet delivered to the group) and pending count.
 */
#ifndef SL_LAG_H
#define SL_LAG_H

#include "config.h"
#include "source.h"

#include <stddef.h>
#include <stdint.h>

#define SL_LAG_INTERVAL_MS 2000 /* refresh period */

/* The lag of one Kafka partition or one Redis stream's group. */
struct sl_lag_entry {
    char topic[256];   /* Kafka topic, or the Redis stream's key */
    int32_t partition; /* Kafka partition; -1 for Redis */
    int64_t lag;       /* messages behind, never negative */
    int64_t pending;   /* Redis: delivered and not acked; -1 for Kafka */
};

struct sl_lag;

/*
 * Start watching the lag of 'src' (borrowed; a Kafka or Redis Streams
 * source built from 'cfg', also borrowed).  Returns NULL for other
 * sources, or when the thread cannot start (errstr filled; metrics then
 * lack the lag).  Main thread.
 */
struct sl_lag *sl_lag_start(const struct sl_config *cfg, struct sl_source *src,
                            char *errstr, size_t errstr_size);

/*
 * Stop the thread and wait for it (a refresh under way ends within 5 s);
 * the last values stay readable.  Call before
 * sl_source_close().  NULL is a no-op.  Main thread.
 */
void sl_lag_stop(struct sl_lag *lag);

/* Stop if needed and free.  NULL is a no-op.  Main thread. */
void sl_lag_destroy(struct sl_lag *lag);

/*
 * Copy up to 'max' entries of the last refresh into 'out'; returns how
 * many, and in *measured_ms the sl_mono_ms() at which that refresh began
 * (0 and nothing before the first).  Any thread.
 */
size_t sl_lag_get(struct sl_lag *lag, struct sl_lag_entry *out, size_t max,
                  int64_t *measured_ms);

#endif
