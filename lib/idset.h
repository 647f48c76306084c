/*
 * A bounded set of short ids (Redis stream entry ids): which entries a
 * source holds in flight, so that a reclaim does not hand out an entry a
 * second time while its first delivery is still being processed.
 */
#ifndef SL_IDSET_H
#define SL_IDSET_H

#include <stdbool.h>
#include <stddef.h>

#define SL_IDSET_ID_MAX 47 /* longest id kept, in bytes */

struct sl_idset;

/* A set of at most 'max' ids.  NULL when memory is short.  Any thread. */
struct sl_idset *sl_idset_new(size_t max);

/* Free.  NULL is a no-op. */
void sl_idset_destroy(struct sl_idset *s);

/*
 * Add 'id'.  Returns 0 (also when already present), -SL_ETOOBIG when the
 * set is full or the id longer than SL_IDSET_ID_MAX.  Owning thread.
 */
int sl_idset_add(struct sl_idset *s, const char *id);

/* True when 'id' is in the set.  Owning thread. */
bool sl_idset_has(const struct sl_idset *s, const char *id);

/* Remove 'id' if present.  Owning thread. */
void sl_idset_remove(struct sl_idset *s, const char *id);

/* Number of ids held. */
size_t sl_idset_count(const struct sl_idset *s);

#endif
