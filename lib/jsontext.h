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
 * json_dumps(j, flags) with each real printed in the fewest digits (15
 * to 17) that read back as the same double: a model's 0.6, 0.1 and 1e-7
 * come back as sent, and 0.30000000000000004 keeps its 17 digits, each
 * real on its own.  Strings and other scalars are printed by jansson with
 * the same flags.  A JSON_REAL_PRECISION in 'flags' is replaced.
 *
 * The remaining edge: text that is not JSON_COMPACT, or asks for
 * JSON_INDENT, JSON_SORT_KEYS or JSON_EMBED, is written by jansson with
 * one precision for the whole document (sl_jsontext_precision()), so
 * there one real that needs 17 digits makes 0.6 print as
 * 0.59999999999999998 (still the same double).  A value that is not a
 * number as typed (a string "0.6") is never touched.
 *
 * Returns malloc'd text (free()), or NULL like json_dumps() (out of
 * memory, a non-finite real, nesting deeper than 2048, or a scalar
 * without JSON_ENCODE_ANY).  Any thread, for a value no other thread
 * changes.
 */
char *sl_jsontext_dumps(const json_t *j, size_t flags);

struct sl_strbuf;

/*
 * Append 'j' when it is a string jansson would write verbatim with
 * 'flags' (nothing to escape) or an integer, byte for byte as
 * json_dumps(j, flags | JSON_ENCODE_ANY) writes it, without jansson's
 * writer.  1 when written, 0 when 'j' is another value (then nothing is
 * appended), -1 when out of memory.
 */
int sl_jsontext_put_plain(struct sl_strbuf *o, const json_t *j, size_t flags);

#endif
