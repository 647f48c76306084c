/*
 * Packed float32 vectors (vecpack.h).
 */
#include "vecpack.h"

#define KEY "\0f32"
#define KEY_LEN 4

json_t *sl_vecpack_new(const unsigned char *le, size_t n)
{
    json_t *obj = json_object();
    json_t *bytes = json_stringn_nocheck((const char *)le, n * 4);

    if (!obj || !bytes) {
        json_decref(obj);
        json_decref(bytes);
        return NULL;
    }
    /* the _new setter takes 'bytes' also when it fails */
    if (json_object_setn_new_nocheck(obj, KEY, KEY_LEN, bytes) < 0) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

const unsigned char *sl_vecpack_get(const json_t *j, size_t *np)
{
    const json_t *bytes;

    if (!json_is_object(j) || json_object_size(j) != 1)
        return NULL;
    bytes = json_object_getn(j, KEY, KEY_LEN);
    if (!json_is_string(bytes) || json_string_length(bytes) % 4)
        return NULL;
    *np = json_string_length(bytes) / 4;
    return (const unsigned char *)json_string_value(bytes);
}
