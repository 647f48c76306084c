/*
 * A source feeds the bounded queue from Kafka, Redis or a file, and owns
 * the ack path: a message is committed (Kafka) or acknowledged (Redis)
 * only after the sink reports it durable, and only the contiguous prefix
 * of acked positions is committed.  This is the part every kind shares:
 * the source thread, the ack hand-off, sentinels at shutdown.
 */
#ifndef SL_SOURCE_H
#define SL_SOURCE_H

#include "msg.h"
#include "queue.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct sl_source;

/* What one kind of source does.  Every callback runs on the source thread. */
struct sl_source_ops {
    const char *kind; /* "kafka", "redis-stream", "file" ... */
    bool redelivers;  /* a message never acked comes again on the next
                         run (Kafka, Redis); false: it is lost (file,
                         stdin) */
    /*
     * Fetch what is available, waiting up to 'timeout_ms', and hand
     * messages over with sl_source_push().  Returns 0, 1 when the input
     * is exhausted (a file at its end: the source then stops by itself),
     * or a negative SL_E* code for a fatal error.
     */
    int (*poll)(struct sl_source *src, int timeout_ms);
    /* A message is durable: record it, then free it.  Takes ownership. */
    void (*acked)(struct sl_source *src, struct sl_msg *msg);
    /*
     * Commit what is committable.  'final' is true once, at close: commit
     * synchronously and leave the group.  Returns 0 or an SL_E* code.
     */
    int (*commit)(struct sl_source *src, bool final);
    /* Free the kind's state (impl).  May be NULL. */
    void (*destroy)(void *impl);
};

/* Counters for metrics; written by the source thread, read by any. */
struct sl_source_stats {
    _Atomic uint64_t consumed;  /* messages handed to the queue */
    _Atomic uint64_t acked;     /* messages acked by the sink */
    _Atomic uint64_t committed; /* commit calls that succeeded */
    _Atomic uint64_t errors;    /* fetch or commit errors */
    _Atomic int paused;         /* 1 while fetching is paused */
};

/*
 * A source of kind 'ops' with state 'impl' (ownership passes to the
 * source; ops->destroy frees it) that pushes into 'q' (borrowed).
 * 'commit_interval_ms' spaces non-final commits.  Returns NULL on
 * allocation failure (impl is then destroyed).  Main thread.
 */
struct sl_source *sl_source_new(const struct sl_source_ops *ops, void *impl,
                                struct sl_queue *q, int commit_interval_ms);

/* The kind's state given to sl_source_new().  Any thread. */
void *sl_source_impl(struct sl_source *src);

/* The queue this source feeds.  Any thread. */
struct sl_queue *sl_source_queue(struct sl_source *src);

/* Counters.  Any thread. */
struct sl_source_stats *sl_source_stats(struct sl_source *src);

/* The kind's name ("kafka", "file" ...).  Static.  Any thread. */
const char *sl_source_kind(const struct sl_source *src);

/*
 * True when a message consumed but never acked comes again on the next
 * run (Kafka, Redis); false when it is lost (file, stdin).  Any thread.
 */
bool sl_source_redelivers(const struct sl_source *src);

/* Ordering guarantees at dispatch (source.ordering). */
enum sl_source_ordering {
    SL_SOURCE_UNORDERED,    /* any message may run beside any other */
    SL_SOURCE_BY_KEY,       /* two messages with the same key (in the same
                               topic) never run at once; keyless ones are
                               free */
    SL_SOURCE_BY_PARTITION, /* one message per partition (or stream) at
                               a time */
};

/*
 * Choose the ordering mode.  A message whose key (or partition) is in
 * flight waits, without holding back other keys, until the one before it
 * is acked; at most 'max_waiting' messages wait, and past that
 * sl_source_push() says -SL_ETIMEDOUT so that the kind pauses fetching.
 * Commits stay contiguous in every mode.  Main thread, before start.
 */
void sl_source_set_ordering(struct sl_source *src,
                            enum sl_source_ordering ordering,
                            size_t max_waiting);

/* Start the source thread.  Returns 0 or an SL_E* code.  Main thread. */
int sl_source_start(struct sl_source *src, char *errstr, size_t errstr_size);

/*
 * Offer 'msg' to the queue for up to 'timeout_ms'.  Stamps msg->source.
 * Returns 0 (the queue owns it, or, in an ordering mode, it waits behind
 * the message in flight for its key and is queued after that one's ack)
 * or -SL_ETIMEDOUT / -SL_ECLOSED (the caller keeps it: hold it and pause
 * fetching).  Source thread.
 */
int sl_source_push(struct sl_source *src, struct sl_msg *msg, int timeout_ms);

/*
 * Hand a durable message back; takes ownership.  Any thread (the sink's).
 * The source thread applies it (ops->acked) and commits in order.
 */
void sl_source_ack(struct sl_msg *msg);

/*
 * Apply the acks handed back so far (ops->acked for each).  The source
 * thread does this by itself between polls; a kind calls it when it must
 * see acks sooner, e.g. while waiting out a partition revoke.  Source
 * thread.
 */
void sl_source_apply_acks(struct sl_source *src);

/*
 * Wait up to 'timeout_ms' for an ack to arrive, then apply what arrived.
 * Source thread.
 */
void sl_source_wait_acks(struct sl_source *src, int timeout_ms);

/*
 * Stop fetching and push 'sentinels' sentinels into the queue, one per
 * worker, after every message already handed over.  Acks are still
 * applied and committed until sl_source_close().  Any thread.
 */
void sl_source_stop(struct sl_source *src, int sentinels);

/*
 * Wait up to 'timeout_ms' for the source thread to have pushed its
 * sentinels (or ended).  Returns 0 or -SL_ETIMEDOUT.  Main thread.
 */
int sl_source_wait_stopped(struct sl_source *src, int timeout_ms);

/*
 * True when the input is exhausted (a file read to its end) and the
 * source has stopped by itself.  Any thread.
 */
bool sl_source_finished(struct sl_source *src);

/*
 * Apply the acks that arrived, commit synchronously what is durable
 * (ops->commit(final=true)), leave the group and join the thread.
 * Messages never acked are simply not committed.  Returns the commit's
 * result.  Main thread, after the sink drained.
 */
int sl_source_close(struct sl_source *src);

/*
 * The last fatal error of the source thread (0 when none), and its text.
 * Any thread.
 */
int sl_source_error(struct sl_source *src, char *errstr, size_t errstr_size);

/* Record a fatal error; the thread stops.  Source thread. */
void sl_source_fail(struct sl_source *src, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Free 'src' (after sl_source_close()).  NULL is a no-op.  Main thread. */
void sl_source_destroy(struct sl_source *src);

#endif
