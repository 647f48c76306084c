/*
 * 32-bit integers to and from bytes in a fixed order: network order for
 * PostgreSQL's binary formats, little-endian for base64 float32 vectors.
 */
#ifndef SL_BYTEORDER_H
#define SL_BYTEORDER_H

#include <stdint.h>

/* 'v' at p[0..4), most significant byte first. */
static inline void sl_put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* The value at p[0..4), least significant byte first. */
static inline uint32_t sl_get_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

#endif
