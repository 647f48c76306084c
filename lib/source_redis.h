/*
 * Redis sources: a Streams consumer group (XREADGROUP, XAUTOCLAIM, XACK
 * after the sink's ack) and a reliable list (BLMOVE into a per-consumer
 * processing list, LREM after the ack, heartbeat and reaper).  Both plug
 * into the generic source thread of source.h.
 */
#ifndef SL_SOURCE_REDIS_H
#define SL_SOURCE_REDIS_H

#include "source.h"

#include <stddef.h>
#include <stdint.h>

/* Configuration of either kind; zero fields take the defaults shown. */
struct sl_source_redis_conf {
    const char *url;           /* redis://[:password@]host:port[/db] */
    const char *password_env;  /* env variable with the password; or NULL */
    const char *password_file; /* file with it (mode 0600); or NULL */
    const char *key;           /* the stream or list key */
    const char *group;         /* stream: consumer group */
    const char *consumer;      /* stable, unique per replica (host + pid) */
    const char *start_id;      /* stream: group start when created; "0" */
    int count;                 /* entries per read; 256 */
    int block_ms;              /* wait per read, capped at 50 per poll; 50 */
    int min_idle_ms;           /* stream: claim entries idle this long;
                                  60000 */
    int claim_interval_ms;     /* stream: between XAUTOCLAIM runs; 5000 */
    int max_deliveries;        /* stream: past this, dead-letter; 10 */
    int ack_batch;             /* XACK / LREM per round trip; 256 */
    int commit_interval_ms;    /* flush acks at least this often; 1000 */
    size_t max_message_bytes;  /* longer payloads are dead-lettered; 1 MiB */
    int max_inflight;          /* read, not yet acked; 10000 */
    int heartbeat_ms;          /* list: heartbeat refresh and reaper; 1000 */
    const char *id_field;      /* list: JSON field used as entry id; "id" */
    int connect_timeout_ms;    /* 5000 */
    int command_timeout_ms;    /* 10000 */
};

/* Counters of one Redis source; written by the source thread. */
struct sl_source_redis_stats {
    uint64_t read;            /* entries handed to the queue */
    uint64_t claimed;         /* stream: entries taken over by XAUTOCLAIM */
    uint64_t redelivered;     /* own pending / processing entries re-read */
    uint64_t dead_lettered;   /* pushed marked "redelivery" */
    uint64_t acked;           /* XACKed / LREMed on the server */
    uint64_t ack_failures;    /* ack round trips that failed (retried) */
    uint64_t group_recreated; /* stream: NOGROUP recoveries */
    uint64_t reaped;          /* list: entries returned from dead
                                 consumers */
    uint64_t reconnects;      /* successful reconnects */
};

/*
 * A Redis Streams source reading 'conf->key' as consumer 'conf->consumer'
 * of 'conf->group' into 'q' (borrowed).  The group is created (MKSTREAM,
 * at start_id) when absent; this consumer's own pending entries are read
 * again before new ones.  Entries carry a field "payload" (the message
 * bytes) and optionally "key"; other fields become headers.  Without a
 * "payload" field all fields are encoded as one JSON object.  An entry is
 * XACKed only after sl_source_ack().
 *
 * Returns NULL and fills errstr for a bad configuration, a password that
 * cannot be read, or a server that refuses the group (the first connect
 * must succeed).  Main thread.
 */
struct sl_source *
sl_source_redis_stream_new(const struct sl_source_redis_conf *conf,
                           struct sl_queue *q, char *errstr,
                           size_t errstr_size);

/*
 * A reliable Redis list source: entries are moved (BLMOVE, right to
 * left) from 'conf->key' into "<key>:processing:<consumer>" and removed
 * from there (LREM) after sl_source_ack().  A heartbeat key
 * "<key>:heartbeat:<consumer>" lives 3 x heartbeat_ms; processing lists
 * whose heartbeat expired are moved back to the list.  On start this
 * consumer's own processing list (a previous run's) is returned first.
 *
 * origin.offset is unique across runs (a run number from INCR
 * "<key>:runs" in the high bits, the local sequence below); entry_id is
 * the payload's 'id_field' when the payload is a JSON object that has it
 * as a string or integer, "" otherwise.  Returns NULL and fills errstr
 * as for streams.  Main thread.
 */
struct sl_source *
sl_source_redis_list_new(const struct sl_source_redis_conf *conf,
                         struct sl_queue *q, char *errstr, size_t errstr_size);

/*
 * Snapshot of the counters of a Redis source (either kind) into *st.
 * Any thread.
 */
void sl_source_redis_stats(const struct sl_source *src,
                           struct sl_source_redis_stats *st);

#endif
