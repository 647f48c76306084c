/*
 * Error codes for all of libsluice.  Functions return 0 or a negative
 * SL_E* code; sl_strerror() turns a code into text for operators and
 * sl_err_retriable() says whether trying again later can succeed.
 */
#ifndef SL_ERR_H
#define SL_ERR_H

#include <stdbool.h>
#include <stddef.h>

/* X(name, retriable, text): one row per code, in one table. */
#define SL_ERRORS(X)                                                           \
    X(ENOMEM, false, "out of memory")                                          \
    X(EINVAL, false, "invalid argument")                                       \
    X(ETIMEDOUT, true, "timed out")                                            \
    X(ECLOSED, false, "closed")                                                \
    X(EAGAIN, true, "resource temporarily unavailable")                        \
    X(EIO, true, "input/output error")                                         \
    X(ECONFIG, false, "invalid configuration")                                 \
    X(ETOOBIG, false, "too large")                                             \
    X(ECONN, true, "connection failed")                                        \
    X(EPROTO, false, "protocol error")                                         \
    X(EHTTP, true, "HTTP error status")                                        \
    X(EDB, true, "database error")                                             \
    X(EDATA, false, "bad data")                                                \
    X(EKAFKA, false, "Kafka error")                                            \
    X(EREDIS, true, "Redis error")                                             \
    X(EDECODE, false, "cannot decode message")                                 \
    X(ENOTFOUND, false, "not found")                                           \
    X(EBUSY, true, "busy")                                                     \
    X(ESTATE, false, "operation not allowed in this state")                    \
    X(ECANCELED, false, "canceled")                                            \
    X(EDEADLINE, false, "deadline exceeded")                                   \
    X(EBREAKER, true, "circuit breaker open")                                  \
    X(ERATELIMIT, true, "rate limited")                                        \
    X(ESECRET, false, "secret unavailable or unsafe")

enum sl_err {
    SL_OK = 0,
#define SL_ERR_ENUM(name, retriable, text) SL_##name,
    SL_ERRORS(SL_ERR_ENUM)
#undef SL_ERR_ENUM
        SL_ERR_COUNT_ /* number of codes + 1; not an error */
};

/*
 * Text for 'err' (0, SL_E* or -SL_E*).  Never NULL; unknown codes give
 * "unknown error".  The string is static.  Any thread.
 */
const char *sl_strerror(int err);

/* Name of 'err' ("SL_ETIMEDOUT"), static, never NULL.  Any thread. */
const char *sl_err_name(int err);

/*
 * True when the operation that failed with 'err' may succeed if tried
 * again later (timeouts, lost connections, rate limits).  The one answer
 * to "retry?": a module translates its library's codes into SL_E* once
 * (the engine's error classes, Kafka's commit errors, PostgreSQL's
 * SQLSTATE) and asks here.  Any thread.
 */
bool sl_err_retriable(int err);

/*
 * Translate an errno value into an SL_E* code (negative), once, where it
 * enters our code.  Any thread.
 */
int sl_err_from_errno(int errnum);

/*
 * snprintf into errstr[errstr_size] when errstr is not NULL; returns
 * 'err' so that callers can write `return sl_seterr(-SL_EINVAL, ...)`.
 */
int sl_seterr(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
