/*
 * The bounded queue between the source and the workers (and between the
 * workers and the sink): multi-producer, multi-consumer, FIFO, with
 * blocking push and pop under timeouts.  A full queue blocks its
 * producers: that is the backpressure that pauses a source.
 *
 * Shutdown is by sentinel, as with asyncio's queue.put(None): a NULL item
 * is a sentinel.  N sentinels pushed after the last message stop N
 * consumers, and every item pushed before them is popped first.
 */
#ifndef SL_QUEUE_H
#define SL_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

struct sl_queue;

/*
 * A queue of at most 'capacity' items (sentinels included).  'free_item'
 * (may be NULL) frees items still queued when the queue is destroyed.
 * Returns NULL on allocation failure or capacity < 1.  Any thread.
 */
struct sl_queue *sl_queue_new(size_t capacity, void (*free_item)(void *));

/*
 * Free 'q' and, through free_item, every item still in it.  No thread may
 * be using 'q'.  NULL is a no-op.
 */
void sl_queue_destroy(struct sl_queue *q);

/*
 * Append 'item' to 'q', waiting up to 'timeout_ms' for room (0: do not
 * wait; negative: wait for ever).  A NULL item is a sentinel.
 *
 * Returns 0 and takes ownership of 'item'; -SL_ETIMEDOUT when 'q' stayed
 * full ('item' still belongs to the caller, who should pause its source);
 * -SL_ECLOSED after sl_queue_close() (also still the caller's).
 * Any thread.
 */
int sl_queue_push(struct sl_queue *q, void *item, int timeout_ms);

/*
 * Remove the oldest item, waiting up to 'timeout_ms' for one (0: do not
 * wait; negative: wait for ever).
 *
 * Returns 0 and sets *itemp (the caller owns it; NULL means a sentinel:
 * the consumer should finish its work and stop); -SL_ETIMEDOUT when 'q'
 * stayed empty; -SL_ECLOSED when 'q' is closed and empty.  On failure
 * *itemp is NULL.  Any thread.
 */
int sl_queue_pop(struct sl_queue *q, void **itemp, int timeout_ms);

/*
 * Close 'q': pushes fail from now on, waiting pushers and poppers wake
 * up, and poppers drain what is left before they see -SL_ECLOSED.
 * Idempotent.  Any thread.
 */
void sl_queue_close(struct sl_queue *q);

/*
 * Have 'fn(arg, false)' called after every successful push (by the pushing
 * thread, outside the queue's lock) and 'fn(arg, true)' once by
 * sl_queue_close(): a consumer that waits for other events as well can be
 * woken by it.  Set or clear it only while nobody pushes or closes.
 */
void sl_queue_set_notify(struct sl_queue *q,
                         void (*fn)(void *arg, bool closing), void *arg);

/* Number of items queued now (a snapshot).  Any thread. */
size_t sl_queue_depth(const struct sl_queue *q);

/* The capacity given to sl_queue_new().  Any thread. */
size_t sl_queue_capacity(const struct sl_queue *q);

#endif
