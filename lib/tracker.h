/*
 * Offset tracker: out-of-order completion, in-order commit (architecture
 * invariant 4).  One tracker per Kafka partition or Redis stream records
 * which positions were handed to workers and which were acked, and yields
 * the commit point: the highest position below which everything is done.
 */
#ifndef SL_TRACKER_H
#define SL_TRACKER_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Positions are non-negative int64 values that the source dispatches in
 * strictly increasing order, with gaps allowed: a Kafka offset (compacted
 * topics and transaction markers skip offsets), or, for a Redis stream,
 * a dense sequence number the source assigns to each entry it reads
 * (entry ids are not dense and do not fit one int64).  A position that
 * was skipped is never waited for.
 *
 * The commit point P is the highest position such that every dispatched
 * position <= P is acked.  For Kafka the source commits P + 1 (the next
 * offset to read); for Redis it XACKs the entries up to P.
 *
 * Memory is bounded and allocated once: the tracker holds a window of
 * 'capacity' consecutive positions starting at the lowest unacked one.
 * Skipped positions inside the window take a slot too, so 'capacity'
 * bounds both the dispatched-but-not-committable positions and the span
 * between the oldest unacked position and the newest dispatched one.
 * Acked positions are released as soon as the commit point passes them,
 * whether or not the source has committed yet.
 *
 * A tracker is owned by its source thread and is not thread-safe: acks
 * from workers reach the source through its ack queue, and the source
 * applies them here.
 */
struct sl_tracker;

/* Largest capacity sl_tracker_new() accepts (2^24 positions, 4 MiB). */
#define SL_TRACKER_MAX_CAPACITY ((int64_t)1 << 24)

/* next_pos for sl_tracker_reset(): the first dispatch sets the start. */
#define SL_TRACKER_POS_ANY ((int64_t)-1)

/* Counters and positions for metrics and logs; see sl_tracker_stats(). */
struct sl_tracker_stats {
    int64_t capacity;        /* window size in positions */
    int64_t last_dispatched; /* newest dispatched position; -1 if none */
    int64_t lowest_unacked;  /* the gap holding commits back; -1 if none */
    int64_t commit_point;    /* P; -1 if nothing dispatched yet */
    int64_t committed;       /* last P given to mark_committed (or start-1) */
    int64_t inflight;        /* dispatched, not yet passed by the P */
    int64_t unacked;         /* dispatched, not acked */
    int64_t window_used;     /* last_dispatched - lowest_unacked + 1, or 0 */
    uint64_t dispatched;     /* successful dispatches, all generations */
    uint64_t acked;          /* successful acks, all generations */
    uint64_t busy;           /* dispatches refused with -SL_EBUSY */
    uint64_t bad_acks;       /* acks refused: -SL_ENOTFOUND or -SL_ESTATE */
    uint32_t generation;     /* number of sl_tracker_reset() calls */
};

/*
 * Create a tracker whose window holds 'capacity' positions
 * (1..SL_TRACKER_MAX_CAPACITY).  The first dispatch sets the start, as
 * after sl_tracker_reset(t, SL_TRACKER_POS_ANY).
 *
 * Returns the tracker, owned by the caller (free with
 * sl_tracker_destroy()), or NULL when 'capacity' is out of range or memory
 * is short.  Any thread; then owned by the source thread.
 */
struct sl_tracker *sl_tracker_new(int64_t capacity);

/* Free 't'.  NULL is a no-op.  Owning thread. */
void sl_tracker_destroy(struct sl_tracker *t);

/*
 * Record that position 'pos' was handed out for processing.
 *
 * Returns 0; -SL_EBUSY when 'pos' falls outside the window, i.e. 'pos' is
 * 'capacity' or more past the lowest unacked position (nothing is
 * recorded: the caller keeps the message, pauses its partition or stops
 * reading, and dispatches it again after acks have moved the window);
 * -SL_EINVAL when 'pos' is negative, not greater than the last dispatched
 * position, or below the next_pos given to sl_tracker_reset() (nothing
 * is recorded).  Owning thread.
 */
int sl_tracker_dispatch(struct sl_tracker *t, int64_t pos);

/*
 * Mark position 'pos' done (its result is durable).  O(1) amortised.
 *
 * Returns 0; -SL_ENOTFOUND when 'pos' was never dispatched or is already
 * acked (a duplicate ack is reported and counted once only);
 * -SL_ESTATE when 'pos' lies below the start of the current generation,
 * i.e. it is a stale ack for a position dispatched before the last
 * sl_tracker_reset().  On error nothing changes.  Owning thread.
 */
int sl_tracker_ack(struct sl_tracker *t, int64_t pos);

/*
 * Ask for a new commit point.  Returns true and sets *posp to the commit
 * point P when P has moved past the position last given to
 * sl_tracker_mark_committed(); returns false and sets *posp to 0 when
 * there is nothing new to commit.  Does not change 't': the source
 * stores or commits P (Kafka: offset P + 1), then calls
 * sl_tracker_mark_committed(t, P).  Owning thread.
 */
bool sl_tracker_committable(const struct sl_tracker *t, int64_t *posp);

/*
 * Record that the commit point 'pos' (from sl_tracker_committable(),
 * possibly acks ago) has been stored or committed.
 *
 * Returns 0 (also when 'pos' equals the last committed position);
 * -SL_EINVAL when 'pos' is past the current commit point or below the
 * last committed position (nothing changes).  Owning thread.
 */
int sl_tracker_mark_committed(struct sl_tracker *t, int64_t pos);

/*
 * Number of dispatched positions the tracker still holds: dispatched and
 * not yet passed by the commit point, whether acked or not.  Owning
 * thread.
 */
int64_t sl_tracker_inflight(const struct sl_tracker *t);

/*
 * Lowest dispatched position not yet acked (the gap that holds commits
 * back), or -1 when every dispatched position is acked.  Owning thread.
 */
int64_t sl_tracker_lowest_unacked(const struct sl_tracker *t);

/*
 * Forget everything, for a partition revoke or (re)assignment, and start
 * a new generation.  'next_pos' is the position reading resumes from (the
 * committed Kafka offset): the next dispatch must be >= next_pos and the
 * commit point starts at next_pos - 1, already committed.  With
 * SL_TRACKER_POS_ANY the first dispatch sets the start instead.
 *
 * Acks of positions below the new start then fail with -SL_ESTATE.  An
 * ack for a position at or above it that was dispatched before the reset
 * cannot be told apart from one dispatched after it: a source whose old
 * acks may still arrive stamps each message with sl_tracker_generation()
 * at dispatch and drops acks from an older generation.
 *
 * Returns 0, or -SL_EINVAL for a negative 'next_pos' other than
 * SL_TRACKER_POS_ANY (nothing changes).  Owning thread.
 */
int sl_tracker_reset(struct sl_tracker *t, int64_t next_pos);

/* Generation: 0 after sl_tracker_new(), +1 per reset.  Owning thread. */
uint32_t sl_tracker_generation(const struct sl_tracker *t);

/* Fill *st with the tracker's positions and counters.  Owning thread. */
void sl_tracker_stats(const struct sl_tracker *t, struct sl_tracker_stats *st);

#endif
