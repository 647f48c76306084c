/*
 * The growable text buffer (strbuf.h): doubling growth, a sticky failure.
 */
#include "strbuf.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 256 /* bytes of the first allocation, at least */

/* Room for 'more' bytes and the NUL.  0 or -SL_ENOMEM. */
static int reserve(struct sl_strbuf *b, size_t more)
{
    size_t cap;
    char *p;

    if (b->failed)
        return -SL_ENOMEM;
    if (b->len + more + 1 <= b->cap)
        return 0;
    cap = b->cap ? b->cap : FIRST_CAP;
    while (cap < b->len + more + 1)
        cap *= 2;
    if (!(p = realloc(b->p, cap))) {
        b->failed = true;
        return -SL_ENOMEM;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

int sl_strbuf_add(struct sl_strbuf *b, const void *s, size_t n)
{
    if (reserve(b, n) < 0)
        return -SL_ENOMEM;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

int sl_strbuf_addf(struct sl_strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return -SL_ENOMEM;
    }
    if (reserve(b, (size_t)n) < 0)
        return -SL_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

char *sl_strbuf_done(struct sl_strbuf *b)
{
    char *p;

    if (sl_strbuf_add(b, "", 0) < 0) {
        sl_strbuf_free(b);
        return NULL;
    }
    p = b->p;
    /*
     * The text may be kept long (a row's results wait in the sink's
     * backlog, 10000 of them by default): give back what the doubling left
     * unused.  Shrinking splits the block in place; nothing is copied.
     */
    if (b->cap > b->len + 1) {
        char *fit = realloc(p, b->len + 1);
        if (fit)
            p = fit;
    }
    memset(b, 0, sizeof(*b));
    return p;
}

void sl_strbuf_free(struct sl_strbuf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}
