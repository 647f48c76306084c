/*
 * FNV-1a 64: the one hash for in-memory tables (in-flight ids, ordering
 * lanes, the Kafka source's partitions) and for mock-infer's documented
 * deterministic outputs.
 */
#ifndef SL_HASH_H
#define SL_HASH_H

#include <stddef.h>
#include <stdint.h>

#define SL_FNV1A64_INIT 0xcbf29ce484222325ULL /* the offset basis */

/*
 * Continue FNV-1a 64 from 'h' (SL_FNV1A64_INIT to start) over
 * data[0..len).  Any thread.
 */
uint64_t sl_fnv1a64(uint64_t h, const void *data, size_t len);

#endif
