/*
 * Open addressing with linear probing over a power-of-two table at most
 * half full; removal shifts later entries back, so there are no
 * tombstones and lookups stay short however many ids come and go.
 */
#include "idset.h"
#include "err.h"
#include "hash.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sl_idset {
    char (*ids)[SL_IDSET_ID_MAX + 1]; /* slots; "" is empty */
    size_t mask;                      /* slots - 1 */
    size_t max;                       /* ids allowed */
    size_t count;                     /* ids held */
};

static size_t hash(const char *id)
{
    return (size_t)sl_fnv1a64(SL_FNV1A64_INIT, id, strlen(id));
}

struct sl_idset *sl_idset_new(size_t max)
{
    struct sl_idset *s = calloc(1, sizeof(*s));
    size_t slots = 16;

    if (!s)
        return NULL;
    while (slots < 2 * max)
        slots *= 2;
    s->ids = calloc(slots, sizeof(*s->ids));
    if (!s->ids) {
        free(s);
        return NULL;
    }
    s->mask = slots - 1;
    s->max = max;
    return s;
}

void sl_idset_destroy(struct sl_idset *s)
{
    if (!s)
        return;
    free(s->ids);
    free(s);
}

/* The slot holding 'id', or the empty slot where it would go. */
static size_t find(const struct sl_idset *s, const char *id)
{
    size_t i = hash(id) & s->mask;
    while (s->ids[i][0] && strcmp(s->ids[i], id) != 0)
        i = (i + 1) & s->mask;
    return i;
}

int sl_idset_add(struct sl_idset *s, const char *id)
{
    if (strlen(id) > SL_IDSET_ID_MAX || !*id)
        return -SL_ETOOBIG;
    size_t i = find(s, id);
    if (s->ids[i][0])
        return 0;
    if (s->count == s->max)
        return -SL_ETOOBIG;
    strcpy(s->ids[i], id);
    s->count++;
    return 0;
}

bool sl_idset_has(const struct sl_idset *s, const char *id)
{
    return *id && strlen(id) <= SL_IDSET_ID_MAX && s->ids[find(s, id)][0];
}

void sl_idset_remove(struct sl_idset *s, const char *id)
{
    if (!*id || strlen(id) > SL_IDSET_ID_MAX)
        return;
    size_t i = find(s, id);
    if (!s->ids[i][0])
        return;
    s->ids[i][0] = '\0';
    s->count--;
    /* Shift back every later entry of the run that now sits after a hole
     * it could fill, so no lookup stops early at the new empty slot. */
    for (size_t j = (i + 1) & s->mask; s->ids[j][0]; j = (j + 1) & s->mask) {
        size_t home = hash(s->ids[j]) & s->mask;
        /* Is 'home' cyclically outside (i, j]?  Then move j into i. */
        bool outside =
            i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (outside) {
            memcpy(s->ids[i], s->ids[j], sizeof(s->ids[i]));
            s->ids[j][0] = '\0';
            i = j;
        }
    }
}

size_t sl_idset_count(const struct sl_idset *s)
{
    return s->count;
}
