/*
 * The pipeline file's schema, as data: one row per key with its type,
 * range, default and place in struct sl_config.  A new setting is a new
 * row (and a struct field); string checks and cross-key rules live in
 * config_schema_check.c.
 */
#include "config_schema.h"

#include "config_schema_check.h"

/* ---- enum names: index == C enum value ---- */

static const char *const log_levels[] = {"debug", "info", "warn", "error",
                                         NULL};
static const char *const log_formats[] = {"json", "text", NULL};
const char *const sl_config_source_kinds[] = {
    "kafka", "redis-stream", "redis-list", "file", "stdin", NULL};
static const char *const orderings[] = {"unordered", "key", "partition", NULL};
static const char *const payload_formats[] = {"json", "raw", NULL};
static const char *const offset_resets[] = {"earliest", "latest", NULL};
const char *const sl_config_backend_kinds[] = {
    "openai-chat", "openai-embeddings", "http-json", NULL};
static const char *const roles[] = {"system", "user", "assistant", NULL};
static const char *const response_formats[] = {"text", "json", NULL};
static const char *const encoding_formats[] = {"float", "base64", NULL};
static const char *const toast_compressions[] = {"lz4", "pglz", "server", NULL};
static const char *const methods[] = {"GET", "POST", "PUT", NULL};
static const char *const step_modes[] = {"all", "first", NULL};
static const char *const on_errors[] = {"fail", "partial", NULL};

_Static_assert(sizeof(enum sl_config_source_kind) == sizeof(int) &&
                   sizeof(enum sl_config_backend_kind) == sizeof(int) &&
                   sizeof(enum sl_log_level) == sizeof(int) &&
                   sizeof(enum sl_log_format) == sizeof(int),
               "enums are stored as int");

/* ---- row helpers ---- */

#define FIELD(f) .off = offsetof(S, f)
#define INT(lo, hi, d) .min = (lo), .max = (hi), .def = (d)
#define MS(d) INT(1, 3600000, d)
#define BIT(k) (1u << (k))

#define CHAT BIT(SL_CONFIG_BACKEND_OPENAI_CHAT)
#define EMB BIT(SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS)
#define HTTP BIT(SL_CONFIG_BACKEND_HTTP_JSON)
#define KAFKA BIT(SL_CONFIG_SOURCE_KAFKA)
#define REDIS                                                                  \
    (BIT(SL_CONFIG_SOURCE_REDIS_STREAM) | BIT(SL_CONFIG_SOURCE_REDIS_LIST))
#define FILESRC BIT(SL_CONFIG_SOURCE_FILE)

#define SCHEMA(rows, type, ...)                                                \
    {                                                                          \
        .keys = rows, .nkeys = sizeof(rows) / sizeof(rows[0]),                 \
        .size = sizeof(type), __VA_ARGS__                                      \
    }

/* ---- secrets ---- */

#define S struct sl_config_kv
static const struct sl_config_key kv_secret_keys[] = {
    {"value_env", SL_KT_STR, FIELD(value_env), .check = &sl_config_chk_env_name,
     .desc = "Environment variable holding the value, read once at start-up; "
             "it must be set and not empty."},
    {"value_file", SL_KT_STR, FIELD(value_file),
     .desc = "File holding the value, read once at start-up: a regular file "
             "with no permission for group or others (`chmod 600`); trailing "
             "line breaks are dropped."},
};
static const struct sl_config_schema kv_secret_schema = SCHEMA(
    kv_secret_keys, struct sl_config_kv, .check = sl_config_check_kv_secret);
#undef S

/* ---- source ---- */

#define S struct sl_config_kafka
static const struct sl_config_key kafka_keys[] = {
    {"brokers", SL_KT_STR, FIELD(brokers), .def = "127.0.0.1:59092",
     .desc = "Bootstrap brokers, `host:port[,host:port...]` (librdkafka's "
             "`bootstrap.servers`)."},
    {"topics", SL_KT_STRLIST, FIELD(topics), .flags = SL_KF_REQ, .min = 1,
     .max = 64, .desc = "Topics to subscribe to."},
    {"group", SL_KT_STR, FIELD(group), .flags = SL_KF_REQ,
     .desc = "Consumer group id: the replicas of one group share the topics' "
             "partitions, and offsets are committed for it."},
    {"group_instance_id", SL_KT_STR, FIELD(group_instance_id),
     .desc =
         "Static group membership (`group.instance.id`), unique per replica: a "
         "replica that restarts within the session timeout gets its partitions "
         "back without a rebalance. Unset: dynamic membership."},
    {"auto_offset_reset", SL_KT_ENUM, FIELD(auto_offset_reset),
     .enums = offset_resets, .def = "earliest",
     .desc =
         "Where a partition with no committed offset starts: `earliest` (every "
         "retained message) or `latest` (only messages produced from now on)."},
    {"revoke_timeout_ms", SL_KT_INT, FIELD(revoke_timeout_ms),
     INT(100, 600000, "10000"),
     .desc = "On a rebalance, how long (ms) to wait for the revoked "
             "partitions' messages in flight to become durable; past it, what "
             "is durable is committed and the new owner reads the rest again "
             "(nothing is lost or written twice)."},
    {"properties", SL_KT_KVMAP, FIELD(properties), .max = 256,
     .sub = &kv_secret_schema,
     .desc =
         "Extra librdkafka settings, `name: value`; a credential "
         "(`sasl.password`, `ssl.key.pem`, a name with `password`, `secret`, "
         "`jaas` ...) must be `{value_env: NAME}` or `{value_file: PATH}`; "
         "`enable.auto.offset.store` is sluice's own and refused."},
};
static const struct sl_config_schema kafka_schema =
    SCHEMA(kafka_keys, struct sl_config_kafka, .check = sl_config_check_kafka);
#undef S

#define S struct sl_config_redis
static const struct sl_config_key redis_keys[] = {
    {"url", SL_KT_STR, FIELD(url), .check = &sl_config_chk_redis_url,
     .def = "redis://127.0.0.1:56379",
     .desc = "Redis server: `redis://[user@]host:port[/db]`, `rediss://` for "
             "TLS, or `unix://PATH`; never with a password (use `password_env` "
             "or `password_file`)."},
    {"key", SL_KT_STR, FIELD(key), .flags = SL_KF_REQ,
     .desc = "The stream (`redis-stream`) or list (`redis-list`) to read."},
    {"group", SL_KT_STR, FIELD(group), .def = "sluice",
     .desc = "`redis-stream`: the consumer group, created (from the start of "
             "the stream) if it does not exist."},
    {"consumer", SL_KT_STR, FIELD(consumer),
     .desc = "This replica's consumer name in the group (`redis-stream`) or of "
             "its processing list (`redis-list`). Unset: the replica id."},
    {"count", SL_KT_INT, FIELD(count), INT(1, 10000, "128"),
     .desc = "Entries read per `XREADGROUP` call, or per list batch."},
    {"block_ms", SL_KT_INT, FIELD(block_ms), INT(1, 60000, "1000"),
     .desc = "How long (ms) one read waits for new entries when there are "
             "none; a stop is noticed within this time."},
    {"min_idle_ms", SL_KT_INT, FIELD(min_idle_ms), INT(1000, 86400000, "60000"),
     .desc = "`redis-stream`: a pending entry idle for this long (ms) - its "
             "consumer died or stalled - is claimed (`XAUTOCLAIM`) and "
             "processed again here."},
    {"claim_interval_ms", SL_KT_INT, FIELD(claim_interval_ms),
     INT(100, 3600000, "10000"),
     .desc = "`redis-stream`: how often (ms) to look for pending entries older "
             "than `min_idle_ms`."},
    {"max_deliveries", SL_KT_INT, FIELD(max_deliveries), INT(1, 1000, "5"),
     .desc = "`redis-stream`: an entry delivered more than this many times "
             "goes to the dead-letter table instead of being processed again."},
    {"ack_batch", SL_KT_INT, FIELD(ack_batch), INT(1, 10000, "128"),
     .desc = "Acknowledgements (`XACK`, or `LREM` for a list) sent per round "
             "trip at most."},
    {"heartbeat_ms", SL_KT_INT, FIELD(heartbeat_ms), INT(100, 600000, "5000"),
     .desc = "`redis-list`: how often (ms) this consumer refreshes its "
             "heartbeat key (which expires after 3 times this) and looks for "
             "processing lists of consumers whose heartbeat expired, to put "
             "their entries back on the list."},
    {"password_env", SL_KT_STR, FIELD(password_env),
     .check = &sl_config_chk_env_name,
     .desc = "Environment variable holding the Redis password (`AUTH`), read "
             "at start-up."},
    {"password_file", SL_KT_STR, FIELD(password_file),
     .desc = "File holding the Redis password (mode 600), read at start-up."},
};
static const struct sl_config_schema redis_schema =
    SCHEMA(redis_keys, struct sl_config_redis, .check = sl_config_check_redis);
#undef S

#define S struct sl_config_file_source
static const struct sl_config_key file_keys[] = {
    {"path", SL_KT_STR, FIELD(path), .flags = SL_KF_REQ,
     .desc = "File of JSON lines, one message per non-blank line, relative to "
             "the working directory; `sluice run` exits once it is read and "
             "every line is durable."},
};
static const struct sl_config_schema file_schema =
    SCHEMA(file_keys, struct sl_config_file_source);
#undef S

#define S struct sl_config_source
static const struct sl_config_key source_keys[] = {
    {"kind", SL_KT_ENUM, FIELD(kind), .flags = SL_KF_REQ,
     .enums = sl_config_source_kinds,
     .desc = "Where messages come from: `kafka`, `redis-stream` (a consumer "
             "group), `redis-list` (a reliable queue), `file` or `stdin` (JSON "
             "lines, for demos and tests)."},
    {"max_message_bytes", SL_KT_INT, FIELD(max_message_bytes),
     INT(1, 67108864, "1048576"),
     .desc = "Largest payload in bytes; a larger message is not processed but "
             "goes to the dead-letter table."},
    {"ordering", SL_KT_ENUM, FIELD(ordering), .enums = orderings,
     .def = "unordered",
     .desc = "`unordered`: any order, the most throughput; `key`: one message "
             "per key in flight at a time, so each key's messages are "
             "processed in order; `partition`: one message per partition (or "
             "stream, list, file) in flight at a time."},
    {"payload_format", SL_KT_ENUM, FIELD(payload_format),
     .enums = payload_formats, .def = "json",
     .desc = "`json`: a payload must be JSON, and one that is not goes to the "
             "dead-letter table; `raw`: a payload is text, which templates see "
             "as `{\"text\": ...}`."},
    {"kafka", SL_KT_OBJ, FIELD(kafka), .flags = SL_KF_REQ, .sub = &kafka_schema,
     .kinds = KAFKA, .desc = "Kafka settings."},
    {"redis", SL_KT_OBJ, FIELD(redis), .flags = SL_KF_REQ, .sub = &redis_schema,
     .kinds = REDIS, .desc = "Redis settings."},
    {"file", SL_KT_OBJ, FIELD(file), .flags = SL_KF_REQ, .sub = &file_schema,
     .kinds = FILESRC, .desc = "File settings."},
};
static const struct sl_config_schema source_schema =
    SCHEMA(source_keys, struct sl_config_source, .kind_key = "kind",
           .kind_label = "source.kind");
#undef S

/* ---- queue, workers ---- */

#define S struct sl_config_queue
static const struct sl_config_key queue_keys[] = {
    {"capacity", SL_KT_INT, FIELD(capacity), INT(1, 1048576, "1024"),
     .desc = "Messages held between the source and the workers; when it is "
             "full the source waits (backpressure)."},
};
static const struct sl_config_schema queue_schema =
    SCHEMA(queue_keys, struct sl_config_queue);
#undef S

#define S struct sl_config_workers
static const struct sl_config_key workers_keys[] = {
    {"threads", SL_KT_INT, FIELD(threads), INT(1, 256, "2"),
     .desc = "Worker threads calling the backends."},
    {"max_inflight", SL_KT_INT, FIELD(max_inflight), INT(1, 65536, "64"),
     .desc =
         "Messages each worker has in flight at once (its calls run "
         "concurrently); raise it when backends are slow rather than busy."},
};
static const struct sl_config_schema workers_schema =
    SCHEMA(workers_keys, struct sl_config_workers);
#undef S

/* ---- backends ---- */

#define S struct sl_config_retry
static const struct sl_config_key retry_keys[] = {
    {"max_attempts", SL_KT_INT, FIELD(max_attempts), INT(1, 100, "4"),
     .desc = "Attempts of one call, the first included; a timeout, connection "
             "failure, 429 or 5xx is retried, and after the last attempt the "
             "backend fails for this message."},
    {"base_ms", SL_KT_INT, FIELD(base_ms), INT(1, 600000, "100"),
     .desc = "First backoff (ms); it doubles with each attempt, with jitter, "
             "up to `max_ms`; it must not exceed `max_ms`."},
    {"max_ms", SL_KT_INT, FIELD(max_ms), MS("10000"),
     .desc = "Longest backoff between two attempts (ms)."},
    {"retry_after_max_ms", SL_KT_INT, FIELD(retry_after_max_ms),
     INT(0, 86400000, "60000"),
     .desc = "Longest wait (ms) taken from a server's `Retry-After` header "
             "(seconds or a date) in place of the backoff; a longer one is cut "
             "to this."},
};
static const struct sl_config_schema retry_schema =
    SCHEMA(retry_keys, struct sl_config_retry, .check = sl_config_check_retry);
#undef S

#define S struct sl_config_breaker
static const struct sl_config_key breaker_keys[] = {
    {"failures", SL_KT_INT, FIELD(failures), INT(0, 10000, "5"),
     .desc = "Consecutive failed calls that open the backend's circuit "
             "breaker; while it is open, calls fail at once without reaching "
             "the server. `0`: never opens."},
    {"open_ms", SL_KT_INT, FIELD(open_ms), INT(100, 3600000, "10000"),
     .desc = "How long (ms) the breaker stays open before it lets probe calls "
             "through (half-open)."},
    {"half_open_probes", SL_KT_INT, FIELD(half_open_probes), INT(1, 1000, "1"),
     .desc = "Calls let through while half-open; a probe's success closes the "
             "breaker, a failure opens it again."},
};
static const struct sl_config_schema breaker_schema =
    SCHEMA(breaker_keys, struct sl_config_breaker);
#undef S

#define S struct sl_config_message
static const struct sl_config_key message_keys[] = {
    {"role", SL_KT_ENUM, FIELD(role), .flags = SL_KF_REQ, .enums = roles,
     .desc = "Chat role of the message."},
    {"content", SL_KT_STR, FIELD(content), .flags = SL_KF_REQ,
     .check = &sl_config_chk_template,
     .desc = "Plain-text template of the message: `{{field}}` becomes the "
             "payload field's text (another JSON value its compact JSON), "
             "`{{.}}` the whole payload."},
};
static const struct sl_config_schema message_schema =
    SCHEMA(message_keys, struct sl_config_message);
#undef S

#define S struct sl_config_backend
static const struct sl_config_key backend_keys[] = {
    {"kind", SL_KT_ENUM, FIELD(kind), .flags = SL_KF_REQ,
     .enums = sl_config_backend_kinds,
     .desc = "Protocol: `openai-chat` (POST `{url}/chat/completions`), "
             "`openai-embeddings` (POST `{url}/embeddings`) or `http-json` "
             "(any JSON endpoint at `url`)."},
    {"url", SL_KT_STR, FIELD(url), .flags = SL_KF_REQ,
     .check = &sl_config_chk_http_url,
     .desc =
         "`openai-*`: the base URL (`http://host:8080/v1`); `http-json`: the "
         "endpoint itself. `http://` or `https://`, never with a password."},
    {"model", SL_KT_STR, FIELD(model), .flags = SL_KF_REQ, .kinds = CHAT | EMB,
     .desc = "Model name sent with each request."},
    {"api_key_env", SL_KT_STR, FIELD(api_key_env),
     .check = &sl_config_chk_env_name,
     .desc = "Environment variable holding the API key, sent as "
             "`Authorization: Bearer KEY`; read at start-up."},
    {"api_key_file", SL_KT_STR, FIELD(api_key_file),
     .desc = "File holding the API key (mode 600), sent as `Authorization: "
             "Bearer KEY`; read at start-up."},
    {"timeout_ms", SL_KT_INT, FIELD(timeout_ms), MS("30000"),
     .desc = "Limit (ms) on one attempt as a whole, from connecting to the "
             "last byte of the answer; past it the attempt fails as a timeout, "
             "which is retried."},
    {"connect_timeout_ms", SL_KT_INT, FIELD(connect_timeout_ms),
     INT(1, 600000, "5000"),
     .desc = "Limit (ms) on setting up the TCP (and TLS) connection."},
    {"low_speed_time_ms", SL_KT_INT, FIELD(low_speed_time_ms),
     INT(0, 3600000, "0"),
     .desc = "An answer slower than `low_speed_bytes_per_s` for this long (ms, "
             "rounded up to whole seconds) is aborted as a timeout. `0` (the "
             "default): no such check, `timeout_ms` alone limits an attempt "
             "(a model server that does not stream sends no byte until its "
             "answer is complete, which on a busy CPU server or behind a "
             "queue of batches takes longer than any fixed stall limit)."},
    {"low_speed_bytes_per_s", SL_KT_INT, FIELD(low_speed_bytes_per_s),
     INT(0, 1073741824, "1"),
     .desc = "The speed below which an answer counts as stalled (see "
             "`low_speed_time_ms`). `0`: no such check."},
    {"max_response_bytes", SL_KT_INT, FIELD(max_response_bytes),
     INT(1, 1073741824, "4194304"),
     .desc = "Largest answer in bytes; a larger one fails the call."},
    {"max_concurrency", SL_KT_INT, FIELD(max_concurrency), INT(1, 65536, "64"),
     .desc = "Requests to this backend in flight at once, over all workers; "
             "more wait for a slot."},
    {"rate_limit_rps", SL_KT_NUM, FIELD(rate_limit_rps), .fmin = 0.001,
     .fmax = 1000000,
     .desc = "Requests per second to this backend (a token bucket with bursts "
             "of up to max(1, rate)); calls beyond it wait. Unset: no limit."},
    {"tokens_per_minute", SL_KT_INT, FIELD(tokens_per_minute),
     INT(1, 1000000000, NULL), .kinds = CHAT,
     .desc = "Model tokens per minute, debited with the usage the server "
             "reports; once the budget is spent, calls wait for it to refill. "
             "Unset: no limit."},
    {"retry", SL_KT_OBJ, FIELD(retry), .sub = &retry_schema,
     .desc = "Retries of failures that may pass (timeouts, connection "
             "failures, 429, 5xx)."},
    {"breaker", SL_KT_OBJ, FIELD(breaker), .sub = &breaker_schema,
     .desc = "The backend's circuit breaker."},
    /* openai-chat */
    {"messages", SL_KT_OBJLIST, FIELD(messages),
     .cnt_off = offsetof(S, message_cnt), .flags = SL_KF_REQ, .min = 1,
     .max = 64, .sub = &message_schema, .kinds = CHAT,
     .desc = "The chat messages sent for each message of the stream."},
    {"temperature", SL_KT_NUM, FIELD(temperature), .fmin = 0, .fmax = 2,
     .def = "0", .kinds = CHAT,
     .desc = "Sampling temperature sent with each request."},
    {"max_tokens", SL_KT_INT, FIELD(max_tokens), INT(1, 1000000, NULL),
     .kinds = CHAT,
     .desc =
         "`max_tokens` sent with each request. Unset: the server's default."},
    {"response_format", SL_KT_ENUM, FIELD(response_format),
     .enums = response_formats, .def = "text", .kinds = CHAT,
     .desc = "`text`: the reply's content is stored as a string; `json`: JSON "
             "mode is asked for, and a reply whose content is not a JSON "
             "object fails the call."},
    /* openai-embeddings */
    {"input", SL_KT_STR, FIELD(input), .check = &sl_config_chk_template,
     .def = "{{text}}", .kinds = EMB,
     .desc =
         "JSON template of one input, which must give a string (`{{text}}`)."},
    {"batch_max", SL_KT_INT, FIELD(batch_max), INT(1, 2048, "64"), .kinds = EMB,
     .desc = "Inputs sent in one request at most: messages waiting for this "
             "backend are batched."},
    {"batch_wait_ms", SL_KT_INT, FIELD(batch_wait_ms), INT(0, 60000, "5"),
     .kinds = EMB,
     .desc = "How long (ms) a batch that is not full waits for more inputs "
             "before it is sent. `0`: send at once."},
    {"encoding_format", SL_KT_ENUM, FIELD(encoding_format),
     .enums = encoding_formats, .def = "float", .kinds = EMB,
     .desc = "How the server is asked to send each embedding: `float`, a "
             "JSON array of numbers; `base64`, a base64 string of "
             "little-endian float32s, decoded into the same numbers (no "
             "number parsing, a reply about 3x smaller). Either form is "
             "accepted in a reply whichever was asked (some servers ignore "
             "the field); a string that is not base64 of whole, finite "
             "float32s fails the call."},
    /* http-json */
    {"method", SL_KT_ENUM, FIELD(method), .enums = methods, .def = "POST",
     .kinds = HTTP, .desc = "HTTP method of the request."},
    {"headers", SL_KT_KVMAP, FIELD(headers), .max = 64,
     .sub = &kv_secret_schema, .check = &sl_config_chk_header_name,
     .desc = "Extra request headers, `Name: value`; a credential header "
             "(`Authorization`, `Cookie`, `X-Api-Key`, a name with `token`, "
             "`secret`, `password` ...) must be `{value_env: NAME}` or "
             "`{value_file: PATH}`."},
    {"body", SL_KT_STR, FIELD(body), .check = &sl_config_chk_template,
     .kinds = HTTP,
     .desc = "JSON template of the request body, e.g. `{\"text\": {{text}}}` "
             "(a field goes in as a JSON value, strings quoted). Unset: the "
             "message's payload as it is."},
    {"result_pointer", SL_KT_STR, FIELD(result_pointer),
     .flags = SL_KF_EMPTY_OK, .check = &sl_config_chk_pointer, .def = "",
     .kinds = HTTP,
     .desc = "JSON pointer to the part of the reply kept as the result "
             "(`/label`). Empty: the whole reply."},
};
static const struct sl_config_schema backend_schema =
    SCHEMA(backend_keys, struct sl_config_backend, .kind_key = "kind",
           .kind_label = "kind", .named = true, .name_off = offsetof(S, name),
           .check = sl_config_check_backend);
#undef S

/* ---- steps ---- */

#define S struct sl_config_step
static const struct sl_config_key step_keys[] = {
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ,
     .check = &sl_config_chk_name,
     .desc = "Name of the step, unique among steps."},
    {"backends", SL_KT_STRLIST, FIELD(backends), .flags = SL_KF_REQ, .min = 1,
     .max = 16, .check = &sl_config_chk_backend_name,
     .desc = "Backends called for each message, concurrently."},
    {"mode", SL_KT_ENUM, FIELD(mode), .enums = step_modes, .def = "all",
     .desc = "`all`: wait for every backend and keep every result; `first`: "
             "keep the first successful reply and cancel the other calls."},
    {"on_error", SL_KT_ENUM, FIELD(on_error), .enums = on_errors, .def = "fail",
     .desc = "`fail`: a failed backend sends the message to the dead-letter "
             "table; `partial`: the row keeps what succeeded, with the "
             "failures in its `errors` column."},
    {"deadline_ms", SL_KT_INT, FIELD(deadline_ms), MS("60000"),
     .desc = "Limit (ms) on the whole step, retries included; calls not done "
             "by then fail with a deadline error."},
};
static const struct sl_config_schema step_schema =
    SCHEMA(step_keys, struct sl_config_step);
#undef S

/* ---- sink ---- */

#define S struct sl_config_columns
#define COLUMN(n, d)                                                           \
    {                                                                          \
#n, SL_KT_STR, FIELD(n), .check = &sl_config_chk_column, .def = #n,    \
                                 .desc = d                                     \
    }
static const struct sl_config_key columns_keys[] = {
    COLUMN(source, "Column for the source kind (`kafka`, `redis-stream` ...)."),
    COLUMN(topic, "Column for the topic, stream, list or file name."),
    COLUMN(partition, "Column for the Kafka partition."),
    COLUMN(offset, "Column for the Kafka offset or the file's line number."),
    COLUMN(entry_id, "Column for the Redis entry id."),
    COLUMN(key, "Column for the message key."),
    COLUMN(payload,
           "Column for a JSON payload (`jsonb`); a payload that is not JSON "
           "goes to `payload_raw` (`bytea`), whose name is fixed."),
    COLUMN(results,
           "Column for the backends' results by step and backend (`jsonb`)."),
    COLUMN(errors, "Column for the backends' errors (`jsonb`)."),
    COLUMN(timings,
           "Column for each backend's time and the total, in ms (`jsonb`)."),
    COLUMN(worker,
           "Column for the replica id and worker that processed the message."),
    {"vectors", SL_KT_KVMAP, FIELD(vectors), .max = 16,
     .check = &sl_config_chk_column,
     .desc = "Extra `real[]` columns, `column: backend`: each row's result of "
             "that backend, a JSON array of numbers such as an "
             "`openai-embeddings` vector, also stored as a `real[]` (float4) "
             "array, to query and index without parsing JSON. NULL when the "
             "row has no result of that backend; a result that is not an "
             "array of numbers, or a number a `real` cannot hold, sends the "
             "row to the dead-letter table with the reason. The worker "
             "sends the vector in binary and `results` keeps its JSON copy "
             "unless `vectors_in_results: false`. A table sluice creates "
             "gets these columns; add them to an existing one (`ALTER "
             "TABLE ... ADD COLUMN embedding real[]`)."},
    COLUMN(
        processed_at,
        "Accepted but not used yet: rows never write this column, and a table "
        "sluice creates always has `processed_at timestamptz DEFAULT now()`."),
};
#undef COLUMN
static const struct sl_config_schema columns_schema =
    SCHEMA(columns_keys, struct sl_config_columns);
#undef S

#define S struct sl_config_postgres
static const struct sl_config_key postgres_keys[] = {
    {"dsn", SL_KT_STR, FIELD(dsn), .check = &sl_config_chk_dsn,
     .def = "host=127.0.0.1 port=55432 dbname=sluice user=postgres",
     .desc =
         "libpq connection string (`host=... port=... dbname=... user=...`, or "
         "a `postgresql://` URI), never with a password; keepalives and "
         "`tcp_user_timeout=30000` are added unless it sets them."},
    {"password_env", SL_KT_STR, FIELD(password_env),
     .check = &sl_config_chk_env_name,
     .desc = "Environment variable holding the database password, read at "
             "start-up."},
    {"password_file", SL_KT_STR, FIELD(password_file),
     .desc =
         "File holding the database password (mode 600), read at start-up."},
    {"table", SL_KT_STR, FIELD(table), .check = &sl_config_chk_table,
     .def = "sluice_results",
     .desc = "Results table, `[schema.]table`; one row per message, unique by "
             "origin, so nothing is written twice."},
    {"dead_letter_table", SL_KT_STR, FIELD(dead_letter_table),
     .check = &sl_config_chk_table, .def = "sluice_dead_letters",
     .desc = "Table for messages that cannot be processed or written "
             "(`[schema.]table`), with the stage and the error."},
    {"create_table", SL_KT_BOOL, FIELD(create_table), .def = "true",
     .desc = "Create both tables when they do not exist. `false`: they must "
             "exist."},
    {"batch_rows", SL_KT_INT, FIELD(batch_rows), INT(1, 100000, "500"),
     .desc = "Rows per transaction at most."},
    {"flush_ms", SL_KT_INT, FIELD(flush_ms), INT(1, 60000, "50"),
     .desc = "Longest time (ms) a batch that is not full waits for more rows "
             "before it is sent."},
    {"max_batches_inflight", SL_KT_INT, FIELD(max_batches_inflight),
     INT(1, 64, "4"),
     .desc =
         "Batches sent and not yet committed at once (libpq pipeline mode)."},
    {"backlog_rows", SL_KT_INT, FIELD(backlog_rows), INT(1, 10000000, "2000"),
     .desc = "Rows waiting for the sink at most; beyond it the workers block, "
             "which in turn stops the source (backpressure). Each waiting "
             "row holds its texts in memory: when workers outrun "
             "PostgreSQL the backlog stays full (10000 rows took 9-11 MiB "
             "more peak RSS than 2000 at the same msg/s)."},
    {"toast_compression", SL_KT_ENUM, FIELD(toast_compression),
     .enums = toast_compressions, .def = "lz4",
     .desc = "How PostgreSQL compresses the large values sluice writes "
             "(results and payloads over ~2 KB, such as embeddings): the "
             "sink's session sets `default_toast_compression`. `lz4` "
             "(PostgreSQL 14+ built with lz4, as Debian's is; else the "
             "server's default stays, noted in the debug log) cost "
             "PostgreSQL far less CPU than `pglz` for 256-float vectors "
             "(pglz_compress was a quarter of the backend's time); "
             "`server`: leave the server's setting."},
    {"vectors_in_results", SL_KT_BOOL, FIELD(vectors_in_results), .def = "true",
     .desc = "Whether the results column keeps a result that a vector column "
             "(`columns.vectors`) stores as well. `false` leaves it out of "
             "`results`: half the bytes per row, and PostgreSQL parses no "
             "JSON numbers for it (a 256-float vector took the sink's "
             "backend 5x less CPU)."},
    {"columns", SL_KT_OBJ, FIELD(columns), .sub = &columns_schema,
     .desc =
         "Column names of the results table, to write into an existing table."},
};
static const struct sl_config_schema postgres_schema =
    SCHEMA(postgres_keys, struct sl_config_postgres,
           .check = sl_config_check_postgres);
#undef S

#define S struct sl_config_sink
static const struct sl_config_key sink_keys[] = {
    {"postgres", SL_KT_OBJ, FIELD(postgres), .flags = SL_KF_REQ,
     .sub = &postgres_schema, .desc = "The PostgreSQL sink (the only one)."},
};
static const struct sl_config_schema sink_schema =
    SCHEMA(sink_keys, struct sl_config_sink);
#undef S

/* ---- http, gateway ---- */

#define S struct sl_config_http
static const struct sl_config_key http_keys[] = {
    {"listen", SL_KT_STR, FIELD(listen), .check = &sl_config_chk_host_port,
     .def = "127.0.0.1:9464",
     .desc = "Address of the HTTP listener for `/metrics`, `/healthz`, "
             "`/readyz` and the gateway; port `0` picks a free one (logged). "
             "`sluice run --listen` overrides it."},
};
static const struct sl_config_schema http_schema =
    SCHEMA(http_keys, struct sl_config_http);
#undef S

#define S struct sl_config_gateway
static const struct sl_config_key gateway_keys[] = {
    {"enabled", SL_KT_BOOL, FIELD(enabled), .def = "false",
     .desc = "Serve `POST /v1/process`: the JSON body runs through the steps "
             "and the results come back in the answer."},
    {"max_concurrency", SL_KT_INT, FIELD(max_concurrency), INT(1, 65536, "64"),
     .desc = "Requests processed at once; more get 429 with `Retry-After`."},
    {"write_rows", SL_KT_BOOL, FIELD(write_rows), .def = "false",
     .desc = "Also write each request's results as a row to the sink (the "
             "pipeline then needs `sink`)."},
    {"max_body_bytes", SL_KT_INT, FIELD(max_body_bytes),
     INT(1, 67108864, "1048576"),
     .desc = "Largest request body in bytes; a larger one gets 413 without "
             "being processed."},
};
static const struct sl_config_schema gateway_schema =
    SCHEMA(gateway_keys, struct sl_config_gateway);
#undef S

/* ---- top level ---- */

#define S struct sl_config
static const struct sl_config_key root_keys[] = {
    {"version", SL_KT_INT, FIELD(version), .flags = SL_KF_REQ, .min = 1,
     .max = 1, .desc = "Version of the pipeline file format."},
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ,
     .check = &sl_config_chk_name,
     .desc = "Name of the pipeline, in the start-up log line."},
    {"log_level", SL_KT_ENUM, FIELD(log_level), .enums = log_levels,
     .def = "info",
     .desc = "Lowest level of the log lines written. `SLUICE_LOG_LEVEL` "
             "overrides it."},
    {"log_format", SL_KT_ENUM, FIELD(log_format), .enums = log_formats,
     .def = "json",
     .desc = "`json`: one JSON object per log line, for collectors; `text`: "
             "one readable line per event with the same fields "
             "(`2026-12-06T04:40:00.123Z WARN  run: message key=value`). "
             "`SLUICE_LOG_FORMAT` overrides it."},
    {"replica_id", SL_KT_STR, FIELD(replica_id),
     .desc = "Name of this replica in consumer groups, rows and logs. `sluice "
             "run --replica-id` overrides it. Unset: the host name and the "
             "process id."},
    {"shutdown_timeout_ms", SL_KT_INT, FIELD(shutdown_timeout_ms),
     INT(100, 3600000, "30000"),
     .desc = "Limit (ms) on the drain after SIGTERM or SIGINT (the source "
             "stops, workers finish, the sink flushes, offsets are committed); "
             "messages not durable by then are not committed, so they are read "
             "again after a restart."},
    {"source", SL_KT_OBJ, FIELD(source), .flags = SL_KF_HAS,
     .has_off = offsetof(S, source.present), .sub = &source_schema,
     .desc = "Where messages come from. Without it, the pipeline needs "
             "`gateway.enabled`."},
    {"queue", SL_KT_OBJ, FIELD(queue), .sub = &queue_schema,
     .desc = "The bounded queue between the source and the workers."},
    {"workers", SL_KT_OBJ, FIELD(workers), .sub = &workers_schema,
     .desc = "The worker pool that calls the backends."},
    {"backends", SL_KT_OBJMAP, FIELD(backends),
     .cnt_off = offsetof(S, backend_cnt), .max = 64, .sub = &backend_schema,
     .check = &sl_config_chk_backend_name,
     .desc = "The model servers, by name (1 to 64 letters, digits, `_` or "
             "`-`); steps name them."},
    {"steps", SL_KT_OBJLIST, FIELD(steps), .cnt_off = offsetof(S, step_cnt),
     .min = 1, .max = 32, .sub = &step_schema,
     .desc =
         "What each message goes through, in order. Needed with a `source`."},
    {"sink", SL_KT_OBJ, FIELD(sink), .flags = SL_KF_HAS,
     .has_off = offsetof(S, sink.present), .sub = &sink_schema,
     .desc = "Where rows are written. Needed with a `source`, and with "
             "`gateway.write_rows`."},
    {"http", SL_KT_OBJ, FIELD(http), .sub = &http_schema,
     .desc = "The HTTP listener."},
    {"gateway", SL_KT_OBJ, FIELD(gateway), .sub = &gateway_schema,
     .desc = "Synchronous HTTP entry to the steps."},
};
#undef S

const struct sl_config_schema sl_config_schema_root =
    SCHEMA(root_keys, struct sl_config, .check = sl_config_check_root);
