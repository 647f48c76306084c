/*
 * A faster json_loadb() for model server replies: yajl reads the text (a
 * table-driven lexer, a few instructions a character where jansson's costs
 * ~155 in a long string) and the tree built is jansson's own, the same one
 * json_loadb(buf, len, 0, ...) builds.
 */
#ifndef SL_JSONLOAD_H
#define SL_JSONLOAD_H

#include <jansson.h>

#include <stddef.h>

/*
 * Parse buf[0..len) as one JSON object or array and return the tree that
 * json_loadb(buf, len, 0, &err) returns for it: equal values, the same key
 * order, a duplicate key's last value, integers as integers and every
 * other number as a real.
 *
 * Returns NULL whenever jansson might parse the text differently or
 * reject it, and then the caller calls json_loadb() for its value or its
 * error text: any text yajl rejects (bad syntax, trailing bytes, invalid
 * UTF-8), a '"' after the value (an unterminated string there passes
 * yajl 2.1), a top level that is not an object or an array, the bytes "\u"
 * anywhere (escapes of surrogates and NUL), a form feed or vertical tab
 * (whitespace to yajl, not to jansson), text jansson's UTF-8 check
 * refuses, nesting deeper than jansson's 2048 levels, an integer outside
 * json_int_t, a real that overflows, and out of memory.  The caller owns
 * the tree (json_decref()).  Any thread.
 */
json_t *sl_json_loadb_fast(const char *buf, size_t len);

#endif
