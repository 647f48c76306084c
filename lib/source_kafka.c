/*
 * Kafka source: librdkafka's high-level consumer driven from the source
 * thread.  One offset tracker per assigned partition; offsets are stored
 * (enable.auto.offset.store=false) only up to the acked prefix and
 * auto-committed, and committed synchronously on revoke and close.
 * Backpressure pauses partitions and seeks them back to the first offset
 * not yet handed over, so nothing is skipped or handed over twice.  The
 * table of assigned partitions is in source_kafka_parts.c, the fetch
 * waker for librdkafka < 2.4 in source_kafka_waker.c.
 */
#include "source_kafka_int.h"

#include "clock.h"
#include "err.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * librdkafka prefetches up to 100000 messages or 64 MiB by default, and
 * each queued message costs a few hundred bytes beyond its payload; a
 * fetch response (up to fetch.max.bytes, 50 MiB, of up to
 * max.partition.fetch.bytes, 1 MiB, per partition) is one buffer that
 * lives until its last message is taken.  With ~200-byte messages from 12
 * partitions that alone was most of a worker's peak RSS.  The source never
 * takes more than the queue has room for, so the prefetch need only keep
 * it fed: PREFETCH_QUEUES queues' worth of messages (at least
 * PREFETCH_MIN_MSGS), 1 MiB queued and 1 MiB a fetch.  The waker refills
 * librdkafka's queue as soon as it runs dry, so the smaller prefetch
 * costs no throughput (bench/results/rss-2026-12-06.md).  A pipeline's
 * kafka properties override each of them.
 */
#define PREFETCH_QUEUES 2         /* queued.min.messages: queue capacities */
#define PREFETCH_MIN_MSGS 1000    /* ... but at least this many */
#define PREFETCH_KB "1024"        /* queued.max.messages.kbytes */
#define FETCH_MAX_BYTES "1048576" /* fetch.max.bytes: one response */
#define FETCH_PART_BYTES "131072" /* max.partition.fetch.bytes */

static void update_paused_stat(struct kafka_source *ks)
{
    int any = 0;
    FOREACH_PART(ks, p)
    if (atomic_load(&p->paused))
        any = 1;
    if (ks->src)
        atomic_store(&sl_source_stats(ks->src)->paused, any);
}

/* ------------------------------------------------------------------ */
/* Pause and resume                                                     */

/*
 * Pause 'p', then seek it to the first offset not yet taken: a pause
 * resumes from the last message returned to us, which may be one we
 * dropped, so the seek (after the pause: a seek before it is lost) pins
 * the position.
 */
static void pause_part(struct kafka_source *ks, struct part *p)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *error;

    if (atomic_load(&p->paused))
        return;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_pause_partitions(ks->rk, l);
    if (p->next_offset >= 0) {
        l->elems[0].offset = p->next_offset;
        error = rd_kafka_seek_partitions(ks->rk, l, 0);
        if (error) {
            sl_log(SL_LOG_WARN, "kafka",
                   "%s [%d]: seek to %lld after pause failed: %s", p->topic,
                   (int)p->partition, (long long)p->next_offset,
                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    atomic_store(&p->paused, true);
    atomic_fetch_add(&ks->st.pauses, 1);
    update_paused_stat(ks);
}

/*
 * A message of paused partition 'p' that librdkafka handed over before the
 * pause took effect is dropped: make sure it comes again.  With nothing
 * taken yet in this assignment (next_offset < 0) the pause's seek had no
 * position to pin, and librdkafka would resume after the dropped message,
 * so pin it now.
 */
static void refetch_from(struct kafka_source *ks, struct part *p,
                         int64_t offset)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_error_t *error;

    if (p->next_offset >= 0 || !atomic_load(&p->paused))
        return;
    p->next_offset = offset;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
        offset;
    error = rd_kafka_seek_partitions(ks->rk, l, 0);
    if (error) {
        sl_log(SL_LOG_WARN, "kafka", "%s [%d]: seek to %lld failed: %s",
               p->topic, (int)p->partition, (long long)offset,
               rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void resume_part(struct kafka_source *ks, struct part *p)
{
    rd_kafka_topic_partition_list_t *l;

    if (!atomic_load(&p->paused))
        return;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
    rd_kafka_resume_partitions(ks->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    atomic_store(&p->paused, false);
    atomic_fetch_add(&ks->st.resumes, 1);
    update_paused_stat(ks);
}

/* ------------------------------------------------------------------ */
/* Offsets                                                              */

/* Store the acked prefix of every partition whose acks moved. */
static void store_dirty(struct kafka_source *ks)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    int64_t pos;

    FOREACH_PART(ks, p)
    {
        if (!p->dirty || p->revoking)
            continue;
        p->dirty = false;
        if (!sl_tracker_committable(p->trk, &pos))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(16);
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition)->offset =
            pos + 1;
    }
    if (!l)
        return;
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(ks->rk, l);
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *e = &l->elems[i];
        struct part *p = sl_source_kafka_part_find(ks, e->topic, e->partition);
        if (!p)
            continue;
        if (e->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            sl_tracker_mark_committed(p->trk, e->offset - 1);
            atomic_store(&p->committed, e->offset);
        } else if (e->err != RD_KAFKA_RESP_ERR__STATE) {
            /* __STATE: no longer assigned, expected around a rebalance. */
            sl_log(SL_LOG_WARN, "kafka",
                   "%s [%d]: cannot store offset %lld: %s; retrying at the "
                   "next ack",
                   e->topic, (int)e->partition, (long long)e->offset,
                   rd_kafka_err2str(e->err));
            p->dirty = true;
        }
    }
    (void)err; /* per-partition errors above say all there is */
    rd_kafka_topic_partition_list_destroy(l);
}

/* ------------------------------------------------------------------ */
/* Taking messages                                                      */

/*
 * Record 'msg' in its partition's tracker (unless already recorded) and
 * push it.  Returns 0 (queued), -SL_EBUSY (tracker window full),
 * -SL_ETIMEDOUT or -SL_ECLOSED (queue): then the caller still owns it.
 */
static int deliver(struct kafka_source *ks, struct part *p, struct sl_msg *msg,
                   int timeout_ms)
{
    int rc;

    if (!p->held_dispatched) {
        rc = sl_tracker_dispatch(p->trk, msg->seq);
        if (rc == -SL_EBUSY)
            return rc;
        if (rc < 0) {
            /* Not increasing: cannot happen after take()'s guard. */
            sl_log(SL_LOG_ERROR, "kafka",
                   "%s [%d]: offset %lld out of order (%s); dropped", p->topic,
                   (int)p->partition, (long long)msg->seq, sl_strerror(rc));
            sl_msg_destroy(msg);
            return 0;
        }
        p->held_dispatched = true;
    }
    rc = sl_source_push(ks->src, msg, timeout_ms);
    if (rc == 0) {
        p->held_dispatched = false;
        atomic_fetch_add(&p->inflight, 1);
    }
    return rc;
}

static void hold(struct kafka_source *ks, struct part *p, struct sl_msg *msg,
                 int rc)
{
    p->held = msg;
    ks->held_cnt++;
    if (rc == -SL_EBUSY) {
        pause_part(ks, p);
        return;
    }
    /* The queue is full: pause everything until it drains. */
    ks->queue_full = true;
    FOREACH_PART(ks, q)
    pause_part(ks, q);
}

static int consumer_error(struct kafka_source *ks, rd_kafka_message_t *rkm)
{
    char buf[512];

    if (rkm->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
        return 0;
    if (rkm->err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(ks->rk, buf, sizeof(buf));
        sl_source_fail(ks->src, -SL_EKAFKA, "kafka: fatal consumer error: %s",
                       buf);
        return -SL_EKAFKA;
    }
    atomic_fetch_add(&ks->st.errors, 1);
    if (rkm->err != ks->last_err) {
        ks->last_err = rkm->err;
        sl_log(SL_LOG_WARN, "kafka", "consumer error%s%s: %s; still consuming",
               rkm->rkt ? " on " : "",
               rkm->rkt ? rd_kafka_topic_name(rkm->rkt) : "",
               rd_kafka_message_errstr(rkm));
    }
    return 0;
}

static int copy_headers(struct sl_msg *msg, rd_kafka_message_t *rkm)
{
    rd_kafka_headers_t *hdrs;
    const char *name;
    const void *value;
    size_t size;

    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    for (size_t i = 0; !rd_kafka_header_get_all(hdrs, i, &name, &value, &size);
         i++) {
        int rc = sl_msg_add_header(msg, name, value, size, NULL);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Turn one fetched message into an envelope and hand it over. */
static int take(struct kafka_source *ks, rd_kafka_message_t *rkm,
                int timeout_ms)
{
    const char *topic;
    struct part *p;
    struct sl_msg *msg;
    bool big, empty;
    char err[256];
    int rc;

    if (rkm->err)
        return consumer_error(ks, rkm);
    ks->last_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    topic = rd_kafka_topic_name(rkm->rkt);
    p = sl_source_kafka_part_of_rkm(ks, rkm, topic);
    /*
     * Not ours, paused, or already taken in this assignment: it was
     * fetched before a pause or seek and comes again from next_offset.
     */
    if (!p || p->revoking || p->held || atomic_load(&p->paused) ||
        (p->next_offset >= 0 && rkm->offset < p->next_offset)) {
        if (p && !p->revoking)
            refetch_from(ks, p, rkm->offset);
        atomic_fetch_add(&ks->st.dropped, 1);
        return 0;
    }
    empty = rkm->payload == NULL || rkm->len == 0;
    big = rkm->len > ks->max_bytes;
    rc = sl_msg_new(&msg, SL_SOURCE_KAFKA, topic, rkm->partition, rkm->offset,
                    NULL, rkm->key, rkm->key_len,
                    big || empty ? NULL : rkm->payload,
                    big || empty ? 0 : rkm->len, NULL, err, sizeof(err));
    if (rc == 0)
        rc = copy_headers(msg, rkm);
    if (rc < 0) {
        sl_msg_destroy(msg);
        sl_source_fail(ks->src, rc, "kafka: %s [%d] offset %lld: %s", topic,
                       (int)rkm->partition, (long long)rkm->offset,
                       sl_strerror(rc));
        return rc;
    }
    msg->seq = rkm->offset;
    if (big) {
        atomic_fetch_add(&ks->st.oversize, 1);
        sl_msg_set_error(msg, SL_STAGE_DECODE,
                         "message of %zu bytes exceeds max_message_bytes (%zu)",
                         rkm->len, ks->max_bytes);
    } else if (empty) {
        atomic_fetch_add(&ks->st.empty, 1);
        sl_msg_set_error(msg, SL_STAGE_DECODE, "empty message (no payload)");
    }
    if (atomic_load(&p->committed) < 0)
        atomic_store(&p->committed, rkm->offset);
    if (p->next_offset >= 0 && rkm->offset > p->next_offset)
        sl_log(SL_LOG_DEBUG, "kafka",
               "%s [%d]: offsets %lld..%lld not returned by the client "
               "(compaction or transaction markers)",
               topic, (int)rkm->partition, (long long)p->next_offset,
               (long long)rkm->offset - 1);
    p->next_offset = rkm->offset + 1;
    rc = deliver(ks, p, msg, timeout_ms);
    if (rc != 0)
        hold(ks, p, msg, rc);
    return 0;
}

/* Push held messages; '*wait' is spent on the first full-queue wait. */
static void flush_held(struct kafka_source *ks, int *wait)
{
    bool blocked = false;

    FOREACH_PART(ks, p)
    {
        if (!p->held)
            continue;
        int rc = deliver(ks, p, p->held, *wait);
        if (rc == 0) {
            p->held = NULL;
            ks->held_cnt--;
        } else if (rc != -SL_EBUSY) {
            blocked = true;
            *wait = 0;
        }
    }
    if (ks->queue_full && !blocked) {
        struct sl_queue *q = sl_source_queue(ks->src);
        if (sl_queue_depth(q) <= sl_queue_capacity(q) / 2)
            ks->queue_full = false;
    }
}

/*
 * We emptied librdkafka's queue while taking: its fetcher may be asleep
 * for up to a second (librdkafka < 2.4; see source_kafka_waker.c).  Ask
 * the waker to wake the broker thread of one assigned partition's
 * leader, a different one each time, so that with several brokers each
 * is woken in turn.  Never waits: a wake-up already under way is enough.
 */
static void wake_fetcher(struct kafka_source *ks)
{
    unsigned i = 0, want;

    if (!ks->waker || ks->part_cnt == 0 ||
        sl_source_kafka_waker_busy(ks->waker))
        return;
    want = ks->wake_next++ % (unsigned)ks->part_cnt;
    FOREACH_PART(ks, p)
    {
        if (i++ != want)
            continue;
        sl_source_kafka_waker_wake(ks->waker, p->topic, p->partition);
        break;
    }
}

static int kafka_poll(struct sl_source *src, int timeout_ms)
{
    struct kafka_source *ks = sl_source_impl(src);
    int wait = timeout_ms;

    if (ks->fatal)
        return -SL_EKAFKA;
    if (ks->held_cnt > 0 || ks->queue_full)
        flush_held(ks, &wait);
    if (!ks->queue_full) {
        FOREACH_PART(ks, p)
        if (!p->held && atomic_load(&p->paused))
            resume_part(ks, p);
    }
    /*
     * Poll even while everything is paused: it serves rebalances and
     * keeps us within max.poll.interval.ms however slow the sink is.
     */
    /*
     * Take no more than the queue has room for (only this thread pushes,
     * so the room only grows meanwhile): then a batch never runs into a
     * full queue halfway, with messages librdkafka already handed over.
     */
    struct sl_queue *q = sl_source_queue(src);
    size_t room = sl_queue_capacity(q) - sl_queue_depth(q);
    size_t max = room < 1 ? 1 : room < BATCH ? room : BATCH;
    ssize_t cnt = rd_kafka_consume_batch_queue(ks->rkq, 0, ks->rkms, max);
    if (cnt == 0) {
        if (ks->taking && !ks->queue_full)
            wake_fetcher(ks); /* the last call emptied the queue */
        cnt = rd_kafka_consume_batch_queue(ks->rkq, wait, ks->rkms, 1);
    }
    if (cnt < 0)
        cnt = 0; /* only for a bad argument; errors come as messages */
    ks->taking = cnt > 0;
    if (cnt > 0 && (size_t)cnt < max && !ks->queue_full)
        wake_fetcher(ks); /* we emptied it */
    for (ssize_t i = 0; i < cnt; i++) {
        rd_kafka_message_t *rkm = ks->rkms[i];
        int rc = 0;
        /*
         * Past a fatal error the rest of the batch is dropped (nothing is
         * committed any more).  Past a full queue, take() drops them: their
         * partitions are paused and sought back to the first offset not
         * taken, so they come again.
         */
        if (ks->fatal)
            atomic_fetch_add(&ks->st.dropped, 1);
        else
            rc = take(ks, rkm, timeout_ms);
        rd_kafka_message_destroy(rkm);
        if (rc < 0) {
            while (++i < cnt)
                rd_kafka_message_destroy(ks->rkms[i]);
            return rc;
        }
    }
    store_dirty(ks);
    return ks->fatal ? -SL_EKAFKA : 0;
}

static void kafka_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct kafka_source *ks = sl_source_impl(src);
    struct part *p = sl_source_kafka_part_of_ack(ks, msg->origin.topic,
                                                 msg->origin.partition);

    /*
     * A partition no longer ours (revoked past the timeout, or lost):
     * its new owner reads from the committed offset, so the ack is moot.
     */
    if (p && sl_tracker_ack(p->trk, msg->seq) == 0) {
        if (atomic_load(&p->inflight) > 0)
            atomic_fetch_sub(&p->inflight, 1);
        p->dirty = true;
    } else {
        atomic_fetch_add(&ks->st.stale_acks, 1);
    }
    sl_msg_destroy(msg);
}

/* ------------------------------------------------------------------ */
/* Rebalances                                                           */

static void assign(struct kafka_source *ks,
                   rd_kafka_topic_partition_list_t *parts, bool coop)
{
    rd_kafka_error_t *error = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;

    for (int i = 0; i < parts->cnt; i++) {
        rd_kafka_topic_partition_t *e = &parts->elems[i];
        if (!sl_source_kafka_part_find(ks, e->topic, e->partition) &&
            !sl_source_kafka_part_add(ks, e->topic, e->partition))
            sl_log(SL_LOG_ERROR, "kafka",
                   "out of memory tracking %s [%d]; its messages will not "
                   "be processed here",
                   e->topic, (int)e->partition);
    }
    if (coop)
        error = rd_kafka_incremental_assign(ks->rk, parts);
    else
        err = rd_kafka_assign(ks->rk, parts);
    if (error || err) {
        sl_log(SL_LOG_ERROR, "kafka", "cannot assign %d partition(s): %s",
               parts->cnt,
               error ? rd_kafka_error_string(error) : rd_kafka_err2str(err));
        if (error)
            rd_kafka_error_destroy(error);
    }
    atomic_fetch_add(&ks->st.assignments, 1);
    sl_log(SL_LOG_INFO, "kafka", "assigned %d partition(s), %zu in total",
           parts->cnt, ks->part_cnt);
    if (ks->queue_full) {
        for (int i = 0; i < parts->cnt; i++) {
            struct part *p = sl_source_kafka_part_find(
                ks, parts->elems[i].topic, parts->elems[i].partition);
            if (p)
                pause_part(ks, p);
        }
    }
}

static bool revoked_busy(struct part **ps, int n)
{
    for (int i = 0; i < n; i++)
        if (ps[i] && atomic_load(&ps[i]->inflight) > 0)
            return true;
    return false;
}

/*
 * Drain, commit and forget revoked partitions.  Lost partitions are only
 * forgotten: another member owns them already.
 */
static void revoke(struct kafka_source *ks,
                   rd_kafka_topic_partition_list_t *parts, bool lost)
{
    struct part **ps = calloc((size_t)parts->cnt + 1, sizeof(*ps));
    rd_kafka_topic_partition_list_t *l;
    int64_t pos;

    if (!ps) {
        sl_log(SL_LOG_ERROR, "kafka",
               "out of memory revoking partitions; not committing them");
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        struct part *p = sl_source_kafka_part_find(ks, parts->elems[i].topic,
                                                   parts->elems[i].partition);
        ps[i] = p;
        if (!p)
            continue;
        p->revoking = true;
        if (p->held) { /* never queued: its offset stays uncommitted */
            sl_msg_destroy(p->held);
            p->held = NULL;
            ks->held_cnt--;
        }
    }
    if (!lost && !ks->closing && ks->src) {
        int64_t deadline = sl_mono_ms() + ks->revoke_timeout_ms;
        while (revoked_busy(ps, parts->cnt)) {
            int64_t left = deadline - sl_mono_ms();
            if (left <= 0) {
                sl_log(SL_LOG_WARN, "kafka",
                       "revoke: messages still in flight after %d ms; "
                       "committing what is acked, the new owner will "
                       "redeliver the rest",
                       ks->revoke_timeout_ms);
                break;
            }
            sl_source_wait_acks(
                ks->src, (int)(left < WAIT_SLICE_MS ? left : WAIT_SLICE_MS));
        }
    }
    if (!lost) {
        l = rd_kafka_topic_partition_list_new(parts->cnt);
        for (int i = 0; i < parts->cnt; i++)
            if (ps[i] && sl_tracker_committable(ps[i]->trk, &pos))
                rd_kafka_topic_partition_list_add(l, ps[i]->topic,
                                                  ps[i]->partition)
                    ->offset = pos + 1;
        if (l->cnt > 0) {
            rd_kafka_resp_err_t err = rd_kafka_commit(ks->rk, l, 0);
            if (err)
                sl_log(SL_LOG_WARN, "kafka",
                       "revoke: commit of %d partition(s) failed: %s; the "
                       "new owner redelivers from the last commit",
                       l->cnt, rd_kafka_err2str(err));
        }
        rd_kafka_topic_partition_list_destroy(l);
    } else {
        atomic_fetch_add(&ks->st.lost, 1);
        sl_log(SL_LOG_WARN, "kafka",
               "%d partition(s) lost (session timed out?); their in-flight "
               "messages will be redelivered to the new owner",
               parts->cnt);
    }
    for (int i = 0; i < parts->cnt; i++)
        if (ps[i])
            sl_source_kafka_part_remove(ks, ps[i]);
    free(ps);
    atomic_fetch_add(&ks->st.revocations, 1);
    update_paused_stat(ks);
}

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct kafka_source *ks = opaque;
    bool coop = !strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE");

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assign(ks, parts, coop);
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        sl_log(SL_LOG_ERROR, "kafka", "rebalance failed: %s; unassigning",
               rd_kafka_err2str(err));
    revoke(ks, parts, rd_kafka_assignment_lost(rk) != 0);
    if (coop) {
        rd_kafka_error_t *error = rd_kafka_incremental_unassign(rk, parts);
        if (error) {
            sl_log(SL_LOG_ERROR, "kafka", "cannot unassign: %s",
                   rd_kafka_error_string(error));
            rd_kafka_error_destroy(error);
        }
    } else {
        rd_kafka_assign(rk, NULL);
    }
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct kafka_source *ks = opaque;
    char buf[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        ks->fatal = true;
        if (ks->src)
            sl_source_fail(ks->src, -SL_EKAFKA,
                           "kafka: fatal consumer error: %s", buf);
        return;
    }
    atomic_fetch_add(&ks->st.errors, 1);
    if ((rd_kafka_resp_err_t)err != ks->last_err) {
        ks->last_err = (rd_kafka_resp_err_t)err;
        sl_log(SL_LOG_WARN, "kafka", "%s (%s); retrying", reason,
               rd_kafka_err2name((rd_kafka_resp_err_t)err));
    }
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac,
                   const char *buf)
{
    (void)rk;
    enum sl_log_level l = level <= 3   ? SL_LOG_ERROR
                          : level == 4 ? SL_LOG_WARN
                          : level <= 6 ? SL_LOG_INFO
                                       : SL_LOG_DEBUG;
    sl_log(l, "kafka", "%s: %s", fac, buf);
}

/* ------------------------------------------------------------------ */
/* Commit, close, destroy                                               */

/*
 * A commit error as an SL_E* code: the ones that pass once the group or
 * its coordinator settles are retriable (sl_err_retriable()); any other
 * is -SL_EKAFKA, which is not.
 */
static int commit_err(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
    case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
    case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
    case RD_KAFKA_RESP_ERR__WAIT_COORD:
        return -SL_EAGAIN;
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
        return -SL_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
        return -SL_ECONN;
    default:
        return -SL_EKAFKA;
    }
}

static int kafka_commit(struct sl_source *src, bool final)
{
    struct kafka_source *ks = sl_source_impl(src);
    rd_kafka_resp_err_t err;
    int rc = 0;

    store_dirty(ks);
    if (!final || ks->closed)
        return 0;
    ks->closing = true;
    /*
     * A commit refused while the group rebalances or the coordinator
     * moves would leave acked work uncommitted: serve the consumer (so the
     * rebalance completes and revoke() commits what moves) and try again,
     * within the revoke bound.  Messages fetched meanwhile are dropped:
     * never dispatched, never stored, so they are simply redelivered.
     */
    int64_t deadline = sl_mono_ms() + ks->revoke_timeout_ms;
    for (;;) {
        err = rd_kafka_commit(ks->rk, NULL, 0);
        if (!sl_err_retriable(commit_err(err)) || sl_mono_ms() >= deadline)
            break;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(ks->rk, 100);
        if (m)
            rd_kafka_message_destroy(m);
    }
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        sl_log(SL_LOG_WARN, "kafka",
               "final commit failed: %s; uncommitted messages will be "
               "redelivered",
               rd_kafka_err2str(err));
        rc = -SL_EKAFKA;
    }
    /* Leaves the group; the revoke it triggers commits nothing new. */
    err = rd_kafka_consumer_close(ks->rk);
    if (err)
        sl_log(SL_LOG_WARN, "kafka", "closing the consumer: %s",
               rd_kafka_err2str(err));
    ks->closed = true;
    return rc;
}

static void kafka_destroy(void *impl)
{
    struct kafka_source *ks = impl;

    if (!ks)
        return;
    sl_source_kafka_waker_destroy(
        ks->waker); /* before the consumer it borrows */
    ks->waker = NULL;
    if (ks->rk) {
        ks->closing = true;
        if (!ks->closed)
            rd_kafka_consumer_close(ks->rk);
        if (ks->rkq)
            rd_kafka_queue_destroy(ks->rkq);
        rd_kafka_destroy(ks->rk);
    }
    for (unsigned b = 0; b < BUCKETS; b++) {
        struct part *p = ks->buckets[b], *next;
        for (; p; p = next) {
            next = p->next;
            sl_source_kafka_part_free(ks, p);
        }
    }
    pthread_mutex_destroy(&ks->lock);
    free(ks);
}

static const struct sl_source_ops kafka_ops = {
    .kind = "kafka",
    .redelivers = true,
    .poll = kafka_poll,
    .acked = kafka_acked,
    .commit = kafka_commit,
    .destroy = kafka_destroy,
};

/* ------------------------------------------------------------------ */
/* Construction                                                         */

static int conf_set(rd_kafka_conf_t *kc, const char *name, const char *value,
                    char *errstr, size_t errstr_size)
{
    char buf[512];

    if (rd_kafka_conf_set(kc, name, value, buf, sizeof(buf)) !=
        RD_KAFKA_CONF_OK)
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "kafka property '%s': %s", name, buf);
    return 0;
}

static rd_kafka_conf_t *build_conf(const struct sl_source_kafka_conf *conf,
                                   struct kafka_source *ks, size_t queue_cap,
                                   char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char interval[32], prefetch[32];
    size_t want = queue_cap * PREFETCH_QUEUES;
    int ci = conf->commit_interval_ms > 0 ? conf->commit_interval_ms : 1000;
    struct sl_kafka_property defaults[] = {
        {"bootstrap.servers", conf->brokers},
        {"group.id", conf->group},
        {"client.id", conf->client_id ? conf->client_id : "sluice"},
        {"group.instance.id", conf->group_instance_id},
        {"client.rack", conf->client_rack},
        {"auto.offset.reset",
         conf->auto_offset_reset ? conf->auto_offset_reset : "earliest"},
        {"partition.assignment.strategy", "cooperative-sticky"},
        {"enable.auto.commit", "true"},
        {"auto.commit.interval.ms", interval},
        {"enable.partition.eof", "false"},
        {"queued.min.messages", prefetch},
        {"queued.max.messages.kbytes", PREFETCH_KB},
        {"fetch.max.bytes", FETCH_MAX_BYTES},
        {"max.partition.fetch.bytes", FETCH_PART_BYTES},
    };

    snprintf(interval, sizeof(interval), "%d", ci);
    snprintf(prefetch, sizeof(prefetch), "%zu",
             want < PREFETCH_MIN_MSGS ? (size_t)PREFETCH_MIN_MSGS
             : want > 10000000        ? (size_t)10000000 /* its maximum */
                                      : want);
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (defaults[i].value &&
            conf_set(kc, defaults[i].name, defaults[i].value, errstr,
                     errstr_size) < 0)
            goto fail;
    for (size_t i = 0; i < conf->property_cnt; i++) {
        const struct sl_kafka_property *kp = &conf->properties[i];
        if (!strcmp(kp->name, "enable.auto.offset.store")) {
            sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                      "kafka property '%s': managed by sluice (offsets are "
                      "stored only once processed); remove it",
                      kp->name);
            goto fail;
        }
        if (conf_set(kc, kp->name, kp->value ? kp->value : "", errstr,
                     errstr_size) < 0)
            goto fail;
    }
    if (conf_set(kc, "enable.auto.offset.store", "false", errstr, errstr_size) <
        0)
        goto fail;
    rd_kafka_conf_set_rebalance_cb(kc, on_rebalance);
    rd_kafka_conf_set_error_cb(kc, on_error);
    rd_kafka_conf_set_log_cb(kc, on_log);
    rd_kafka_conf_set_opaque(kc, ks);
    return kc;
fail:
    rd_kafka_conf_destroy(kc);
    return NULL;
}

struct sl_source *sl_source_kafka_new(const struct sl_source_kafka_conf *conf,
                                      struct sl_queue *q, char *errstr,
                                      size_t errstr_size)
{
    struct kafka_source *ks;
    rd_kafka_conf_t *kc;
    rd_kafka_topic_partition_list_t *topics;
    rd_kafka_resp_err_t err;
    struct sl_source *src;
    char buf[512];

    if (!conf->brokers || !*conf->brokers || !conf->group || !*conf->group ||
        conf->topic_cnt == 0) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "kafka source: %s is required",
                  !conf->brokers || !*conf->brokers ? "brokers"
                  : !conf->group || !*conf->group   ? "group"
                                                    : "at least one topic");
        return NULL;
    }
    ks = calloc(1, sizeof(*ks));
    if (!ks) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    pthread_mutex_init(&ks->lock, NULL);
    ks->max_bytes =
        conf->max_message_bytes ? conf->max_message_bytes : 1024 * 1024;
    ks->window = conf->max_inflight > 0 ? conf->max_inflight : 65536;
    if (ks->window > SL_TRACKER_MAX_CAPACITY)
        ks->window = SL_TRACKER_MAX_CAPACITY;
    ks->revoke_timeout_ms =
        conf->revoke_timeout_ms > 0 ? conf->revoke_timeout_ms : 10000;

    kc =
        build_conf(conf, ks, q ? sl_queue_capacity(q) : 0, errstr, errstr_size);
    if (!kc) {
        kafka_destroy(ks);
        return NULL;
    }
    ks->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, buf, sizeof(buf));
    if (!ks->rk) {
        rd_kafka_conf_destroy(kc);
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "kafka: cannot create the consumer: %s", buf);
        kafka_destroy(ks);
        return NULL;
    }
    rd_kafka_poll_set_consumer(ks->rk);
    ks->rkq = rd_kafka_queue_get_consumer(ks->rk);
    ks->waker = sl_source_kafka_waker_new(ks->rk);
    topics = rd_kafka_topic_partition_list_new((int)conf->topic_cnt);
    for (size_t i = 0; i < conf->topic_cnt; i++)
        rd_kafka_topic_partition_list_add(topics, conf->topics[i],
                                          RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(ks->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "kafka: cannot subscribe: %s", rd_kafka_err2str(err));
        ks->closed = true; /* nothing to leave */
        kafka_destroy(ks);
        return NULL;
    }
    src = sl_source_new(&kafka_ops, ks, q, conf->commit_interval_ms);
    if (!src) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    ks->src = src;
    return src;
}

size_t sl_source_kafka_partitions(struct sl_source *src,
                                  struct sl_source_kafka_partition *out,
                                  size_t max)
{
    struct kafka_source *ks = sl_source_impl(src);
    size_t n = 0;

    pthread_mutex_lock(&ks->lock);
    FOREACH_PART(ks, p)
    {
        if (n < max) {
            struct sl_source_kafka_partition *o = &out[n];
            int64_t lo = -1, hi = -1;
            snprintf(o->topic, sizeof(o->topic), "%s", p->topic);
            o->partition = p->partition;
            o->committed = atomic_load(&p->committed);
            if (rd_kafka_get_watermark_offsets(ks->rk, p->topic, p->partition,
                                               &lo, &hi) ||
                hi < 0)
                hi = -1;
            o->high_watermark = hi;
            o->lag = hi >= 0 && o->committed >= 0 ? hi - o->committed : -1;
            if (o->lag < -1)
                o->lag = 0;
            o->inflight = atomic_load(&p->inflight);
            o->paused = atomic_load(&p->paused);
        }
        n++;
    }
    pthread_mutex_unlock(&ks->lock);
    return n;
}

void sl_source_kafka_stats(const struct sl_source *src,
                           struct sl_source_kafka_stats *st)
{
    /* Atomic loads want a non-const pointer; nothing is written. */
    struct kafka_source *ks = sl_source_impl((struct sl_source *)src);

    st->assignments = atomic_load(&ks->st.assignments);
    st->revocations = atomic_load(&ks->st.revocations);
    st->lost = atomic_load(&ks->st.lost);
    st->pauses = atomic_load(&ks->st.pauses);
    st->resumes = atomic_load(&ks->st.resumes);
    st->stale_acks = atomic_load(&ks->st.stale_acks);
    st->dropped = atomic_load(&ks->st.dropped);
    st->oversize = atomic_load(&ks->st.oversize);
    st->empty = atomic_load(&ks->st.empty);
    st->errors = atomic_load(&ks->st.errors);
    st->assigned = atomic_load(&ks->st.assigned);
}

int sl_source_kafka_query_offsets(struct sl_source *src,
                                  struct sl_source_kafka_offsets *out,
                                  size_t max, int timeout_ms, char *errstr,
                                  size_t errstr_size)
{
    struct kafka_source *ks = sl_source_impl(src);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    size_t n = 0;

    if (!l)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    pthread_mutex_lock(&ks->lock);
    FOREACH_PART(ks, p)
    {
        if ((size_t)l->cnt >= max)
            break;
        rd_kafka_topic_partition_list_add(l, p->topic, p->partition);
        out[l->cnt - 1].stored = atomic_load(&p->committed);
    }
    pthread_mutex_unlock(&ks->lock);
    /* Blocking requests: the group coordinator (OffsetFetch), then each
     * partition's leader (ListOffsets), all within 'timeout_ms'. */
    int64_t deadline = sl_mono_ms() + timeout_ms;
    rd_kafka_resp_err_t err = l->cnt ? rd_kafka_committed(ks->rk, l, timeout_ms)
                                     : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (err) {
        rd_kafka_topic_partition_list_destroy(l);
        return sl_seterr(-SL_EKAFKA, errstr, errstr_size,
                         "cannot read committed offsets: %s",
                         rd_kafka_err2str(err));
    }
    for (int i = 0; i < l->cnt; i++) {
        rd_kafka_topic_partition_t *e = &l->elems[i];
        struct sl_source_kafka_offsets *o = &out[n];
        int64_t stored = out[i].stored, lo = -1, hi = -1;
        int64_t left = deadline - sl_mono_ms();
        if (left <= 0)
            break; /* the rest wait for the next call */
        if (rd_kafka_query_watermark_offsets(ks->rk, e->topic, e->partition,
                                             &lo, &hi, (int)left) ||
            lo < 0 || hi < 0)
            continue; /* left out until its leader answers */
        snprintf(o->topic, sizeof(o->topic), "%s", e->topic);
        o->partition = e->partition;
        o->committed = !e->err && e->offset >= 0 ? e->offset : -1;
        o->stored = stored;
        o->low = lo;
        o->high = hi;
        n++;
    }
    rd_kafka_topic_partition_list_destroy(l);
    return (int)n;
}
