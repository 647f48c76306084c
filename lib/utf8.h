/*
 * UTF-8 checks for bytes that come from outside (payloads, keys): whether
 * they are valid, and a printable copy for logs and error text.
 */
#ifndef SL_UTF8_H
#define SL_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Length of the longest valid UTF-8 prefix of s[0..len) (overlong forms,
 * surrogates and code points past U+10FFFF are invalid).  Any thread.
 */
size_t sl_utf8_valid_prefix(const char *s, size_t len);

/* True when s[0..len) is valid UTF-8 with no NUL byte.  Any thread. */
bool sl_utf8_is_clean(const char *s, size_t len);

/*
 * Copy s[0..len) into out[0..size) as valid UTF-8 text, writing each byte
 * of an invalid sequence and each NUL as "\xNN", and truncating (with
 * "...") to fit.  Always NUL-terminates when size > 0.  Returns out.
 */
char *sl_utf8_printable(const char *s, size_t len, char *out, size_t size);

/*
 * A malloc'd copy of s[0..len) with each NUL byte and each byte of an
 * invalid sequence replaced by '?', so that it is valid UTF-8 text of the
 * same length.  Returns NULL when memory is short.  Any thread.
 */
char *sl_utf8_sanitize(const char *s, size_t len);

#endif
