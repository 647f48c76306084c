/*
 * Internals of the Kafka source shared by its files: the source's state
 * and the table of assigned partitions (source_kafka_parts.c) that
 * source_kafka.c keeps.  The source thread owns all of it, except what
 * the comments say other threads read.  Not for other modules.
 */
#ifndef SL_SOURCE_KAFKA_INT_H
#define SL_SOURCE_KAFKA_INT_H

#include "source_kafka.h"
#include "source_kafka_waker.h"
#include "tracker.h"

#include <librdkafka/rdkafka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define BUCKETS 256       /* partition table hash buckets */
#define ACK_CACHE 64      /* direct-mapped partition cache for acks */
#define BATCH 1000        /* messages taken per poll, at most */
#define WAIT_SLICE_MS 100 /* ack wait step while a revoke drains */

/* One assigned partition; owned by the source thread. */
struct part {
    struct part *next;         /* hash chain */
    char *topic;               /* owned */
    int32_t partition;         /* partition id */
    struct sl_tracker *trk;    /* dispatched/acked offsets */
    int64_t next_offset;       /* first offset not yet taken in this
                                  assignment; -1 before the first */
    struct sl_msg *held;       /* taken but not yet queued, or NULL */
    bool held_dispatched;      /* 'held' is recorded in 'trk' */
    bool dirty;                /* acks arrived since the last store */
    bool revoking;             /* being revoked: take nothing more */
    _Atomic bool paused;       /* fetching paused (read by metrics) */
    _Atomic int64_t inflight;  /* pushed, not acked (read by metrics) */
    _Atomic int64_t committed; /* stored next offset, -1 unknown */
};

struct kstats {
    _Atomic uint64_t assignments, revocations, lost, pauses, resumes;
    _Atomic uint64_t stale_acks, dropped, oversize, empty, errors;
    _Atomic int32_t assigned;
};

struct kafka_source {
    rd_kafka_t *rk;                /* the consumer */
    struct sl_source *src;         /* back pointer, borrowed */
    size_t max_bytes;              /* per message payload */
    int64_t window;                /* tracker capacity per partition */
    int revoke_timeout_ms;         /* drain bound on revoke */
    bool queue_full;               /* every partition paused for the queue */
    bool closing;                  /* final commit under way: no waiting */
    bool closed;                   /* rd_kafka_consumer_close() done */
    bool fatal;                    /* librdkafka raised a fatal error */
    int held_cnt;                  /* partitions with a held message */
    rd_kafka_resp_err_t last_err;  /* last consumer error logged */
    pthread_mutex_t lock;          /* guards the table's shape for readers */
    struct part *buckets[BUCKETS]; /* topic+partition -> part */
    size_t part_cnt;               /* assigned partitions */
    /*
     * Lookup caches, so that the per-message paths skip hashing the topic
     * name: fetched messages come in runs from one partition (keyed on
     * librdkafka's topic handle and its name pointer, both stable while
     * the handle lives), acks by partition number.  Cleared whenever a
     * part is removed.
     */
    const rd_kafka_topic_t *last_rkt;    /* topic handle of 'last' */
    const char *last_name;               /* rd_kafka_topic_name(last_rkt) */
    struct part *last;                   /* part of the last message taken */
    struct part *ack_cache[ACK_CACHE];   /* partition % ACK_CACHE -> part */
    struct sl_source_kafka_waker *waker; /* librdkafka < 2.4, else NULL */
    bool taking;                         /* the last poll returned messages */
    rd_kafka_queue_t *rkq;               /* the consumer queue */
    rd_kafka_message_t *rkms[BATCH];     /* one poll's messages */
    unsigned wake_next;                  /* round robin over the leaders */
    struct kstats st;                    /* counters */
};

#define FOREACH_PART(ks, p)                                                    \
    for (unsigned b_ = 0; b_ < BUCKETS; b_++)                                  \
        for (struct part *p = (ks)->buckets[b_]; p; p = p->next)

/* The part of 'topic' / 'partition', or NULL.  Source thread. */
struct part *sl_source_kafka_part_find(struct kafka_source *ks,
                                       const char *topic, int32_t partition);

/* As find(), through the one-entry cache of the last fetched message. */
struct part *sl_source_kafka_part_of_rkm(struct kafka_source *ks,
                                         const rd_kafka_message_t *rkm,
                                         const char *topic);

/* As find(), through the direct-mapped cache of acked partitions. */
struct part *sl_source_kafka_part_of_ack(struct kafka_source *ks,
                                         const char *topic, int32_t partition);

/*
 * Add a part for 'topic' / 'partition' (with its tracker, nothing held
 * and no offset yet) under ks->lock; NULL when out of memory.
 */
struct part *sl_source_kafka_part_add(struct kafka_source *ks,
                                      const char *topic, int32_t partition);

/* Take 'p' out of the table (clearing both caches) and free it. */
void sl_source_kafka_part_remove(struct kafka_source *ks, struct part *p);

/* Free 'p' and the message it holds, not touching the table. */
void sl_source_kafka_part_free(struct kafka_source *ks, struct part *p);

#endif
