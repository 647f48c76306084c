/*
 * JSON Pointer (RFC 6901) lookups over jansson values: "/a/0/b~1c" names
 * a member or array element; "" names the whole document.  Used to pick a
 * backend's result out of its reply (result_pointer).
 */
#ifndef SL_JSONPTR_H
#define SL_JSONPTR_H

#include <jansson.h>

/*
 * Find the value named by 'ptr' in 'root'.
 *
 * Returns 0 and sets *valuep (borrowed from 'root'); -SL_ENOTFOUND when
 * the pointer names nothing in 'root' (a missing member, an index past
 * the end, "-", or a step into a scalar); -SL_EINVAL when 'ptr' is not a
 * valid pointer (does not start with '/', bad '~' escape, an array index
 * with a leading zero or a sign).  On failure *valuep is NULL.  Any
 * thread.
 */
int sl_jsonptr_get(json_t *root, const char *ptr, json_t **valuep);

#endif
