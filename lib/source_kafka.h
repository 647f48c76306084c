/*
 * Kafka source: a librdkafka high-level consumer (cooperative-sticky
 * group) on the source thread.  Offsets are stored only up to the
 * contiguous prefix of acked messages, per partition; a revoke waits for
 * the partition's in-flight messages and commits synchronously; a full
 * queue or tracker window pauses partitions while the consumer keeps
 * polling, so a slow pipeline never costs the group membership.
 */
#ifndef SL_SOURCE_KAFKA_H
#define SL_SOURCE_KAFKA_H

#include "source.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One librdkafka configuration property passed through as is. */
struct sl_kafka_property {
    const char *name;  /* e.g. "session.timeout.ms" */
    const char *value; /* its value as text */
};

struct sl_source_kafka_conf {
    const char *brokers;           /* bootstrap.servers, "host:port,..." */
    const char *const *topics;     /* topic names (or "^regex") */
    size_t topic_cnt;              /* number of topics, >= 1 */
    const char *group;             /* group.id */
    const char *group_instance_id; /* static membership; NULL for none */
    const char *client_id;         /* client.id; NULL for "sluice" */
    const char *client_rack;       /* client.rack (fetch from the nearest
                                      replica); NULL for none */
    const char *auto_offset_reset; /* "earliest" or "latest"; NULL for
                                      "earliest" */
    int revoke_timeout_ms;         /* wait for in-flight messages of a
                                      revoked partition; <= 0: 10000 */
    size_t max_message_bytes;      /* larger messages are dead-lettered;
                                      0: 1 MiB */
    int max_inflight;              /* per-partition tracker window (offsets
                                      from the oldest unacked one); <= 0:
                                      65536 */
    int commit_interval_ms;        /* offsets are stored this often and
                                      auto-committed; <= 0: 1000 */
    const struct sl_kafka_property *properties; /* passed through to
                                                   rd_kafka_conf_set() */
    size_t property_cnt;                        /* number of properties */
};

/* Per-partition positions for metrics; see sl_source_kafka_partitions(). */
struct sl_source_kafka_partition {
    char topic[256];        /* topic name (truncated past 255 bytes) */
    int32_t partition;      /* partition id */
    int64_t committed;      /* next offset to read as stored for commit;
                               -1 until known */
    int64_t high_watermark; /* log end offset last seen by the consumer;
                               -1 until known */
    int64_t lag;            /* high_watermark - committed; -1 if unknown */
    int64_t inflight;       /* pushed to the queue, not yet acked */
    bool paused;            /* fetching paused by backpressure */
};

/* One assigned partition's offsets as the brokers have them. */
struct sl_source_kafka_offsets {
    char topic[256];   /* topic name (truncated past 255 bytes) */
    int32_t partition; /* partition id */
    int64_t committed; /* the group's committed offset; -1 when none */
    int64_t stored;    /* next offset stored for commit here; -1 until
                          known (the first message taken) */
    int64_t low;       /* low watermark (first offset kept) */
    int64_t high;      /* high watermark (log end offset) */
};

/* Counters for metrics and tests.  See sl_source_kafka_stats(). */
struct sl_source_kafka_stats {
    uint64_t assignments; /* rebalances that assigned partitions to us */
    uint64_t revocations; /* rebalances that revoked partitions */
    uint64_t lost;        /* rebalances that reported partitions lost */
    uint64_t pauses;      /* partitions paused for backpressure */
    uint64_t resumes;     /* partitions resumed */
    uint64_t stale_acks;  /* acks ignored: partition no longer ours, or
                             offset from an older assignment */
    uint64_t dropped;     /* fetched again after a pause or seek and
                             dropped as already handed over */
    uint64_t oversize;    /* messages over max_message_bytes */
    uint64_t empty;       /* tombstones (no payload) */
    uint64_t errors;      /* consumer errors reported by librdkafka */
    int32_t assigned;     /* partitions assigned now */
};

/*
 * A Kafka source subscribed to 'conf->topics' in 'conf->group', feeding
 * 'q' (borrowed).  'conf' and its strings are copied where needed and
 * may be freed on return.
 *
 * Returns the source (start it with sl_source_start(), free it with
 * sl_source_destroy()), or NULL with errstr filled: a property librdkafka
 * rejects ("kafka property 'fetch.max.bytes': ..."), a missing broker
 * list, topic or group, or memory.  Main thread.
 */
struct sl_source *sl_source_kafka_new(const struct sl_source_kafka_conf *conf,
                                      struct sl_queue *q, char *errstr,
                                      size_t errstr_size);

/*
 * Fill 'out' with up to 'max' assigned partitions; returns how many
 * partitions are assigned (which may exceed 'max').  Any thread.
 */
size_t sl_source_kafka_partitions(struct sl_source *src,
                                  struct sl_source_kafka_partition *out,
                                  size_t max);

/* Snapshot of the source's Kafka counters into *st.  Any thread. */
void sl_source_kafka_stats(const struct sl_source *src,
                           struct sl_source_kafka_stats *st);

/*
 * Ask the brokers for the group's committed offsets and the watermarks of
 * up to 'max' partitions assigned now, within about 'timeout_ms' in all.
 * Returns how many entries of 'out' were filled (a partition whose leader
 * did not answer in time is left out), or -SL_EKAFKA / -SL_ENOMEM
 * with errstr filled.  Blocks: call it from a thread that may wait (not
 * the source thread, not an HTTP handler).  Any such thread, until
 * sl_source_close().
 */
int sl_source_kafka_query_offsets(struct sl_source *src,
                                  struct sl_source_kafka_offsets *out,
                                  size_t max, int timeout_ms, char *errstr,
                                  size_t errstr_size);

#endif
