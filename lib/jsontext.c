/*
 * Shortest round-trip printing of reals for jansson documents: find the
 * precision the document needs, then let jansson print with it.
 */
#include "jsontext.h"

#include <stdio.h>
#include <stdlib.h>

#define PREC_MIN 15     /* always exact for a decimal of <= 15 digits */
#define PREC_MAX 17     /* always enough for a double */
#define PREC_MASK 0x1fu /* JSON_REAL_PRECISION's bits in the flags */

/* Digits 'v' needs to read back as itself, PREC_MIN to PREC_MAX. */
static int real_precision(double v)
{
    char text[40];

    for (int p = PREC_MIN; p < PREC_MAX; p++) {
        snprintf(text, sizeof(text), "%.*g", p, v);
        if (strtod(text, NULL) == v)
            return p;
    }
    return PREC_MAX;
}

/* The precision 'j' needs, at least 'have'; stops early at PREC_MAX. */
static int need(const json_t *j, int have)
{
    const char *key;
    json_t *v;
    size_t i;

    if (have >= PREC_MAX)
        return have;
    switch (json_typeof(j)) {
    case JSON_REAL: {
        int p = real_precision(json_real_value(j));
        return p > have ? p : have;
    }
    case JSON_OBJECT:
        json_object_foreach((json_t *)j, key, v)
        {
            have = need(v, have);
            if (have >= PREC_MAX)
                break;
        }
        return have;
    case JSON_ARRAY:
        json_array_foreach((json_t *)j, i, v)
        {
            have = need(v, have);
            if (have >= PREC_MAX)
                break;
        }
        return have;
    default:
        return have;
    }
}

int sl_jsontext_precision(const json_t *j)
{
    return j ? need(j, PREC_MIN) : PREC_MIN;
}

char *sl_jsontext_dumps(const json_t *j, size_t flags)
{
    if (!j)
        return NULL;
    flags &= ~(size_t)JSON_REAL_PRECISION(PREC_MASK);
    return json_dumps(j, flags | JSON_REAL_PRECISION(sl_jsontext_precision(j)));
}
