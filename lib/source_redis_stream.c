/*
 * Redis Streams source: one consumer of a consumer group.  Reads its own
 * pending entries first, then new ones; takes over entries of dead
 * consumers with XAUTOCLAIM; XACKs in batches only after the sink's ack;
 * dead-letters entries delivered too often; recreates a lost group.
 */
#include "source_redis.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_conn.h"
#include "idset.h"
#include "tracker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCK_MS 50        /* longest XREADGROUP BLOCK per poll */
#define GROUP_BACKOFF_MAX 5000 /* between failed group recreations, ms */
#define ERROR_BACKOFF_MS 1000  /* after an unexpected error reply */
#define MAX_HEADERS 64         /* extra entry fields kept as headers */
#define ID_SIZE 48             /* sizeof(origin.entry_id) */

enum read_how {
    READ_NEW,   /* ">": first delivery */
    READ_OWN,   /* our own pending entries, read again */
    READ_CLAIM, /* taken over from another consumer */
};

struct stream_source {
    struct sl_redis_counters ctr; /* first member: see sl_redis_counters */
    struct sl_redis_conn *rc;     /* the connection */
    char *key;                    /* stream key */
    char *group;                  /* consumer group */
    char *consumer;               /* our consumer name */
    char *start_id;               /* where a created group starts */
    int count;                    /* entries per read */
    int block_ms;                 /* wait per read (capped) */
    int min_idle_ms;              /* XAUTOCLAIM min-idle-time */
    int claim_interval_ms;        /* between XAUTOCLAIM runs */
    int max_deliveries;           /* past this: dead-letter */
    int ack_batch;                /* ids per XACK */
    int max_inflight;             /* tracker window */
    size_t max_bytes;             /* payload cap */
    struct sl_tracker *trk;       /* dispatched / acked sequence numbers */
    struct sl_idset *held;        /* entry ids queued and not yet acked */
    int64_t next_seq;             /* next dense sequence number */
    bool own_pending;             /* still re-reading our own PEL */
    char cursor[ID_SIZE];         /* own PEL read position */
    char claim_cursor[ID_SIZE];   /* XAUTOCLAIM start */
    int64_t next_claim_ms;        /* monotonic time of the next claim */
    bool claim_unsupported;       /* server without XAUTOCLAIM */
    bool group_ok;                /* the group is believed to exist */
    int group_failures;           /* failed recreations in a row */
    int64_t retry_ms;             /* no reads before this (backoff) */
    char last_error[256];         /* last logged error reply, log once */
    struct sl_msg **ready;        /* read, not yet queued; count slots */
    size_t ready_head;            /* next to push */
    size_t ready_cnt;             /* filled */
    char (*acks)[ID_SIZE];        /* acked by the sink, not yet XACKed */
    size_t ack_cnt;               /* used */
    size_t ack_cap;               /* allocated */
};

/* Log an unexpected error reply once per distinct text, then back off. */
static void error_reply(struct stream_source *ss, const char *what,
                        const char *text)
{
    if (strcmp(ss->last_error, text) != 0) {
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: %s failed: %s; retrying every %d ms", ss->key, what,
               text, ERROR_BACKOFF_MS);
        snprintf(ss->last_error, sizeof(ss->last_error), "%s", text);
    }
    ss->retry_ms = sl_mono_ms() + ERROR_BACKOFF_MS;
}

/* XGROUP CREATE ... MKSTREAM; an existing group is fine. */
static int create_group(struct stream_source *ss, char *errstr,
                        size_t errstr_size)
{
    const char *argv[] = {"XGROUP",  "CREATE",     ss->key,
                          ss->group, ss->start_id, "MKSTREAM"};
    redisReply *r = sl_redis_conn_argv(ss->rc, 6, argv, NULL);
    int rc = 0;

    if (!r)
        return sl_seterr(-SL_ECONN, errstr, errstr_size,
                         "XGROUP CREATE: not connected");
    if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BUSYGROUP", 9) != 0)
        rc = sl_seterr(-SL_EREDIS, errstr, errstr_size,
                       "XGROUP CREATE %s %s: %s", ss->key, ss->group, r->str);
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
        atomic_fetch_add(&ss->ctr.group_recreated, 1);
        sl_log(SL_LOG_WARN, "redis-stream",
               "stream %s: consumer group %s is gone (%s; the server lost it "
               "or the key was deleted); recreated it at id %s",
               ss->key, ss->group, text, ss->start_id);
        return;
    }
    int delay = 100 << (ss->group_failures < 6 ? ss->group_failures : 6);
    if (delay > GROUP_BACKOFF_MAX)
        delay = GROUP_BACKOFF_MAX;
    if (ss->group_failures++ == 0)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: consumer group %s is gone and cannot be "
               "recreated (%s); retrying with backoff",
               ss->key, ss->group, err);
    ss->retry_ms = sl_mono_ms() + delay;
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
        error_reply(ss, what, text);
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

/*
 * XACK what the sink acked, ack_batch ids per command.  Ids that could
 * not be sent stay for the next try.  Returns 0 or -SL_ECONN/-SL_EREDIS.
 */
static int flush_acks(struct stream_source *ss)
{
    const char **argv;
    size_t done = 0;
    int rc = 0;

    if (ss->ack_cnt == 0)
        return 0;
    argv = malloc((3 + (size_t)ss->ack_batch) * sizeof(*argv));
    if (!argv)
        return -SL_ENOMEM;
    argv[0] = "XACK";
    argv[1] = ss->key;
    argv[2] = ss->group;
    while (done < ss->ack_cnt) {
        size_t n = ss->ack_cnt - done;
        if (n > (size_t)ss->ack_batch)
            n = (size_t)ss->ack_batch;
        for (size_t i = 0; i < n; i++)
            argv[3 + i] = ss->acks[done + i];
        redisReply *r = sl_redis_conn_argv(ss->rc, (int)(3 + n), argv, NULL);
        if (!r) {
            rc = -SL_ECONN;
            break;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            error_reply(ss, "XACK", r->str);
            freeReplyObject(r);
            rc = -SL_EREDIS;
            break;
        }
        freeReplyObject(r);
        done += n;
        atomic_fetch_add(&ss->ctr.acked, n);
    }
    free(argv);
    if (rc < 0)
        atomic_fetch_add(&ss->ctr.ack_failures, 1);
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
    bool too_big = plen > ss->max_bytes;
    int rc = sl_msg_new(msgp, SL_SOURCE_REDIS_STREAM, ss->key, 0, 0, idr->str,
                        key, klen, too_big ? NULL : payload, too_big ? 0 : plen,
                        NULL, err, sizeof(err));
    free(json);
    if (rc < 0)
        return rc;
    if (too_big)
        sl_msg_set_error(*msgp, "decode",
                         "message of %zu bytes exceeds max_message_bytes "
                         "(%zu)",
                         total, ss->max_bytes);
    else if (why)
        sl_msg_set_error(*msgp, "decode", "%s", why);
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
    redisContext *ctx = sl_redis_conn_get(ss->rc);

    if (!ctx)
        return;
    for (size_t i = from; i < ss->ready_cnt; i++) {
        const char *id = ss->ready[i]->origin.entry_id;
        const char *argv[] = {"XPENDING", ss->key, ss->group,   id,
                              id,         "1",     ss->consumer};
        redisAppendCommandArgv(ctx, 7, argv, NULL);
    }
    for (size_t i = from; i < ss->ready_cnt; i++) {
        redisReply *r = NULL;
        if (redisGetReply(ctx, (void **)&r) != REDIS_OK) {
            sl_redis_conn_fail(ss->rc, ctx->errstr);
            return;
        }
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 1 &&
            r->element[0]->type == REDIS_REPLY_ARRAY &&
            r->element[0]->elements >= 4 &&
            r->element[0]->element[3]->type == REDIS_REPLY_INTEGER)
            ss->ready[i]->attempts =
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
    size_t from = ss->ready_cnt;

    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        struct sl_msg *msg;
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
            e->element[0]->type != REDIS_REPLY_STRING)
            continue;
        if (ss->ready_cnt == (size_t)ss->count)
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
        ss->ready[ss->ready_cnt++] = msg;
    }
    if (how != READ_NEW && ss->ready_cnt > from)
        fill_attempts(ss, from);
    for (size_t i = from; i < ss->ready_cnt; i++) {
        struct sl_msg *msg = ss->ready[i];
        if (msg->attempts > (uint32_t)ss->max_deliveries && !msg->error) {
            sl_msg_set_error(msg, "redelivery",
                             "delivered %u times, more than max_deliveries "
                             "(%d)",
                             msg->attempts, ss->max_deliveries);
            atomic_fetch_add(&ss->ctr.dead_lettered, 1);
        }
    }
    return ss->ready_cnt - from;
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
    argv[argc++] = ss->consumer;
    argv[argc++] = "COUNT";
    argv[argc++] = cnt;
    if (!own) {
        argv[argc++] = "BLOCK";
        argv[argc++] = blk;
    }
    argv[argc++] = "STREAMS";
    argv[argc++] = ss->key;
    argv[argc++] = own ? ss->cursor : ">";
    redisReply *r = sl_redis_conn_argv(ss->rc, argc, argv, NULL);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        read_error(ss, "XREADGROUP", r->str);
    } else {
        ss->last_error[0] = '\0';
        const redisReply *entries = stream_entries(r);
        size_t got =
            entries ? collect(ss, entries, own ? READ_OWN : READ_NEW) : 0;
        if (own) {
            atomic_fetch_add(&ss->ctr.redelivered, got);
            if (!entries || entries->elements == 0) {
                ss->own_pending = false;
                uint64_t re = atomic_load(&ss->ctr.redelivered);
                if (re > 0)
                    sl_log(SL_LOG_INFO, "redis-stream",
                           "stream %s: re-read %llu pending entries of "
                           "consumer %s; now reading new entries",
                           ss->key, (unsigned long long)re, ss->consumer);
            }
        }
    }
    freeReplyObject(r);
}

/* One XAUTOCLAIM step from the claim cursor. */
static void claim(struct stream_source *ss, int n)
{
    char idle[16], cnt[16];
    const char *argv[] = {"XAUTOCLAIM", ss->key, ss->group,
                          ss->consumer, idle,    ss->claim_cursor,
                          "COUNT",      cnt};

    snprintf(idle, sizeof(idle), "%d", ss->min_idle_ms);
    snprintf(cnt, sizeof(cnt), "%d", n);
    redisReply *r = sl_redis_conn_argv(ss->rc, 8, argv, NULL);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        if (strstr(r->str, "unknown command")) {
            ss->claim_unsupported = true;
            sl_log(SL_LOG_WARN, "redis-stream",
                   "stream %s: the server has no XAUTOCLAIM (Redis < 6.2); "
                   "entries of dead consumers are not taken over",
                   ss->key);
        } else {
            read_error(ss, "XAUTOCLAIM", r->str);
        }
    } else if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
               r->element[0]->type == REDIS_REPLY_STRING &&
               r->element[1]->type == REDIS_REPLY_ARRAY) {
        snprintf(ss->claim_cursor, sizeof(ss->claim_cursor), "%s",
                 r->element[0]->str);
        size_t got = collect(ss, r->element[1], READ_CLAIM);
        atomic_fetch_add(&ss->ctr.claimed, got);
        if (strcmp(ss->claim_cursor, "0-0") != 0)
            ss->next_claim_ms = 0; /* more to scan: go on next poll */
    }
    freeReplyObject(r);
}

/* Room left in the in-flight window. */
static int room(struct stream_source *ss)
{
    int64_t lo = sl_tracker_lowest_unacked(ss->trk);
    int64_t used = lo >= 0 ? ss->next_seq - lo : 0;
    return used >= ss->max_inflight ? 0 : (int)(ss->max_inflight - used);
}

/*
 * Queue the ready messages.  Returns 0 when all went, 1 when the queue or
 * the window is full (keep them, stop reading), or -SL_ECLOSED.
 */
static int push_ready(struct sl_source *src, struct stream_source *ss,
                      int timeout_ms)
{
    while (ss->ready_head < ss->ready_cnt) {
        struct sl_msg *msg = ss->ready[ss->ready_head];
        if (room(ss) == 0) {
            sl_source_wait_acks(src, timeout_ms);
            return 1;
        }
        /* The row's identity is the entry id; offset stays 0 so that a
         * redelivery, here or in another replica, hits the same row. */
        msg->seq = ss->next_seq;
        sl_idset_add(ss->held, msg->origin.entry_id); /* before: the queue
                                                          owns msg after */
        int rc = sl_source_push(src, msg, timeout_ms);
        if (rc == -SL_ETIMEDOUT)
            return 1;
        if (rc < 0)
            return rc;
        /* Acks are applied on this thread, so none can precede this. */
        sl_tracker_dispatch(ss->trk, ss->next_seq);
        ss->next_seq++;
        ss->ready[ss->ready_head++] = NULL;
        atomic_fetch_add(&ss->ctr.read, 1);
    }
    ss->ready_head = ss->ready_cnt = 0;
    return 0;
}

static int stream_poll(struct sl_source *src, int timeout_ms)
{
    struct stream_source *ss = sl_source_impl(src);
    int rc = push_ready(src, ss, timeout_ms);

    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((int)ss->ack_cnt >= ss->ack_batch)
        flush_acks(ss);
    int64_t now = sl_mono_ms();
    if (!sl_redis_conn_get(ss->rc) || now < ss->retry_ms) {
        int64_t wait = sl_redis_conn_wait_ms(ss->rc);
        if (ss->retry_ms - now > wait)
            wait = ss->retry_ms - now;
        if (wait > timeout_ms)
            wait = timeout_ms;
        sl_source_wait_acks(src, wait > 0 ? (int)wait : 1);
        return 0;
    }
    if (!ss->group_ok) {
        group_lost(ss, "recreation retry");
        return 0;
    }
    int n = room(ss);
    if (n == 0) {
        sl_source_wait_acks(src, timeout_ms);
        return 0;
    }
    if (n > ss->count)
        n = ss->count;
    if (!ss->own_pending && !ss->claim_unsupported &&
        now >= ss->next_claim_ms) {
        ss->next_claim_ms = now + ss->claim_interval_ms;
        /* Acked but not yet XACKed entries idle too: never claim those. */
        flush_acks(ss);
        claim(ss, n);
    }
    if (ss->ready_cnt == 0 && ss->group_ok &&
        sl_redis_conn_wait_ms(ss->rc) == 0) {
        int block = ss->block_ms;
        if (block > timeout_ms)
            block = timeout_ms;
        if (block > MAX_BLOCK_MS)
            block = MAX_BLOCK_MS;
        read_group(ss, n, block > 0 ? block : 1);
    }
    rc = push_ready(src, ss, timeout_ms);
    return rc < 0 ? rc : 0;
}

static void stream_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct stream_source *ss = sl_source_impl(src);
    int64_t pos;

    if (sl_tracker_ack(ss->trk, msg->seq) == 0 &&
        sl_tracker_committable(ss->trk, &pos))
        sl_tracker_mark_committed(ss->trk, pos);
    sl_idset_remove(ss->held, msg->origin.entry_id);
    if (msg->origin.entry_id[0] && add_ack(ss, msg->origin.entry_id) < 0)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: out of memory recording the ack of %s; it will "
               "be redelivered",
               ss->key, msg->origin.entry_id);
    sl_msg_destroy(msg);
    if ((int)ss->ack_cnt >= ss->ack_batch)
        flush_acks(ss);
}

static int stream_commit(struct sl_source *src, bool final)
{
    struct stream_source *ss = sl_source_impl(src);
    char err[256];

    if (ss->ack_cnt == 0)
        return 0;
    if (final && !sl_redis_conn_get(ss->rc) &&
        sl_redis_conn_connect(ss->rc, err, sizeof(err)) < 0) {
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: cannot XACK %zu entries at close (%s); they stay "
               "pending and will be delivered again",
               ss->key, ss->ack_cnt, err);
        return -SL_ECONN;
    }
    int rc = flush_acks(ss);
    if (rc < 0 && final)
        sl_log(SL_LOG_ERROR, "redis-stream",
               "stream %s: cannot XACK %zu entries at close (%s); they stay "
               "pending and will be delivered again",
               ss->key, ss->ack_cnt, sl_strerror(rc));
    return rc;
}

static void stream_destroy(void *impl)
{
    struct stream_source *ss = impl;

    if (!ss)
        return;
    if (ss->ready)
        for (size_t i = ss->ready_head; i < ss->ready_cnt; i++)
            sl_msg_destroy(ss->ready[i]);
    free(ss->ready);
    free(ss->acks);
    sl_tracker_destroy(ss->trk);
    sl_idset_destroy(ss->held);
    sl_redis_conn_destroy(ss->rc);
    free(ss->key);
    free(ss->group);
    free(ss->consumer);
    free(ss->start_id);
    free(ss);
}

static const struct sl_source_ops stream_ops = {
    .kind = "redis-stream",
    .poll = stream_poll,
    .acked = stream_acked,
    .commit = stream_commit,
    .destroy = stream_destroy,
};

static int positive_or(int v, int dflt)
{
    return v > 0 ? v : dflt;
}

struct sl_source *
sl_source_redis_stream_new(const struct sl_source_redis_conf *conf,
                           struct sl_queue *q, char *errstr, size_t errstr_size)
{
    struct stream_source *ss;
    struct sl_redis_conn_conf cc = {
        conf->url,
        conf->password_env,
        conf->password_file,
        conf->connect_timeout_ms,
        conf->command_timeout_ms,
        0,
        "redis-stream",
        NULL,
    };
    char name[160];

    if (!conf->key || !*conf->key || !conf->group || !*conf->group ||
        !conf->consumer || !*conf->consumer) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "redis stream source: key, group and consumer are "
                  "required");
        return NULL;
    }
    snprintf(name, sizeof(name), "sluice:%s:%s", conf->key, conf->consumer);
    cc.client_name = name;
    ss = calloc(1, sizeof(*ss));
    if (!ss) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    ss->count = positive_or(conf->count, 256);
    ss->block_ms = positive_or(conf->block_ms, MAX_BLOCK_MS);
    ss->min_idle_ms = positive_or(conf->min_idle_ms, 60000);
    ss->claim_interval_ms = positive_or(conf->claim_interval_ms, 5000);
    ss->max_deliveries = positive_or(conf->max_deliveries, 10);
    ss->ack_batch = positive_or(conf->ack_batch, 256);
    ss->max_inflight = positive_or(conf->max_inflight, 10000);
    ss->max_bytes =
        conf->max_message_bytes ? conf->max_message_bytes : 1024 * 1024;
    ss->own_pending = true;
    strcpy(ss->cursor, "0");
    strcpy(ss->claim_cursor, "0-0");
    ss->key = strdup(conf->key);
    ss->group = strdup(conf->group);
    ss->consumer = strdup(conf->consumer);
    ss->start_id =
        strdup(conf->start_id && *conf->start_id ? conf->start_id : "0");
    ss->ready = calloc((size_t)ss->count, sizeof(*ss->ready));
    ss->trk = sl_tracker_new(ss->max_inflight);
    ss->held = sl_idset_new((size_t)ss->max_inflight);
    if (!ss->key || !ss->group || !ss->consumer || !ss->start_id ||
        !ss->ready || !ss->trk || !ss->held) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "out of memory (or max_inflight above %lld)",
                  (long long)SL_TRACKER_MAX_CAPACITY);
        goto fail;
    }
    ss->rc = sl_redis_conn_new(&cc, errstr, errstr_size);
    if (!ss->rc)
        goto fail;
    ss->ctr.conn = ss->rc;
    if (sl_redis_conn_connect(ss->rc, errstr, errstr_size) < 0)
        goto fail;
    if (create_group(ss, errstr, errstr_size) < 0)
        goto fail;
    ss->group_ok = true;
    sl_log(SL_LOG_INFO, "redis-stream",
           "reading stream %s at %s as consumer %s of group %s", ss->key,
           sl_redis_conn_display(ss->rc), ss->consumer, ss->group);
    struct sl_source *src = sl_source_new(
        &stream_ops, ss, q, positive_or(conf->commit_interval_ms, 1000));
    if (!src)
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    return src;
fail:
    stream_destroy(ss);
    return NULL;
}

void sl_source_redis_get_stats(struct sl_source *src,
                               struct sl_source_redis_stats *st)
{
    /* Both kinds' state starts with struct sl_redis_counters. */
    struct sl_redis_counters *c = sl_source_impl(src);

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
