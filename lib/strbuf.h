/*
 * A growable, NUL-terminated text buffer: the one used wherever text is
 * built piece by piece (JSON text, templates, SQL).  A zeroed buffer is
 * empty.  A failed allocation is sticky: later appends do nothing and
 * sl_strbuf_done() returns NULL, so a builder checks once, at the end.
 */
#ifndef SL_STRBUF_H
#define SL_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct sl_strbuf {
    char *p;     /* the text, NUL-terminated once allocated; owned */
    size_t len;  /* bytes used, the NUL not counted */
    size_t cap;  /* bytes allocated */
    bool failed; /* an allocation failed: the text is incomplete */
};

/* Append s[0..n).  0, or -SL_ENOMEM (now and after).  Any thread. */
int sl_strbuf_add(struct sl_strbuf *b, const void *s, size_t n);

/* Append printf-formatted text.  0, or -SL_ENOMEM.  Any thread. */
int sl_strbuf_addf(struct sl_strbuf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The text, malloc'd, for the caller to free ("" when nothing was added);
 * or NULL, with the buffer freed, when an allocation failed.  'b' is left
 * empty either way.  Any thread.
 */
char *sl_strbuf_done(struct sl_strbuf *b);

/* Free the text; 'b' is left empty.  Any thread. */
void sl_strbuf_free(struct sl_strbuf *b);

#endif
