/*
 * Reliable Redis list source: entries move atomically from the list into
 * this consumer's processing list and are removed from there only after
 * the sink's ack.  A heartbeat key says the consumer is alive; a reaper
 * returns the processing lists of consumers whose heartbeat expired.
 */
#include "source_redis_common.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "tracker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SEQ_BITS 40 /* origin.offset = run << SEQ_BITS | sequence */

/* Move up to ARGV[1] entries from the list to the processing list. */
static const char take_script[] =
    "local out = {}\n"
    "for i = 1, tonumber(ARGV[1]) do\n"
    "  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')\n"
    "  if not v then break end\n"
    "  out[#out + 1] = v\n"
    "end\n"
    "return out\n";

/*
 * Return a processing list (KEYS[1]) to the list (KEYS[3]), newest first
 * so that the oldest ends up next to be taken, unless its owner's
 * heartbeat (KEYS[2]) is alive.  Atomic, so a live consumer is never
 * reaped.  Returns the number moved, or -1 when the owner is alive.
 */
static const char reap_script[] =
    "if KEYS[2] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then\n"
    "  return -1\n"
    "end\n"
    "local n = 0\n"
    "while redis.call('LMOVE', KEYS[1], KEYS[3], 'LEFT', 'RIGHT') do\n"
    "  n = n + 1\n"
    "end\n"
    "return n\n";

/* Remove one occurrence of each ARGV value, searching from the oldest. */
static const char done_script[] = "local n = 0\n"
                                  "for i = 1, #ARGV do\n"
                                  "  n = n + redis.call('LREM', KEYS[1], -1, "
                                  "ARGV[i])\n"
                                  "end\n"
                                  "return n\n";

struct raw_value {
    const struct sl_msg *owner; /* its message, until it is queued */
    int64_t seq; /* the message's sequence number once queued, else -1 */
    char *val;   /* the entry as stored, owned */
    size_t len;  /* its length */
};

struct list_source {
    struct sl_redis_src b;  /* first member: the shared state */
    char *proc_key;         /* <list>:processing:<consumer> */
    char *hb_key;           /* <list>:heartbeat:<consumer> */
    char *proc_prefix;      /* <list>:processing: */
    char *scan_pattern;     /* proc_prefix, glob-escaped, plus '*' */
    char *id_field;         /* payload field used as entry id */
    int heartbeat_ms;       /* heartbeat refresh and reap interval */
    int64_t run;            /* run number from INCR <list>:runs */
    int64_t next_hb_ms;     /* next heartbeat refresh */
    int64_t next_reap_ms;   /* next reaper run */
    bool reaping;           /* a SCAN is under way */
    char scan_cursor[32];   /* its cursor */
    struct raw_value *big;  /* raw values of oversized entries */
    size_t big_cnt;         /* used */
    struct raw_value *done; /* acked values, not yet LREMed */
    size_t done_cnt;        /* used */
    size_t done_cap;        /* allocated */
};

/* Run a command; NULL on I/O errors and (logged) error replies. */
static redisReply *command(struct list_source *ls, const char *what, int argc,
                           const char **argv, const size_t *lens)
{
    redisReply *r = sl_redis_conn_argv(ls->b.rc, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        sl_redis_src_error_reply(&ls->b, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int heartbeat(struct list_source *ls)
{
    char px[24];
    snprintf(px, sizeof(px), "%d", ls->heartbeat_ms * 3);
    const char *argv[] = {"SET", ls->hb_key, "1", "PX", px};
    redisReply *r = command(ls, "heartbeat SET", 5, argv, NULL);
    if (!r)
        return -SL_EREDIS;
    freeReplyObject(r);
    ls->next_hb_ms = sl_mono_ms() + ls->heartbeat_ms;
    return 0;
}

/*
 * Return processing list 'proc' to the list unless 'hb' (may be "") is
 * alive.  Returns the number moved, -1 when alive, -2 on failure.
 */
static long long reap_one(struct list_source *ls, const char *proc,
                          const char *hb)
{
    const char *argv[] = {"EVAL", reap_script, "3", proc, hb, ls->b.key};
    redisReply *r = command(ls, "reaper EVAL", 6, argv, NULL);
    if (!r)
        return -2;
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    freeReplyObject(r);
    return n;
}

/* One SCAN step of the reaper; a run ends when the cursor is back at 0. */
static void reap_step(struct list_source *ls)
{
    const char *argv[] = {"SCAN",           ls->scan_cursor, "MATCH",
                          ls->scan_pattern, "COUNT",         "1000"};
    redisReply *r = command(ls, "reaper SCAN", 6, argv, NULL);
    size_t plen = strlen(ls->proc_prefix);

    if (!r)
        return;
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
        r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(r);
        ls->reaping = false;
        return;
    }
    snprintf(ls->scan_cursor, sizeof(ls->scan_cursor), "%s",
             r->element[0]->str);
    if (strcmp(ls->scan_cursor, "0") == 0)
        ls->reaping = false;
    for (size_t i = 0; i < r->element[1]->elements; i++) {
        const redisReply *k = r->element[1]->element[i];
        if (k->type != REDIS_REPLY_STRING || k->len <= plen ||
            strcmp(k->str, ls->proc_key) == 0)
            continue;
        char hb[1024];
        int w = snprintf(hb, sizeof(hb), "%s:heartbeat:%s", ls->b.key,
                         k->str + plen);
        if (w < 0 || (size_t)w >= sizeof(hb))
            continue;
        long long n = reap_one(ls, k->str, hb);
        if (n > 0) {
            atomic_fetch_add(&ls->b.ctr.reaped, (uint64_t)n);
            sl_log(SL_LOG_WARN, "redis-list",
                   "list %s: consumer %s stopped its heartbeat; returned "
                   "%lld of its unacked entries to the list",
                   ls->b.key, k->str + plen, n);
        }
    }
    freeReplyObject(r);
}

/* Use the payload's id field, when it has one, as the entry id. */
static void set_entry_id(struct list_source *ls, struct sl_msg *msg)
{
    size_t i = 0;

    while (i < msg->payload_len &&
           (msg->payload[i] == ' ' || msg->payload[i] == '\t' ||
            msg->payload[i] == '\n'))
        i++;
    if (i == msg->payload_len || msg->payload[i] != '{')
        return;
    json_t *doc =
        json_loadb((const char *)msg->payload, msg->payload_len, 0, NULL);
    json_t *id = doc ? json_object_get(doc, ls->id_field) : NULL;
    char *out = msg->origin.entry_id;
    size_t size = sizeof(msg->origin.entry_id);
    if (json_is_string(id) && json_string_length(id) > 0 &&
        json_string_length(id) < size)
        snprintf(out, size, "%s", json_string_value(id));
    else if (json_is_integer(id))
        snprintf(out, size, "%lld", (long long)json_integer_value(id));
    json_decref(doc);
}

static void collect(struct list_source *ls, const redisReply *v)
{
    struct sl_msg *msg;
    char err[256];

    if (v->type != REDIS_REPLY_STRING || ls->b.ready_cnt == (size_t)ls->b.count)
        return;
    bool too_big = v->len > ls->b.max_bytes;
    if (sl_msg_new(&msg, SL_SOURCE_REDIS_LIST, ls->b.key, 0, 0, NULL, NULL, 0,
                   too_big ? NULL : v->str, too_big ? 0 : v->len, NULL, err,
                   sizeof(err)) < 0) {
        /* Out of memory: it stays in the processing list for a reaper. */
        sl_log(SL_LOG_ERROR, "redis-list", "list %s: %s", ls->b.key, err);
        return;
    }
    if (too_big) {
        struct raw_value *big =
            realloc(ls->big, (ls->big_cnt + 1) * sizeof(*big));
        char *copy = malloc(v->len);
        if (!big || !copy) {
            free(copy);
            if (big)
                ls->big = big;
            sl_msg_destroy(msg);
            return;
        }
        memcpy(copy, v->str, v->len);
        ls->big = big;
        ls->big[ls->big_cnt++] = (struct raw_value){msg, -1, copy, v->len};
        sl_msg_set_error(msg, SL_STAGE_DECODE,
                         "message of %zu bytes exceeds max_message_bytes "
                         "(%zu)",
                         v->len, ls->b.max_bytes);
    } else {
        set_entry_id(ls, msg);
    }
    msg->attempts = 1;
    ls->b.ready[ls->b.ready_cnt++] = msg;
}

/* Take up to 'n' entries; block briefly when the list is empty. */
static void take(struct list_source *ls, int n, int block_ms)
{
    char cnt[16], tmo[32];
    const char *argv[] = {"EVAL",    take_script,  "2",
                          ls->b.key, ls->proc_key, cnt};

    snprintf(cnt, sizeof(cnt), "%d", n);
    redisReply *r = command(ls, "take EVAL", 6, argv, NULL);
    if (!r)
        return;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            collect(ls, r->element[i]);
    size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
    freeReplyObject(r);
    if (got > 0)
        return;
    snprintf(tmo, sizeof(tmo), "%.3f", block_ms / 1000.0);
    const char *bargv[] = {"BLMOVE", ls->b.key, ls->proc_key,
                           "RIGHT",  "LEFT",    tmo};
    r = command(ls, "BLMOVE", 6, bargv, NULL);
    if (!r)
        return;
    collect(ls, r);
    freeReplyObject(r);
}

/* The origin offset, and the seq of an oversized entry's raw value. */
static void number(struct sl_redis_src *b, struct sl_msg *msg)
{
    struct list_source *ls = (struct list_source *)b;

    msg->origin.offset = (ls->run << SEQ_BITS) | msg->seq;
    for (size_t i = 0; i < ls->big_cnt; i++)
        if (ls->big[i].owner == msg)
            ls->big[i].seq = msg->seq;
}

/* Queued: its raw value now waits for the ack of its seq. */
static void release(struct sl_redis_src *b, const struct sl_msg *msg)
{
    struct list_source *ls = (struct list_source *)b;

    for (size_t i = 0; i < ls->big_cnt; i++)
        if (ls->big[i].owner == msg && ls->big[i].seq == b->next_seq)
            ls->big[i].owner = NULL;
}

static void done_item(const struct sl_redis_src *b, size_t i, const char **str,
                      size_t *len)
{
    const struct list_source *ls = (const struct list_source *)b;

    *str = ls->done[i].val;
    *len = ls->done[i].len;
}

/* LREM what the sink acked, ack_batch values per script call. */
static int flush_done(struct list_source *ls)
{
    const char *prefix[] = {"EVAL", done_script, "1", ls->proc_key};
    size_t sent;

    if (ls->done_cnt == 0)
        return 0;
    int rc = sl_redis_src_send_batched(&ls->b, "LREM EVAL", prefix, 4,
                                       ls->done_cnt, done_item, &sent);
    for (size_t i = 0; i < sent; i++)
        free(ls->done[i].val);
    memmove(ls->done, ls->done + sent,
            (ls->done_cnt - sent) * sizeof(*ls->done));
    ls->done_cnt -= sent;
    return rc;
}

static void list_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct list_source *ls = sl_source_impl(src);
    struct raw_value v = {NULL, msg->seq, NULL, 0};

    sl_redis_src_track_ack(&ls->b, msg->seq);
    for (size_t i = 0; i < ls->big_cnt; i++)
        if (ls->big[i].seq == msg->seq && !ls->big[i].owner) {
            v = ls->big[i];
            ls->big[i] = ls->big[--ls->big_cnt];
            break;
        }
    if (!v.val) {
        v.len = msg->payload_len;
        v.val = malloc(v.len ? v.len : 1);
        if (v.val && v.len)
            memcpy(v.val, msg->payload, v.len);
    }
    if (ls->done_cnt == ls->done_cap) {
        size_t cap = ls->done_cap ? ls->done_cap * 2 : 256;
        struct raw_value *d = realloc(ls->done, cap * sizeof(*d));
        if (d) {
            ls->done = d;
            ls->done_cap = cap;
        }
    }
    if (v.val && ls->done_cnt < ls->done_cap) {
        ls->done[ls->done_cnt++] = v;
    } else {
        free(v.val);
        sl_log(SL_LOG_ERROR, "redis-list",
               "list %s: out of memory recording an ack; the entry stays in "
               "%s and will be delivered again",
               ls->b.key, ls->proc_key);
    }
    sl_msg_destroy(msg);
    if ((int)ls->done_cnt >= ls->b.ack_batch)
        flush_done(ls);
}

static int list_poll(struct sl_source *src, int timeout_ms)
{
    struct list_source *ls = sl_source_impl(src);
    int64_t now = sl_mono_ms();

    /* Heartbeat first: a full queue must not make us look dead. */
    if (now >= ls->next_hb_ms && sl_redis_conn_get(ls->b.rc))
        heartbeat(ls);
    int rc = sl_redis_src_push_ready(src, &ls->b, timeout_ms);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((int)ls->done_cnt >= ls->b.ack_batch)
        flush_done(ls);
    now = sl_mono_ms();
    if (sl_redis_src_backoff(src, &ls->b, now, timeout_ms))
        return 0;
    if (!ls->reaping && now >= ls->next_reap_ms) {
        ls->reaping = true;
        strcpy(ls->scan_cursor, "0");
        ls->next_reap_ms = now + ls->heartbeat_ms;
    }
    if (ls->reaping)
        reap_step(ls);
    int n = sl_redis_src_room(&ls->b);
    if (n == 0) {
        sl_source_wait_acks(src, timeout_ms);
        return 0;
    }
    if (n > ls->b.count)
        n = ls->b.count;
    take(ls, n, sl_redis_src_block_ms(&ls->b, timeout_ms));
    rc = sl_redis_src_push_ready(src, &ls->b, timeout_ms);
    return rc < 0 ? rc : 0;
}

static int list_commit(struct sl_source *src, bool final)
{
    struct list_source *ls = sl_source_impl(src);
    char err[256];
    int rc = 0;

    if (final && !sl_redis_conn_get(ls->b.rc) &&
        sl_redis_conn_connect(ls->b.rc, err, sizeof(err)) < 0) {
        sl_log(SL_LOG_ERROR, "redis-list",
               "list %s: cannot remove %zu acked entries at close (%s); "
               "they will be delivered again",
               ls->b.key, ls->done_cnt, err);
        return -SL_ECONN;
    }
    /* Not fetching (draining) still needs the heartbeat. */
    if (!final && sl_mono_ms() >= ls->next_hb_ms && sl_redis_conn_get(ls->b.rc))
        heartbeat(ls);
    rc = flush_done(ls);
    if (final) {
        if (rc < 0)
            sl_log(SL_LOG_ERROR, "redis-list",
                   "list %s: cannot remove %zu acked entries at close; they "
                   "will be delivered again",
                   ls->b.key, ls->done_cnt);
        /* Leave: what was not acked is reaped by others at once. */
        const char *argv[] = {"DEL", ls->hb_key};
        redisReply *r = command(ls, "heartbeat DEL", 2, argv, NULL);
        if (r)
            freeReplyObject(r);
    }
    return rc;
}

static void list_destroy(void *impl)
{
    struct list_source *ls = impl;

    if (!ls)
        return;
    sl_redis_src_cleanup(&ls->b);
    for (size_t i = 0; i < ls->big_cnt; i++)
        free(ls->big[i].val);
    free(ls->big);
    for (size_t i = 0; i < ls->done_cnt; i++)
        free(ls->done[i].val);
    free(ls->done);
    free(ls->proc_key);
    free(ls->hb_key);
    free(ls->proc_prefix);
    free(ls->scan_pattern);
    free(ls->id_field);
    free(ls);
}

static const struct sl_source_ops list_ops = {
    .kind = "redis-list",
    .redelivers = true,
    .poll = list_poll,
    .acked = list_acked,
    .commit = list_commit,
    .destroy = list_destroy,
};

static char *str_printf(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

/* 'prefix' with SCAN's glob characters escaped, then '*'. */
static char *glob_prefix(const char *prefix)
{
    char *s = malloc(strlen(prefix) * 2 + 2), *p = s;
    if (!s)
        return NULL;
    for (; *prefix; prefix++) {
        if (strchr("*?[]\\", *prefix))
            *p++ = '\\';
        *p++ = *prefix;
    }
    *p++ = '*';
    *p = '\0';
    return s;
}

struct sl_source *
sl_source_redis_list_new(const struct sl_source_redis_conf *conf,
                         struct sl_queue *q, char *errstr, size_t errstr_size)
{
    struct list_source *ls;

    if (!conf->key || !*conf->key || !conf->consumer || !*conf->consumer) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "redis list source: key and consumer are required");
        return NULL;
    }
    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    ls->b.before_push = number;
    ls->b.after_push = release;
    if (sl_redis_src_init(&ls->b, conf, "redis-list", "list", errstr,
                          errstr_size) < 0)
        goto fail;
    ls->heartbeat_ms = positive_or(conf->heartbeat_ms, 1000);
    ls->proc_key = str_printf(conf->key, ":processing:", conf->consumer);
    ls->hb_key = str_printf(conf->key, ":heartbeat:", conf->consumer);
    ls->proc_prefix = str_printf(conf->key, ":processing:", "");
    ls->scan_pattern = ls->proc_prefix ? glob_prefix(ls->proc_prefix) : NULL;
    ls->id_field =
        strdup(conf->id_field && *conf->id_field ? conf->id_field : "id");
    if (!ls->proc_key || !ls->hb_key || !ls->scan_pattern || !ls->id_field) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "out of memory (or max_inflight above %lld)",
                  (long long)SL_TRACKER_MAX_CAPACITY);
        goto fail;
    }
    if (sl_redis_src_connect(&ls->b, conf, errstr, errstr_size) < 0)
        goto fail;

    /* A run number makes origin offsets unique across restarts. */
    char *runs = str_printf(conf->key, ":runs", "");
    const char *incr[] = {"INCR", runs ? runs : ""};
    redisReply *r = runs ? command(ls, "INCR", 2, incr, NULL) : NULL;
    free(runs);
    if (!r || r->type != REDIS_REPLY_INTEGER) {
        if (r)
            freeReplyObject(r);
        sl_seterr(-SL_EREDIS, errstr, errstr_size,
                  "list %s: cannot get a run number (INCR %s:runs): %s",
                  conf->key, conf->key,
                  ls->b.last_error[0] ? ls->b.last_error : "connection failed");
        goto fail;
    }
    ls->run = r->integer & (((int64_t)1 << (62 - SEQ_BITS)) - 1);
    freeReplyObject(r);

    /* Alive first, then take back what a previous run left behind. */
    if (heartbeat(ls) < 0) {
        sl_seterr(-SL_EREDIS, errstr, errstr_size,
                  "list %s: heartbeat SET failed: %s", conf->key,
                  ls->b.last_error);
        goto fail;
    }
    long long back = reap_one(ls, ls->proc_key, "");
    if (back > 0) {
        atomic_fetch_add(&ls->b.ctr.redelivered, (uint64_t)back);
        sl_log(SL_LOG_INFO, "redis-list",
               "list %s: %lld entries left unacked by a previous run of "
               "consumer %s go first",
               ls->b.key, back, ls->b.consumer);
    }
    sl_log(SL_LOG_INFO, "redis-list", "reading list %s at %s as consumer %s",
           ls->b.key, sl_redis_conn_display(ls->b.rc), ls->b.consumer);
    struct sl_source *src = sl_source_new(
        &list_ops, ls, q, positive_or(conf->commit_interval_ms, 1000));
    if (!src)
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    return src;
fail:
    list_destroy(ls);
    return NULL;
}
