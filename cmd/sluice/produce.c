/*
 * sluice produce: feed a Kafka topic, a Redis stream or a Redis list from
 * JSON lines (a file or stdin) or from a deterministic generator, at an
 * optional rate, for demos, tests and benchmarks.  Exits non-zero when a
 * message was not delivered.  Authenticates to Redis from the URL or
 * --password-env and never prints a password.
 */
#include "commands.h"

#include "err.h"
#include "redis_conn.h"
#include "secret.h"

#include <ctype.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REDIS_PIPELINE 256   /* commands per round trip */
#define PROGRESS_MS 250      /* progress bar refresh */
#define MAX_LINE (16u << 20) /* longest input line accepted */

static const char produce_usage[] =
    "Usage: sluice produce TARGET [options]\n"
    "\n"
    "Send JSON lines to TARGET, one message per line:\n"
    "  kafka://HOST:PORT[,HOST:PORT...]/TOPIC\n"
    "  redis://[[USER][:PASSWORD]@]HOST:PORT/STREAM\n"
    "                          XADD STREAM * payload LINE key K\n"
    "  redis://[[USER][:PASSWORD]@]HOST:PORT/LIST?type=list\n"
    "                          RPUSH LIST LINE\n"
    "\n"
    "Redis authenticates (AUTH) with the URL's user and password, or with\n"
    "the password in the environment variable that --password-env names;\n"
    "'%' escapes in them are decoded.  Prefer --password-env: a password in\n"
    "the URL is visible to 'ps' until produce starts and blanks it.  A\n"
    "password is never printed: the target is shown as\n"
    "redis://USER:***@HOST:PORT/NAME.\n"
    "\n"
    "Options:\n"
    "  --file F          read lines from F (default: stdin; '-' is stdin)\n"
    "  --generate N      generate N messages {\"seq\",\"key\",\"text\",\n"
    "                    \"produced_at_us\"} instead of reading input\n"
    "  --rate R          at most R messages/s (default 0: unlimited)\n"
    "  --key-field NAME  message key from this JSON field of each line\n"
    "                    (generated messages are keyed k<seq % 1000>)\n"
    "  --text-size B     approximate size of a generated text (default 120)\n"
    "  --partitions P    Kafka: create the topic with P partitions if it\n"
    "                    does not exist\n"
    "  --linger-ms L     Kafka: wait up to L ms to fill a batch (default 5;\n"
    "                    0 sends each message at once, for latency runs)\n"
    "  --timeout-ms T    Kafka: delivery timeout per message; Redis: connect\n"
    "                    and reply timeout (default 30000)\n"
    "  --delivery-log F  Kafka: write one line per delivery report to F:\n"
    "                    'N PARTITION OFFSET' for message N (its seq, or\n"
    "                    its line number from 0), 'N - ERROR' if it failed\n"
    "  --password-env NAME  Redis: the password is in environment\n"
    "                    variable NAME (with the URL's user, if any)\n"
    "  --help            print this help\n"
    "\n"
    "Every option also reads --name=value.\n"
    "A Kafka delivery report without an offset (the broker answered\n"
    "'duplicate sequence number') is checked: the message is looked for\n"
    "in the topic at the end and sent again if it is not there.\n"
    "Prints a progress bar on a terminal, else one summary line.  Exit\n"
    "status: 0 when every message was delivered, 1 otherwise, 2 for usage.\n";

struct opts {
    const char *target;       /* TARGET URI (its argv string) */
    const char *file;         /* input file; NULL for stdin */
    long long generate;       /* messages to generate; -1 to read input */
    double rate;              /* messages/s; 0 unlimited */
    const char *key_field;    /* JSON field giving the key; NULL for none */
    size_t text_size;         /* generated text bytes */
    int partitions;           /* create the topic with this many; 0 no */
    int timeout_ms;           /* delivery / network timeout */
    int linger_ms;            /* Kafka linger.ms */
    const char *password_env; /* Redis: env var holding the password */
    const char *delivery_log; /* Kafka: delivery reports to this file */
};

/* TARGET taken apart; user and password are %-decoded. */
struct target {
    char *shown;    /* TARGET with its password masked: for messages */
    char *user;     /* URL user, or NULL */
    char *password; /* URL or --password-env password, or NULL */
    char *host;     /* AUTHORITY without the user info: HOST:PORT[,...] */
    char *name;     /* topic, stream or list */
    char *query;    /* after '?', or "" */
};

/*
 * A message the client reported delivered without an offset: librdkafka
 * takes a broker's DUPLICATE_SEQUENCE_NUMBER answer as "an earlier send
 * was written", yet the broker may not hold it (seen with librdkafka 2.0
 * and Kafka 4 on the first batch of a fresh topic).  Looked for in the
 * topic at the end, and sent again if it is not there.
 */
struct unconfirmed {
    long long n;       /* its seq or line number */
    int32_t partition; /* where it was sent */
    void *key;         /* copy, or NULL */
    size_t key_len;    /* its length */
    void *value;       /* copy */
    size_t len;        /* its length */
    int64_t at_ms;     /* when its report came (wall clock, ms) */
};

struct counts {
    FILE *dlog;              /* --delivery-log, or NULL */
    struct unconfirmed *unc; /* reported delivered without an offset */
    size_t unc_n, unc_cap;   /* used, allocated */
    bool resent;             /* the unconfirmed were sent again: no more */
    long long sent;          /* handed to the client library */
    long long delivered;     /* acknowledged by the server */
    long long errors;        /* not delivered */
    char first_err[1024];    /* first delivery error, for the summary */
};

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Replace every copy of 'secret' in 's' by '*'s. */
static void redact(char *s, const char *secret)
{
    size_t sl = secret ? strlen(secret) : 0;
    char *p;

    if (!sl)
        return;
    while ((p = strstr(s, secret)) != NULL)
        memset(p, '*', sl);
}

static void note_err(struct counts *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void note_err(struct counts *c, const char *fmt, ...)
{
    va_list ap;

    c->errors++;
    if (c->first_err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(c->first_err, sizeof(c->first_err), fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Input: lines or generated messages                                   */

static const char *const words[] = {
    "good",    "bad",       "great",   "terrible", "Great",   "awful",
    "service", "food",      "product", "delivery", "Alice",   "Bob",
    "Chen",    "Fatima",    "Paris",   "Tokyo",    "the",     "a",
    "was",     "really",    "not",     "very",     "quite",   "excellent",
    "poor",    "fast",      "slow",    "price",    "quality", "love",
    "hate",    "recommend", "again",   "never",    "okay",    "amazing",
    "broken",  "fresh",     "cold",    "friendly", "rude",    "Great Wall",
    "and",     "but",       "with",    "support",  "refund",  "happy",
};

/* splitmix64: the same text for the same seq on every run. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

struct input {
    FILE *fp;        /* lines, or NULL when generating */
    long long n;     /* messages so far (generated, or lines read) */
    char *line;      /* getline buffer / generated JSON */
    size_t line_cap; /* its capacity */
    char *text;      /* generated text */
    char key[64];    /* key of the current message */
    size_t key_len;  /* 0: no key */
};

static int gen_next(const struct opts *o, struct input *in, size_t *len)
{
    long long i = in->n;
    uint64_t r = mix((uint64_t)i);
    size_t tl = 0;

    if (i >= o->generate)
        return 0;
    in->n++;
    while (tl < o->text_size) {
        const char *w = words[r % (sizeof(words) / sizeof(words[0]))];
        size_t wl = strlen(w);
        r = mix(r);
        if (tl + wl + 1 > o->text_size + 1 && tl > 0)
            break;
        if (tl)
            in->text[tl++] = ' ';
        memcpy(in->text + tl, w, wl);
        tl += wl;
    }
    in->text[tl] = '\0';
    in->key_len = (size_t)snprintf(in->key, sizeof(in->key), "k%lld", i % 1000);
    int n = snprintf(in->line, in->line_cap,
                     "{\"seq\": %lld, \"key\": \"%s\", \"text\": \"%s\", "
                     "\"produced_at_us\": %lld}",
                     i, in->key, in->text, (long long)now_us());
    *len = (size_t)n;
    return 1;
}

static void key_from_json(const struct opts *o, struct input *in,
                          const char *line, size_t len)
{
    json_error_t jerr;
    json_t *root, *v;

    in->key_len = 0;
    if (!o->key_field)
        return;
    root = json_loadb(line, len, 0, &jerr);
    if (!root)
        return;
    v = json_object_get(root, o->key_field);
    if (json_is_string(v))
        in->key_len = (size_t)snprintf(in->key, sizeof(in->key), "%s",
                                       json_string_value(v));
    else if (json_is_integer(v))
        in->key_len = (size_t)snprintf(in->key, sizeof(in->key), "%lld",
                                       (long long)json_integer_value(v));
    if (in->key_len >= sizeof(in->key))
        in->key_len = sizeof(in->key) - 1;
    json_decref(root);
}

/* Next message into in->line: returns 1, 0 at the end, -1 on error. */
static int next_msg(const struct opts *o, struct input *in, size_t *len)
{
    if (o->generate >= 0)
        return gen_next(o, in, len);
    for (;;) {
        ssize_t n = getline(&in->line, &in->line_cap, in->fp);
        if (n < 0)
            return ferror(in->fp) ? -1 : 0;
        while (n > 0 && (in->line[n - 1] == '\n' || in->line[n - 1] == '\r'))
            n--;
        if (n == 0)
            continue;
        if ((size_t)n > MAX_LINE) {
            fprintf(stderr,
                    "sluice produce: line of %zd bytes skipped "
                    "(limit %u)\n",
                    n, MAX_LINE);
            continue;
        }
        in->line[n] = '\0';
        *len = (size_t)n;
        key_from_json(o, in, in->line, *len);
        in->n++;
        return 1;
    }
}

/* ------------------------------------------------------------------ */
/* Rate limit and progress                                              */

struct pacer {
    double rate;     /* tokens per second; 0 unlimited */
    double tokens;   /* available */
    int64_t last_us; /* last refill */
};

/*
 * Take a token, waiting for one; 'before_wait(arg)' (may be NULL) runs
 * before each wait, to send what is buffered rather than hold it.
 */
static void pace(struct pacer *pc, void (*before_wait)(void *), void *arg)
{
    if (pc->rate <= 0)
        return;
    for (;;) {
        int64_t t = mono_us();
        double burst = pc->rate / 10 > 1 ? pc->rate / 10 : 1;
        pc->tokens += (double)(t - pc->last_us) * pc->rate / 1e6;
        if (pc->tokens > burst)
            pc->tokens = burst;
        pc->last_us = t;
        if (pc->tokens >= 1) {
            pc->tokens -= 1;
            return;
        }
        useconds_t wait = (useconds_t)((1 - pc->tokens) * 1e6 / pc->rate);
        if (before_wait)
            before_wait(arg);
        usleep(wait > 100000 ? 100000 : wait + 1);
    }
}

struct progress {
    bool tty;         /* stderr is a terminal */
    int64_t start_us; /* when sending began */
    int64_t last_us;  /* last redraw */
};

static void progress_show(struct progress *pg, const struct counts *c,
                          bool force)
{
    int64_t t = mono_us();
    if (!pg->tty || (!force && t - pg->last_us < PROGRESS_MS * 1000))
        return;
    pg->last_us = t;
    double s = (double)(t - pg->start_us) / 1e6;
    fprintf(stderr,
            "\r\033[Ksent %lld  delivered %lld  %.0f msg/s  errors %lld",
            c->sent, c->delivered, s > 0 ? (double)c->delivered / s : 0.0,
            c->errors);
}

/* ------------------------------------------------------------------ */
/* Kafka                                                                */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *rkm,
                        void *opaque)
{
    (void)rk;
    struct counts *c = opaque;
    long long n = (long long)(intptr_t)rkm->_private;
    if (!rkm->err && rkm->offset < 0 && !c->resent) {
        if (c->unc_n == c->unc_cap) {
            size_t cap = c->unc_cap ? c->unc_cap * 2 : 16;
            struct unconfirmed *u = realloc(c->unc, cap * sizeof(*u));
            if (!u) {
                note_err(c, "out of memory");
                return;
            }
            c->unc = u;
            c->unc_cap = cap;
        }
        struct unconfirmed *u = &c->unc[c->unc_n];
        *u = (struct unconfirmed){n,
                                  rkm->partition,
                                  NULL,
                                  rkm->key_len,
                                  malloc(rkm->len ? rkm->len : 1),
                                  rkm->len,
                                  now_us() / 1000};
        if (rkm->key_len && (u->key = malloc(rkm->key_len)))
            memcpy(u->key, rkm->key, rkm->key_len);
        if (!u->value || (rkm->key_len && !u->key)) {
            free(u->key);
            free(u->value);
            note_err(c, "out of memory");
            return;
        }
        memcpy(u->value, rkm->payload, rkm->len);
        c->unc_n++;
        return; /* counted once found or sent again */
    }
    if (!rkm->err && rkm->offset < 0)
        note_err(c, "delivery reported twice without an offset");
    else if (rkm->err)
        note_err(c, "%s", rd_kafka_err2str(rkm->err));
    else
        c->delivered++;
    if (!c->dlog)
        return;
    if (rkm->err || rkm->offset < 0)
        fprintf(c->dlog, "%lld - %s\n", n,
                rkm->err ? rd_kafka_err2str(rkm->err)
                         : "delivered without an offset twice");
    else
        fprintf(c->dlog, "%lld %d %lld\n", n, (int)rkm->partition,
                (long long)rkm->offset);
}

/* Broker-level errors (connection refused ...), kept for the summary. */
struct kerr {
    char last[512]; /* last broker error */
};
static struct kerr kafka_last_error;

static void on_kafka_error(rd_kafka_t *rk, int err, const char *reason,
                           void *opaque)
{
    (void)rk;
    (void)err;
    (void)opaque;
    snprintf(kafka_last_error.last, sizeof(kafka_last_error.last), "%s",
             reason);
}

static int kset(rd_kafka_conf_t *kc, const char *name, const char *value)
{
    char buf[512];
    if (rd_kafka_conf_set(kc, name, value, buf, sizeof(buf)) ==
        RD_KAFKA_CONF_OK)
        return 0;
    fprintf(stderr, "sluice produce: kafka property '%s': %s\n", name, buf);
    return -1;
}

static int create_topic(rd_kafka_t *rk, const char *topic, int partitions,
                        int timeout_ms)
{
    char buf[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(topic, partitions, -1, buf, sizeof(buf));
    rd_kafka_AdminOptions_t *ao;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    int rc = 0;

    if (!nt) {
        fprintf(stderr, "sluice produce: topic %s: %s\n", topic, buf);
        return -1;
    }
    ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, timeout_ms, buf,
                                                sizeof(buf));
    rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, buf, sizeof(buf));
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (!ev) {
        fprintf(stderr,
                "sluice produce: creating topic %s: no answer in %d "
                "ms\n",
                topic, timeout_ms + 5000);
        rc = -1;
    } else if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "sluice produce: creating topic %s: %s%s%s\n", topic,
                rd_kafka_event_error_string(ev),
                kafka_last_error.last[0] ? "; " : "", kafka_last_error.last);
        rc = -1;
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(
                rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; i++) {
            rd_kafka_resp_err_t e = rd_kafka_topic_result_error(res[i]);
            if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                fprintf(stderr, "sluice produce: creating topic %s: %s\n",
                        topic, rd_kafka_topic_result_error_string(res[i]));
                rc = -1;
            }
        }
    }
    if (ev)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    return rc;
}

/* The unconfirmed entry of 'p' holding this key and value, or NULL. */
static struct unconfirmed *unc_match(struct counts *c, int32_t p,
                                     const rd_kafka_message_t *m)
{
    for (size_t i = 0; i < c->unc_n; i++) {
        struct unconfirmed *u = &c->unc[i];
        if (u->value && u->partition == p && u->len == m->len &&
            u->key_len == m->key_len && !memcmp(u->value, m->payload, m->len) &&
            (!u->key_len || !memcmp(u->key, m->key, m->key_len)))
            return u;
    }
    return NULL;
}

/*
 * Settle the messages reported delivered without an offset: read their
 * partitions from where messages sent 'timeout_ms' + 5 s before the
 * first such report begin (offsets_for_times) to the end; one found there
 * counts as delivered at its offset, one not found is sent again on 'rk' (its
 * report then counts as usual).  Returns how many were sent again.
 */
static size_t settle_unconfirmed(const struct opts *o, const char *brokers,
                                 const char *topic, rd_kafka_t *rk,
                                 struct counts *c)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    char buf[512];
    int64_t since = now_us() / 1000;
    int64_t deadline = mono_us() + (int64_t)(o->timeout_ms + 5000) * 1000;
    size_t found = 0, resent = 0;
    rd_kafka_t *rc;

    if (kset(kc, "bootstrap.servers", brokers) ||
        kset(kc, "group.id", "sluice-produce-settle") ||
        kset(kc, "enable.auto.commit", "false") ||
        kset(kc, "enable.partition.eof", "true") ||
        !(rc = rd_kafka_new(RD_KAFKA_CONSUMER, kc, buf, sizeof(buf)))) {
        rd_kafka_conf_destroy(kc);
        rc = NULL;
    }
    /* A message goes out at most message.timeout.ms before its report. */
    for (size_t i = 0; i < c->unc_n; i++)
        if (c->unc[i].at_ms - o->timeout_ms - 5000 < since)
            since = c->unc[i].at_ms - o->timeout_ms - 5000;
    for (size_t i = 0; rc && i < c->unc_n; i++)
        if (!rd_kafka_topic_partition_list_find(l, topic, c->unc[i].partition))
            rd_kafka_topic_partition_list_add(l, topic, c->unc[i].partition)
                ->offset = since;
    if (rc && rd_kafka_offsets_for_times(rc, l, o->timeout_ms) == 0) {
        /* Only partitions with messages since: the others hold none. */
        rd_kafka_topic_partition_list_t *scan =
            rd_kafka_topic_partition_list_new(l->cnt);
        for (int i = 0; i < l->cnt; i++)
            if (!l->elems[i].err && l->elems[i].offset >= 0)
                rd_kafka_topic_partition_list_add(scan, topic,
                                                  l->elems[i].partition)
                    ->offset = l->elems[i].offset;
        if (scan->cnt > 0 && rd_kafka_assign(rc, scan) == 0) {
            int eof = 0;
            while (eof < scan->cnt && found < c->unc_n &&
                   mono_us() < deadline) {
                rd_kafka_message_t *m = rd_kafka_consumer_poll(rc, 200);
                if (!m)
                    continue;
                if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                    eof++;
                } else if (!m->err) {
                    struct unconfirmed *u = unc_match(c, m->partition, m);
                    if (u) {
                        if (c->dlog)
                            fprintf(c->dlog, "%lld %d %lld\n", u->n,
                                    (int)m->partition, (long long)m->offset);
                        free(u->value);
                        u->value = NULL;
                        c->delivered++;
                        found++;
                    }
                }
                rd_kafka_message_destroy(m);
            }
        }
        rd_kafka_topic_partition_list_destroy(scan);
    }
    if (rc) {
        rd_kafka_consumer_close(rc);
        rd_kafka_destroy(rc);
    }
    rd_kafka_topic_partition_list_destroy(l);
    c->resent = true;
    for (size_t i = 0; i < c->unc_n; i++) {
        struct unconfirmed *u = &c->unc[i];
        if (!u->value)
            continue;
        rd_kafka_resp_err_t err = rd_kafka_producev(
            rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(u->partition),
            RD_KAFKA_V_VALUE(u->value, u->len),
            RD_KAFKA_V_KEY(u->key, u->key_len),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_OPAQUE((void *)(intptr_t)u->n), RD_KAFKA_V_END);
        if (err)
            note_err(c, "%s", rd_kafka_err2str(err));
        else
            resent++;
    }
    fprintf(stderr,
            "sluice produce: %zu message(s) reported delivered without an "
            "offset (the broker answered 'duplicate sequence number'): %zu "
            "found in the topic, %zu not found and sent again\n",
            c->unc_n, found, resent);
    return resent;
}

static int produce_kafka(const struct opts *o, const char *brokers,
                         const char *topic, struct input *in, struct counts *c,
                         struct progress *pg)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    char buf[512], tmo[32], linger[32];
    rd_kafka_t *rk;
    struct pacer pc = {o->rate, 0, mono_us()};
    size_t len;
    int r;

    snprintf(tmo, sizeof(tmo), "%d", o->timeout_ms);
    snprintf(linger, sizeof(linger), "%d", o->linger_ms);
    if (kset(kc, "bootstrap.servers", brokers) || kset(kc, "acks", "all") ||
        kset(kc, "enable.idempotence", "true") ||
        kset(kc, "linger.ms", linger) || kset(kc, "message.timeout.ms", tmo) ||
        kset(kc, "client.id", "sluice-produce") ||
        kset(kc, "log.connection.close", "false")) {
        rd_kafka_conf_destroy(kc);
        return 2;
    }
    rd_kafka_conf_set_dr_msg_cb(kc, on_delivery);
    rd_kafka_conf_set_error_cb(kc, on_kafka_error);
    rd_kafka_conf_set_opaque(kc, c);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, buf, sizeof(buf));
    if (!rk) {
        rd_kafka_conf_destroy(kc);
        fprintf(stderr, "sluice produce: kafka: %s\n", buf);
        return 2;
    }
    if (o->partitions > 0 &&
        create_topic(rk, topic, o->partitions, o->timeout_ms) < 0) {
        rd_kafka_destroy(rk);
        return 1;
    }
    for (;;) {
        /* The token first: a generated message is stamped when it goes. */
        pace(&pc, NULL, NULL);
        if ((r = next_msg(o, in, &len)) != 1)
            break;
        for (;;) {
            rd_kafka_resp_err_t err = rd_kafka_producev(
                rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_VALUE(in->line, len),
                RD_KAFKA_V_KEY(in->key_len ? in->key : NULL, in->key_len),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_OPAQUE((void *)(intptr_t)(in->n - 1)),
                RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                rd_kafka_poll(rk, 100);
                progress_show(pg, c, false);
                continue;
            }
            if (err)
                note_err(c, "%s", rd_kafka_err2str(err));
            else
                c->sent++;
            break;
        }
        rd_kafka_poll(rk, 0);
        progress_show(pg, c, false);
    }
    if (r < 0)
        note_err(c, "reading input: %s", strerror(errno));
    /* Wait for every delivery report; message.timeout.ms bounds it. */
    int64_t deadline = mono_us() + (int64_t)(o->timeout_ms + 5000) * 1000;
    while (rd_kafka_outq_len(rk) > 0 && mono_us() < deadline) {
        rd_kafka_flush(rk, 200);
        progress_show(pg, c, false);
    }
    if (c->unc_n && rd_kafka_outq_len(rk) == 0 &&
        settle_unconfirmed(o, brokers, topic, rk, c) > 0) {
        deadline = mono_us() + (int64_t)(o->timeout_ms + 5000) * 1000;
        while (rd_kafka_outq_len(rk) > 0 && mono_us() < deadline)
            rd_kafka_flush(rk, 200);
    }
    if (rd_kafka_outq_len(rk) > 0)
        note_err(c, "%d message(s) still queued at exit",
                 rd_kafka_outq_len(rk));
    if (c->errors && kafka_last_error.last[0]) {
        size_t l = strlen(c->first_err);
        snprintf(c->first_err + l, sizeof(c->first_err) - l,
                 " (last broker error: %.400s)", kafka_last_error.last);
    }
    rd_kafka_destroy(rk);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Redis                                                                */

static int redis_drain(redisContext *rc, int pending, struct counts *c)
{
    for (int i = 0; i < pending; i++) {
        redisReply *reply = NULL;
        if (redisGetReply(rc, (void **)&reply) != REDIS_OK) {
            note_err(c, "redis: %s", rc->errstr);
            c->errors += pending - i - 1;
            return -1;
        }
        if (reply->type == REDIS_REPLY_ERROR)
            note_err(c, "redis: %s", reply->str);
        else
            c->delivered++;
        freeReplyObject(reply);
    }
    return 0;
}

/* Write the commands buffered so far; their replies are read later. */
static void redis_flush(void *arg)
{
    redisContext *rc = arg;
    int done = 0;

    while (!done && redisBufferWrite(rc, &done) == REDIS_OK)
        ;
}

/*
 * AUTH [user] password on 'rc'.  0, or 1 after printing why (the reply
 * with the password masked, should a server ever echo it).
 */
static int redis_auth(redisContext *rc, const char *host, int port,
                      const char *user, const char *password)
{
    redisReply *reply = user ? redisCommand(rc, "AUTH %s %s", user, password)
                             : redisCommand(rc, "AUTH %s", password);
    char why[512];

    if (reply && reply->type != REDIS_REPLY_ERROR) {
        freeReplyObject(reply);
        return 0;
    }
    snprintf(why, sizeof(why), "%s",
             !reply       ? rc->errstr
             : reply->str ? reply->str
                          : "error");
    redact(why, password);
    for (size_t n = strlen(why); n > 0 && why[n - 1] == '.'; n--)
        why[n - 1] = '\0';
    fprintf(stderr,
            "sluice produce: redis: authentication to %s:%d as '%s' failed: "
            "%s; nothing was sent\n",
            host, port, user ? user : "default", why);
    freeReplyObject(reply);
    return 1;
}

static int produce_redis(const struct opts *o, const char *host, int port,
                         const char *user, const char *password,
                         const char *name, bool list, struct input *in,
                         struct counts *c, struct progress *pg)
{
    struct timeval tv = {o->timeout_ms / 1000, (o->timeout_ms % 1000) * 1000};
    redisContext *rc = redisConnectWithTimeout(host, port, tv);
    struct pacer pc = {o->rate, 0, mono_us()};
    int pending = 0, r;
    size_t len;

    if (!rc || rc->err) {
        fprintf(stderr, "sluice produce: redis: cannot connect to %s:%d: %s\n",
                host, port, rc ? rc->errstr : "out of memory");
        redisFree(rc);
        return 1;
    }
    redisSetTimeout(rc, tv);
    if (password && redis_auth(rc, host, port, user, password)) {
        redisFree(rc);
        return 1;
    }
    for (;;) {
        /* Pipelined, but nothing waits in the buffer while we pace. */
        pace(&pc, redis_flush, rc);
        if ((r = next_msg(o, in, &len)) != 1)
            break;
        if (list) {
            redisAppendCommand(rc, "RPUSH %s %b", name, in->line, len);
        } else if (in->key_len) {
            redisAppendCommand(rc, "XADD %s * payload %b key %b", name,
                               in->line, len, in->key, in->key_len);
        } else {
            redisAppendCommand(rc, "XADD %s * payload %b", name, in->line, len);
        }
        c->sent++;
        if (++pending == REDIS_PIPELINE) {
            if (redis_drain(rc, pending, c) < 0)
                goto out;
            pending = 0;
        }
        progress_show(pg, c, false);
    }
    if (r < 0)
        note_err(c, "reading input: %s", strerror(errno));
    redis_drain(rc, pending, c);
out:
    redisFree(rc);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Command                                                              */

static int parse_num(const char *opt, const char *s, double lo, double hi,
                     double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || v < lo || v > hi)
        return sl_cli_usage_error(
            "produce", "--%s: expected a number in [%g, %g], got '%s'", opt, lo,
            hi, s);
    *out = v;
    return 0;
}

/* Parse the options: 0, 1 after --help, 2 after a usage error. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    enum {
        OPT_FILE = 256,
        OPT_GENERATE,
        OPT_RATE,
        OPT_KEY_FIELD,
        OPT_TEXT_SIZE,
        OPT_PARTITIONS,
        OPT_LINGER_MS,
        OPT_TIMEOUT_MS,
        OPT_PASSWORD_ENV,
        OPT_DELIVERY_LOG,
    };
    static const struct option longopts[] = {
        {"file", required_argument, NULL, OPT_FILE},
        {"generate", required_argument, NULL, OPT_GENERATE},
        {"rate", required_argument, NULL, OPT_RATE},
        {"key-field", required_argument, NULL, OPT_KEY_FIELD},
        {"text-size", required_argument, NULL, OPT_TEXT_SIZE},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"linger-ms", required_argument, NULL, OPT_LINGER_MS},
        {"timeout-ms", required_argument, NULL, OPT_TIMEOUT_MS},
        {"password-env", required_argument, NULL, OPT_PASSWORD_ENV},
        {"delivery-log", required_argument, NULL, OPT_DELIVERY_LOG},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const struct option *lo;
    double v = 0; /* set by parse_num; gcc -O3 cannot see it */
    int c;

    *o = (struct opts){
        .generate = -1, .text_size = 120, .timeout_ms = 30000, .linger_ms = 5};
    optind = 1;
    while ((c = sl_cli_getopt("produce", argc, argv, longopts)) != -1) {
        for (lo = longopts; lo->name && lo->val != c; lo++)
            ;
        switch (c) {
        case 'h':
            fputs(produce_usage, stdout);
            return 1;
        case OPT_FILE:
            o->file = strcmp(optarg, "-") ? optarg : NULL;
            break;
        case OPT_GENERATE:
            if (parse_num(lo->name, optarg, 0, 1e15, &v))
                return 2;
            o->generate = (long long)v;
            break;
        case OPT_RATE:
            if (parse_num(lo->name, optarg, 0, 1e9, &o->rate))
                return 2;
            break;
        case OPT_KEY_FIELD:
            o->key_field = optarg;
            break;
        case OPT_TEXT_SIZE:
            if (parse_num(lo->name, optarg, 1, 1 << 20, &v))
                return 2;
            o->text_size = (size_t)v;
            break;
        case OPT_PARTITIONS:
            if (parse_num(lo->name, optarg, 1, 100000, &v))
                return 2;
            o->partitions = (int)v;
            break;
        case OPT_LINGER_MS:
            if (parse_num(lo->name, optarg, 0, 900000, &v))
                return 2;
            o->linger_ms = (int)v;
            break;
        case OPT_TIMEOUT_MS:
            if (parse_num(lo->name, optarg, 1, INT_MAX - 5000, &v))
                return 2;
            o->timeout_ms = (int)v;
            break;
        case OPT_PASSWORD_ENV:
            o->password_env = optarg;
            break;
        case OPT_DELIVERY_LOG:
            o->delivery_log = optarg;
            break;
        default:
            return 2;
        }
    }
    if (optind == argc)
        return sl_cli_usage_error("produce", "no TARGET given");
    o->target = argv[optind];
    if (optind + 1 < argc) {
        /* Never echo what may be a password typed in the wrong place. */
        return sl_cli_usage_error("produce",
                                  "%d unexpected argument(s) after TARGET",
                                  argc - optind - 1);
    }
    if (o->generate >= 0 && o->file)
        return sl_cli_usage_error("produce",
                                  "--file and --generate exclude each other");
    return 0;
}

/* Decode %XX escapes of 'len' bytes of 's' into a malloc'd string. */
static char *pct_decode(const char *s, size_t len)
{
    char *out = malloc(len + 1), *d = out;

    if (!out)
        return NULL;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = {s[i + 1], s[i + 2], '\0'};
            *d++ = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            *d++ = s[i];
        }
    }
    *d = '\0';
    return out;
}

/*
 * TARGET with anything that may be a password masked: from the first ':'
 * after "scheme://" (or of the whole string, when it has no "://") to the
 * last '@', when both are there in that order.
 * Masks too much rather than too little when the URL is malformed.
 */
static char *mask_target(const char *uri)
{
    const char *p = strstr(uri, "://");
    const char *at = strrchr(uri, '@');
    const char *colon = strchr(p ? p + 3 : uri, ':');
    size_t n;
    char *out;

    if (!at || !colon || colon > at)
        return strdup(uri);
    n = (size_t)(colon + 1 - uri);
    if (!(out = malloc(n + 3 + strlen(at) + 1)))
        return NULL;
    memcpy(out, uri, n);
    memcpy(out + n, "***", 3);
    strcpy(out + n + 3, at);
    return out;
}

static void target_clear(struct target *t)
{
    if (t->password)
        explicit_bzero(t->password, strlen(t->password));
    free(t->shown);
    free(t->user);
    free(t->password);
    free(t->host);
    free(t->name);
    free(t->query);
    memset(t, 0, sizeof(*t));
}

/*
 * Split "scheme://[USERINFO@]AUTHORITY/NAME[?QUERY]" into 't'.  Returns 0
 * or 2 after a usage error (which shows the masked target only).
 */
static int split_uri(const char *uri, const char *scheme, struct target *t)
{
    size_t sl = strlen(scheme);
    const char *p = uri + sl, *slash, *q, *at, *colon;

    if (!(t->shown = mask_target(uri)))
        return sl_cli_usage_error("produce", "out of memory");
    if (strncmp(uri, scheme, sl) || !(slash = strchr(p, '/')) || slash == p ||
        !slash[1] || slash[1] == '?')
        return sl_cli_usage_error("produce",
                                  "bad target '%s': expected %sHOST:PORT/NAME",
                                  t->shown, scheme);
    /* The user info ends at the last '@' before the path. */
    at = memrchr(p, '@', (size_t)(slash - p));
    if (at) {
        colon = memchr(p, ':', (size_t)(at - p));
        t->user = colon != p ? pct_decode(p, (size_t)((colon ? colon : at) - p))
                             : NULL;
        if (colon)
            t->password = pct_decode(colon + 1, (size_t)(at - colon - 1));
        p = at + 1;
    }
    if (p == slash)
        return sl_cli_usage_error("produce",
                                  "bad target '%s': expected %sHOST:PORT/NAME",
                                  t->shown, scheme);
    q = strchr(slash, '?');
    t->host = strndup(p, (size_t)(slash - p));
    t->name =
        q ? strndup(slash + 1, (size_t)(q - slash - 1)) : strdup(slash + 1);
    t->query = strdup(q ? q + 1 : "");
    if (!t->host || !t->name || !t->query)
        return sl_cli_usage_error("produce", "out of memory");
    return 0;
}

/*
 * Overwrite the password in TARGET's argv string so that ps and
 * /proc/PID/cmdline no longer show it (as mysql and others do).
 */
static void scrub_argv(char *arg)
{
    char *p = strstr(arg, "://"), *at = strrchr(arg, '@');
    char *colon = strchr(p ? p + 3 : arg, ':');

    if (at && colon && colon < at)
        memset(colon + 1, 'x', (size_t)(at - colon - 1));
}

int sl_cmd_produce(int argc, char **argv)
{
    struct opts o;
    struct input in = {0};
    struct counts c = {0};
    struct progress pg = {isatty(STDERR_FILENO) != 0, mono_us(), 0};
    struct target t = {0};
    struct sl_redis_url url = {0};
    bool kafka;
    int rc = parse_args(argc, argv, &o);

    if (rc != 0)
        return rc == 1 ? 0 : 2;
    kafka = !strncmp(o.target, "kafka://", 8);
    if (!kafka && strncmp(o.target, "redis://", 8)) {
        char *shown = mask_target(o.target);
        rc = sl_cli_usage_error("produce",
                                "bad target '%s': expected kafka://... or "
                                "redis://...",
                                shown ? shown : "");
        free(shown);
        return rc;
    }
    if ((rc = split_uri(o.target, kafka ? "kafka://" : "redis://", &t)) != 0)
        goto out;
    scrub_argv((char *)o.target); /* parsed: 't' holds copies */
    if (!kafka && o.delivery_log) {
        rc = sl_cli_usage_error("produce",
                                "--delivery-log is for kafka:// targets only");
        goto out;
    }
    if (kafka && (t.user || t.password || o.password_env)) {
        rc = sl_cli_usage_error("produce",
                                "bad target '%s': a user or password is "
                                "supported for redis:// targets only",
                                t.shown);
        goto out;
    }
    if (o.password_env) {
        struct sl_secret_src src = {o.password_env, NULL};
        char why[512];

        if (t.password) {
            rc = sl_cli_usage_error("produce",
                                    "the target has a password and "
                                    "--password-env names another; give one");
            goto out;
        }
        /* The rules of every other secret (lib/secret.h). */
        int serr = sl_secret_read(&src, 0, "--password-env", &t.password, why,
                                  sizeof(why));
        if (serr == -SL_ENOMEM) {
            rc = 1;
            goto out;
        }
        if (serr < 0) {
            rc = sl_cli_usage_error("produce", "%s", why);
            goto out;
        }
    }
    if (t.user && !t.password) {
        rc = sl_cli_usage_error("produce",
                                "bad target '%s': user '%s' needs a password "
                                "(redis://USER:PASSWORD@... or "
                                "--password-env NAME)",
                                t.shown, t.user);
        goto out;
    }

    bool list = strstr(t.query, "type=list") != NULL;
    if (!kafka && *t.query && !list && !strstr(t.query, "type=stream")) {
        rc = sl_cli_usage_error("produce",
                                "bad target '%s': query must be type=stream "
                                "or type=list",
                                t.shown);
        goto out;
    }

    /* HOST:PORT as the Redis sources read it (the path is our NAME). */
    if (!kafka) {
        char *hp = NULL, why[256];
        int perr = asprintf(&hp, "redis://%s", t.host) < 0
                       ? -SL_ENOMEM
                       : sl_redis_url_parse(hp, &url, why, sizeof(why));
        free(hp);
        if (perr == -SL_ENOMEM) {
            rc = 1;
            goto out;
        }
        if (perr < 0) {
            rc = sl_cli_usage_error("produce", "bad target '%s': %s", t.shown,
                                    why);
            goto out;
        }
    }

    if (o.generate >= 0) {
        in.text = malloc(o.text_size + 64);
        in.line_cap = o.text_size + 256;
        in.line = malloc(in.line_cap);
        if (!in.text || !in.line) {
            fprintf(stderr, "sluice produce: out of memory\n");
            rc = 1;
            goto out;
        }
    } else {
        in.fp = o.file ? fopen(o.file, "r") : stdin;
        if (!in.fp) {
            fprintf(stderr, "sluice produce: %s: cannot open: %s\n", o.file,
                    strerror(errno));
            rc = 1;
            goto out;
        }
    }

    if (o.delivery_log && !(c.dlog = fopen(o.delivery_log, "w"))) {
        fprintf(stderr, "sluice produce: %s: cannot open: %s\n", o.delivery_log,
                strerror(errno));
        rc = 1;
        goto out;
    }
    if (kafka) {
        rc = produce_kafka(&o, t.host, t.name, &in, &c, &pg);
    } else {
        rc = produce_redis(&o, url.host, url.port, t.user, t.password, t.name,
                           list, &in, &c, &pg);
    }
    if (rc != 0)
        goto out;

    progress_show(&pg, &c, true);
    if (pg.tty)
        fputc('\n', stderr);
    double s = (double)(mono_us() - pg.start_us) / 1e6;
    printf("produced %lld messages to %s in %.2f s (%.0f msg/s), %lld "
           "errors\n",
           c.delivered, t.shown, s, s > 0 ? (double)c.delivered / s : 0.0,
           c.errors);
    if (c.errors || c.delivered != c.sent) {
        redact(c.first_err, t.password);
        fprintf(stderr,
                "sluice produce: %lld of %lld messages not delivered to %s: "
                "%s\n",
                c.sent - c.delivered, c.sent, t.shown,
                c.first_err[0] ? c.first_err : "no delivery report");
        rc = 1;
    }
out:
    for (size_t i = 0; i < c.unc_n; i++) {
        free(c.unc[i].key);
        free(c.unc[i].value);
    }
    free(c.unc);
    if (c.dlog && fclose(c.dlog) != 0 && rc == 0) {
        fprintf(stderr, "sluice produce: %s: %s\n", o.delivery_log,
                strerror(errno));
        rc = 1;
    }
    if (in.fp && in.fp != stdin)
        fclose(in.fp);
    free(in.line);
    free(in.text);
    target_clear(&t);
    return rc;
}
