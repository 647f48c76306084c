/*
 * Message envelopes: construction with size caps, headers, and freeing.
 */
#include "msg.h"
#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl_source_kind_name(enum sl_source_kind kind)
{
    switch (kind) {
    case SL_SOURCE_KAFKA:
        return "kafka";
    case SL_SOURCE_REDIS_STREAM:
        return "redis-stream";
    case SL_SOURCE_REDIS_LIST:
        return "redis-list";
    case SL_SOURCE_FILE:
        return "file";
    case SL_SOURCE_GATEWAY:
        return "gateway";
    }
    return "unknown";
}

/* Copy 'len' bytes plus a terminating NUL; NULL for len 0 with no data. */
static int dup_bytes(const void *src, size_t len, void *dstp)
{
    char *dst = NULL;

    if (src) {
        dst = malloc(len + 1);
        if (!dst)
            return -SL_ENOMEM;
        if (len)
            memcpy(dst, src, len);
        dst[len] = '\0';
    }
    memcpy(dstp, &dst, sizeof(dst));
    return 0;
}

int sl_msg_new(struct sl_msg **msgp, enum sl_source_kind kind,
               const char *topic, int32_t partition, int64_t offset,
               const char *entry_id, const void *key, size_t key_len,
               const void *payload, size_t payload_len,
               const struct sl_msg_limits *limits, char *errstr,
               size_t errstr_size)
{
    struct sl_msg *msg;

    *msgp = NULL;
    if (limits && limits->max_payload && payload_len > limits->max_payload)
        return sl_seterr(-SL_ETOOBIG, errstr, errstr_size,
                         "payload of %zu bytes exceeds the cap of %zu bytes",
                         payload_len, limits->max_payload);
    if (limits && limits->max_key && key_len > limits->max_key)
        return sl_seterr(-SL_ETOOBIG, errstr, errstr_size,
                         "key of %zu bytes exceeds the cap of %zu bytes",
                         key_len, limits->max_key);

    msg = calloc(1, sizeof(*msg));
    if (!msg)
        return -SL_ENOMEM;
    msg->origin.kind = kind;
    msg->origin.partition = partition;
    msg->origin.offset = offset;
    if (entry_id)
        snprintf(msg->origin.entry_id, sizeof(msg->origin.entry_id), "%s",
                 entry_id);
    msg->attempts = 1;
    msg->recv_time_us = sl_now_us();
    if (dup_bytes(topic ? topic : "", topic ? strlen(topic) : 0,
                  &msg->origin.topic) < 0 ||
        dup_bytes(key, key_len, &msg->key) < 0 ||
        dup_bytes(payload ? payload : "", payload_len, &msg->payload) < 0) {
        sl_msg_destroy(msg);
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    }
    msg->key_len = key ? key_len : 0;
    msg->payload_len = payload_len;
    *msgp = msg;
    return 0;
}

int sl_msg_add_header(struct sl_msg *msg, const char *name, const void *value,
                      size_t value_len, const struct sl_msg_limits *limits)
{
    struct sl_header *headers, *h;

    if (limits && limits->max_headers && msg->header_cnt >= limits->max_headers)
        return -SL_ETOOBIG;
    headers = realloc(msg->headers, (msg->header_cnt + 1) * sizeof(*headers));
    if (!headers)
        return -SL_ENOMEM;
    msg->headers = headers;
    h = &headers[msg->header_cnt];
    memset(h, 0, sizeof(*h));
    if (dup_bytes(name, strlen(name), &h->name) < 0 ||
        dup_bytes(value, value_len, &h->value) < 0) {
        free(h->name);
        return -SL_ENOMEM;
    }
    h->value_len = value ? value_len : 0;
    msg->header_cnt++;
    return 0;
}

int sl_msg_set_error(struct sl_msg *msg, enum sl_row_stage stage,
                     const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    free(msg->error);
    msg->error = strdup(buf);
    msg->error_stage = stage;
    return msg->error ? 0 : -SL_ENOMEM;
}

void sl_msg_destroy(struct sl_msg *msg)
{
    if (!msg)
        return;
    for (size_t i = 0; i < msg->header_cnt; i++) {
        free(msg->headers[i].name);
        free(msg->headers[i].value);
    }
    free(msg->headers);
    free(msg->origin.topic);
    free(msg->key);
    free(msg->payload);
    free(msg->error);
    free(msg);
}

char *sl_origin_format(const struct sl_origin *origin, char *buf, size_t size)
{
    const char *kind = sl_source_kind_name(origin->kind);
    const char *topic = origin->topic ? origin->topic : "";

    if (origin->entry_id[0])
        snprintf(buf, size, "%s:%s@%s", kind, topic, origin->entry_id);
    else if (origin->kind == SL_SOURCE_KAFKA)
        snprintf(buf, size, "%s:%s/%d@%lld", kind, topic,
                 (int)origin->partition, (long long)origin->offset);
    else
        snprintf(buf, size, "%s:%s@%lld", kind, topic,
                 (long long)origin->offset);
    return buf;
}
