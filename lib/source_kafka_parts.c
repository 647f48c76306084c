/*
 * The Kafka source's table of assigned partitions: a hash of parts by
 * topic and partition (lib/hash), with a one-entry cache for fetched
 * messages, which come in runs from one partition, and a direct-mapped
 * one for acks.  Its shape changes under ks->lock, for the readers of
 * sl_source_kafka_partitions().
 */
#include "source_kafka_int.h"

#include "hash.h"

#include <stdlib.h>
#include <string.h>

/* In memory only: nothing persistent depends on the bucket. */
static unsigned bucket_of(const char *topic, int32_t partition)
{
    uint64_t h = sl_fnv1a64(SL_FNV1A64_INIT, topic, strlen(topic));

    h = sl_fnv1a64(h, &partition, sizeof(partition));
    return (unsigned)(h % BUCKETS);
}

struct part *sl_source_kafka_part_find(struct kafka_source *ks,
                                       const char *topic, int32_t partition)
{
    struct part *p = ks->buckets[bucket_of(topic, partition)];
    for (; p; p = p->next)
        if (p->partition == partition && !strcmp(p->topic, topic))
            return p;
    return NULL;
}

struct part *sl_source_kafka_part_add(struct kafka_source *ks,
                                      const char *topic, int32_t partition)
{
    struct part *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->topic = strdup(topic);
    p->trk = sl_tracker_new(ks->window);
    if (!p->topic || !p->trk) {
        free(p->topic);
        sl_tracker_destroy(p->trk);
        free(p);
        return NULL;
    }
    p->partition = partition;
    p->next_offset = -1;
    atomic_init(&p->committed, -1);
    unsigned b = bucket_of(topic, partition);
    pthread_mutex_lock(&ks->lock);
    p->next = ks->buckets[b];
    ks->buckets[b] = p;
    ks->part_cnt++;
    atomic_store(&ks->st.assigned, (int32_t)ks->part_cnt);
    pthread_mutex_unlock(&ks->lock);
    return p;
}

void sl_source_kafka_part_free(struct kafka_source *ks, struct part *p)
{
    if (p->held) {
        sl_msg_destroy(p->held);
        ks->held_cnt--;
    }
    sl_tracker_destroy(p->trk);
    free(p->topic);
    free(p);
}

/* The part of a fetched message, through the one-entry cache. */
struct part *sl_source_kafka_part_of_rkm(struct kafka_source *ks,
                                         const rd_kafka_message_t *rkm,
                                         const char *topic)
{
    struct part *p = ks->last;

    if (p && ks->last_rkt == rkm->rkt && ks->last_name == topic &&
        p->partition == rkm->partition)
        return p;
    p = sl_source_kafka_part_find(ks, topic, rkm->partition);
    if (p) {
        ks->last = p;
        ks->last_rkt = rkm->rkt;
        ks->last_name = topic;
    }
    return p;
}

/* The part an acked message came from, through the direct-mapped cache. */
struct part *sl_source_kafka_part_of_ack(struct kafka_source *ks,
                                         const char *topic, int32_t partition)
{
    struct part **slot = &ks->ack_cache[(uint32_t)partition % ACK_CACHE];
    struct part *p = *slot;

    if (p && p->partition == partition && !strcmp(p->topic, topic))
        return p;
    p = sl_source_kafka_part_find(ks, topic, partition);
    if (p)
        *slot = p;
    return p;
}

void sl_source_kafka_part_remove(struct kafka_source *ks, struct part *p)
{
    unsigned b = bucket_of(p->topic, p->partition);

    ks->last = NULL;
    ks->last_rkt = NULL;
    ks->last_name = NULL;
    memset(ks->ack_cache, 0, sizeof(ks->ack_cache));
    pthread_mutex_lock(&ks->lock);
    for (struct part **pp = &ks->buckets[b]; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            ks->part_cnt--;
            break;
        }
    }
    atomic_store(&ks->st.assigned, (int32_t)ks->part_cnt);
    pthread_mutex_unlock(&ks->lock);
    sl_source_kafka_part_free(ks, p);
}
