/*
 * Reliable Redis list source: entries move atomically from the list into
 * this consumer's processing list and are removed from there only after
 * the sink's ack.  A heartbeat key says the consumer is alive; a reaper
 * returns the processing lists of consumers whose heartbeat expired.
 */
#include "source_redis.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_conn.h"
#include "tracker.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BLOCK_MS 50       /* longest BLMOVE wait per poll */
#define SEQ_BITS 40           /* origin.offset = run << SEQ_BITS | sequence */
#define ERROR_BACKOFF_MS 1000 /* after an unexpected error reply */

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
    struct sl_redis_counters ctr; /* first member: see sl_redis_counters */
    struct sl_redis_conn *rc;     /* the connection */
    char *key;                    /* the list */
    char *consumer;               /* our name */
    char *proc_key;               /* <list>:processing:<consumer> */
    char *hb_key;                 /* <list>:heartbeat:<consumer> */
    char *proc_prefix;            /* <list>:processing: */
    char *scan_pattern;           /* proc_prefix, glob-escaped, plus '*' */
    char *id_field;               /* payload field used as entry id */
    int count;                    /* entries per take */
    int block_ms;                 /* BLMOVE wait (capped) */
    int heartbeat_ms;             /* heartbeat refresh and reap interval */
    int ack_batch;                /* values per LREM script */
    int max_inflight;             /* tracker window */
    size_t max_bytes;             /* payload cap */
    int64_t run;                  /* run number from INCR <list>:runs */
    struct sl_tracker *trk;       /* dispatched / acked sequence numbers */
    int64_t next_seq;             /* next local sequence number */
    int64_t next_hb_ms;           /* next heartbeat refresh */
    int64_t next_reap_ms;         /* next reaper run */
    bool reaping;                 /* a SCAN is under way */
    char scan_cursor[32];         /* its cursor */
    int64_t retry_ms;             /* no reads before this (backoff) */
    char last_error[256];         /* last logged error reply, log once */
    struct sl_msg **ready;        /* taken, not yet queued; count slots */
    size_t ready_head;            /* next to push */
    size_t ready_cnt;             /* filled */
    struct raw_value *big;        /* raw values of oversized entries */
    size_t big_cnt;               /* used */
    struct raw_value *done;       /* acked values, not yet LREMed */
    size_t done_cnt;              /* used */
    size_t done_cap;              /* allocated */
};

static void error_reply(struct list_source *ls, const char *what,
                        const char *text)
{
    if (strcmp(ls->last_error, text) != 0) {
        sl_log(SL_LOG_ERROR, "redis-list",
               "list %s: %s failed: %s; retrying every %d ms", ls->key, what,
               text, ERROR_BACKOFF_MS);
        snprintf(ls->last_error, sizeof(ls->last_error), "%s", text);
    }
    ls->retry_ms = sl_mono_ms() + ERROR_BACKOFF_MS;
}

/* Run a command; NULL on I/O errors and (logged) error replies. */
static redisReply *command(struct list_source *ls, const char *what, int argc,
                           const char **argv, const size_t *lens)
{
    redisReply *r = sl_redis_conn_argv(ls->rc, argc, argv, lens);
    if (r && r->type == REDIS_REPLY_ERROR) {
        error_reply(ls, what, r->str);
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
    const char *argv[] = {"EVAL", reap_script, "3", proc, hb, ls->key};
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
        int w =
            snprintf(hb, sizeof(hb), "%s:heartbeat:%s", ls->key, k->str + plen);
        if (w < 0 || (size_t)w >= sizeof(hb))
            continue;
        long long n = reap_one(ls, k->str, hb);
        if (n > 0) {
            atomic_fetch_add(&ls->ctr.reaped, (uint64_t)n);
            sl_log(SL_LOG_WARN, "redis-list",
                   "list %s: consumer %s stopped its heartbeat; returned "
                   "%lld of its unacked entries to the list",
                   ls->key, k->str + plen, n);
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

    if (v->type != REDIS_REPLY_STRING || ls->ready_cnt == (size_t)ls->count)
        return;
    bool too_big = v->len > ls->max_bytes;
    if (sl_msg_new(&msg, SL_SOURCE_REDIS_LIST, ls->key, 0, 0, NULL, NULL, 0,
                   too_big ? NULL : v->str, too_big ? 0 : v->len, NULL, err,
                   sizeof(err)) < 0) {
        /* Out of memory: it stays in the processing list for a reaper. */
        sl_log(SL_LOG_ERROR, "redis-list", "list %s: %s", ls->key, err);
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
        sl_msg_set_error(msg, "decode",
                         "message of %zu bytes exceeds max_message_bytes "
                         "(%zu)",
                         v->len, ls->max_bytes);
    } else {
        set_entry_id(ls, msg);
    }
    msg->attempts = 1;
    ls->ready[ls->ready_cnt++] = msg;
}

/* Take up to 'n' entries; block briefly when the list is empty. */
static void take(struct list_source *ls, int n, int block_ms)
{
    char cnt[16], tmo[32];
    const char *argv[] = {"EVAL", take_script, "2", ls->key, ls->proc_key, cnt};

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
    const char *bargv[] = {"BLMOVE", ls->key, ls->proc_key,
                           "RIGHT",  "LEFT",  tmo};
    r = command(ls, "BLMOVE", 6, bargv, NULL);
    if (!r)
        return;
    collect(ls, r);
    freeReplyObject(r);
}

static int room(struct list_source *ls)
{
    int64_t lo = sl_tracker_lowest_unacked(ls->trk);
    int64_t used = lo >= 0 ? ls->next_seq - lo : 0;
    return used >= ls->max_inflight ? 0 : (int)(ls->max_inflight - used);
}

static int push_ready(struct sl_source *src, struct list_source *ls,
                      int timeout_ms)
{
    while (ls->ready_head < ls->ready_cnt) {
        struct sl_msg *msg = ls->ready[ls->ready_head];
        if (room(ls) == 0) {
            sl_source_wait_acks(src, timeout_ms);
            return 1;
        }
        msg->seq = ls->next_seq;
        msg->origin.offset = (ls->run << SEQ_BITS) | ls->next_seq;
        /* Before the push: once queued, 'msg' is not ours to read. */
        for (size_t i = 0; i < ls->big_cnt; i++)
            if (ls->big[i].owner == msg)
                ls->big[i].seq = ls->next_seq;
        int rc = sl_source_push(src, msg, timeout_ms);
        if (rc == -SL_ETIMEDOUT)
            return 1;
        if (rc < 0)
            return rc;
        for (size_t i = 0; i < ls->big_cnt; i++)
            if (ls->big[i].owner == msg && ls->big[i].seq == ls->next_seq)
                ls->big[i].owner = NULL;
        sl_tracker_dispatch(ls->trk, ls->next_seq);
        ls->next_seq++;
        ls->ready[ls->ready_head++] = NULL;
        atomic_fetch_add(&ls->ctr.read, 1);
    }
    ls->ready_head = ls->ready_cnt = 0;
    return 0;
}

/* LREM what the sink acked, ack_batch values per script call. */
static int flush_done(struct list_source *ls)
{
    size_t sent = 0;
    int rc = 0;

    if (ls->done_cnt == 0)
        return 0;
    size_t max = (size_t)ls->ack_batch;
    const char **argv = malloc((4 + max) * sizeof(*argv));
    size_t *lens = malloc((4 + max) * sizeof(*lens));
    if (!argv || !lens) {
        free(argv);
        free(lens);
        return -SL_ENOMEM;
    }
    argv[0] = "EVAL";
    argv[1] = done_script;
    argv[2] = "1";
    argv[3] = ls->proc_key;
    for (int i = 0; i < 4; i++)
        lens[i] = strlen(argv[i]);
    while (sent < ls->done_cnt) {
        size_t n = ls->done_cnt - sent;
        if (n > max)
            n = max;
        for (size_t i = 0; i < n; i++) {
            argv[4 + i] = ls->done[sent + i].val;
            lens[4 + i] = ls->done[sent + i].len;
        }
        redisReply *r = command(ls, "LREM EVAL", (int)(4 + n), argv, lens);
        if (!r) {
            rc = -SL_EREDIS;
            atomic_fetch_add(&ls->ctr.ack_failures, 1);
            break;
        }
        freeReplyObject(r);
        for (size_t i = 0; i < n; i++)
            free(ls->done[sent + i].val);
        sent += n;
        atomic_fetch_add(&ls->ctr.acked, n);
    }
    free(argv);
    free(lens);
    memmove(ls->done, ls->done + sent,
            (ls->done_cnt - sent) * sizeof(*ls->done));
    ls->done_cnt -= sent;
    return rc;
}

static void list_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct list_source *ls = sl_source_impl(src);
    struct raw_value v = {NULL, msg->seq, NULL, 0};
    int64_t pos;

    if (sl_tracker_ack(ls->trk, msg->seq) == 0 &&
        sl_tracker_committable(ls->trk, &pos))
        sl_tracker_mark_committed(ls->trk, pos);
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
               ls->key, ls->proc_key);
    }
    sl_msg_destroy(msg);
    if ((int)ls->done_cnt >= ls->ack_batch)
        flush_done(ls);
}

static int list_poll(struct sl_source *src, int timeout_ms)
{
    struct list_source *ls = sl_source_impl(src);
    int64_t now = sl_mono_ms();

    /* Heartbeat first: a full queue must not make us look dead. */
    if (now >= ls->next_hb_ms && sl_redis_conn_get(ls->rc))
        heartbeat(ls);
    int rc = push_ready(src, ls, timeout_ms);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if ((int)ls->done_cnt >= ls->ack_batch)
        flush_done(ls);
    now = sl_mono_ms();
    if (!sl_redis_conn_get(ls->rc) || now < ls->retry_ms) {
        int64_t wait = sl_redis_conn_wait_ms(ls->rc);
        if (ls->retry_ms - now > wait)
            wait = ls->retry_ms - now;
        if (wait > timeout_ms)
            wait = timeout_ms;
        sl_source_wait_acks(src, wait > 0 ? (int)wait : 1);
        return 0;
    }
    if (!ls->reaping && now >= ls->next_reap_ms) {
        ls->reaping = true;
        strcpy(ls->scan_cursor, "0");
        ls->next_reap_ms = now + ls->heartbeat_ms;
    }
    if (ls->reaping)
        reap_step(ls);
    int n = room(ls);
    if (n == 0) {
        sl_source_wait_acks(src, timeout_ms);
        return 0;
    }
    if (n > ls->count)
        n = ls->count;
    int block = ls->block_ms;
    if (block > timeout_ms)
        block = timeout_ms;
    if (block > MAX_BLOCK_MS)
        block = MAX_BLOCK_MS;
    take(ls, n, block > 0 ? block : 1);
    rc = push_ready(src, ls, timeout_ms);
    return rc < 0 ? rc : 0;
}

static int list_commit(struct sl_source *src, bool final)
{
    struct list_source *ls = sl_source_impl(src);
    char err[256];
    int rc = 0;

    if (final && !sl_redis_conn_get(ls->rc) &&
        sl_redis_conn_connect(ls->rc, err, sizeof(err)) < 0) {
        sl_log(SL_LOG_ERROR, "redis-list",
               "list %s: cannot remove %zu acked entries at close (%s); "
               "they will be delivered again",
               ls->key, ls->done_cnt, err);
        return -SL_ECONN;
    }
    /* Not fetching (draining) still needs the heartbeat. */
    if (!final && sl_mono_ms() >= ls->next_hb_ms && sl_redis_conn_get(ls->rc))
        heartbeat(ls);
    rc = flush_done(ls);
    if (final) {
        if (rc < 0)
            sl_log(SL_LOG_ERROR, "redis-list",
                   "list %s: cannot remove %zu acked entries at close; they "
                   "will be delivered again",
                   ls->key, ls->done_cnt);
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
    if (ls->ready)
        for (size_t i = ls->ready_head; i < ls->ready_cnt; i++)
            sl_msg_destroy(ls->ready[i]);
    free(ls->ready);
    for (size_t i = 0; i < ls->big_cnt; i++)
        free(ls->big[i].val);
    free(ls->big);
    for (size_t i = 0; i < ls->done_cnt; i++)
        free(ls->done[i].val);
    free(ls->done);
    sl_tracker_destroy(ls->trk);
    sl_redis_conn_destroy(ls->rc);
    free(ls->key);
    free(ls->consumer);
    free(ls->proc_key);
    free(ls->hb_key);
    free(ls->proc_prefix);
    free(ls->scan_pattern);
    free(ls->id_field);
    free(ls);
}

static const struct sl_source_ops list_ops = {
    .kind = "redis-list",
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

static int positive_or(int v, int dflt)
{
    return v > 0 ? v : dflt;
}

struct sl_source *
sl_source_redis_list_new(const struct sl_source_redis_conf *conf,
                         struct sl_queue *q, char *errstr, size_t errstr_size)
{
    struct list_source *ls;
    struct sl_redis_conn_conf cc = {
        conf->url,
        conf->password_env,
        conf->password_file,
        conf->connect_timeout_ms,
        conf->command_timeout_ms,
        0,
        "redis-list",
        NULL,
    };
    char name[160];

    if (!conf->key || !*conf->key || !conf->consumer || !*conf->consumer) {
        sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                  "redis list source: key and consumer are required");
        return NULL;
    }
    snprintf(name, sizeof(name), "sluice:%s:%s", conf->key, conf->consumer);
    cc.client_name = name;
    ls = calloc(1, sizeof(*ls));
    if (!ls) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    ls->count = positive_or(conf->count, 256);
    ls->block_ms = positive_or(conf->block_ms, MAX_BLOCK_MS);
    ls->heartbeat_ms = positive_or(conf->heartbeat_ms, 1000);
    ls->ack_batch = positive_or(conf->ack_batch, 256);
    ls->max_inflight = positive_or(conf->max_inflight, 10000);
    ls->max_bytes =
        conf->max_message_bytes ? conf->max_message_bytes : 1024 * 1024;
    ls->key = strdup(conf->key);
    ls->consumer = strdup(conf->consumer);
    ls->proc_key = str_printf(conf->key, ":processing:", conf->consumer);
    ls->hb_key = str_printf(conf->key, ":heartbeat:", conf->consumer);
    ls->proc_prefix = str_printf(conf->key, ":processing:", "");
    ls->scan_pattern = ls->proc_prefix ? glob_prefix(ls->proc_prefix) : NULL;
    ls->id_field =
        strdup(conf->id_field && *conf->id_field ? conf->id_field : "id");
    ls->ready = calloc((size_t)ls->count, sizeof(*ls->ready));
    ls->trk = sl_tracker_new(ls->max_inflight);
    if (!ls->key || !ls->consumer || !ls->proc_key || !ls->hb_key ||
        !ls->scan_pattern || !ls->id_field || !ls->ready || !ls->trk) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "out of memory (or max_inflight above %lld)",
                  (long long)SL_TRACKER_MAX_CAPACITY);
        goto fail;
    }
    ls->rc = sl_redis_conn_new(&cc, errstr, errstr_size);
    if (!ls->rc)
        goto fail;
    ls->ctr.conn = ls->rc;
    if (sl_redis_conn_connect(ls->rc, errstr, errstr_size) < 0)
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
                  ls->last_error[0] ? ls->last_error : "connection failed");
        goto fail;
    }
    ls->run = r->integer & (((int64_t)1 << (62 - SEQ_BITS)) - 1);
    freeReplyObject(r);

    /* Alive first, then take back what a previous run left behind. */
    if (heartbeat(ls) < 0) {
        sl_seterr(-SL_EREDIS, errstr, errstr_size,
                  "list %s: heartbeat SET failed: %s", conf->key,
                  ls->last_error);
        goto fail;
    }
    long long back = reap_one(ls, ls->proc_key, "");
    if (back > 0) {
        atomic_fetch_add(&ls->ctr.redelivered, (uint64_t)back);
        sl_log(SL_LOG_INFO, "redis-list",
               "list %s: %lld entries left unacked by a previous run of "
               "consumer %s go first",
               ls->key, back, ls->consumer);
    }
    sl_log(SL_LOG_INFO, "redis-list", "reading list %s at %s as consumer %s",
           ls->key, sl_redis_conn_display(ls->rc), ls->consumer);
    struct sl_source *src = sl_source_new(
        &list_ops, ls, q, positive_or(conf->commit_interval_ms, 1000));
    if (!src)
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    return src;
fail:
    list_destroy(ls);
    return NULL;
}
