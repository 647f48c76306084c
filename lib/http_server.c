/*
 * libmicrohttpd glue: collect a capped body, dispatch on method and path,
 * send what the handler filled in, and count every answer by status.
 */
#include "http_server.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "utf8.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ROUTES 16
#define STATUS_MIN 100 /* statuses counted: STATUS_MIN to STATUS_MAX */
#define STATUS_MAX 599
#define SEND_GRACE_MS 1000 /* at stop, for answers still being sent */

struct route {
    char method[8];      /* "GET" */
    char path[64];       /* exact path */
    sl_http_handler *fn; /* the handler */
    void *arg;           /* its argument */
};

struct sl_http_server {
    struct MHD_Daemon *mhd;          /* running daemon, or NULL */
    struct sockaddr_in addr;         /* where to listen */
    char listen[128];                /* as configured, for messages */
    size_t max_body;                 /* request body cap */
    int threads;                     /* handler threads; -1: one per
                                        connection */
    struct route routes[MAX_ROUTES]; /* the routes */
    int nroutes;                     /* used */
    int port;                        /* bound port */
    _Atomic uint64_t sent[STATUS_MAX - STATUS_MIN + 1]; /* answers by
                                                           status */
    pthread_mutex_t mu;                                 /* guards 'active' */
    pthread_cond_t idle;                                /* 'active' reached 0 */
    int active; /* requests begun, not completed */
};

/* Per-request state while the body arrives. */
struct upload {
    char *body;    /* collected so far */
    size_t len;    /* bytes */
    int too_large; /* past max_body */
    int answered;  /* a response is queued already */
};

/* Queue 'res' (its body is handed over) on 'conn'; 'allow' names the
 * methods of a 405.  Counts the answer. */
static enum MHD_Result send_response(struct sl_http_server *srv,
                                     struct MHD_Connection *conn,
                                     struct sl_http_response *res,
                                     const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        res->body_len, res->body ? res->body : (void *)"",
        res->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);

    if (!r) {
        free(res->body);
        return MHD_NO; /* the connection is closed */
    }
    MHD_add_response_header(r, "Content-Type",
                            res->content_type ? res->content_type
                                              : "text/plain");
    if (res->retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", res->retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    if (allow)
        MHD_add_response_header(r, "Allow", allow);
    enum MHD_Result ret = MHD_queue_response(conn, (unsigned)res->status, r);
    MHD_destroy_response(r);
    if (ret == MHD_YES && res->status >= STATUS_MIN &&
        res->status <= STATUS_MAX)
        atomic_fetch_add_explicit(&srv->sent[res->status - STATUS_MIN], 1,
                                  memory_order_relaxed);
    return ret;
}

/* Answer an error of the server's own, {"error": text}. */
static enum MHD_Result send_error(struct sl_http_server *srv,
                                  struct MHD_Connection *conn, int status,
                                  const char *text, const char *allow)
{
    struct sl_http_response res = {0};

    sl_http_response_error(&res, status, text);
    return send_response(srv, conn, &res, allow);
}

static enum MHD_Result send_too_large(struct sl_http_server *srv,
                                      struct MHD_Connection *conn)
{
    char text[128];

    snprintf(text, sizeof(text),
             "the request body is larger than %zu bytes "
             "(gateway.max_body_bytes)",
             srv->max_body);
    return send_error(srv, conn, 413, text, NULL);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
                                  const char *url, const char *method,
                                  const char *version, const char *data,
                                  size_t *data_size, void **con_cls)
{
    struct sl_http_server *srv = cls;
    struct upload *up = *con_cls;
    (void)version;

    if (!up) {
        up = calloc(1, sizeof(*up));
        if (!up)
            return MHD_NO;
        *con_cls = up;
        pthread_mutex_lock(&srv->mu);
        srv->active++;
        pthread_mutex_unlock(&srv->mu);
        /* A declared length past the cap: refuse before reading a byte
         * (a client that sent Expect: 100-continue sends none). */
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                     "Content-Length");
        char *end;
        unsigned long long n = cl ? strtoull(cl, &end, 10) : 0;
        if (cl && end != cl && n > srv->max_body) {
            up->too_large = 1;
            up->answered = 1;
            return send_too_large(srv, conn);
        }
        return MHD_YES;
    }
    if (up->answered) { /* a body sent anyway is dropped */
        *data_size = 0;
        return MHD_YES;
    }
    if (*data_size) {
        if (!up->too_large && up->len + *data_size <= srv->max_body) {
            char *b = realloc(up->body, up->len + *data_size + 1);
            if (!b)
                return MHD_NO;
            memcpy(b + up->len, data, *data_size);
            up->body = b;
            up->len += *data_size;
            up->body[up->len] = '\0';
        } else {
            up->too_large = 1;
        }
        *data_size = 0;
        return MHD_YES;
    }
    if (up->too_large)
        return send_too_large(srv, conn);

    const struct route *rt = NULL;
    char allow[64] = "";
    for (int i = 0; i < srv->nroutes; i++) {
        if (strcmp(srv->routes[i].path, url) != 0)
            continue;
        /* A GET route answers HEAD too (MHD sends no body for it). */
        bool get = strcmp(srv->routes[i].method, "GET") == 0;
        if (strcmp(srv->routes[i].method, method) == 0 ||
            (get && strcmp(method, "HEAD") == 0))
            rt = &srv->routes[i];
        size_t n = strlen(allow);
        snprintf(allow + n, sizeof(allow) - n, "%s%s%s", n ? ", " : "",
                 srv->routes[i].method, get ? ", HEAD" : "");
    }
    if (!rt && allow[0]) {
        char text[192];
        snprintf(text, sizeof(text),
                 "method %.16s is not allowed on %.64s; "
                 "use %s",
                 method, url, allow);
        return send_error(srv, conn, 405, text, allow);
    }
    if (!rt) {
        char text[128];
        snprintf(text, sizeof(text), "no such path: %.64s", url);
        return send_error(srv, conn, 404, text, NULL);
    }

    struct sl_http_request req = {
        method, url,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"),
        up->body ? up->body : "", up->len};
    struct sl_http_response res = {.status = 200};
    rt->fn(rt->arg, &req, &res);
    return send_response(srv, conn, &res, NULL);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sl_http_server *srv = cls;
    struct upload *up = *con_cls;
    (void)conn;
    (void)toe;
    if (up) {
        free(up->body);
        free(up);
        *con_cls = NULL;
        pthread_mutex_lock(&srv->mu);
        if (--srv->active == 0)
            pthread_cond_broadcast(&srv->idle);
        pthread_mutex_unlock(&srv->mu);
    }
}

struct sl_http_server *sl_http_server_new(const char *listen, size_t max_body,
                                          int threads, char *errstr,
                                          size_t errstr_size)
{
    char host[64];
    const char *colon = strrchr(listen, ':');
    char *end;

    if (!colon || (size_t)(colon - listen) >= sizeof(host)) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size, "%s: expected host:port",
                  listen);
        return NULL;
    }
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    long port = strtol(colon + 1, &end, 10);
    struct sl_http_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return NULL;
    srv->addr.sin_family = AF_INET;
    srv->addr.sin_port = htons((uint16_t)port);
    if (*end || port < 0 || port > 65535 ||
        inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1",
                  &srv->addr.sin_addr) != 1) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "%s: expected an IPv4 host:port", listen);
        free(srv);
        return NULL;
    }
    snprintf(srv->listen, sizeof(srv->listen), "%s", listen);
    srv->max_body = max_body;
    srv->threads = threads < 0 ? -1 : threads > 0 ? threads : 2;
    pthread_condattr_t ca;
    pthread_mutex_init(&srv->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&srv->idle, &ca);
    pthread_condattr_destroy(&ca);
    return srv;
}

int sl_http_server_route(struct sl_http_server *srv, const char *method,
                         const char *path, sl_http_handler *fn, void *arg)
{
    if (srv->nroutes == MAX_ROUTES)
        return -SL_ETOOBIG;
    struct route *rt = &srv->routes[srv->nroutes++];
    snprintf(rt->method, sizeof(rt->method), "%s", method);
    snprintf(rt->path, sizeof(rt->path), "%s", path);
    rt->fn = fn;
    rt->arg = arg;
    return 0;
}

int sl_http_server_start(struct sl_http_server *srv, char *errstr,
                         size_t errstr_size)
{
    errno = 0;
    if (srv->threads < 0) /* handlers may block: never behind another */
        srv->mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                MHD_USE_POLL,
            0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR, &srv->addr,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
            MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT,
            60u, MHD_OPTION_END);
    else
        srv->mhd = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, 0, NULL, NULL,
            on_request, srv, MHD_OPTION_SOCK_ADDR, &srv->addr,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)srv->threads,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
            MHD_OPTION_CONNECTION_LIMIT, 1024u, MHD_OPTION_CONNECTION_TIMEOUT,
            60u, MHD_OPTION_END);
    if (!srv->mhd)
        return sl_seterr(-SL_EIO, errstr, errstr_size, "%s: cannot listen (%s)",
                         srv->listen,
                         errno ? strerror(errno) : "unknown error");
    const union MHD_DaemonInfo *info =
        MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : ntohs(srv->addr.sin_port);
    return 0;
}

int sl_http_server_port(const struct sl_http_server *srv)
{
    return srv->port;
}

uint64_t sl_http_server_responses(const struct sl_http_server *srv, int status)
{
    if (status < STATUS_MIN || status > STATUS_MAX)
        return 0;
    return atomic_load_explicit(&srv->sent[status - STATUS_MIN],
                                memory_order_relaxed);
}

void sl_http_server_destroy(struct sl_http_server *srv)
{
    if (!srv)
        return;
    if (srv->mhd) {
        /* Answers already made (a 503 at a hard stop) go out before the
         * connections close; a client that does not read is not waited
         * for long. */
        struct timespec until;
        sl_deadline_after(&until, SEND_GRACE_MS);
        pthread_mutex_lock(&srv->mu);
        while (srv->active > 0)
            if (pthread_cond_timedwait(&srv->idle, &srv->mu, &until) != 0)
                break;
        pthread_mutex_unlock(&srv->mu);
        MHD_stop_daemon(srv->mhd);
    }
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    free(srv);
}

void sl_http_response_text(struct sl_http_response *res, int status,
                           const char *content_type, const char *text)
{
    res->status = status;
    res->content_type = content_type;
    res->body = strdup(text);
    res->body_len = res->body ? strlen(res->body) : 0;
}

void sl_http_response_error(struct sl_http_response *res, int status,
                            const char *text)
{
    char *clean = sl_utf8_sanitize(text, strlen(text));
    json_t *doc = clean ? json_pack("{s:s}", "error", clean) : NULL;

    free(clean);
    res->body = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!res->body) {
        sl_http_response_text(res, 500, "text/plain", "out of memory\n");
        return;
    }
    res->status = status;
    res->content_type = "application/json";
    res->body_len = strlen(res->body);
}
