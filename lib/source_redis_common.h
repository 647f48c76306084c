/*
 * Internal to the Redis sources (source_redis_stream.c, source_redis_list.c):
 * the state both kinds share (connection, in-flight window, ready
 * messages, error-reply backoff) and the steps that work on it alone.
 * Everything here runs on the source thread unless said otherwise.
 */
#ifndef SL_SOURCE_REDIS_COMMON_H
#define SL_SOURCE_REDIS_COMMON_H

#include "redis_conn.h"
#include "source.h"
#include "source_redis.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SL_REDIS_SRC_MAX_BLOCK_MS 50 /* longest blocking read per poll */
#define SL_REDIS_SRC_ERROR_BACKOFF_MS                                          \
    1000 /* after an unexpected error                                          \
            reply */

struct sl_redis_src;

/*
 * Called by sl_redis_src_push_ready() for the message about to be queued,
 * after msg->seq is set.  The kind records what it needs to find the
 * message again at its ack.
 */
typedef void sl_redis_src_before_push_fn(struct sl_redis_src *b,
                                         struct sl_msg *msg);

/*
 * Called once 'msg' is queued: it is no longer ours, so it may be
 * compared, never read.  b->next_seq is still its sequence number.
 */
typedef void sl_redis_src_after_push_fn(struct sl_redis_src *b,
                                        const struct sl_msg *msg);

/*
 * Item 'i' of what sl_redis_src_send_batched() sends: *str and *len (the
 * string is borrowed from the kind's state).
 */
typedef void sl_redis_src_item_fn(const struct sl_redis_src *b, size_t i,
                                  const char **str, size_t *len);

/* The first member of each kind's state. */
struct sl_redis_src {
    struct sl_redis_counters ctr; /* first member: see sl_redis_counters */
    struct sl_redis_conn *rc;     /* the connection */
    const char *component;        /* for logs: "redis-list", ... */
    const char *noun;             /* for logs: "list" or "stream" */
    char *key;                    /* the stream or list key */
    char *consumer;               /* our consumer name */
    int count;                    /* entries per read */
    int block_ms;                 /* wait per read (capped) */
    int ack_batch;                /* acks per round trip */
    int max_inflight;             /* tracker window */
    size_t max_bytes;             /* payload cap */
    struct sl_tracker *trk;       /* dispatched / acked sequence numbers */
    int64_t next_seq;             /* next dense sequence number */
    int64_t retry_ms;             /* no reads before this (backoff) */
    char last_error[256];         /* last logged error reply, log once */
    struct sl_msg **ready;        /* read, not yet queued; count slots */
    size_t ready_head;            /* next to push */
    size_t ready_cnt;             /* filled */
    sl_redis_src_before_push_fn *before_push; /* or NULL */
    sl_redis_src_after_push_fn *after_push;   /* or NULL */
};

static inline int positive_or(int v, int dflt)
{
    return v > 0 ? v : dflt;
}

/*
 * Fill the shared part of *b (zeroed by the caller) from 'conf': the
 * defaults, copies of key and consumer, the ready slots and the tracker.
 * Returns 0 or -SL_ENOMEM with errstr filled; what was allocated is freed
 * by sl_redis_src_cleanup().  Main thread.
 */
int sl_redis_src_init(struct sl_redis_src *b,
                      const struct sl_source_redis_conf *conf,
                      const char *component, const char *noun, char *errstr,
                      size_t errstr_size);

/*
 * Create the connection of 'conf' (client name "sluice:<key>:<consumer>")
 * and connect it.  Returns 0 or a negative code with errstr filled.  Main
 * thread.
 */
int sl_redis_src_connect(struct sl_redis_src *b,
                         const struct sl_source_redis_conf *conf, char *errstr,
                         size_t errstr_size);

/* Free what *b holds (not b itself): unqueued messages, tracker, conn. */
void sl_redis_src_cleanup(struct sl_redis_src *b);

/*
 * Log an unexpected error reply to 'what' once per distinct text, then
 * back off reads for SL_REDIS_SRC_ERROR_BACKOFF_MS.
 */
void sl_redis_src_error_reply(struct sl_redis_src *b, const char *what,
                              const char *text);

/* Room left in the in-flight window. */
int sl_redis_src_room(const struct sl_redis_src *b);

/*
 * Queue the ready messages with dense sequence numbers.  Returns 0 when
 * all went, 1 when the queue or the window is full (keep them, stop
 * reading), or -SL_ECLOSED.
 */
int sl_redis_src_push_ready(struct sl_source *src, struct sl_redis_src *b,
                            int timeout_ms);

/*
 * While disconnected or backing off after an error reply, wait for acks
 * (at most 'timeout_ms') and return true: the poll is over.  'now' is
 * sl_mono_ms().
 */
bool sl_redis_src_backoff(struct sl_source *src, struct sl_redis_src *b,
                          int64_t now, int timeout_ms);

/* The wait of one blocking read: block_ms capped by the poll's timeout. */
int sl_redis_src_block_ms(const struct sl_redis_src *b, int timeout_ms);

/* Record the sink's ack of 'seq' in the tracker. */
void sl_redis_src_track_ack(struct sl_redis_src *b, int64_t seq);

/*
 * Send 'prefix' (nprefix strings) followed by items 0..n-1, at most
 * ack_batch items per command; 'what' names it in logs.  Counts acked
 * items, and one ack failure when a command fails.  *sentp is the number
 * of items sent (those are done; the rest stay for the next try).  Returns
 * 0, -SL_ENOMEM, -SL_ECONN (I/O) or -SL_EREDIS (error reply, logged).
 */
int sl_redis_src_send_batched(struct sl_redis_src *b, const char *what,
                              const char *const *prefix, int nprefix, size_t n,
                              sl_redis_src_item_fn *item, size_t *sentp);

#endif
