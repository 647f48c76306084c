/*
 * Redis Streams source throughput: pre-load a stream, then time the
 * source alone (into a consumer that acks at once) beside a raw
 * XREADGROUP COUNT 1000 loop in the same run.  Prints a markdown table.
 * Usage: bench_source_redis [entries] (Redis from SLUICE_REDIS_URL or
 * redis://127.0.0.1:56379).
 */
#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_conn.h"
#include "source_redis.h"

#include <hiredis/hiredis.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BATCH 1000 /* XADD pipeline depth and XREADGROUP COUNT */

static redisContext *connect_raw(const char *url)
{
    struct sl_redis_url u;
    char err[256];
    if (sl_redis_url_parse(url, &u, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        exit(2);
    }
    struct timeval tv = {5, 0};
    redisContext *ctx = redisConnectWithTimeout(u.host, u.port, tv);
    if (!ctx || ctx->err) {
        fprintf(stderr,
                "redis %s: %s (start it with `scripts/services start "
                "redis`)\n",
                url, ctx ? ctx->errstr : "out of memory");
        exit(2);
    }
    return ctx;
}

static redisReply *cmd(redisContext *ctx, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(ctx, argc, argv, NULL);
    if (!r) {
        fprintf(stderr, "redis: %s\n", ctx->errstr);
        exit(2);
    }
    if (r->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "redis %s: %s\n", argv[0], r->str);
        exit(2);
    }
    return r;
}

static void load(redisContext *ctx, const char *key, long n)
{
    char payload[128];
    for (long done = 0; done < n;) {
        long k = n - done < BATCH ? n - done : BATCH;
        for (long i = 0; i < k; i++) {
            snprintf(payload, sizeof(payload),
                     "{\"id\":%ld,\"text\":\"the quick brown fox jumps over "
                     "the lazy dog\"}",
                     done + i);
            const char *argv[] = {"XADD", key, "*", "payload", payload};
            redisAppendCommandArgv(ctx, 5, argv, NULL);
        }
        for (long i = 0; i < k; i++) {
            redisReply *r;
            if (redisGetReply(ctx, (void **)&r) != REDIS_OK) {
                fprintf(stderr, "redis: %s\n", ctx->errstr);
                exit(2);
            }
            freeReplyObject(r);
        }
        done += k;
    }
}

/* Read the whole stream with XREADGROUP COUNT 1000; XACK each batch. */
static long raw_read(redisContext *ctx, const char *key, const char *group,
                     bool ack)
{
    const char *mk[] = {"XGROUP", "CREATE", key, group, "0"};
    freeReplyObject(cmd(ctx, 5, mk));
    const char **ids = malloc((3 + BATCH) * sizeof(*ids));
    long total = 0;
    for (;;) {
        const char *argv[] = {"XREADGROUP", "GROUP",   group, "c", "COUNT",
                              "1000",       "STREAMS", key,   ">"};
        redisReply *r = cmd(ctx, 9, argv);
        if (r->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            break;
        }
        redisReply *entries = r->element[0]->element[1];
        size_t n = entries->elements;
        total += (long)n;
        if (ack && n) {
            ids[0] = "XACK";
            ids[1] = key;
            ids[2] = group;
            for (size_t i = 0; i < n; i++)
                ids[3 + i] = entries->element[i]->element[0]->str;
            freeReplyObject(cmd(ctx, (int)(3 + n), ids));
        }
        freeReplyObject(r);
        if (n == 0)
            break;
    }
    free(ids);
    return total;
}

struct row {
    const char *what;
    long msgs;
    double secs;
};

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    const char *url = getenv("SLUICE_REDIS_URL");
    char key[128], err[256];
    struct row rows[8];
    int nrows = 0;
    struct timespec ts;

    url = url && *url ? url : "redis://127.0.0.1:56379";
    sl_log_set_level(SL_LOG_WARN);
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(key, sizeof(key), "sluice-bench-%ld-%lld", (long)getpid(),
             (long long)ts.tv_nsec);
    redisContext *ctx = connect_raw(url);

    int64_t t = sl_mono_ms();
    load(ctx, key, n);
    rows[nrows++] = (struct row){"pipelined XADD (load)", n,
                                 (double)(sl_mono_ms() - t) / 1000.0};

    t = sl_mono_ms();
    long got = raw_read(ctx, key, "raw", false);
    rows[nrows++] = (struct row){"raw XREADGROUP COUNT 1000", got,
                                 (double)(sl_mono_ms() - t) / 1000.0};
    t = sl_mono_ms();
    got = raw_read(ctx, key, "rawack", true);
    rows[nrows++] = (struct row){"raw XREADGROUP COUNT 1000 + XACK", got,
                                 (double)(sl_mono_ms() - t) / 1000.0};

    struct sl_source_redis_conf conf = {0};
    conf.url = url;
    conf.key = key;
    conf.group = "src";
    conf.consumer = "bench";
    conf.count = BATCH;
    conf.ack_batch = BATCH;
    conf.max_inflight = 100000;
    struct sl_queue *q = sl_queue_new(10000, (void (*)(void *))sl_msg_destroy);
    struct sl_source *src =
        sl_source_redis_stream_new(&conf, q, err, sizeof(err));
    if (!src) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    t = sl_mono_ms();
    if (sl_source_start(src, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    long popped = 0;
    int64_t deadline = sl_mono_ms() + 120000;
    while (popped < n && sl_mono_ms() < deadline) {
        void *item;
        if (sl_queue_pop(q, &item, 100) == 0 && item) {
            sl_source_ack(item);
            popped++;
        }
    }
    rows[nrows++] = (struct row){"sluice stream source -> queue -> ack", popped,
                                 (double)(sl_mono_ms() - t) / 1000.0};
    struct sl_source_redis_stats st;
    do {
        sl_source_redis_stats(src, &st);
        if ((long)st.acked < popped)
            usleep(1000);
    } while ((long)st.acked < popped && sl_mono_ms() < deadline);
    rows[nrows++] =
        (struct row){"  ... until every entry is XACKed", (long)st.acked,
                     (double)(sl_mono_ms() - t) / 1000.0};
    sl_source_close(src);
    sl_source_destroy(src);
    sl_queue_destroy(q);

    printf("| what | messages | seconds | messages/s |\n");
    printf("| --- | ---: | ---: | ---: |\n");
    for (int i = 0; i < nrows; i++)
        printf("| %s | %ld | %.3f | %.0f |\n", rows[i].what, rows[i].msgs,
               rows[i].secs,
               rows[i].secs > 0 ? (double)rows[i].msgs / rows[i].secs : 0.0);
    double raw_rate = rows[1].secs > 0 ? rows[1].msgs / rows[1].secs : 0;
    double src_rate = rows[3].secs > 0 ? rows[3].msgs / rows[3].secs : 0;
    printf("\nsource / raw XREADGROUP: %.2f; target >= 100000 msg/s: %s\n",
           raw_rate > 0 ? src_rate / raw_rate : 0.0,
           src_rate >= 100000 ? "met" : "NOT met");

    const char *del[] = {"DEL", key};
    freeReplyObject(cmd(ctx, 2, del));
    redisFree(ctx);
    return 0;
}
