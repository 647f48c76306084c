/*
 * The message envelope: where a message came from (its origin, the key of
 * its row and of its commit), its key, headers and payload bytes, and when
 * it was received.  Every buffer is owned by the message and capped.
 */
#ifndef SL_MSG_H
#define SL_MSG_H

#include "clock.h"

#include <stddef.h>
#include <stdint.h>

struct sl_source;

enum sl_source_kind {
    SL_SOURCE_KAFKA,        /* topic, partition, offset */
    SL_SOURCE_REDIS_STREAM, /* stream, entry id */
    SL_SOURCE_REDIS_LIST,   /* list, position in the processing list */
    SL_SOURCE_FILE,         /* path, line number */
    SL_SOURCE_GATEWAY,      /* "gateway", request sequence number */
};

/* "kafka", "redis-stream", "redis-list", "file", "gateway". Static. */
const char *sl_source_kind_name(enum sl_source_kind kind);

/* The origin of a message; unique per message, the row's natural key. */
struct sl_origin {
    enum sl_source_kind kind; /* which kind of source */
    char *topic;              /* topic, stream, list or file path; owned */
    int32_t partition;        /* Kafka partition; 0 for other sources */
    int64_t offset;           /* Kafka offset, line number, sequence */
    char entry_id[48];        /* Redis entry id ("1700000000000-0"), or "" */
};

struct sl_header {
    char *name;       /* NUL-terminated; owned */
    char *value;      /* value bytes plus a NUL; owned; NULL for no value */
    size_t value_len; /* length of value, without the NUL */
};

/*
 * Where a message failed and was dead-lettered: set by the source
 * (decode, redelivery), the infer worker (decode, inference) or the sink;
 * sl_row_stage_name() (row.h) names it.
 */
enum sl_row_stage {
    SL_STAGE_DECODE,     /* payload could not be decoded */
    SL_STAGE_INFERENCE,  /* backends failed past their retry budget */
    SL_STAGE_SINK,       /* PostgreSQL refused the row (data error) */
    SL_STAGE_REDELIVERY, /* delivered too many times */
};

struct sl_msg {
    struct sl_origin origin;   /* where it came from */
    char *key;                 /* key bytes plus a NUL; NULL when none */
    size_t key_len;            /* key length without the NUL */
    struct sl_header *headers; /* header_cnt headers; owned */
    size_t header_cnt;         /* number of headers */
    unsigned char *payload;    /* payload bytes plus a NUL; NULL if empty */
    size_t payload_len;        /* payload length without the NUL */
    int64_t recv_time_us;      /* CLOCK_REALTIME when received, in us */
    uint32_t attempts;         /* deliveries seen so far (Redis), >= 1 */
    char *error;               /* why it cannot be processed (set by the source:
                                  over the size cap, too many deliveries ...); the
                                  worker dead-letters it; owned; NULL when fine */
    enum sl_row_stage error_stage; /* with 'error': where it failed */
    struct sl_source *source;      /* the source to ack to; borrowed */
    int64_t seq;                   /* the source's position for the ack */
    struct sl_msg *order_next;     /* next message waiting for the same key or
                                      partition (ordering modes); source
                                      thread only */
};

/* Limits applied when building a message. */
struct sl_msg_limits {
    size_t max_payload; /* payload bytes; 0 means no limit */
    size_t max_key;     /* key bytes; 0 means no limit */
    size_t max_headers; /* number of headers; 0 means no limit */
};

/*
 * Build a message by copying 'topic', 'key' and 'payload'.  'entry_id' may
 * be NULL.  The receive time is now.
 *
 * Returns 0 and sets *msgp (owned by the caller, free with
 * sl_msg_destroy()); -SL_ETOOBIG when the payload or key exceeds 'limits'
 * (errstr says which and by how much; no message is built);
 * -SL_ENOMEM.  On failure *msgp is NULL.  Any thread.
 */
int sl_msg_new(struct sl_msg **msgp, enum sl_source_kind kind,
               const char *topic, int32_t partition, int64_t offset,
               const char *entry_id, const void *key, size_t key_len,
               const void *payload, size_t payload_len,
               const struct sl_msg_limits *limits, char *errstr,
               size_t errstr_size);

/*
 * Mark 'msg' as one to dead-letter instead of processing: a copy of the
 * printf-formatted reason, with the stage (SL_STAGE_DECODE, ..._REDELIVERY).
 * Returns 0 or -SL_ENOMEM.
 */
int sl_msg_set_error(struct sl_msg *msg, enum sl_row_stage stage,
                     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Copy a header onto 'msg'.  Returns 0, -SL_ETOOBIG past
 * limits->max_headers (when 'limits' is not NULL), or -SL_ENOMEM.
 */
int sl_msg_add_header(struct sl_msg *msg, const char *name, const void *value,
                      size_t value_len, const struct sl_msg_limits *limits);

/* Free 'msg' and everything it owns.  NULL is a no-op.  Any thread. */
void sl_msg_destroy(struct sl_msg *msg);

/*
 * Write a human-readable origin ("kafka:reviews/3@1234",
 * "redis-stream:reviews@1700000000000-0") into buf.  Returns buf.
 */
char *sl_origin_format(const struct sl_origin *origin, char *buf, size_t size);

#endif
