/*
 * The Redis sources against a real Redis (scripts/services start redis):
 * a dead stream consumer's entries are claimed by another, an entry
 * delivered too often is dead-lettered, a lost group is recreated, and a
 * dead list consumer's processing list is reaped.  Keys are unique per
 * run and deleted at the end.
 */
#include "harness.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_conn.h"
#include "row.h"
#include "source_redis.h"

#include <hiredis/hiredis.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEADLINE_MS 30000 /* for any condition we wait on */

static const char *redis_url(void)
{
    static char url[96];
    const char *v = getenv("SLUICE_REDIS_URL");

    if (v && *v)
        return v;
    snprintf(url, sizeof(url), "redis://%s", H_REDIS);
    return url;
}

static redisContext *raw_connect(void)
{
    struct sl_redis_url u;
    char err[256];
    assert_int_equal(sl_redis_url_parse(redis_url(), &u, err, sizeof(err)), 0);
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout(u.host, u.port, tv);
    if (!ctx || ctx->err)
        fail_msg("redis at %s: %s; is it running? start it with "
                 "`scripts/services start redis`",
                 redis_url(), ctx ? ctx->errstr : "out of memory");
    return ctx;
}

/* Run a command given as argv; fails the test on an I/O error. */
static redisReply *raw(redisContext *ctx, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r)
        fail_msg("redis: %s", ctx->errstr);
    return r;
}

static long long raw_int(redisContext *ctx, int argc, const char **argv)
{
    redisReply *r = raw(ctx, argc, argv);
    if (r->type != REDIS_REPLY_INTEGER)
        fail_msg("%s: expected an integer, got type %d (%s)", argv[0], r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = r->integer;
    freeReplyObject(r);
    return v;
}

/* Number of pending entries of 'group' (XPENDING summary). */
static long long pending_count(redisContext *ctx, const char *key,
                               const char *group)
{
    const char *argv[] = {"XPENDING", key, group};
    redisReply *r = raw(ctx, 3, argv);
    long long n = -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
        r->element[0]->type == REDIS_REPLY_INTEGER)
        n = r->element[0]->integer;
    freeReplyObject(r);
    return n;
}

/* XADD 'n' entries {"n": i} with pipelining. */
/* Wait up to DEADLINE_MS for 'group' of 'key' to have no pending entry. */
static void wait_no_pending(redisContext *ctx, const char *key,
                            const char *group)
{
    int64_t deadline = h_now_ms() + DEADLINE_MS;

    while (pending_count(ctx, key, group) != 0 && h_now_ms() < deadline)
        h_pause();
    assert_int_equal(pending_count(ctx, key, group), 0);
}

static void produce_stream(redisContext *ctx, const char *key, int from, int n)
{
    char payload[64];
    for (int i = from; i < from + n; i++) {
        snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
        const char *argv[] = {"XADD", key, "*", "payload", payload};
        redisAppendCommandArgv(ctx, 5, argv, NULL);
    }
    for (int i = 0; i < n; i++) {
        redisReply *r;
        assert_int_equal(redisGetReply(ctx, (void **)&r), REDIS_OK);
        assert_int_equal(r->type, REDIS_REPLY_STRING);
        freeReplyObject(r);
    }
}

/* A growable set of ids, checked for duplicates with qsort at the end. */
struct idset {
    char (*ids)[48];
    size_t cnt, cap;
};

static void idset_add(struct idset *s, const char *id)
{
    if (s->cnt == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 1024;
        s->ids = realloc(s->ids, s->cap * sizeof(*s->ids));
        assert_non_null(s->ids);
    }
    snprintf(s->ids[s->cnt++], 48, "%s", id);
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Sort; return the number of duplicates. */
static size_t idset_dups(struct idset *s)
{
    size_t dups = 0;
    qsort(s->ids, s->cnt, sizeof(*s->ids), cmp_id);
    for (size_t i = 1; i < s->cnt; i++)
        if (strcmp(s->ids[i - 1], s->ids[i]) == 0)
            dups++;
    return dups;
}

static bool idset_has(const struct idset *s, const char *id)
{
    return bsearch(id, s->ids, s->cnt, sizeof(*s->ids), cmp_id) != NULL;
}

static struct sl_msg *pop(struct sl_queue *q, int timeout_ms)
{
    void *item = NULL;
    int rc = sl_queue_pop(q, &item, timeout_ms);
    return rc == 0 ? item : NULL;
}

static struct sl_source_redis_conf stream_conf(const char *key,
                                               const char *consumer)
{
    struct sl_source_redis_conf conf = {0};
    conf.url = redis_url();
    conf.key = key;
    conf.group = "g";
    conf.consumer = consumer;
    conf.count = 100;
    conf.min_idle_ms = 500;
    conf.claim_interval_ms = 200;
    conf.max_inflight = 1000;
    conf.commit_interval_ms = 100;
    return conf;
}

/* A started Redis source (a list's, or a stream's) over a new queue of
 * 'cap' messages, in *qp. */
static struct sl_source *start_source(bool list,
                                      const struct sl_source_redis_conf *conf,
                                      size_t cap, struct sl_queue **qp)
{
    char err[512];
    struct sl_queue *q = sl_queue_new(cap, (void (*)(void *))sl_msg_destroy);
    struct sl_source *src =
        list ? sl_source_redis_list_new(conf, q, err, sizeof(err))
             : sl_source_redis_stream_new(conf, q, err, sizeof(err));

    assert_non_null(src);
    assert_int_equal(sl_source_start(src, err, sizeof(err)), 0);
    *qp = q;
    return src;
}

static void test_url_and_password_file(void **state)
{
    (void)state;
    struct sl_redis_url u;
    char err[256];

    assert_int_equal(sl_redis_url_parse("redis://:s3cret@db.example:6380/2", &u,
                                        err, sizeof(err)),
                     0);
    assert_string_equal(u.host, "db.example");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.password, "s3cret");
    assert_int_equal(sl_redis_url_parse("redis://h", &u, err, sizeof(err)), 0);
    assert_int_equal(u.port, 6379);
    assert_int_equal(sl_redis_url_parse("http://h:1", &u, err, sizeof(err)),
                     -SL_ECONFIG);
    assert_int_equal(
        sl_redis_url_parse("redis://:pw@h:99999", &u, err, sizeof(err)),
        -SL_ECONFIG);
    assert_null(strstr(err, "pw"));

    char path[] = "/tmp/sluice-redis-pw-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hunter2\n", 8), 8);
    close(fd);
    chmod(path, 0644);
    struct sl_redis_conn_conf cc = {.url = "redis://127.0.0.1:1",
                                    .password_file = path};
    assert_null(sl_redis_conn_new(&cc, err, sizeof(err)));
    assert_non_null(strstr(err, "readable by group or others"));
    assert_null(strstr(err, "hunter2"));
    chmod(path, 0600);
    struct sl_redis_conn *rc = sl_redis_conn_new(&cc, err, sizeof(err));
    assert_non_null(rc);
    sl_redis_conn_destroy(rc);
    unlink(path);
}

/*
 * (a) Consumer A reads and acks some entries, then dies with the rest
 * pending; consumer B takes them over with XAUTOCLAIM.  Every entry is
 * acked exactly once, by A or by B, and nothing stays pending.
 */
static void test_stream_claim_from_dead_consumer(void **state)
{
    (void)state;
    enum { N = 2000, A_POP = 300, A_ACK = 100 };
    char key[128];
    redisContext *ctx = raw_connect();
    int64_t t0 = sl_mono_ms();

    h_unique(key, sizeof(key), "sluice-test-claim");
    produce_stream(ctx, key, 0, N);

    struct sl_source_redis_conf conf = stream_conf(key, "A");
    struct sl_queue *qa;
    struct sl_source *a = start_source(false, &conf, 500, &qa);
    struct idset a_acked = {0};
    struct sl_msg *held[A_POP];
    for (int i = 0; i < A_POP; i++) {
        held[i] = pop(qa, DEADLINE_MS);
        assert_non_null(held[i]);
        assert_int_equal(held[i]->origin.kind, SL_SOURCE_REDIS_STREAM);
        assert_int_equal(held[i]->attempts, 1);
    }
    for (int i = 0; i < A_ACK; i++) {
        idset_add(&a_acked, held[i]->origin.entry_id);
        sl_source_ack(held[i]);
    }
    /* A dies: its acks are flushed at close, the rest stays pending. */
    assert_int_equal(sl_source_close(a), 0);
    struct sl_source_redis_stats st;
    sl_source_redis_stats(a, &st);
    assert_int_equal(st.acked, A_ACK);
    for (int i = A_ACK; i < A_POP; i++)
        sl_msg_destroy(held[i]);
    sl_source_destroy(a);
    sl_queue_destroy(qa);
    long long left = pending_count(ctx, key, "g");
    assert_true(left >= A_POP - A_ACK);
    assert_int_equal(idset_dups(&a_acked), 0);

    conf.consumer = "B";
    struct sl_queue *qb;
    struct sl_source *b = start_source(false, &conf, 1000, &qb);
    struct idset b_seen = {0};
    size_t retried = 0;
    int64_t deadline = sl_mono_ms() + DEADLINE_MS;
    while (b_seen.cnt < N - A_ACK && sl_mono_ms() < deadline) {
        struct sl_msg *msg = pop(qb, 100);
        if (!msg)
            continue;
        assert_null(msg->error);
        if (msg->attempts >= 2)
            retried++;
        idset_add(&b_seen, msg->origin.entry_id);
        sl_source_ack(msg);
    }
    assert_int_equal(b_seen.cnt, N - A_ACK);
    /* Nothing pending once B's acks are flushed (every 100 ms). */
    wait_no_pending(ctx, key, "g");
    assert_null(pop(qb, 300)); /* nothing more comes */
    assert_int_equal(sl_source_close(b), 0);
    sl_source_redis_stats(b, &st);
    assert_true(st.claimed >= (uint64_t)(A_POP - A_ACK));
    assert_int_equal(st.claimed, (uint64_t)left);
    assert_int_equal(retried, (size_t)left);

    assert_int_equal(idset_dups(&b_seen), 0);
    for (size_t i = 0; i < b_seen.cnt; i++)
        assert_false(idset_has(&a_acked, b_seen.ids[i]));
    assert_int_equal(a_acked.cnt + b_seen.cnt, N);
    print_message("claim: %d entries, A acked %d and left %lld pending, B "
                  "claimed %llu; %lld ms\n",
                  N, A_ACK, left, (unsigned long long)st.claimed,
                  (long long)(sl_mono_ms() - t0));

    sl_source_destroy(b);
    sl_queue_destroy(qb);
    free(a_acked.ids);
    free(b_seen.ids);
    const char *del[] = {"DEL", key};
    raw_int(ctx, 2, del);
    redisFree(ctx);
}

/*
 * (b) An entry delivered more often than max_deliveries comes out marked
 * for the dead-letter table with its delivery count, and is acked.
 */
static void test_stream_max_deliveries(void **state)
{
    (void)state;
    char key[128], id[48];
    redisContext *ctx = raw_connect();
    int64_t t0 = sl_mono_ms();

    h_unique(key, sizeof(key), "sluice-test-poison");
    const char *mk[] = {"XGROUP", "CREATE", key, "g", "0", "MKSTREAM"};
    freeReplyObject(raw(ctx, 6, mk));
    const char *add[] = {"XADD", key, "*", "payload", "poison"};
    redisReply *r = raw(ctx, 5, add);
    snprintf(id, sizeof(id), "%s", r->str);
    freeReplyObject(r);
    /* Delivered once to "raw", then 4 more times by XCLAIM: 5 in all. */
    const char *rd[] = {"XREADGROUP", "GROUP",   "g", "raw", "COUNT",
                        "1",          "STREAMS", key, ">"};
    freeReplyObject(raw(ctx, 9, rd));
    for (int i = 0; i < 4; i++) {
        const char *cl[] = {"XCLAIM", key, "g", "raw", "0", id};
        freeReplyObject(raw(ctx, 6, cl));
    }

    struct sl_source_redis_conf conf = stream_conf(key, "C");
    conf.max_deliveries = 3;
    conf.min_idle_ms = 1;
    struct sl_queue *q;
    struct sl_source *src = start_source(false, &conf, 16, &q);
    struct sl_msg *msg = pop(q, DEADLINE_MS);
    assert_non_null(msg);
    assert_string_equal(msg->origin.entry_id, id);
    assert_int_equal(msg->attempts, 6);
    assert_non_null(msg->error);
    assert_string_equal(sl_row_stage_name(msg->error_stage), "redelivery");
    assert_string_equal(msg->error,
                        "delivered 6 times, more than max_deliveries (3)");
    assert_memory_equal(msg->payload, "poison", 6);
    sl_source_ack(msg);
    wait_no_pending(ctx, key, "g");
    assert_int_equal(sl_source_close(src), 0);
    struct sl_source_redis_stats st;
    sl_source_redis_stats(src, &st);
    assert_int_equal(st.dead_lettered, 1);
    print_message("max_deliveries: dead-lettered after 6 deliveries; %lld "
                  "ms\n",
                  (long long)(sl_mono_ms() - t0));
    sl_source_destroy(src);
    sl_queue_destroy(q);
    const char *del[] = {"DEL", key};
    raw_int(ctx, 2, del);
    redisFree(ctx);
}

/* Pop and ack 'n' messages; return how many came. */
static int drain(struct sl_queue *q, int n, struct idset *seen)
{
    int got = 0;
    int64_t deadline = sl_mono_ms() + DEADLINE_MS;
    while (got < n && sl_mono_ms() < deadline) {
        struct sl_msg *msg = pop(q, 100);
        if (!msg)
            continue;
        if (seen)
            idset_add(seen, msg->origin.entry_id);
        got++;
        sl_source_ack(msg);
    }
    return got;
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *fp = fopen(path, "r");
    char line[4096];
    int n = 0;
    assert_non_null(fp);
    while (fgets(line, sizeof(line), fp))
        if (strstr(line, needle))
            n++;
    fclose(fp);
    return n;
}

/*
 * (c) The stream key (and so the group) is deleted while the source
 * runs: the source recreates the group, says so once, and delivers the
 * entries added after.
 */
static void test_stream_nogroup_recovery(void **state)
{
    (void)state;
    char key[128];
    char logpath[] = "/tmp/sluice-redis-log-XXXXXX";
    redisContext *ctx = raw_connect();
    int64_t t0 = sl_mono_ms();
    int logfd = mkstemp(logpath);

    assert_true(logfd >= 0);
    sl_log_set_fd(logfd); /* no other source thread runs now */
    h_unique(key, sizeof(key), "sluice-test-nogroup");
    struct sl_source_redis_conf conf = stream_conf(key, "D");
    struct sl_queue *q;
    struct sl_source *src = start_source(false, &conf, 100, &q);
    produce_stream(ctx, key, 0, 10);
    assert_int_equal(drain(q, 10, NULL), 10);

    const char *del[] = {"DEL", key};
    assert_int_equal(raw_int(ctx, 2, del), 1);
    produce_stream(ctx, key, 10, 10);
    struct idset seen = {0};
    assert_int_equal(drain(q, 10, &seen), 10);
    assert_int_equal(idset_dups(&seen), 0);
    wait_no_pending(ctx, key, "g");
    assert_null(pop(q, 300));
    assert_int_equal(sl_source_close(src), 0);
    struct sl_source_redis_stats st;
    sl_source_redis_stats(src, &st);
    sl_log_set_fd(2);
    close(logfd);
    assert_int_equal(st.group_recreated, 1);
    assert_int_equal(count_in_file(logpath, "consumer group g is gone"), 1);
    unlink(logpath);
    print_message("nogroup: group recreated once, 10 new entries delivered; "
                  "%lld ms\n",
                  (long long)(sl_mono_ms() - t0));
    sl_source_destroy(src);
    sl_queue_destroy(q);
    free(seen.ids);
    raw_int(ctx, 2, del);
    redisFree(ctx);
}

/* Kill the connection named 'name' (CLIENT KILL ID); returns true if found. */
static bool kill_client(redisContext *ctx, const char *name)
{
    const char *list[] = {"CLIENT", "LIST"};
    redisReply *r = raw(ctx, 2, list);
    char needle[256], id[32] = "";
    snprintf(needle, sizeof(needle), " name=%s ", name);
    for (char *line = r->str; line && *line;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        if (strstr(line, needle) && strncmp(line, "id=", 3) == 0)
            sscanf(line + 3, "%31[0-9]", id);
        line = end ? end + 1 : NULL;
    }
    freeReplyObject(r);
    if (!id[0])
        return false;
    const char *kill[] = {"CLIENT", "KILL", "ID", id};
    return raw_int(ctx, 4, kill) == 1;
}

/*
 * The source's connection is killed with entries in flight: it
 * reconnects, the acks given meanwhile reach Redis, new entries flow,
 * and nothing stays pending.
 */
static void test_stream_reconnect(void **state)
{
    (void)state;
    enum { N = 50 };
    char key[128], name[192];
    redisContext *ctx = raw_connect();
    int64_t t0 = sl_mono_ms();

    h_unique(key, sizeof(key), "sluice-test-reconnect");
    snprintf(name, sizeof(name), "sluice:%s:R", key);
    struct sl_source_redis_conf conf = stream_conf(key, "R");
    struct sl_queue *q;
    struct sl_source *src = start_source(false, &conf, 100, &q);
    produce_stream(ctx, key, 0, N);
    struct sl_msg *held[N];
    for (int i = 0; i < N; i++) {
        held[i] = pop(q, DEADLINE_MS);
        assert_non_null(held[i]);
    }
    assert_true(kill_client(ctx, name));
    for (int i = 0; i < N; i++)
        sl_source_ack(held[i]);
    produce_stream(ctx, key, N, N);
    struct idset seen = {0};
    assert_int_equal(drain(q, N, &seen), N);
    assert_int_equal(idset_dups(&seen), 0);
    wait_no_pending(ctx, key, "g");
    assert_int_equal(sl_source_close(src), 0);
    struct sl_source_redis_stats st;
    sl_source_redis_stats(src, &st);
    assert_true(st.reconnects >= 1);
    assert_int_equal(st.acked, 2 * N);
    print_message("reconnect: connection killed with %d in flight, %llu "
                  "reconnect(s), all %d acked; %lld ms\n",
                  N, (unsigned long long)st.reconnects, 2 * N,
                  (long long)(sl_mono_ms() - t0));
    sl_source_destroy(src);
    sl_queue_destroy(q);
    free(seen.ids);
    const char *del[] = {"DEL", key};
    raw_int(ctx, 2, del);
    redisFree(ctx);
}

static long long llen(redisContext *ctx, const char *key)
{
    const char *argv[] = {"LLEN", key};
    return raw_int(ctx, 2, argv);
}

/*
 * (d) List consumer A takes entries into its processing list and goes
 * away without acking; B's reaper returns them and B processes every
 * entry: the list and the processing lists end up empty.  While A is
 * alive its processing list is not touched.
 */
static void test_list_reaper(void **state)
{
    (void)state;
    enum { N = 500, A_POP = 30 };
    char key[128], proc_a[192], proc_b[192], proc_w[192];
    char payload[64];
    redisContext *ctx = raw_connect();
    int64_t t0 = sl_mono_ms();

    h_unique(key, sizeof(key), "sluice-test-list");
    snprintf(proc_a, sizeof(proc_a), "%s:processing:A", key);
    snprintf(proc_b, sizeof(proc_b), "%s:processing:B", key);
    snprintf(proc_w, sizeof(proc_w), "%s:processing:W", key);
    for (int i = 0; i < N; i++) {
        snprintf(payload, sizeof(payload), "{\"id\":%d,\"text\":\"t\"}", i);
        const char *argv[] = {"LPUSH", key, payload};
        redisAppendCommandArgv(ctx, 3, argv, NULL);
    }
    for (int i = 0; i < N; i++) {
        redisReply *r;
        assert_int_equal(redisGetReply(ctx, (void **)&r), REDIS_OK);
        freeReplyObject(r);
    }

    struct sl_source_redis_conf conf = {0};
    conf.url = redis_url();
    conf.key = key;
    conf.consumer = "A";
    conf.count = 20;
    conf.heartbeat_ms = 200;
    conf.max_inflight = 100;
    conf.commit_interval_ms = 100;
    struct sl_queue *qa;
    struct sl_source *a = start_source(true, &conf, 50, &qa);
    struct sl_msg *held[A_POP];
    for (int i = 0; i < A_POP; i++) {
        held[i] = pop(qa, DEADLINE_MS);
        assert_non_null(held[i]);
        assert_int_equal(held[i]->origin.kind, SL_SOURCE_REDIS_LIST);
        assert_string_equal(held[i]->origin.topic, key);
        assert_true(held[i]->origin.entry_id[0] != '\0');
    }
    /* The oldest entry (pushed first) comes first. */
    assert_string_equal(held[0]->origin.entry_id, "0");

    /* A live consumer is not reaped: another one runs beside A a while. */
    /* A fills its window (max_inflight) and then holds still. */
    int64_t deadline = sl_mono_ms() + DEADLINE_MS;
    while (llen(ctx, proc_a) < conf.max_inflight && sl_mono_ms() < deadline)
        usleep(10000);
    long long a_held = llen(ctx, proc_a);
    assert_int_equal(a_held, conf.max_inflight);
    conf.consumer = "W";
    struct sl_queue *qw;
    struct sl_source *w = start_source(true, &conf, 1, &qw);
    usleep(3 * 200 * 1000 * 2); /* the thing under test: 2 x expiry */
    struct sl_source_redis_stats st;
    sl_source_redis_stats(w, &st);
    assert_int_equal(st.reaped, 0);
    assert_int_equal(llen(ctx, proc_a), a_held);
    long long w_held = llen(ctx, proc_w);
    sl_source_close(w); /* W never acked: its entries go back at once */
    sl_source_destroy(w);
    sl_queue_destroy(qw);

    /* A dies without acking. */
    sl_source_close(a);
    for (int i = 0; i < A_POP; i++)
        sl_msg_destroy(held[i]);
    sl_source_destroy(a);
    sl_queue_destroy(qa);
    assert_int_equal(llen(ctx, proc_a), a_held);

    conf.consumer = "B";
    struct sl_queue *qb;
    struct sl_source *b = start_source(true, &conf, 1000, &qb);
    struct idset seen = {0};
    deadline = sl_mono_ms() + DEADLINE_MS;
    while (seen.cnt < N && sl_mono_ms() < deadline) {
        struct sl_msg *msg = pop(qb, 100);
        if (!msg)
            continue;
        idset_add(&seen, msg->origin.entry_id);
        sl_source_ack(msg);
    }
    assert_int_equal(seen.cnt, N);
    deadline = sl_mono_ms() + DEADLINE_MS;
    while ((llen(ctx, key) || llen(ctx, proc_a) || llen(ctx, proc_b) ||
            llen(ctx, proc_w)) &&
           sl_mono_ms() < deadline)
        usleep(10000);
    assert_int_equal(llen(ctx, key), 0);
    assert_int_equal(llen(ctx, proc_a), 0);
    assert_int_equal(llen(ctx, proc_b), 0);
    assert_int_equal(llen(ctx, proc_w), 0);
    assert_null(pop(qb, 300));
    assert_int_equal(sl_source_close(b), 0);
    sl_source_redis_stats(b, &st);
    assert_int_equal(st.reaped, (uint64_t)(a_held + w_held));
    assert_int_equal(idset_dups(&seen), 0);
    print_message("list: %d entries, A left %lld and W %lld in their "
                  "processing lists, B reaped them and processed all; %lld "
                  "ms\n",
                  N, a_held, w_held, (long long)(sl_mono_ms() - t0));
    sl_source_destroy(b);
    sl_queue_destroy(qb);
    free(seen.ids);

    char runs[192], hb[192];
    snprintf(runs, sizeof(runs), "%s:runs", key);
    snprintf(hb, sizeof(hb), "%s:heartbeat:B", key);
    const char *del[] = {"DEL", key, runs, proc_a, proc_b, proc_w, hb};
    raw_int(ctx, 7, del);
    redisFree(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_and_password_file),
        cmocka_unit_test(test_stream_claim_from_dead_consumer),
        cmocka_unit_test(test_stream_max_deliveries),
        cmocka_unit_test(test_stream_nogroup_recovery),
        cmocka_unit_test(test_stream_reconnect),
        cmocka_unit_test(test_list_reaper),
    };
    sl_log_set_level(SL_LOG_WARN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
