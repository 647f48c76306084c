/*
 * Redis Streams source: one consumer of a consumer group.  Reads its own
 * pending entries first, then new ones; takes over entries of dead
 * consumers with XAUTOCLAIM; XACKs in batches only after the sink's ack;
 * dead-letters entries delivered too often; recreates a lost group.
 */
#include "source_redis_common.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "idset.h"
#include "tracker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GROUP_BACKOFF_MAX 5000 /* between failed group recreations, ms */
#define MAX_HEADERS 64         /* extra entry fields kept as headers */
#define ID_SIZE 48             /* sizeof(origin.entry_id) */

enum read_how {
    READ_NEW,   /* ">": first delivery */
    READ_OWN,   /* our own pending entries, read again */
    READ_CLAIM, /* taken over from another consumer */
};

struct stream_source {
    struct sl_redis_src b;      /* first member: the shared state */
    char *group;                /* consumer group */
    char *start_id;             /* where a created group starts */
    int min_idle_ms;            /* XAUTOCLAIM min-idle-time */
    int claim_interval_ms;      /* between XAUTOCLAIM runs */
    int max_deliveries;         /* past this: dead-letter */
    struct sl_idset *held;      /* entry ids queued and not yet acked */
    bool own_pending;           /* still re-reading our own PEL */
    char cursor[ID_SIZE];       /* own PEL read position */
    char claim_cursor[ID_SIZE]; /* XAUTOCLAIM start */
    int64_t next_claim_ms;      /* monotonic time of the next claim */
    bool claim_unsupported;     /* server without XAUTOCLAIM */
    bool group_ok;              /* the group is believed to exist */
    int group_failures;         /* failed recreations in a row */
    char (*acks)[ID_SIZE];      /* acked by the sink, not yet XACKed */
    size_t ack_cnt;             /* used */
    size_t ack_cap;             /* allocated */
};

/* XGROUP CREATE ... MKSTREAM; an existing group is fine. */
static int create_group(struct stream_source *ss, char *errstr,
                        size_t errstr_size)
{
    const char *argv[] = {"XGROUP",  "CREATE",     ss->b.key,
                          ss->group, ss->start_id, "MKSTREAM"};
    redisReply *r = sl_redis_conn_argv(ss->b.rc, 6, argv, NULL);
    int rc = 0;

    if (!r)
        return sl_seterr(-SL_ECONN, errstr, errstr_size,
                         "XGROUP CREATE: not connected");
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        rc = sl_seterr(-SL_EREDIS, errstr, errstr_size,
                       "XGROUP CREATE %s %s: %s", ss->b.key, ss->group, r->str);
    freeReplyObject(r);
    return rc;
}

/* The group vanished (NOGROUP): recreate it now or after a backoff. */
static void group_lost(struct stream_source *ss, const char *text)
{
    char err[256];

    ss->group_ok = false;
    if (create_group(ss, err, sizeof(err)) == 0) {
        ss->group_ok = true;
        ss->group_failures = 0;
        ss->own_pending = false; /* a new group has no PEL for us */
        strcpy(ss->claim_cursor, "0-0");
        atomic_fetch_add(&ss->b.ctr.group_recreated, 1);
        sl_log(SL_LOG_WARN, "redis-stream",
               "stream %s: consumer group %s is gone (%s; the server lost it "
               "or the key was deleted); recreated it at id %s",
               ss->b.key, ss->group, text, ss->start_id);
        return;
    }
    int delay = 100 << (ss->group_failures < 6 ? ss->group_failures : 6);
    if (delay > GROUP_BACKOFF_MAX)
        delay = GROUP_BACKOFF_MAX;
    if (ss->group_failures++ == 0)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: consumer group %s is gone and cannot be "
               "recreated (%s); retrying with backoff",
               ss->b.key, ss->group, err);
    ss->b.retry_ms = sl_mono_ms() + delay;
}

/*
 * Handle an error reply of a read: NOGROUP recreates the group, others
 * are logged once and retried later.
 */
static void read_error(struct stream_source *ss, const char *what,
                       const char *text)
{
    if (strncmp(text, "NOGROUP", 7) == 0)
        group_lost(ss, "NOGROUP");
    else if (strncmp(text, "UNBLOCKED", 9) == 0)
        return; /* key deleted while we blocked: the next read says NOGROUP */
    else
        sl_redis_src_error_reply(&ss->b, what, text);
}

static int add_ack(struct stream_source *ss, const char *id)
{
    if (ss->ack_cnt == ss->ack_cap) {
        size_t cap = ss->ack_cap ? ss->ack_cap * 2 : 256;
        char(*acks)[ID_SIZE] = realloc(ss->acks, cap * sizeof(*acks));
        if (!acks)
            return -SL_ENOMEM;
        ss->acks = acks;
        ss->ack_cap = cap;
    }
    snprintf(ss->acks[ss->ack_cnt++], ID_SIZE, "%s", id);
    return 0;
}

static void ack_item(const struct sl_redis_src *b, size_t i, const char **str,
                     size_t *len)
{
    const struct stream_source *ss = (const struct stream_source *)b;

    *str = ss->acks[i];
    *len = strlen(ss->acks[i]);
}

/*
 * XACK what the sink acked, ack_batch ids per command.  Ids that could
 * not be sent stay for the next try.  Returns 0 or -SL_ECONN/-SL_EREDIS.
 */
static int flush_acks(struct stream_source *ss)
{
    const char *prefix[] = {"XACK", ss->b.key, ss->group};
    size_t done;

    if (ss->ack_cnt == 0)
        return 0;
    int rc = sl_redis_src_send_batched(&ss->b, "XACK", prefix, 3, ss->ack_cnt,
                                       ack_item, &done);

    memmove(ss->acks, ss->acks + done, (ss->ack_cnt - done) * ID_SIZE);
    ss->ack_cnt -= done;
    return rc;
}
/* JSON object of all fields, for entries without a "payload" field. */
static char *fields_json(const redisReply *fields, size_t *lenp)
{
    json_t *obj = json_object();
    char *out = NULL;
    *lenp = 0;
    if (!obj)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        json_t *jv = json_stringn(v->str, v->len);
        if (!jv || json_object_setn_new(obj, f->str, f->len, jv) != 0)
            goto out; /* not UTF-8 */
    }
    out = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (out)
        *lenp = strlen(out);
out:
    json_decref(obj);
    return out;
}

/* Build a message from one [id, [field, value ...]] entry. */
static int build_msg(struct stream_source *ss, const redisReply *entry,
                     struct sl_msg **msgp)
{
    const redisReply *idr = entry->element[0], *fields = entry->element[1];
    const char *payload = NULL, *key = NULL;
    size_t plen = 0, klen = 0;
    char *json = NULL;
    const char *why = NULL;
    char err[256];
    *msgp = NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *f = fields->element[i], *v = fields->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (!payload && strcmp(f->str, "payload") == 0) {
            payload = v->str;
            plen = v->len;
        } else if (!key && strcmp(f->str, "key") == 0) {
            key = v->str;
            klen = v->len;
        }
    }
    if (!payload) {
        json = fields_json(fields, &plen);
        payload = json;
        if (!json)
            why = "entry has no payload field and its fields are not valid "
                  "UTF-8 for a JSON object";
    }
    size_t total = plen;
    bool too_big = plen > ss->b.max_bytes;
    int rc = sl_msg_new(msgp, SL_SOURCE_REDIS_STREAM, ss->b.key, 0, 0, idr->str,
                        key, klen, too_big ? NULL : payload, too_big ? 0 : plen,
                        NULL, err, sizeof(err));
    free(json);
    if (rc < 0)
        return rc;
    if (too_big)
        sl_msg_set_error(*msgp, SL_STAGE_DECODE,
                         "message of %zu bytes exceeds max_message_bytes "
                         "(%zu)",
                         total, ss->b.max_bytes);
    else if (why)
        sl_msg_set_error(*msgp, SL_STAGE_DECODE, "%s", why);
    if (payload && !json) {
        struct sl_msg_limits lim = {0, 0, MAX_HEADERS};
        for (size_t i = 0; i + 1 < fields->elements; i += 2) {
            const redisReply *f = fields->element[i];
            const redisReply *v = fields->element[i + 1];
            if (f->type != REDIS_REPLY_STRING ||
                v->type != REDIS_REPLY_STRING || !strcmp(f->str, "payload") ||
                !strcmp(f->str, "key"))
                continue;
            if (sl_msg_add_header(*msgp, f->str, v->str, v->len, &lim) < 0)
                break;
        }
    }
    (*msgp)->attempts = 1;
    return 0;
}
/*
 * Delivery counts of ready[from..) from XPENDING, one pipelined command
 * per entry.  On a connection error the counts stay as they were.
 */
static void fill_attempts(struct stream_source *ss, size_t from)
{
    redisContext *ctx = sl_redis_conn_get(ss->b.rc);
    if (!ctx)
        return;
    for (size_t i = from; i < ss->b.ready_cnt; i++) {
        const char *id = ss->b.ready[i]->origin.entry_id;
        const char *argv[] = {"XPENDING", ss->b.key, ss->group,     id,
                              id,         "1",       ss->b.consumer};
        redisAppendCommandArgv(ctx, 7, argv, NULL);
    }
    for (size_t i = from; i < ss->b.ready_cnt; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK) {
            sl_redis_conn_fail(ss->b.rc, ctx->errstr);
            return;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements >= 4 &&
            r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
            ss->b.ready[i]->attempts =
                (uint32_t)r->element[0]->element[3]->integer;
        freeReplyObject(r);
    }
}
/*
 * Turn an array of entries into ready messages.  Entries deleted from the
 * stream while pending (nil fields) are XACKed away: there is nothing to
 * process.  Returns the number of messages added.
 */
static size_t collect(struct stream_source *ss, const redisReply *entries,
                      enum read_how how)
{
    size_t from = ss->b.ready_cnt;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        struct sl_msg *msg;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (ss->b.ready_cnt == (size_t)ss->b.count)
            break; /* cannot happen: we ask for at most 'count' */
        if (how == READ_OWN)
            snprintf(ss->cursor, sizeof(ss->cursor), "%s", e->element[0]->str);
        if (e->element[1]->type != REDIS_REPLY_ARRAY) {
            add_ack(ss, e->element[0]->str);
            continue;
        }
        /* A claim can return an entry of ours still in flight (slow
         * rather than dead): its first delivery will be acked. */
        if (how == READ_CLAIM && sl_idset_has(ss->held, e->element[0]->str))
            continue;
        if (build_msg(ss, e, &msg) < 0)
            continue; /* out of memory: it stays pending, read again later */
        ss->b.ready[ss->b.ready_cnt++] = msg;
    }
    if (how != READ_NEW && ss->b.ready_cnt > from)
        fill_attempts(ss, from);
    for (size_t i = from; i < ss->b.ready_cnt; i++) {
        struct sl_msg *msg = ss->b.ready[i];
        if (msg->attempts > (uint32_t)ss->max_deliveries && !msg->error) {
            sl_msg_set_error(msg, SL_STAGE_REDELIVERY,
                             "delivered %u times, more than max_deliveries "
                             "(%d)",
                             msg->attempts, ss->max_deliveries);
            atomic_fetch_add(&ss->b.ctr.dead_lettered, 1);
        }
    }
    return ss->b.ready_cnt - from;
}

/* The entries of the single stream in an XREADGROUP reply, or NULL. */
static const redisReply *stream_entries(const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 1)
        return NULL;
    const redisReply *s = r->element[0];
    if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 ||
        s->element[1]->type != REDIS_REPLY_ARRAY)
        return NULL;
    return s->element[1];
}

/* XREADGROUP our own PEL from the cursor, or '>' with BLOCK. */
static void read_group(struct stream_source *ss, int n, int block_ms)
{
    char cnt[16], blk[16];
    const char *argv[11];
    int argc = 0;
    bool own = ss->own_pending;

    snprintf(cnt, sizeof(cnt), "%d", n);
    snprintf(blk, sizeof(blk), "%d", block_ms);
    argv[argc++] = "XREADGROUP";
    argv[argc++] = "GROUP";
    argv[argc++] = ss->group;
    argv[argc++] = ss->b.consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = cnt;
    if (!own) {
        argv[argc++] = "BLOCK";
        argv[argc++] = blk;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = ss->b.key;
    argv[argc++] = own ? ss->cursor : ">";
    redisReply *r = sl_redis_conn_argv(ss->b.rc, argc, argv, NULL);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        read_error(ss, "XREADGROUP", r->str);
    } else {
        ss->b.last_error[0] = '\0';
        const redisReply *entries = stream_entries(r);
        size_t got =
            entries ? collect(ss, entries, own ? READ_OWN : READ_NEW) : 0;
        if (own) {
            atomic_fetch_add(&ss->b.ctr.redelivered, got);
            if (!entries || entries->elements == 0) {
                ss->own_pending = false;
                uint64_t re = atomic_load(&ss->b.ctr.redelivered);
                if (re > 0)
                    sl_log(SL_LOG_INFO, "redis-stream",
                           "stream %s: re-read %llu pending entries of "
                           "consumer %s; now reading new entries",
                           ss->b.key, (unsigned long long)re, ss->b.consumer);
            }
        }
    }
    freeReplyObject(r);
}
/* One XAUTOCLAIM step from the claim cursor. */
static void claim(struct stream_source *ss, int n)
{
    char idle[16], cnt[16];
    const char *argv[] = {"XAUTOCLAIM",   ss->b.key, ss->group,
                          ss->b.consumer, idle,      ss->claim_cursor,
                          "COUNT",        cnt};
    snprintf(idle, sizeof(idle), "%d", ss->min_idle_ms);
    snprintf(cnt, sizeof(cnt), "%d", n);
    redisReply *r = sl_redis_conn_argv(ss->b.rc, 8, argv, NULL);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strstr(r->str, "unknown command")) {
            ss->claim_unsupported = true;
            sl_log(SL_LOG_WARN, "redis-stream",
                   "stream %s: the server has no XAUTOCLAIM (Redis < 6.2); "
                   "entries of dead consumers are not taken over",
                   ss->b.key);
        } else {
            read_error(ss, "XAUTOCLAIM", r->str);
        }
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[1]->type == REDIS_REPLY_ARRAY) {
        snprintf(ss->claim_cursor, sizeof(ss->claim_cursor), "%s",
                 r->element[0]->str);
        size_t got = collect(ss, r->element[1], READ_CLAIM);
        atomic_fetch_add(&ss->b.ctr.claimed, got);
        if (strcmp(ss->claim_cursor, "0-0") != 0)
            ss->next_claim_ms = 0; /* more to scan: go on next poll */
    }
    freeReplyObject(r);
}
/* The row's identity is the entry id; offset stays 0 so that a
 * redelivery, here or in another replica, hits the same row. */
static void hold(struct sl_redis_src *b, struct sl_msg *msg)
{
    struct stream_source *ss = (struct stream_source *)b;
    sl_idset_add(ss->held, msg->origin.entry_id);
}

static int stream_poll(struct sl_source *src, int timeout_ms)
{
    struct stream_source *ss = sl_source_impl(src);
    int rc = sl_redis_src_push_ready(src, &ss->b, timeout_ms);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((int)ss->ack_cnt >= ss->b.ack_batch)
        flush_acks(ss);
    int64_t now = sl_mono_ms();
    if (sl_redis_src_backoff(src, &ss->b, now, timeout_ms))
        return 0;
    if (!ss->group_ok) {
        group_lost(ss, "recreation retry");
        return 0;
    }
    int n = sl_redis_src_room(&ss->b);
    if (n == 0) {
        sl_source_wait_acks(src, timeout_ms);
        return 0;
    }
    if (n > ss->b.count)
        n = ss->b.count;
    if (!ss->own_pending && !ss->claim_unsupported &&
        now >= ss->next_claim_ms) {
        ss->next_claim_ms = now + ss->claim_interval_ms;
        /* Acked but not yet XACKed entries idle too: never claim those. */
        flush_acks(ss);
        claim(ss, n);
    }
    if (ss->b.ready_cnt == 0 && ss->group_ok &&
        sl_redis_conn_wait_ms(ss->b.rc) == 0)
        read_group(ss, n, sl_redis_src_block_ms(&ss->b, timeout_ms));
    rc = sl_redis_src_push_ready(src, &ss->b, timeout_ms);
    return rc < 0 ? rc : 0;
}
static void stream_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct stream_source *ss = sl_source_impl(src);
    sl_redis_src_track_ack(&ss->b, msg->seq);
    sl_idset_remove(ss->held, msg->origin.entry_id);
    if (msg->origin.entry_id[0] && add_ack(ss, msg->origin.entry_id) < 0)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: out of memory recording the ack of %s; it will "
               "be redelivered",
               ss->b.key, msg->origin.entry_id);
    sl_msg_destroy(msg);
    if ((int)ss->ack_cnt >= ss->b.ack_batch)
        flush_acks(ss);
}
static int stream_commit(struct sl_source *src, bool final)
{
    struct stream_source *ss = sl_source_impl(src);
    char err[256];

    if (ss->ack_cnt == 0)
        return 0;
    if (final && !sl_redis_conn_get(ss->b.rc) &&
        sl_redis_conn_connect(ss->b.rc, err, sizeof(err)) < 0) {
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: cannot XACK %zu entries at close (%s); they stay "
               "pending and will be delivered again",
               ss->b.key, ss->ack_cnt, err);
        return -SL_ECONN;
    }
    int rc = flush_acks(ss);
    if (rc < 0 && final)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: cannot XACK %zu entries at close (%s); they stay "
               "pending and will be delivered again",
               ss->b.key, ss->ack_cnt, sl_strerror(rc));
    return rc;
}
static void stream_destroy(void *impl)
{
    struct stream_source *ss = impl;
    if (!ss)
        return;
    sl_redis_src_cleanup(&ss->b);
    free(ss->acks);
    sl_idset_destroy(ss->held);
    free(ss->group);
    free(ss->start_id);
    free(ss);
}
static const struct sl_source_ops stream_ops = {
    .kind = "redis-stream",
    .redelivers = true,
    .poll = stream_poll,
    .acked = stream_acked,
    .commit = stream_commit,
    .destroy = stream_destroy,
};
struct sl_source *
sl_source_redis_stream_new(const struct sl_source_redis_conf *conf,
                           struct sl_queue *q, char *errstr, size_t errstr_size)
{
    struct stream_source *ss;
    if (!conf->key || !*conf->key || !conf->group || !*conf->group ||
        !conf->consumer || !*conf->consumer) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "redis stream source: key, group and consumer are "
                  "required");
        return NULL;
    }
    ss = calloc(1, sizeof(*ss));
    if (!ss) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    ss->b.before_push = hold;
    if (sl_redis_src_init(&ss->b, conf, "redis-stream", "stream", errstr,
                          errstr_size) < 0)
        goto fail;
    ss->min_idle_ms = positive_or(conf->min_idle_ms, 60000);
    ss->claim_interval_ms = positive_or(conf->claim_interval_ms, 5000);
    ss->max_deliveries = positive_or(conf->max_deliveries, 10);
    ss->own_pending = true;
    strcpy(ss->cursor, "0");
    strcpy(ss->claim_cursor, "0-0");
    ss->group = strdup(conf->group);
    ss->start_id =
        strdup(conf->start_id && *conf->start_id ? conf->start_id : "0");
    ss->held = sl_idset_new((size_t)ss->b.max_inflight);
    if (!ss->group || !ss->start_id || !ss->held) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "out of memory (or max_inflight above %lld)",
                  (long long)SL_TRACKER_MAX_CAPACITY);
        goto fail;
    }
    if (sl_redis_src_connect(&ss->b, conf, errstr, errstr_size) < 0)
        goto fail;
    if (create_group(ss, errstr, errstr_size) < 0)
        goto fail;
    ss->group_ok = true;
    sl_log(SL_LOG_INFO, "redis-stream",
           "reading stream %s at %s as consumer %s of group %s", ss->b.key,
           sl_redis_conn_display(ss->b.rc), ss->b.consumer, ss->group);
    struct sl_source *src = sl_source_new(
        &stream_ops, ss, q, positive_or(conf->commit_interval_ms, 1000));
    if (!src)
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    return src;
fail:
    stream_destroy(ss);
    return NULL;
}
