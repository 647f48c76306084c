/*
 * The one table of error codes, their text and retriability.
 */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static const struct {
    const char *name;
    const char *text;
    bool retriable;
} err_table[SL_ERR_COUNT_] = {[SL_OK] = {"SL_OK", "success", false},
#define SL_ERR_ROW(n, r, t) [SL_##n] = {"SL_" #n, t, r},
                              SL_ERRORS(SL_ERR_ROW)
#undef SL_ERR_ROW
};

static int err_index(int err)
{
    if (err < 0)
        err = -err;
    return err < SL_ERR_COUNT_ ? err : -1;
}

const char *sl_strerror(int err)
{
    int i = err_index(err);
    return i < 0 ? "unknown error" : err_table[i].text;
}

const char *sl_err_name(int err)
{
    int i = err_index(err);
    return i < 0 ? "SL_E?" : err_table[i].name;
}

bool sl_err_retriable(int err)
{
    int i = err_index(err);
    return i < 0 ? false : err_table[i].retriable;
}

int sl_err_from_errno(int errnum)
{
    switch (errnum) {
    case 0:
        return 0;
    case ENOMEM:
        return -SL_ENOMEM;
    case EINVAL:
        return -SL_EINVAL;
    case ETIMEDOUT:
        return -SL_ETIMEDOUT;
    case EAGAIN:
    case EINTR:
        return -SL_EAGAIN;
    case ENOENT:
        return -SL_ENOTFOUND;
    case EBUSY:
        return -SL_EBUSY;
    case ECONNREFUSED:
    case ECONNRESET:
    case EPIPE:
    case ENOTCONN:
    case EHOSTUNREACH:
    case ENETUNREACH:
        return -SL_ECONN;
    case E2BIG:
    case EFBIG:
    case EMSGSIZE:
        return -SL_ETOOBIG;
    case ECANCELED:
        return -SL_ECANCELED;
    default:
        return -SL_EIO;
    }
}

int sl_seterr(int err, char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
