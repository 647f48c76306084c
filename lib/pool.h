/*
 * The fixed worker pool: T threads that take messages from one bounded
 * queue.  A worker may keep several messages in flight at once (its
 * handler drives non-blocking I/O), so concurrency is not the thread
 * count.  A worker stops on its sentinel (a NULL item) after finishing
 * every message it holds; the pool says when all workers have stopped.
 */
#ifndef SL_POOL_H
#define SL_POOL_H

#include "queue.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * What a worker does.  Every callback runs on the worker's own thread;
 * 'state' is the worker's own, from init().
 */
struct sl_pool_ops {
    /*
     * Set up worker 'worker_id' (0..threads-1).  Returns 0 and sets
     * *statep, or a negative SL_E* code: the worker then stops at once
     * and sl_pool_wait() reports the failure.  May be NULL.
     */
    int (*init)(void *arg, int worker_id, void **statep);
    /*
     * Accept one item popped from the queue; takes ownership.  The item
     * counts as in flight until progress() reports it finished.
     */
    void (*submit)(void *state, void *item);
    /*
     * Drive in-flight work for up to 'timeout_ms' (0: do not wait).
     * Returns how many items it holds still in flight.  May be NULL for
     * handlers that finish each item inside submit().
     */
    int (*progress)(void *state, int timeout_ms);
    /* Tear down; called once after the last item finished.  May be NULL. */
    void (*fini)(void *state);
    /*
     * Make a progress() waiting on the worker's thread return now.  Called
     * from any thread.  May be NULL: progress() is then called with a 1 ms
     * timeout while items are in flight, to look at the queue that often.
     * With it, progress() may wait longer: a push wakes a worker that has
     * room for more.
     */
    void (*wakeup)(void *state);
};

struct sl_pool;

/*
 * Start 'threads' workers on 'q' (borrowed; it must outlive the pool).
 * Each keeps at most 'max_inflight' items in flight.  'arg' is passed to
 * ops->init().  Returns NULL and fills errstr on failure.  Main thread.
 */
struct sl_pool *sl_pool_new(struct sl_queue *q, int threads, int max_inflight,
                            const struct sl_pool_ops *ops, void *arg,
                            char *errstr, size_t errstr_size);

/*
 * Wait up to 'timeout_ms' (negative: for ever) for every worker to stop.
 * Returns 0 when all stopped cleanly, -SL_ETIMEDOUT if some still run,
 * or the first init() error.  Main thread.
 */
int sl_pool_wait(struct sl_pool *pool, int timeout_ms);

/*
 * How long the most stuck running worker has gone without turning its
 * loop, in ms (a worker turns it at least every 100 ms while it is
 * healthy, idle or busy).  Any thread.
 */
int64_t sl_pool_stalled_ms(const struct sl_pool *pool);

/* Workers that have not yet stopped.  Any thread. */
int sl_pool_running(const struct sl_pool *pool);

/*
 * Join every worker (they must have stopped, or must be about to: call
 * after sl_pool_wait() returned 0, or after closing the queue) and free
 * the pool.  With ops->wakeup the pool is the queue's notify target
 * (sl_queue_set_notify()): nobody may push to the queue any more.  NULL is
 * a no-op.  Main thread.
 */
void sl_pool_destroy(struct sl_pool *pool);

#endif
