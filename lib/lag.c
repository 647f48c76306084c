/*
 * The lag watcher: one thread that asks Kafka or Redis how far the group
 * is behind, every SL_LAG_INTERVAL_MS and at once after a rebalance, and
 * keeps the last answer for scrapes.
 */
#include "lag.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "redis_conn.h"
#include "source_kafka.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ENTRIES 1024 /* partitions watched */
#define QUERY_MS 5000    /* a refresh, all requests together */
#define TICK_MS 200      /* how often a rebalance is looked for */

struct sl_lag {
    const struct sl_config *cfg;  /* borrowed */
    struct sl_source *src;        /* borrowed */
    bool kafka;                   /* else Redis Streams */
    struct sl_redis_conn *rc;     /* Redis: our own connection */
    pthread_t thread;             /* lag_main() */
    bool started;                 /* 'thread' runs or ran */
    pthread_mutex_t lock;         /* guards the fields below */
    pthread_cond_t cond;          /* stop was asked */
    bool stop;                    /* leave lag_main() */
    struct sl_lag_entry *entries; /* the last refresh, MAX_ENTRIES */
    size_t n;                     /* entries filled */
    int64_t measured_ms;          /* sl_mono_ms() when the last refresh began; 0
                                     before the first */
    struct sl_lag_entry *scratch; /* the refresh being made; thread's */
    struct sl_source_kafka_offsets *offs; /* Kafka answers; thread's */
    char last_err[256];                   /* logged once per distinct cause */
};

/* Log a refresh failure once per distinct cause.  Lag thread. */
static void failed(struct sl_lag *lag, const char *what)
{
    if (!strcmp(lag->last_err, what))
        return;
    snprintf(lag->last_err, sizeof(lag->last_err), "%s", what);
    sl_log(SL_LOG_WARN, "lag",
           "cannot read the consumer lag: %s; /metrics keeps the last value "
           "and the next try is in %d ms",
           what, SL_LAG_INTERVAL_MS);
}

/*
 * Kafka: high watermark minus the group's committed offset.  With nothing
 * committed yet, where auto_offset_reset starts: the low watermark, or
 * for "latest" the position reached so far (else the high watermark).  An
 * offset below the low watermark starts at it (the log was trimmed).  Returns
 * the count or -1.  Lag thread.
 */
static int refresh_kafka(struct sl_lag *lag)
{
    char err[256];
    int n = sl_source_kafka_query_offsets(lag->src, lag->offs, MAX_ENTRIES,
                                          QUERY_MS, err, sizeof(err));
    if (n < 0) {
        failed(lag, err);
        return -1;
    }
    bool latest =
        lag->cfg->source.kafka.auto_offset_reset == SL_CONFIG_RESET_LATEST;
    for (int i = 0; i < n; i++) {
        const struct sl_source_kafka_offsets *o = &lag->offs[i];
        struct sl_lag_entry *e = &lag->scratch[i];
        int64_t from = o->committed >= 0 ? o->committed
                       : !latest         ? o->low
                       : o->stored >= 0  ? o->stored
                                         : o->high;
        if (from < o->low)
            from = o->low;
        snprintf(e->topic, sizeof(e->topic), "%s", o->topic);
        e->partition = o->partition;
        e->lag = o->high > from ? o->high - from : 0;
        e->pending = -1;
    }
    return n;
}

/* The integer of field 'name' in a flat name/value reply; -1 if absent
 * or nil. */
static long long field_int(const redisReply *r, const char *name)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && !strcmp(k->str, name))
            return v->type == REDIS_REPLY_INTEGER ? v->integer : -1;
    }
    return -1;
}

static bool field_is(const redisReply *r, const char *name, const char *value)
{
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const redisReply *k = r->element[i], *v = r->element[i + 1];
        if (k->type == REDIS_REPLY_STRING && !strcmp(k->str, name))
            return v->type == REDIS_REPLY_STRING && !strcmp(v->str, value);
    }
    return false;
}

/*
 * Redis Streams: XINFO GROUPS.  Redis 7.0 and later report 'lag'; it is
 * nil when Redis cannot tell (entries deleted from the middle of the
 * stream, or a group moved by XGROUP SETID): the lag sample is then left
 * out and the pending count still shown.  Returns the count or -1.  Lag
 * thread.
 */
static int refresh_redis(struct sl_lag *lag)
{
    const struct sl_config_redis *rd = &lag->cfg->source.redis;
    const char *argv[] = {"XINFO", "GROUPS", rd->key};
    redisReply *r = sl_redis_conn_argv(lag->rc, 3, argv, NULL);
    int n = 0;

    if (!r) {
        failed(lag, "Redis is not reachable");
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        /* No stream yet: nothing to be behind on. */
        if (strstr(r->str, "no such key")) {
            freeReplyObject(r);
            return 0;
        }
        failed(lag, r->str);
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && !n;
         i++) {
        const redisReply *g = r->element[i];
        if (g->type != REDIS_REPLY_ARRAY || !field_is(g, "name", rd->group))
            continue;
        struct sl_lag_entry *e = &lag->scratch[0];
        snprintf(e->topic, sizeof(e->topic), "%s", rd->key);
        e->partition = -1;
        e->lag = field_int(g, "lag");
        e->pending = field_int(g, "pending");
        n = 1;
    }
    freeReplyObject(r);
    return n;
}

/* A number that changes whenever the assignment does.  Lag thread. */
static uint64_t assignment_epoch(struct sl_lag *lag)
{
    struct sl_source_kafka_stats ks;
    if (!lag->kafka)
        return 0;
    sl_source_kafka_stats(lag->src, &ks);
    return ks.assignments + ks.revocations + ks.lost +
           ((uint64_t)(uint32_t)ks.assigned << 40);
}

static void *lag_main(void *arg)
{
    struct sl_lag *lag = arg;
    uint64_t epoch = assignment_epoch(lag);
    int64_t due = sl_mono_ms(); /* the first refresh at once */

    pthread_mutex_lock(&lag->lock);
    while (!lag->stop) {
        uint64_t now_epoch = assignment_epoch(lag);
        int64_t now = sl_mono_ms();
        if (now >= due || now_epoch != epoch) {
            pthread_mutex_unlock(&lag->lock);
            epoch = now_epoch;
            due = now + SL_LAG_INTERVAL_MS; /* from the start: a steady
                                               period */
            int n = lag->kafka ? refresh_kafka(lag) : refresh_redis(lag);
            sl_log(SL_LOG_DEBUG, "lag", "refreshed in %lld ms",
                   (long long)(sl_mono_ms() - now));
            pthread_mutex_lock(&lag->lock);
            if (n >= 0) {
                memcpy(lag->entries, lag->scratch,
                       (size_t)n * sizeof(*lag->entries));
                lag->n = (size_t)n;
                lag->measured_ms = now;
                lag->last_err[0] = '\0';
            }
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += TICK_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&lag->cond, &lag->lock, &ts);
    }
    pthread_mutex_unlock(&lag->lock);
    return NULL;
}

struct sl_lag *sl_lag_start(const struct sl_config *cfg, struct sl_source *src,
                            char *errstr, size_t errstr_size)
{
    enum sl_config_source_kind kind = cfg->source.kind;
    struct sl_lag *lag;

    if (!src || (kind != SL_CONFIG_SOURCE_KAFKA &&
                 kind != SL_CONFIG_SOURCE_REDIS_STREAM))
        return NULL;
    if (!(lag = calloc(1, sizeof(*lag)))) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    lag->cfg = cfg;
    lag->src = src;
    lag->kafka = kind == SL_CONFIG_SOURCE_KAFKA;
    pthread_mutex_init(&lag->lock, NULL);
    pthread_cond_init(&lag->cond, NULL);
    lag->entries = calloc(MAX_ENTRIES, sizeof(*lag->entries));
    lag->scratch = calloc(MAX_ENTRIES, sizeof(*lag->scratch));
    if (lag->kafka)
        lag->offs = calloc(MAX_ENTRIES, sizeof(*lag->offs));
    if (!lag->entries || !lag->scratch || (lag->kafka && !lag->offs)) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        sl_lag_destroy(lag);
        return NULL;
    }
    if (!lag->kafka) {
        const struct sl_config_redis *rd = &cfg->source.redis;
        struct sl_redis_conn_conf cc = {
            .url = rd->url,
            .password_env = rd->password_env,
            .password_file = rd->password_file,
            .connect_timeout_ms = QUERY_MS,
            .command_timeout_ms = QUERY_MS,
            .component = "lag",
            .client_name = "sluice:lag",
        };
        if (!(lag->rc = sl_redis_conn_new(&cc, errstr, errstr_size))) {
            sl_lag_destroy(lag);
            return NULL;
        }
    }
    if (pthread_create(&lag->thread, NULL, lag_main, lag) != 0) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size,
                  "cannot start the lag thread");
        sl_lag_destroy(lag);
        return NULL;
    }
    lag->started = true;
    return lag;
}

void sl_lag_stop(struct sl_lag *lag)
{
    if (!lag || !lag->started)
        return;
    pthread_mutex_lock(&lag->lock);
    lag->stop = true;
    pthread_cond_signal(&lag->cond);
    pthread_mutex_unlock(&lag->lock);
    pthread_join(lag->thread, NULL);
    lag->started = false;
}

void sl_lag_destroy(struct sl_lag *lag)
{
    if (!lag)
        return;
    sl_lag_stop(lag);
    sl_redis_conn_destroy(lag->rc);
    pthread_cond_destroy(&lag->cond);
    pthread_mutex_destroy(&lag->lock);
    free(lag->entries);
    free(lag->scratch);
    free(lag->offs);
    free(lag);
}

size_t sl_lag_get(struct sl_lag *lag, struct sl_lag_entry *out, size_t max,
                  int64_t *measured_ms)
{
    size_t n;

    *measured_ms = 0;
    if (!lag)
        return 0;
    pthread_mutex_lock(&lag->lock);
    *measured_ms = lag->measured_ms;
    n = lag->n < max ? lag->n : max;
    memcpy(out, lag->entries, n * sizeof(*out));
    pthread_mutex_unlock(&lag->lock);
    return n;
}
