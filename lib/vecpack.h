/*
 * A float32 vector carried from a model's reply to its row without a
 * json_t a number: for a base64 embedding that only a real[] column
 * stores (sink.postgres.vectors_in_results: false), 256 json_reals cost
 * the worker more than the rest of the message together (allocated,
 * read back as float4s, freed).  The value is an object whose one key is
 * "\0f32" - a key no parsed reply can hold (jansson refuses \u0000 in
 * keys, and the yajl path leaves every "\u" to jansson) - with the
 * floats' little-endian bytes as a string.  Only the row builder reads
 * it; the results column never holds it (row_submit.c leaves the vector
 * columns' results out when it is used).
 */
#ifndef SL_VECPACK_H
#define SL_VECPACK_H

#include <jansson.h>
#include <stddef.h>

/* 'n' finite float32s, little-endian, at 'le' (n * 4 bytes), as one
 * value.  NULL when memory is short.  Any thread. */
json_t *sl_vecpack_new(const unsigned char *le, size_t n);

/* The bytes of 'j' when it is such a value, with its float count in
 * *np; else NULL.  Any thread. */
const unsigned char *sl_vecpack_get(const json_t *j, size_t *np);

#endif
