/*
 * What the Redis stream and list sources share: setup and teardown of the
 * common state, the in-flight window, queueing ready messages, backoff,
 * batched acks, and the counters of sl_source_redis_stats().
 */
#include "source_redis_common.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "tracker.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_redis_src_init(struct sl_redis_src *b,
                      const struct sl_source_redis_conf *conf,
                      const char *component, const char *noun, char *errstr,
                      size_t errstr_size)
{
    b->component = component;
    b->noun = noun;
    b->count = positive_or(conf->count, 256);
    b->block_ms = positive_or(conf->block_ms, SL_REDIS_SRC_MAX_BLOCK_MS);
    b->ack_batch = positive_or(conf->ack_batch, 256);
    b->max_inflight = positive_or(conf->max_inflight, 10000);
    b->max_bytes =
        conf->max_message_bytes ? conf->max_message_bytes : 1024 * 1024;
    b->key = strdup(conf->key);
    b->consumer = strdup(conf->consumer);
    b->ready = calloc((size_t)b->count, sizeof(*b->ready));
    b->trk = sl_tracker_new(b->max_inflight);
    if (!b->key || !b->consumer || !b->ready || !b->trk)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                         "out of memory (or max_inflight above %lld)",
                         (long long)SL_TRACKER_MAX_CAPACITY);
    return 0;
}

int sl_redis_src_connect(struct sl_redis_src *b,
                         const struct sl_source_redis_conf *conf, char *errstr,
                         size_t errstr_size)
{
    char name[160];
    struct sl_redis_conn_conf cc = {
        conf->url,
        conf->password_env,
        conf->password_file,
        conf->connect_timeout_ms,
        conf->command_timeout_ms,
        0,
        b->component,
        name,
    };

    snprintf(name, sizeof(name), "sluice:%s:%s", conf->key, conf->consumer);
    b->rc = sl_redis_conn_new(&cc, errstr, errstr_size);
    if (!b->rc)
        return -SL_ECONFIG;
    b->ctr.conn = b->rc;
    return sl_redis_conn_connect(b->rc, errstr, errstr_size);
}

void sl_redis_src_cleanup(struct sl_redis_src *b)
{
    if (b->ready)
        for (size_t i = b->ready_head; i < b->ready_cnt; i++)
            sl_msg_destroy(b->ready[i]);
    free(b->ready);
    sl_tracker_destroy(b->trk);
    sl_redis_conn_destroy(b->rc);
    free(b->key);
    free(b->consumer);
}

void sl_redis_src_error_reply(struct sl_redis_src *b, const char *what,
                              const char *text)
{
    if (strcmp(b->last_error, text) != 0) {
        sl_log(SL_LOG_ERROR, b->component,
               "%s %s: %s failed: %s; retrying every %d ms", b->noun, b->key,
               what, text, SL_REDIS_SRC_ERROR_BACKOFF_MS);
        snprintf(b->last_error, sizeof(b->last_error), "%s", text);
    }
    b->retry_ms = sl_mono_ms() + SL_REDIS_SRC_ERROR_BACKOFF_MS;
}

int sl_redis_src_room(const struct sl_redis_src *b)
{
    int64_t lo = sl_tracker_lowest_unacked(b->trk);
    int64_t used = lo >= 0 ? b->next_seq - lo : 0;
    return used >= b->max_inflight ? 0 : (int)(b->max_inflight - used);
}

int sl_redis_src_push_ready(struct sl_source *src, struct sl_redis_src *b,
                            int timeout_ms)
{
    while (b->ready_head < b->ready_cnt) {
        struct sl_msg *msg = b->ready[b->ready_head];
        if (sl_redis_src_room(b) == 0) {
            sl_source_wait_acks(src, timeout_ms);
            return 1;
        }
        msg->seq = b->next_seq;
        /* Before the push: once queued, 'msg' is not ours to read. */
        if (b->before_push)
            b->before_push(b, msg);
        int rc = sl_source_push(src, msg, timeout_ms);
        if (rc == -SL_ETIMEDOUT)
            return 1;
        if (rc < 0)
            return rc;
        if (b->after_push)
            b->after_push(b, msg);
        /* Acks are applied on this thread, so none can precede this. */
        sl_tracker_dispatch(b->trk, b->next_seq);
        b->next_seq++;
        b->ready[b->ready_head++] = NULL;
        atomic_fetch_add(&b->ctr.read, 1);
    }
    b->ready_head = b->ready_cnt = 0;
    return 0;
}

bool sl_redis_src_backoff(struct sl_source *src, struct sl_redis_src *b,
                          int64_t now, int timeout_ms)
{
    if (sl_redis_conn_get(b->rc) && now >= b->retry_ms)
        return false;
    int64_t wait = sl_redis_conn_wait_ms(b->rc);
    if (b->retry_ms - now > wait)
        wait = b->retry_ms - now;
    if (wait > timeout_ms)
        wait = timeout_ms;
    sl_source_wait_acks(src, wait > 0 ? (int)wait : 1);
    return true;
}

int sl_redis_src_block_ms(const struct sl_redis_src *b, int timeout_ms)
{
    int block = b->block_ms;
    if (block > timeout_ms)
        block = timeout_ms;
    if (block > SL_REDIS_SRC_MAX_BLOCK_MS)
        block = SL_REDIS_SRC_MAX_BLOCK_MS;
    return block > 0 ? block : 1;
}

void sl_redis_src_track_ack(struct sl_redis_src *b, int64_t seq)
{
    int64_t pos;

    if (sl_tracker_ack(b->trk, seq) == 0 &&
        sl_tracker_committable(b->trk, &pos))
        sl_tracker_mark_committed(b->trk, pos);
}

int sl_redis_src_send_batched(struct sl_redis_src *b, const char *what,
                              const char *const *prefix, int nprefix, size_t n,
                              sl_redis_src_item_fn *item, size_t *sentp)
{
    size_t max = (size_t)b->ack_batch, sent = 0;
    int rc = 0;

    *sentp = 0;
    if (n == 0)
        return 0;
    const char **argv = malloc(((size_t)nprefix + max) * sizeof(*argv));
    size_t *lens = malloc(((size_t)nprefix + max) * sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -SL_ENOMEM;
    }
    for (int i = 0; i < nprefix; i++) {
        argv[i] = prefix[i];
        lens[i] = strlen(prefix[i]);
    }
    while (sent < n) {
        size_t k = n - sent > max ? max : n - sent;
        for (size_t i = 0; i < k; i++)
            item(b, sent + i, &argv[nprefix + i], &lens[nprefix + i]);
        redisReply *r = sl_redis_conn_argv(b->rc, nprefix + (int)k, argv, lens);
        if (!r) {
            rc = -SL_ECONN;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            sl_redis_src_error_reply(b, what, r->str);
            freeReplyObject(r);
            rc = -SL_EREDIS;
            break;
        }
        freeReplyObject(r);
        sent += k;
        atomic_fetch_add(&b->ctr.acked, k);
    }
    free(argv);
    free(lens);
    if (rc < 0)
        atomic_fetch_add(&b->ctr.ack_failures, 1);
    *sentp = sent;
    return rc;
}

void sl_source_redis_stats(const struct sl_source *src,
                           struct sl_source_redis_stats *st)
{
    /* Both kinds' state starts with struct sl_redis_counters. */
    /* Atomic loads want a non-const pointer; nothing is written. */
    struct sl_redis_counters *c = sl_source_impl((struct sl_source *)src);

    st->read = atomic_load(&c->read);
    st->claimed = atomic_load(&c->claimed);
    st->redelivered = atomic_load(&c->redelivered);
    st->dead_lettered = atomic_load(&c->dead_lettered);
    st->acked = atomic_load(&c->acked);
    st->ack_failures = atomic_load(&c->ack_failures);
    st->group_recreated = atomic_load(&c->group_recreated);
    st->reaped = atomic_load(&c->reaped);
    st->reconnects = c->conn ? sl_redis_conn_reconnects(c->conn) : 0;
}
