/*
 * JSON text of results, rows and replies with every number as short as
 * it came: jansson prints reals with 17 significant digits unless told
 * otherwise, which turns a model's 0.6 into 0.59999999999999998.
 */
#ifndef SL_JSONTEXT_H
#define SL_JSONTEXT_H

#include <jansson.h>

/*
 * The fewest significant digits, from 15 to 17, at which every real in
 * 'j' prints as text that reads back as the same double (15 when 'j'
 * holds no real).  Any thread, for a value no other thread changes.
 */
int sl_jsontext_precision(const json_t *j);

/*
 * json_dumps(j, flags) with each real printed in sl_jsontext_precision(j)
 * digits: 0.6, 0.1 and 1e-7 come back as sent, and a real that needs 17
 * digits (0.30000000000000004) keeps them.  The precision is chosen per
 * document, so in a document that holds a real needing 17 digits every
 * real is printed with 17 (0.6 as 0.59999999999999998): still the same
 * double, but no longer the shortest text.  A JSON_REAL_PRECISION in
 * 'flags' is replaced.
 *
 * Returns malloc'd text (free()), or NULL like json_dumps() (out of
 * memory, a non-finite real, or a scalar without JSON_ENCODE_ANY).  Any
 * thread, for a value no other thread changes.
 */
char *sl_jsontext_dumps(const json_t *j, size_t flags);

#endif
