/*
 * The mock-infer HTTP server: routes, request bodies, injected faults and
 * latency, and counters.  Delays park the connection with the resume
 * timer (MHD suspend/resume), so a slow answer holds no thread.  Each of
 * --threads HTTP loops is a thread running an MHD daemon of its own (our
 * event loop, not MHD's: see loop_main()) on one shared listening socket.
 */
#include "mock.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define FAULT_KEYS 1024        /* X-Mock-Fault-Key table, LRU beyond */
#define FAULT_KEY_MAX 128      /* longest X-Mock-Fault-Key */
#define RETRY_AFTER_MAX 64     /* longest X-Mock-Retry-After */
#define LATENCY_MAX_MS 600000u /* X-Mock-Latency-Ms and lognormal cap */
#define HUGE_BLOCK (64 * 1024) /* content reader block for 'huge' */
#define IDLE_TIMEOUT_S 120     /* idle keep-alive connections close */
#define TIMER_SLACK 64         /* timer slots beyond a loop's connections */

static const char bad_json_body[] =
    "{\"id\":\"chatcmpl-mock\",\"object\":\"chat.completion\",\"choices\":"
    "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"lab";

/* One X-Mock-Fault-Key and how many requests carried it. */
struct fault_key {
    char key[FAULT_KEY_MAX + 1]; /* NUL-terminated */
    uint64_t seen;               /* requests with this key so far */
    uint64_t used;               /* LRU clock of the last use */
};

/*
 * One HTTP loop: a thread running an MHD daemon without MHD's own polling
 * thread.  The daemon's callbacks, its timer and MHD_run() all happen on
 * this thread.
 */
struct loop {
    struct sl_mock_server *server; /* owner */
    struct MHD_Daemon *daemon;     /* NULL until started */
    struct sl_mock_timer *timer;   /* this daemon's parked connections */
    int wake_fd;                   /* eventfd: written to stop the loop */
    pthread_t thread;              /* runs loop_main() */
    bool running;                  /* thread started, not joined */
    size_t resumed_at_stop;        /* parked connections drained */
};

struct sl_mock_server {
    const struct sl_mock_config *cfg;  /* borrowed */
    struct loop *loops;                /* cfg->threads HTTP loops */
    unsigned nloops;                   /* entries of loops */
    int listen_fd;                     /* shared by the daemons, or -1 */
    struct sl_mock_stats stats;        /* counters */
    atomic_bool stopping;              /* set once, by sl_mock_server_stop */
    atomic_uint_fast64_t draws;        /* random draws so far */
    unsigned port;                     /* bound port */
    pthread_mutex_t keys_lock;         /* guards keys, nkeys, key_clock */
    struct fault_key keys[FAULT_KEYS]; /* X-Mock-Fault-Times counts */
    size_t nkeys;                      /* slots in use */
    uint64_t key_clock;                /* LRU clock */
};

enum action {
    ACT_NONE,    /* not decided yet */
    ACT_RESPOND, /* queue 'resp' with 'status' */
    ACT_DROP,    /* close the connection without a response */
};

/* One HTTP request; MHD's *con_cls, freed when the request completes. */
struct request {
    enum sl_mock_endpoint ep;  /* route */
    char *body;                /* received body bytes, not NUL-terminated */
    size_t len;                /* bytes in body */
    size_t cap;                /* allocated; never above max_body_bytes */
    bool too_big;              /* body passed max_body_bytes: 413 */
    bool parked;               /* suspended with the timer */
    int64_t start_us;          /* when the headers arrived */
    int64_t due_us;            /* when to act; 0 = now */
    enum action action;        /* what to do when due */
    unsigned status;           /* HTTP status of resp */
    struct MHD_Response *resp; /* owned until queued */
};

/* Body of a 'trickle' response, sent one byte per interval. */
struct trickle {
    struct loop *lp;             /* the loop of conn */
    struct MHD_Connection *conn; /* the connection it is sent on */
    char *body;                  /* owned */
    size_t len;                  /* bytes in body */
    int64_t next_us;             /* when the next byte may go */
    bool parked;                 /* suspended with the timer */
};

static const char *const fault_names[] = {
#define SL_MOCK_FAULT_NAME(name, text) text,
    SL_MOCK_FAULTS(SL_MOCK_FAULT_NAME)
#undef SL_MOCK_FAULT_NAME
};

static const char *const endpoint_paths[] = {
#define SL_MOCK_EP_PATH(name, path, key) path,
    SL_MOCK_ENDPOINTS(SL_MOCK_EP_PATH)
#undef SL_MOCK_EP_PATH
};

static const char *const endpoint_keys[] = {
#define SL_MOCK_EP_KEY(name, path, key) key,
    SL_MOCK_ENDPOINTS(SL_MOCK_EP_KEY)
#undef SL_MOCK_EP_KEY
};

const char *sl_mock_fault_name(enum sl_mock_fault fault)
{
    return fault < SL_MOCK_FAULT_COUNT ? fault_names[fault] : "?";
}

int sl_mock_fault_parse(const char *s, enum sl_mock_fault *faultp)
{
    for (int i = 1; i < SL_MOCK_FAULT_COUNT; i++) {
        if (!strcmp(s, fault_names[i])) {
            *faultp = (enum sl_mock_fault)i;
            return 0;
        }
    }
    return -SL_EINVAL;
}

const char *sl_mock_endpoint_name(enum sl_mock_endpoint ep)
{
    return ep < SL_MOCK_EP_COUNT ? endpoint_keys[ep] : "?";
}

static enum sl_mock_endpoint route(const char *url)
{
    for (int i = 0; i < SL_MOCK_EP_COUNT; i++)
        if (endpoint_paths[i] && !strcmp(url, endpoint_paths[i]))
            return (enum sl_mock_endpoint)i;
    return SL_MOCK_EP_OTHER;
}

static bool is_model(enum sl_mock_endpoint ep)
{
    return ep <= SL_MOCK_EP_SUMMARY;
}

static void count(atomic_uint_fast64_t *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

static uint64_t load(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Uniform in [0, 1): splitmix64 of the seed and the draw number. */
static double draw(struct sl_mock_server *server)
{
    uint64_t n =
        atomic_fetch_add_explicit(&server->draws, 1, memory_order_relaxed);
    uint64_t z = server->cfg->seed + (n + 1) * 0x9e3779b97f4a7c15ULL;

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

static int64_t sample_latency_us(struct sl_mock_server *server)
{
    const struct sl_mock_config *cfg = server->cfg;
    double base = cfg->latency_ms * 1000.0, us = base;

    switch (cfg->dist) {
    case SL_MOCK_DIST_FIXED:
        break;
    case SL_MOCK_DIST_UNIFORM:
        us = base + draw(server) * (cfg->latency_max_ms * 1000.0 - base);
        break;
    case SL_MOCK_DIST_LOGNORMAL: {
        double u1 = 1.0 - draw(server), u2 = draw(server); /* u1 in (0,1] */
        double z = sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
        double cap =
            (cfg->latency_max_ms ? cfg->latency_max_ms : LATENCY_MAX_MS) *
            1000.0;
        us = base * exp(cfg->latency_sigma * z);
        if (us > cap)
            us = cap;
        break;
    }
    }
    return (int64_t)us;
}

/*
 * Count a request carrying X-Mock-Fault-Key 'key'.  Returns how many
 * carried it before this one.  Keys beyond FAULT_KEYS evict the least
 * recently used.  Any thread.
 */
static uint64_t fault_key_seen(struct sl_mock_server *server, const char *key)
{
    struct fault_key *slot = NULL, *lru = NULL;
    uint64_t seen;

    pthread_mutex_lock(&server->keys_lock);
    for (size_t i = 0; i < server->nkeys; i++) {
        struct fault_key *k = &server->keys[i];
        if (!strcmp(k->key, key)) {
            slot = k;
            break;
        }
        if (!lru || k->used < lru->used)
            lru = k;
    }
    if (!slot) {
        slot =
            server->nkeys < FAULT_KEYS ? &server->keys[server->nkeys++] : lru;
        snprintf(slot->key, sizeof(slot->key), "%s", key);
        slot->seen = 0;
    }
    slot->used = ++server->key_clock;
    seen = slot->seen++;
    pthread_mutex_unlock(&server->keys_lock);
    return seen;
}

static struct MHD_Response *text_response(char *text, const char *type)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        strlen(text), text, MHD_RESPMEM_MUST_FREE);

    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    return resp;
}

/* An OpenAI-style error body: {"error":{"message":...,"type":...}}. */
static struct MHD_Response *error_response(const char *message,
                                           const char *type)
{
    json_t *body =
        json_pack("{s:{s:s, s:s}}", "error", "message", message, "type", type);
    char *text =
        body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

    json_decref(body);
    return text ? text_response(text, "application/json") : NULL;
}

static void respond(struct request *r, unsigned status,
                    struct MHD_Response *resp)
{
    r->action = ACT_RESPOND;
    r->status = status;
    r->resp = resp;
}

static void respond_error(struct request *r, unsigned status,
                          const char *message, const char *type)
{
    respond(r, status, error_response(message, type));
}

static ssize_t huge_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    static const char head[] = "{\"data\":\"", tail[] = "\"}";
    const uint64_t head_len = sizeof(head) - 1, tail_len = sizeof(tail) - 1;
    uint64_t total = *(const uint64_t *)cls;
    size_t n = 0;

    while (n < max && pos < total) {
        if (pos < head_len) {
            buf[n++] = head[pos++];
        } else if (pos >= total - tail_len) {
            buf[n++] = tail[pos - (total - tail_len)];
            pos++;
        } else {
            uint64_t run = total - tail_len - pos;
            size_t k = run < max - n ? (size_t)run : max - n;
            memset(buf + n, 'x', k);
            n += k;
            pos += k;
        }
    }
    return n > 0 ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static ssize_t trickle_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct trickle *t = cls;
    struct sl_mock_server *server = t->lp->server;
    int64_t now;

    (void)max;
    if (t->parked) {
        t->parked = false;
        atomic_fetch_sub(&server->stats.suspended, 1);
    }
    if (pos >= t->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (atomic_load(&server->stopping))
        return MHD_CONTENT_READER_END_WITH_ERROR;
    now = sl_mock_now_us();
    if (now < t->next_us) {
        /* Returning 0 is only allowed with the connection suspended:
         * otherwise MHD's polling thread would spin on us. */
        t->parked = true;
        atomic_fetch_add(&server->stats.suspended, 1);
        sl_mock_timer_park(t->lp->timer, t->conn, t->next_us);
        return 0;
    }
    buf[0] = t->body[pos];
    t->next_us = now + (int64_t)server->cfg->trickle_interval_ms * 1000;
    return 1;
}

static void trickle_free(void *cls)
{
    struct trickle *t = cls;

    if (t->parked) /* the connection closed while it was parked */
        atomic_fetch_sub(&t->lp->server->stats.suspended, 1);
    free(t->body);
    free(t);
}

/* The answer of a model route as a trickle: takes ownership of 'text'. */
static struct MHD_Response *
trickle_response(struct loop *lp, struct MHD_Connection *conn, char *text)
{
    struct trickle *t = calloc(1, sizeof(*t));
    struct MHD_Response *resp;

    if (!t) {
        free(text);
        return NULL;
    }
    *t = (struct trickle){
        .lp = lp, .conn = conn, .body = text, .len = strlen(text)};
    resp = MHD_create_response_from_callback(t->len, 1, trickle_read, t,
                                             trickle_free);
    if (!resp) {
        trickle_free(t);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/json");
    return resp;
}

/*
 * Which fault to inject for this request: from the X-Mock-Fault headers,
 * else drawn from --fault-rate.  Returns 0, or -SL_EINVAL with the reason
 * for a 400 in errstr.
 */
static int choose_fault(struct sl_mock_server *server,
                        struct MHD_Connection *conn, enum sl_mock_fault *faultp,
                        char *errstr, size_t errstr_size)
{
    const char *name =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Mock-Fault");
    const char *times = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    "X-Mock-Fault-Times");
    const char *key =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Mock-Fault-Key");

    *faultp = SL_MOCK_FAULT_NONE;
    if (name) {
        if (sl_mock_fault_parse(name, faultp))
            return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                             "unknown X-Mock-Fault '%.40s' (500, 503, 429, "
                             "timeout, trickle, bad-json, huge, reset)",
                             name);
        if (!times)
            return 0;
        char *end;
        unsigned long long n = strtoull(times, &end, 10);
        if (end == times || *end || times[0] == '-')
            return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                             "X-Mock-Fault-Times must be a count");
        if (!key || !key[0] || strlen(key) > FAULT_KEY_MAX)
            return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                             "X-Mock-Fault-Times needs X-Mock-Fault-Key "
                             "(1 to %d bytes)",
                             FAULT_KEY_MAX);
        if (fault_key_seen(server, key) >= n)
            *faultp = SL_MOCK_FAULT_NONE;
        return 0;
    }

    double u = -1.0, acc = 0.0;
    for (int i = 1; i < SL_MOCK_FAULT_COUNT; i++) {
        if (server->cfg->fault_rate[i] <= 0.0)
            continue;
        if (u < 0.0)
            u = draw(server);
        acc += server->cfg->fault_rate[i];
        if (u < acc) {
            *faultp = (enum sl_mock_fault)i;
            break;
        }
    }
    return 0;
}

/* Decide what a model route's request gets, and when. */
static void prepare_model(struct loop *lp, struct MHD_Connection *conn,
                          struct request *r)
{
    struct sl_mock_server *server = lp->server;
    const struct sl_mock_config *cfg = server->cfg;
    enum sl_mock_fault fault;
    char errstr[256];
    int64_t delay_us;

    if (r->too_big) {
        respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                      "request body exceeds --max-body-bytes",
                      "invalid_request_error");
        return;
    }
    if (choose_fault(server, conn, &fault, errstr, sizeof(errstr))) {
        respond_error(r, MHD_HTTP_BAD_REQUEST, errstr, "invalid_request_error");
        return;
    }
    const char *lat =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Mock-Latency-Ms");
    if (lat) {
        char *end;
        unsigned long ms = strtoul(lat, &end, 10);
        if (end == lat || *end || lat[0] == '-' || ms > LATENCY_MAX_MS) {
            snprintf(errstr, sizeof(errstr),
                     "X-Mock-Latency-Ms must be 0 to %u", LATENCY_MAX_MS);
            respond_error(r, MHD_HTTP_BAD_REQUEST, errstr,
                          "invalid_request_error");
            return;
        }
        delay_us = (int64_t)ms * 1000;
    } else {
        delay_us = sample_latency_us(server);
    }
    r->due_us = r->start_us + delay_us;
    count(&server->stats.fault[fault]);

    const char *retry = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                    "X-Mock-Retry-After");
    if (!retry || !retry[0] || strlen(retry) > RETRY_AFTER_MAX)
        retry = "1";

    switch (fault) {
    case SL_MOCK_FAULT_500:
        respond_error(r, MHD_HTTP_INTERNAL_SERVER_ERROR,
                      "mock-infer: injected fault 500", "server_error");
        return;
    case SL_MOCK_FAULT_503:
    case SL_MOCK_FAULT_429:
        if (fault == SL_MOCK_FAULT_503)
            respond_error(r, MHD_HTTP_SERVICE_UNAVAILABLE,
                          "mock-infer: injected fault 503", "server_error");
        else
            respond_error(r, MHD_HTTP_TOO_MANY_REQUESTS,
                          "mock-infer: injected fault 429", "rate_limit_error");
        if (r->resp)
            MHD_add_response_header(r->resp, MHD_HTTP_HEADER_RETRY_AFTER,
                                    retry);
        return;
    case SL_MOCK_FAULT_TIMEOUT:
        r->action = ACT_DROP;
        r->due_us = r->start_us + (int64_t)cfg->timeout_hold_ms * 1000;
        return;
    case SL_MOCK_FAULT_RESET:
        r->action = ACT_DROP;
        return;
    case SL_MOCK_FAULT_BAD_JSON: {
        struct MHD_Response *resp = MHD_create_response_from_buffer(
            sizeof(bad_json_body) - 1, (void *)bad_json_body,
            MHD_RESPMEM_PERSISTENT);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json");
        respond(r, MHD_HTTP_OK, resp);
        return;
    }
    case SL_MOCK_FAULT_HUGE: {
        struct MHD_Response *resp = MHD_create_response_from_callback(
            cfg->huge_bytes, HUGE_BLOCK, huge_read, (void *)&cfg->huge_bytes,
            NULL);
        if (resp)
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                    "application/json");
        respond(r, MHD_HTTP_OK, resp);
        return;
    }
    case SL_MOCK_FAULT_NONE:
    case SL_MOCK_FAULT_TRICKLE:
    case SL_MOCK_FAULT_COUNT:
        break;
    }

    char *text;
    unsigned status = MHD_HTTP_OK;
    /* X-Mock-Echo: the request body back, byte for byte, for numbers and
     * shapes the model rule cannot produce (0.30000000000000004). */
    const char *echo =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Mock-Echo");
    int err;
    if (echo && r->body)
        err = (text = strndup(r->body, r->len)) ? 0 : -SL_ENOMEM;
    else
        err =
            sl_mock_model_answer(r->ep, r->body ? r->body : "", r->len,
                                 cfg->embed_dim, &text, errstr, sizeof(errstr));
    if (err) {
        json_t *body = json_pack(
            "{s:{s:s, s:s}}", "error", "message",
            err == -SL_EINVAL ? errstr : "out of memory", "type",
            err == -SL_EINVAL ? "invalid_request_error" : "server_error");
        text =
            body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(body);
        status = err == -SL_EINVAL ? MHD_HTTP_BAD_REQUEST
                                   : MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
    if (!text) {
        respond(r, MHD_HTTP_INTERNAL_SERVER_ERROR, NULL);
        return;
    }
    if (fault == SL_MOCK_FAULT_TRICKLE)
        respond(r, status, trickle_response(lp, conn, text));
    else
        respond(r, status, text_response(text, "application/json"));
}

/* Decide what the request gets: sets r->action and maybe r->due_us. */
static void prepare(struct loop *lp, struct MHD_Connection *conn,
                    struct request *r, const char *method)
{
    struct sl_mock_server *server = lp->server;
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) ||
               !strcmp(method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);

    switch (r->ep) {
    case SL_MOCK_EP_HEALTHZ:
    case SL_MOCK_EP_STATS:
        if (!get)
            break;
        if (r->ep == SL_MOCK_EP_HEALTHZ) {
            respond(r, MHD_HTTP_OK, text_response(strdup("ok"), "text/plain"));
        } else {
            json_t *stats = sl_mock_server_stats_json(server);
            char *text =
                stats ? json_dumps(stats, JSON_COMPACT | JSON_PRESERVE_ORDER)
                      : NULL;
            json_decref(stats);
            respond(r, MHD_HTTP_OK,
                    text ? text_response(text, "application/json") : NULL);
        }
        return;
    case SL_MOCK_EP_OTHER:
        respond_error(r, MHD_HTTP_NOT_FOUND, "no such route",
                      "invalid_request_error");
        return;
    default:
        if (!post)
            break;
        prepare_model(lp, conn, r);
        return;
    }
    respond_error(r, MHD_HTTP_METHOD_NOT_ALLOWED,
                  is_model(r->ep) ? "use POST" : "use GET",
                  "invalid_request_error");
    if (r->resp)
        MHD_add_response_header(r->resp, MHD_HTTP_HEADER_ALLOW,
                                is_model(r->ep) ? "POST" : "GET, HEAD");
}

/* Carry out r->action now. */
static enum MHD_Result finish(struct sl_mock_server *server,
                              struct MHD_Connection *conn, struct request *r)
{
    enum MHD_Result ret;

    if (r->action == ACT_DROP || !r->resp)
        return MHD_NO; /* MHD closes the connection */
    ret = MHD_queue_response(conn, r->status, r->resp);
    MHD_destroy_response(r->resp);
    r->resp = NULL;
    if (r->status / 100 < 6)
        count(&server->stats.status_class[r->status / 100]);
    atomic_fetch_add_explicit(&server->stats.latency_us_sum,
                              (uint64_t)(sl_mock_now_us() - r->start_us),
                              memory_order_relaxed);
    count(&server->stats.answered);
    return ret;
}

static bool append_body(struct sl_mock_server *server, struct request *r,
                        const char *data, size_t size)
{
    size_t max = server->cfg->max_body_bytes;

    if (r->too_big || size > max - r->len) {
        r->too_big = true;
        return true; /* discard; answered with 413 */
    }
    if (r->len + size > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + size)
            cap *= 2;
        if (cap > max)
            cap = max;
        char *body = realloc(r->body, cap);
        if (!body)
            return false;
        r->body = body;
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, size);
    r->len += size;
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct loop *lp = cls;
    struct sl_mock_server *server = lp->server;
    struct request *r = *con_cls;

    (void)version;
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        r->start_us = sl_mock_now_us();
        r->ep = route(url);
        *con_cls = r;
        count(&server->stats.requests);
        count(&server->stats.endpoint[r->ep]);
        /* Refuse a declared oversize body before reading any of it. */
        const char *cl = MHD_lookup_connection_value(
            conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > server->cfg->max_body_bytes) {
            r->too_big = true;
            respond_error(r, MHD_HTTP_CONTENT_TOO_LARGE,
                          "request body exceeds --max-body-bytes",
                          "invalid_request_error");
            return finish(server, conn, r);
        }
        return MHD_YES;
    }
    if (*upload_data_size) {
        bool ok = append_body(server, r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return ok ? MHD_YES : MHD_NO;
    }
    if (r->parked) {
        r->parked = false;
        atomic_fetch_sub(&server->stats.suspended, 1);
        return finish(server, conn, r);
    }
    prepare(lp, conn, r, method);
    if (r->due_us > sl_mock_now_us() && !atomic_load(&server->stopping)) {
        r->parked = true;
        atomic_fetch_add(&server->stats.suspended, 1);
        sl_mock_timer_park(lp->timer, conn, r->due_us);
        return MHD_YES;
    }
    return finish(server, conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct loop *lp = cls;
    struct request *r = *con_cls;

    (void)conn;
    (void)toe;
    if (!r)
        return;
    if (r->parked) /* closed while parked: the client left, or the stop */
        atomic_fetch_sub(&lp->server->stats.suspended, 1);
    if (r->resp)
        MHD_destroy_response(r->resp);
    free(r->body);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t len;

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    len = strlen(buf);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        buf[--len] = '\0';
    /* Our own MHD_NO ('reset', 'timeout') is logged as an internal
     * error; it is the intended outcome, so it is only debug. */
    sl_log(strstr(buf, "Application reported internal error") ? SL_LOG_DEBUG
                                                              : SL_LOG_WARN,
           "mock-infer", "libmicrohttpd: %s", buf);
}

/* Parse "host:port" or "[v6]:port" into *resp (freeaddrinfo). */
static int parse_listen(const char *listen, struct addrinfo **resp,
                        char *errstr, size_t errstr_size)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags =
                                 AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE};
    size_t hlen;
    int rc;

    *resp = NULL;
    if (!colon || colon == listen || !colon[1])
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "--listen '%s': expected HOST:PORT", listen);
    hlen = (size_t)(colon - listen);
    if (listen[0] == '[' && hlen >= 2 && listen[hlen - 1] == ']') {
        listen++;
        hlen -= 2;
    }
    if (hlen >= sizeof(host))
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "--listen: host too long");
    memcpy(host, listen, hlen);
    host[hlen] = '\0';
    rc = getaddrinfo(host, colon + 1, &hints, resp);
    if (rc)
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "--listen '%s%s': %s (give a numeric address "
                         "and port)",
                         host, colon, gai_strerror(rc));
    return 0;
}

/*
 * Wait until the loop has work: an event on the daemon's sockets (its
 * epoll fd polls readable while an event is pending, without taking it),
 * the next parked connection's due time, MHD's own timeout (0 while it
 * has ready connections left), or a stop.
 */
static void loop_wait(struct loop *lp, int epoll_fd)
{
    struct pollfd pfd[2] = {{.fd = epoll_fd, .events = POLLIN},
                            {.fd = lp->wake_fd, .events = POLLIN}};
    MHD_UNSIGNED_LONG_LONG mhd_ms;
    int64_t wait_us = -1, due = sl_mock_timer_next_us(lp->timer);

    if (MHD_get_timeout(lp->daemon, &mhd_ms) == MHD_YES)
        wait_us = mhd_ms < (MHD_UNSIGNED_LONG_LONG)(INT64_MAX / 1000)
                      ? (int64_t)mhd_ms * 1000
                      : INT64_MAX;
    if (due >= 0) {
        int64_t left = due - sl_mock_now_us();
        if (left < 0)
            left = 0;
        if (wait_us < 0 || left < wait_us)
            wait_us = left;
    }
    struct timespec ts = {.tv_sec = wait_us / 1000000,
                          .tv_nsec = (wait_us % 1000000) * 1000};
    /* EINTR or an error: the caller's loop simply looks again. */
    (void)ppoll(pfd, 2, wait_us < 0 ? NULL : &ts, NULL);
}

/*
 * The loop's thread.  MHD_run() handles everything ready without
 * blocking; the waiting is ours.  MHD's own polling thread is not used:
 * in libmicrohttpd 0.9.75 (daemon.c, MHD_epoll()) a call of epoll_wait()
 * that returns a full batch of MAX_EVENTS (128) events is followed by
 * another with the same blocking timeout before any of the batch is
 * handled, so 128 connections whose requests arrived together waited for
 * a new event, up to the connection timeout.  MHD_run() passes timeout 0.
 */
static void *loop_main(void *arg)
{
    struct loop *lp = arg;
    struct sl_mock_server *server = lp->server;
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(lp->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    int epoll_fd = info ? info->epoll_fd : -1;

    /* Wake-ups are deadlines: ask the kernel not to round them up. */
    prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
    while (!atomic_load(&server->stopping)) {
        sl_mock_timer_resume_due(lp->timer, sl_mock_now_us());
        MHD_run(lp->daemon);
        loop_wait(lp, epoll_fd);
    }
    /* Stop accepting; answer the delayed requests now ('timeout' ones
     * are dropped when resumed, 'trickle' ones end: 'stopping'). */
    MHD_quiesce_daemon(lp->daemon);
    lp->resumed_at_stop = sl_mock_timer_drain(lp->timer);
    MHD_run(lp->daemon);
    return NULL;
}

/* Bind and listen on 'ai': the socket the daemons share, non-blocking as
 * MHD needs when several daemons accept on it. */
static int open_listener(const struct addrinfo *ai, const char *listen_text,
                         int *fdp, char *errstr, size_t errstr_size)
{
    int fd =
        socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1, err;

    *fdp = -1;
    if (fd < 0)
        return sl_seterr(sl_err_from_errno(errno), errstr, errstr_size,
                         "cannot listen on %s: socket: %s", listen_text,
                         strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, SOMAXCONN)) {
        err = errno;
        close(fd);
        return sl_seterr(sl_err_from_errno(err), errstr, errstr_size,
                         "cannot listen on %s: %s", listen_text, strerror(err));
    }
    *fdp = fd;
    return 0;
}

static unsigned bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname(fd, (struct sockaddr *)&ss, &len))
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

/* Create loop 'i' and its daemon (not its thread). */
static int loop_init(struct sl_mock_server *server, unsigned i, char *errstr,
                     size_t errstr_size)
{
    const struct sl_mock_config *cfg = server->cfg;
    struct loop *lp = &server->loops[i];
    /* The connection limit split over the loops, the rest to the first. */
    unsigned limit = cfg->connection_limit / server->nloops +
                     (i == 0 ? cfg->connection_limit % server->nloops : 0);
    /* External epoll (our loop); suspend/resume for delays; TURBO
     * (optimistic reads and writes) serves about 1.5x the requests at
     * latency 0. */
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG | MHD_USE_TURBO;
    int err;

    lp->server = server;
    lp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->wake_fd < 0)
        return sl_seterr(sl_err_from_errno(errno), errstr, errstr_size,
                         "cannot start an HTTP loop: eventfd: %s",
                         strerror(errno));
    err = sl_mock_timer_new(&lp->timer, (size_t)limit + TIMER_SLACK);
    if (err)
        return sl_seterr(err, errstr, errstr_size,
                         "cannot start an HTTP loop: %s", sl_strerror(err));
    lp->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, lp,
        /* The logger must come first to catch every message. */
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, server,
        MHD_OPTION_LISTEN_SOCKET, server->listen_fd,
        MHD_OPTION_CONNECTION_LIMIT, limit > 0 ? limit : 1u,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, lp, MHD_OPTION_END);
    if (!lp->daemon)
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "cannot start the HTTP daemon on %s", cfg->listen);
    return 0;
}

int sl_mock_server_start(struct sl_mock_server **serverp,
                         const struct sl_mock_config *cfg, char *errstr,
                         size_t errstr_size)
{
    struct sl_mock_server *server;
    struct addrinfo *ai;
    int err;

    *serverp = NULL;
    err = parse_listen(cfg->listen, &ai, errstr, errstr_size);
    if (err)
        return err;
    server = calloc(1, sizeof(*server));
    if (server) {
        server->nloops = cfg->threads > 0 ? cfg->threads : 1;
        server->loops = calloc(server->nloops, sizeof(*server->loops));
    }
    if (!server || !server->loops) {
        freeaddrinfo(ai);
        if (server)
            free(server);
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    }
    server->cfg = cfg;
    server->listen_fd = -1;
    for (unsigned i = 0; i < server->nloops; i++)
        server->loops[i].wake_fd = -1;
    pthread_mutex_init(&server->keys_lock, NULL);
    err =
        open_listener(ai, cfg->listen, &server->listen_fd, errstr, errstr_size);
    freeaddrinfo(ai);
    for (unsigned i = 0; !err && i < server->nloops; i++)
        err = loop_init(server, i, errstr, errstr_size);
    for (unsigned i = 0; !err && i < server->nloops; i++) {
        struct loop *lp = &server->loops[i];
        int rc = pthread_create(&lp->thread, NULL, loop_main, lp);
        if (rc)
            err =
                sl_seterr(sl_err_from_errno(rc), errstr, errstr_size,
                          "cannot start an HTTP loop thread: %s", strerror(rc));
        lp->running = !rc;
    }
    if (err) {
        sl_mock_server_stop(server, NULL);
        return err;
    }
    server->port = bound_port(server->listen_fd);
    *serverp = server;
    return 0;
}

unsigned sl_mock_server_port(const struct sl_mock_server *server)
{
    return server->port;
}

json_t *sl_mock_server_stats_json(struct sl_mock_server *server)
{
    struct sl_mock_stats *st = &server->stats;
    json_t *eps = json_object(), *faults = json_object();
    uint64_t answered = load(&st->answered);
    uint64_t mean_us = answered ? load(&st->latency_us_sum) / answered : 0;

    for (int i = 0; eps && i < SL_MOCK_EP_COUNT; i++)
        json_object_set_new(eps, endpoint_keys[i],
                            json_integer((json_int_t)load(&st->endpoint[i])));
    for (int i = 1; faults && i < SL_MOCK_FAULT_COUNT; i++)
        json_object_set_new(faults, fault_names[i],
                            json_integer((json_int_t)load(&st->fault[i])));
    return json_pack(
        "{s:I, s:o*, s:o*, s:{s:I, s:I, s:I}, s:I, s:I, s:I}", "requests",
        (json_int_t)load(&st->requests), "endpoints", eps, "faults", faults,
        "status", "2xx", (json_int_t)load(&st->status_class[2]), "4xx",
        (json_int_t)load(&st->status_class[4]), "5xx",
        (json_int_t)load(&st->status_class[5]), "answered",
        (json_int_t)answered, "mean_latency_us", (json_int_t)mean_us,
        "suspended", (json_int_t)atomic_load(&st->suspended));
}

void sl_mock_server_stop(struct sl_mock_server *server, json_t **statsp)
{
    size_t resumed = 0;

    if (statsp)
        *statsp = NULL;
    if (!server)
        return;
    atomic_store(&server->stopping, true);
    for (unsigned i = 0; i < server->nloops; i++) {
        struct loop *lp = &server->loops[i];
        if (lp->running) {
            uint64_t one = 1;
            if (write(lp->wake_fd, &one, sizeof(one)) < 0)
                sl_log(SL_LOG_WARN, "mock-infer",
                       "cannot wake HTTP loop %u to stop it: %s", i,
                       strerror(errno));
            pthread_join(lp->thread, NULL);
            lp->running = false;
            resumed += lp->resumed_at_stop;
        }
    }
    for (unsigned i = 0; i < server->nloops; i++) {
        struct loop *lp = &server->loops[i];
        if (lp->daemon) {
            /* A loop whose thread never ran still holds the shared
             * socket in its daemon: MHD_stop_daemon() would close it. */
            MHD_quiesce_daemon(lp->daemon);
            /* Every parked connection was resumed (sl_mock_timer_drain):
             * MHD panics on a suspended connection at stop. */
            MHD_stop_daemon(lp->daemon);
        }
        sl_mock_timer_destroy(lp->timer);
        if (lp->wake_fd >= 0)
            close(lp->wake_fd);
    }
    if (server->listen_fd >= 0)
        close(server->listen_fd);
    if (resumed > 0)
        sl_log(SL_LOG_INFO, "mock-infer",
               "shutdown: resumed %zu parked connections", resumed);
    if (statsp) {
        *statsp = sl_mock_server_stats_json(server);
        /* Connections still parked at the stop were closed by MHD. */
        json_object_del(*statsp, "suspended");
    }
    pthread_mutex_destroy(&server->keys_lock);
    free(server->loops);
    free(server);
}
