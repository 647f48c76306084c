/*
 * The one HTTP listener of a sluice process (libmicrohttpd): /metrics,
 * /healthz, /readyz and the gateway's POST /v1/process.  Handlers are
 * plain functions that fill a response; request bodies are capped.
 */
#ifndef SL_HTTP_SERVER_H
#define SL_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct sl_http_request {
    const char *method;       /* "GET", "POST" ... */
    const char *path;         /* "/metrics" */
    const char *content_type; /* the Content-Type header, or NULL */
    const char *body;         /* request body, NUL-terminated; borrowed */
    size_t body_len;          /* its length */
};

struct sl_http_response {
    int status;               /* HTTP status; 200 unless set */
    char *body;               /* malloc'd; the server frees it */
    size_t body_len;          /* its length */
    const char *content_type; /* static; "text/plain" unless set */
    int retry_after_s;        /* > 0: send Retry-After */
};

/*
 * Fill 'res' for 'req'.  Runs on one of the server's threads; several may
 * run at once.  'arg' is the pointer given at registration.
 */
typedef void sl_http_handler(void *arg, const struct sl_http_request *req,
                             struct sl_http_response *res);

struct sl_http_server;

/*
 * A server for "host:port" (port 0: any free port) with request bodies
 * up to 'max_body' bytes and 'threads' handler threads
 * (negative: one thread per connection, for handlers that block, so that
 * no request ever waits behind another connection's handler).
 * Routes are added before sl_http_server_start().  Returns NULL and
 * fills errstr on a bad address.  Main thread.
 */
struct sl_http_server *sl_http_server_new(const char *listen, size_t max_body,
                                          int threads, char *errstr,
                                          size_t errstr_size);

/*
 * Route 'method' 'path' to 'fn' (a GET route answers HEAD too, without
 * the body).  The server answers by itself, each with
 * a JSON body {"error": "..."}: 404 for a path with no route, 405 with an
 * Allow header for a known path with another method, 413 for a body past
 * 'max_body'.  Returns 0, -SL_ETOOBIG past the route
 * table's size.  Main thread, before start.
 */
int sl_http_server_route(struct sl_http_server *srv, const char *method,
                         const char *path, sl_http_handler *fn, void *arg);

/*
 * Start listening.  Returns 0, or an SL_E* code with errstr naming the
 * address ("127.0.0.1:9464: cannot listen (Address already in use)").
 */
int sl_http_server_start(struct sl_http_server *srv, char *errstr,
                         size_t errstr_size);

/* The port actually bound (after start).  Any thread. */
int sl_http_server_port(const struct sl_http_server *srv);

/*
 * How many answers with 'status' (100 to 599) the server sent, the
 * handlers' and its own; 0 for any other status.  Any thread.
 */
uint64_t sl_http_server_responses(const struct sl_http_server *srv, int status);

/* Stop and free.  NULL is a no-op.  Main thread. */
void sl_http_server_destroy(struct sl_http_server *srv);

/* Helper for handlers: set a copy of 'text' as the body. */
void sl_http_response_text(struct sl_http_response *res, int status,
                           const char *content_type, const char *text);

/*
 * Helper for handlers: the error answer {"error": text} as
 * application/json ('text' is escaped; invalid UTF-8 becomes '?').  Out
 * of memory, a 500 with a plain-text body.  Any thread.
 */
void sl_http_response_error(struct sl_http_response *res, int status,
                            const char *text);

#endif
