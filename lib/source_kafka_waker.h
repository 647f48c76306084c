/*
 * The fetch waker of the Kafka source, for librdkafka before 2.4 only:
 * a helper thread that wakes librdkafka's fetcher when the source has
 * emptied its queue (see source_kafka_waker.c for why).  Delete this file
 * and its calls in source_kafka.c once 2.4 is the minimum.
 */
#ifndef SL_SOURCE_KAFKA_WAKER_H
#define SL_SOURCE_KAFKA_WAKER_H

#include <librdkafka/rdkafka.h>

#include <stdbool.h>
#include <stdint.h>

struct sl_source_kafka_waker;

/*
 * Start a waker for consumer 'rk' (borrowed: destroy the waker first).
 * NULL when the running librdkafka is 2.4 or later (none is needed) or
 * when the thread cannot start (fetching is then only slower).  Source
 * thread.
 */
struct sl_source_kafka_waker *sl_source_kafka_waker_new(rd_kafka_t *rk);

/*
 * True while a wake-up is asked or under way: asking again would do
 * nothing.  Source thread.
 */
bool sl_source_kafka_waker_busy(struct sl_source_kafka_waker *w);

/*
 * Wake the broker thread that leads 'topic' / 'partition' (copied), unless
 * a wake-up is already asked or under way.  Never waits.  Source thread.
 */
void sl_source_kafka_waker_wake(struct sl_source_kafka_waker *w,
                                const char *topic, int32_t partition);

/*
 * Stop and free 'w', waiting for a request under way.  NULL is a no-op.
 * Source thread.
 */
void sl_source_kafka_waker_destroy(struct sl_source_kafka_waker *w);

#endif
