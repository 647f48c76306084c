/*
 * The pipeline file's schema, as data: one row per key with its type,
 * range, default and place in struct sl_config.  A new setting is a new
 * row (and a struct field); cross-key rules live in the check hooks below.
 */
#include "config_schema.h"

#include "secret.h"
#include "err.h"
#include "template.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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
static const char *const methods[] = {"GET", "POST", "PUT", NULL};
static const char *const step_modes[] = {"all", "first", NULL};
static const char *const on_errors[] = {"fail", "partial", NULL};

_Static_assert(sizeof(enum sl_config_source_kind) == sizeof(int) &&
                   sizeof(enum sl_config_backend_kind) == sizeof(int) &&
                   sizeof(enum sl_log_level) == sizeof(int) &&
                   sizeof(enum sl_log_format) == sizeof(int),
               "enums are stored as int");

/* ---- string checks ---- */

static bool name_chars(const char *s, bool upper)
{
    size_t n = strlen(s);

    if (n == 0 || n > 64)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!(islower(c) || isdigit(c) || c == '_' || c == '-' ||
              (upper && isupper(c))))
            return false;
    }
    return true;
}

static bool ok_name(const char *s)
{
    return name_chars(s, false);
}

static bool ok_backend_name(const char *s)
{
    return name_chars(s, true);
}

/* True when the URL after "scheme://" carries "user:password@". */
static bool url_has_password(const char *s)
{
    const char *p = strstr(s, "://");
    const char *at, *slash, *colon;

    if (!p)
        return false;
    p += 3;
    slash = strchr(p, '/');
    at = strchr(p, '@');
    if (!at || (slash && slash < at))
        return false;
    colon = memchr(p, ':', (size_t)(at - p));
    return colon != NULL;
}

static bool ok_http_url(const char *s)
{
    const char *host;

    if (!strncmp(s, "http://", 7))
        host = s + 7;
    else if (!strncmp(s, "https://", 8))
        host = s + 8;
    else
        return false;
    return *host && *host != '/' && !url_has_password(s);
}

static bool ok_redis_url(const char *s)
{
    return (!strncmp(s, "redis://", 8) || !strncmp(s, "rediss://", 9) ||
            !strncmp(s, "unix://", 7)) &&
           !url_has_password(s);
}

static bool ok_dsn(const char *s)
{
    return *s && !strcasestr(s, "password") && !url_has_password(s);
}

/* [A-Za-z_][A-Za-z0-9_]{0,62}, 'len' bytes of 's'. */
static bool ident_part(const char *s, size_t len)
{
    if (len == 0 || len > 63 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

static bool ok_column(const char *s)
{
    return ident_part(s, strlen(s));
}

static bool ok_table(const char *s)
{
    const char *dot = strchr(s, '.');

    if (!dot)
        return ident_part(s, strlen(s));
    return ident_part(s, (size_t)(dot - s)) &&
           ident_part(dot + 1, strlen(dot + 1));
}

static bool ok_env_name(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

static bool ok_pointer(const char *s)
{
    return *s == '\0' || *s == '/';
}

/* What the HTTP listener can bind: an IPv4 address or "localhost". */
static bool ok_host_port(const char *s)
{
    const char *colon = strrchr(s, ':');
    char host[INET_ADDRSTRLEN];
    struct in_addr addr;
    long port = 0;

    if (!colon || colon == s || !colon[1] || strlen(colon + 1) > 5 ||
        (size_t)(colon - s) >= sizeof(host))
        return false;
    for (const char *p = colon + 1; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        port = port * 10 + (*p - '0');
    }
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    return port <= 65535 &&
           (!strcmp(host, "localhost") || inet_pton(AF_INET, host, &addr) == 1);
}

const char sl_config_listen_expect[] =
    "host:port with an IPv4 address or 'localhost' as host and a port "
    "between 0 and 65535";

bool sl_config_listen_ok(const char *s)
{
    return ok_host_port(s);
}

/* Placeholders are {{.}} or {{name[.name...]}}, spaces allowed inside. */
static bool ok_template(const char *s)
{
    const char *p = s;

    while ((p = strstr(p, "{{")) != NULL) {
        const char *b = p + 2, *e = strstr(b, "}}");
        if (!e)
            return false;
        while (b < e && *b == ' ')
            b++;
        while (e > b && e[-1] == ' ')
            e--;
        if (e - b == 1 && *b == '.') {
            p = e + 2;
            continue;
        }
        bool seg_start = true;
        if (b == e)
            return false;
        for (const char *q = b; q < e; q++) {
            unsigned char c = (unsigned char)*q;
            if (c == '.') {
                if (seg_start)
                    return false;
                seg_start = true;
            } else if (isalnum(c) || c == '_' || c == '-') {
                seg_start = false;
            } else {
                return false;
            }
        }
        if (seg_start)
            return false;
        p = strstr(e, "}}") + 2;
    }
    return true;
}

/* RFC 9110 5.6.2: token = 1*tchar. */
bool sl_config_header_name_ok(const char *name)
{
    if (!*name)
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!isalnum(c) && !strchr("!#$%&'*+-.^_`|~", c))
            return false;
    }
    return true;
}

/* RFC 9110 5.5: field-value octets are VCHAR, SP, HTAB and obs-text. */
bool sl_config_header_value_ok(const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

/* True when 'name' equals one of 'exact' or contains one of 'parts'. */
static bool name_matches(const char *name, const char *const *exact,
                         const char *const *parts)
{
    for (size_t i = 0; exact[i]; i++)
        if (!strcasecmp(name, exact[i]))
            return true;
    for (size_t i = 0; parts[i]; i++)
        if (strcasestr(name, parts[i]))
            return true;
    return false;
}

bool sl_config_header_is_secret(const char *name)
{
    static const char *const exact[] = {"authorization", "proxy-authorization",
                                        "cookie",        "api-key",
                                        "x-api-key",     NULL};
    static const char *const parts[] = {
        "api-key", "api_key", "apikey", "token", "secret", "password", NULL};
    return name_matches(name, exact, parts);
}

bool sl_config_kafka_property_is_secret(const char *name)
{
    static const char *const exact[] = {"sasl.password",
                                        "ssl.key.password",
                                        "ssl.keystore.password",
                                        "ssl.truststore.password",
                                        "ssl.key.pem",
                                        "sasl.oauthbearer.client.secret",
                                        NULL};
    static const char *const parts[] = {"password", "passphrase", "secret",
                                        "jaas", NULL};
    size_t n = strlen(name);

    return name_matches(name, exact, parts) ||
           (n >= 7 && !strcasecmp(name + n - 7, "key.pem"));
}

static bool ok_header_name(const char *s)
{
    return sl_config_header_name_ok(s);
}

static const struct sl_config_strcheck chk_header_name = {
    "a header name (an RFC 9110 token: letters, digits and "
    "!#$%&'*+-.^_`|~)",
    ok_header_name, false};
static const struct sl_config_strcheck chk_name = {
    "a name of 1 to 64 lowercase letters, digits, '_' or '-'", ok_name, false};
static const struct sl_config_strcheck chk_backend_name = {
    "a name of 1 to 64 letters, digits, '_' or '-'", ok_backend_name, false};
static const struct sl_config_strcheck chk_http_url = {
    "a URL starting with http:// or https:// (without a password)", ok_http_url,
    true};
static const struct sl_config_strcheck chk_redis_url = {
    "a URL starting with redis://, rediss:// or unix:// (without a "
    "password; use password_env or password_file)",
    ok_redis_url, true};
static const struct sl_config_strcheck chk_dsn = {
    "a libpq connection string without a password (use password_env or "
    "password_file)",
    ok_dsn, true};
static const struct sl_config_strcheck chk_table = {
    "a table name ([A-Za-z_][A-Za-z0-9_]{0,62}, optionally schema.table)",
    ok_table, false};
static const struct sl_config_strcheck chk_column = {
    "a column name ([A-Za-z_][A-Za-z0-9_]{0,62})", ok_column, false};
/* Secret: the secret itself, given by mistake for its variable's name. */
static const struct sl_config_strcheck chk_env_name = {
    "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", ok_env_name, true};
static const struct sl_config_strcheck chk_pointer = {
    "a JSON pointer (empty or starting with '/')", ok_pointer, false};
static const struct sl_config_strcheck chk_host_port = {sl_config_listen_expect,
                                                        ok_host_port, false};
static const struct sl_config_strcheck chk_template = {
    "a template whose placeholders read {{field}}, {{a.b}} or {{.}}",
    ok_template, false};

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

/*
 * The secret named by keys 'env_key' (value 'env') and 'file_key' ('file')
 * of mapping 'map' at 'path': not both, and readable as `sluice run` will
 * need it (sl_secret_check(), which reads no secret).
 */
static void check_secret_src(struct sl_config_ctx *ctx, struct fy_node *map,
                             const char *path, const char *env_key,
                             const char *env, const char *file_key,
                             const char *file)
{
    struct sl_secret_src src = {env, file};
    char p[SL_CONFIG_MAX_PATH], why[768];

    if (env && file) {
        sl_config_path_key(p, path, file_key);
        sl_config_report(
            ctx, fy_node_mapping_lookup_key_by_string(map, file_key, FY_NT),
            map, p, "give %s or %s, not both", env_key, file_key);
        return;
    }
    if (sl_secret_check(&src, why, sizeof(why)) == 0)
        return;
    sl_config_path_key(p, path, env ? env_key : file_key);
    sl_config_report(ctx, sl_config_lookup(map, env ? env_key : file_key), map,
                     p, "%s", why);
}

/* {value_env: NAME} or {value_file: PATH} as a header or property value. */
static void check_kv_secret(struct sl_config_ctx *ctx, void *obj,
                            struct fy_node *map, const char *path)
{
    const struct sl_config_kv *kv = obj;

    if (!sl_config_lookup(map, "value_env") &&
        !sl_config_lookup(map, "value_file")) {
        sl_config_report(ctx, map, map, path,
                         "expected {value_env: NAME} or {value_file: PATH}");
        return;
    }
    check_secret_src(ctx, map, path, "value_env", kv->value_env, "value_file",
                     kv->value_file);
}

#define S struct sl_config_kv
static const struct sl_config_key kv_secret_keys[] = {
    {"value_env", SL_KT_STR, FIELD(value_env), .check = &chk_env_name,
     .desc = "Environment variable holding the value, read once at start-up; "
             "it must be set and not empty."},
    {"value_file", SL_KT_STR, FIELD(value_file),
     .desc = "File holding the value, read once at start-up: a regular file "
             "with no permission for group or others (`chmod 600`); trailing "
             "line breaks are dropped."},
};
static const struct sl_config_schema kv_secret_schema =
    SCHEMA(kv_secret_keys, struct sl_config_kv, .check = check_kv_secret);
#undef S

/* ---- source ---- */

/*
 * librdkafka settings sluice sets itself and a pipeline may not change;
 * credentials given as values in the file.
 */
static void check_kafka(struct sl_config_ctx *ctx, void *obj,
                        struct fy_node *map, const char *path)
{
    static const char managed[] = "enable.auto.offset.store";
    const struct sl_config_kafka *k = obj;
    struct fy_node *props = sl_config_lookup(map, "properties");
    char p[512];

    for (size_t i = 0; i < k->properties.cnt; i++) {
        const struct sl_config_kv *kv = &k->properties.items[i];
        if (!kv->value || !sl_config_kafka_property_is_secret(kv->key))
            continue;
        snprintf(p, sizeof(p), "%s.properties.%s", path, kv->key);
        sl_config_report(ctx, sl_config_lookup(props, kv->key), props, p,
                         "kafka property '%s' carries a credential: it must "
                         "not be written in the file, nor come from ${VAR}; "
                         "write %s: {value_env: NAME} or {value_file: PATH}",
                         kv->key, kv->key);
    }

    for (size_t i = 0; i < k->properties.cnt; i++) {
        const char *key = k->properties.items[i].key;
        if (!key || strcmp(key, managed))
            continue;
        snprintf(p, sizeof(p), "%s.properties.%s", path, managed);
        sl_config_report(
            ctx,
            props ? fy_node_mapping_lookup_key_by_string(props, managed, FY_NT)
                  : NULL,
            props ? props : map, p,
            "kafka property '%s' is managed by sluice (offsets are stored "
            "only once processed); remove it",
            managed);
        break;
    }
}

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
    SCHEMA(kafka_keys, struct sl_config_kafka, .check = check_kafka);
#undef S

static void check_redis(struct sl_config_ctx *ctx, void *obj,
                        struct fy_node *map, const char *path)
{
    const struct sl_config_redis *r = obj;

    check_secret_src(ctx, map, path, "password_env", r->password_env,
                     "password_file", r->password_file);
}

#define S struct sl_config_redis
static const struct sl_config_key redis_keys[] = {
    {"url", SL_KT_STR, FIELD(url), .check = &chk_redis_url,
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
    {"password_env", SL_KT_STR, FIELD(password_env), .check = &chk_env_name,
     .desc = "Environment variable holding the Redis password (`AUTH`), read "
             "at start-up."},
    {"password_file", SL_KT_STR, FIELD(password_file),
     .desc = "File holding the Redis password (mode 600), read at start-up."},
};
static const struct sl_config_schema redis_schema =
    SCHEMA(redis_keys, struct sl_config_redis, .check = check_redis);
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

static void check_retry(struct sl_config_ctx *ctx, void *obj,
                        struct fy_node *map, const char *path)
{
    const struct sl_config_retry *r = obj;
    char p[512];

    if (r->base_ms > r->max_ms) {
        snprintf(p, sizeof(p), "%s.base_ms", path);
        sl_config_report(ctx, sl_config_lookup(map, "base_ms"), map, p,
                         "base_ms (%d) must not exceed max_ms (%d)", r->base_ms,
                         r->max_ms);
    }
}

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
    SCHEMA(retry_keys, struct sl_config_retry, .check = check_retry);
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
     .check = &chk_template,
     .desc = "Plain-text template of the message: `{{field}}` becomes the "
             "payload field's text (another JSON value its compact JSON), "
             "`{{.}}` the whole payload."},
};
static const struct sl_config_schema message_schema =
    SCHEMA(message_keys, struct sl_config_message);
#undef S

/*
 * A JSON template (http-json body, embeddings input) is rendered once
 * against a probe: one that cannot give JSON would fail every message at
 * run time.  Templates that failed their own checks are NULL here.
 */
static void check_json_template(struct sl_config_ctx *ctx,
                                const struct sl_config_backend *b,
                                struct fy_node *map, const char *path)
{
    bool embeddings = b->kind == SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS;
    const char *key = embeddings ? "input" : "body";
    const char *tpl = embeddings                               ? b->input
                      : b->kind == SL_CONFIG_BACKEND_HTTP_JSON ? b->body
                                                               : NULL;
    char why[512], p[512];

    if (!tpl ||
        sl_template_check_json(tpl, embeddings, why, sizeof(why)) != -SL_EINVAL)
        return;
    snprintf(p, sizeof(p), "%s.%s", path, key);
    sl_config_report(ctx, sl_config_lookup(map, key), map, p, "%s", why);
}

/*
 * The API key's source; headers: values that would end the header line,
 * credentials written in the file, a second Authorization, names that
 * differ only in case; the JSON template.
 */
static void check_backend(struct sl_config_ctx *ctx, void *obj,
                          struct fy_node *map, const char *path)
{
    const struct sl_config_backend *b = obj;
    struct fy_node *hmap = sl_config_lookup(map, "headers");
    char p[512];

    check_secret_src(ctx, map, path, "api_key_env", b->api_key_env,
                     "api_key_file", b->api_key_file);
    for (size_t i = 0; i < b->headers.cnt; i++) {
        const struct sl_config_kv *kv = &b->headers.items[i];
        struct fy_node *keyn =
            fy_node_mapping_lookup_key_by_string(hmap, kv->key, FY_NT);

        snprintf(p, sizeof(p), "%s.headers.%s", path, kv->key);
        if (kv->value && !sl_config_header_value_ok(kv->value))
            sl_config_report(ctx, sl_config_lookup(hmap, kv->key), hmap, p,
                             "a header value must not hold CR, LF, NUL or "
                             "another control character (it would end the "
                             "header line and start another)");
        else if (kv->value && sl_config_header_is_secret(kv->key))
            sl_config_report(ctx, sl_config_lookup(hmap, kv->key), hmap, p,
                             "header '%s' carries a credential: it must not "
                             "be written in the file, nor come from ${VAR}; "
                             "write %s: {value_env: NAME} or {value_file: "
                             "PATH}",
                             kv->key, kv->key);
        if ((b->api_key_env || b->api_key_file) &&
            !strcasecmp(kv->key, "Authorization"))
            sl_config_report(ctx, keyn, hmap, p,
                             "header '%s' and %s both set the Authorization "
                             "header; keep one",
                             kv->key,
                             b->api_key_env ? "api_key_env" : "api_key_file");
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(b->headers.items[j].key, kv->key))
                continue;
            sl_config_report(ctx, keyn, hmap, p,
                             "duplicate header '%s' (header names are "
                             "case-insensitive; also '%s')",
                             kv->key, b->headers.items[j].key);
            break;
        }
    }
    check_json_template(ctx, b, map, path);
}

#define S struct sl_config_backend
static const struct sl_config_key backend_keys[] = {
    {"kind", SL_KT_ENUM, FIELD(kind), .flags = SL_KF_REQ,
     .enums = sl_config_backend_kinds,
     .desc = "Protocol: `openai-chat` (POST `{url}/chat/completions`), "
             "`openai-embeddings` (POST `{url}/embeddings`) or `http-json` "
             "(any JSON endpoint at `url`)."},
    {"url", SL_KT_STR, FIELD(url), .flags = SL_KF_REQ, .check = &chk_http_url,
     .desc =
         "`openai-*`: the base URL (`http://host:8080/v1`); `http-json`: the "
         "endpoint itself. `http://` or `https://`, never with a password."},
    {"model", SL_KT_STR, FIELD(model), .flags = SL_KF_REQ, .kinds = CHAT | EMB,
     .desc = "Model name sent with each request."},
    {"api_key_env", SL_KT_STR, FIELD(api_key_env), .check = &chk_env_name,
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
     INT(0, 3600000, "10000"),
     .desc = "An answer slower than `low_speed_bytes_per_s` for this long (ms, "
             "rounded up to whole seconds) is aborted as a timeout. `0`: no "
             "such check."},
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
    {"input", SL_KT_STR, FIELD(input), .check = &chk_template,
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
    /* http-json */
    {"method", SL_KT_ENUM, FIELD(method), .enums = methods, .def = "POST",
     .kinds = HTTP, .desc = "HTTP method of the request."},
    {"headers", SL_KT_KVMAP, FIELD(headers), .max = 64,
     .sub = &kv_secret_schema, .check = &chk_header_name,
     .desc = "Extra request headers, `Name: value`; a credential header "
             "(`Authorization`, `Cookie`, `X-Api-Key`, a name with `token`, "
             "`secret`, `password` ...) must be `{value_env: NAME}` or "
             "`{value_file: PATH}`."},
    {"body", SL_KT_STR, FIELD(body), .check = &chk_template, .kinds = HTTP,
     .desc = "JSON template of the request body, e.g. `{\"text\": {{text}}}` "
             "(a field goes in as a JSON value, strings quoted). Unset: the "
             "message's payload as it is."},
    {"result_pointer", SL_KT_STR, FIELD(result_pointer),
     .flags = SL_KF_EMPTY_OK, .check = &chk_pointer, .def = "", .kinds = HTTP,
     .desc = "JSON pointer to the part of the reply kept as the result "
             "(`/label`). Empty: the whole reply."},
};
static const struct sl_config_schema backend_schema =
    SCHEMA(backend_keys, struct sl_config_backend, .kind_key = "kind",
           .kind_label = "kind", .named = true, .name_off = offsetof(S, name),
           .check = check_backend);
#undef S

/* ---- steps ---- */

#define S struct sl_config_step
static const struct sl_config_key step_keys[] = {
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ, .check = &chk_name,
     .desc = "Name of the step, unique among steps."},
    {"backends", SL_KT_STRLIST, FIELD(backends), .flags = SL_KF_REQ, .min = 1,
     .max = 16, .check = &chk_backend_name,
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
#n, SL_KT_STR, FIELD(n), .check = &chk_column, .def = #n, .desc = d    \
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
    {"vectors", SL_KT_KVMAP, FIELD(vectors), .max = 16, .check = &chk_column,
     .desc = "Extra `real[]` columns, `column: backend`: each row's result of "
             "that backend, a JSON array of numbers such as an "
             "`openai-embeddings` vector, also stored as a `real[]` (float4) "
             "array, to query and index without parsing JSON. NULL when the "
             "row has no result of that backend; a result that is not an "
             "array of numbers sends the row to the dead-letter table. A "
             "table sluice creates gets these columns; add them to an "
             "existing one (`ALTER TABLE ... ADD COLUMN embedding real[]`)."},
    COLUMN(
        processed_at,
        "Accepted but not used yet: rows never write this column, and a table "
        "sluice creates always has `processed_at timestamptz DEFAULT now()`."),
};
#undef COLUMN
static const struct sl_config_schema columns_schema =
    SCHEMA(columns_keys, struct sl_config_columns);
#undef S

static void check_postgres(struct sl_config_ctx *ctx, void *obj,
                           struct fy_node *map, const char *path)
{
    const struct sl_config_postgres *pg = obj;

    check_secret_src(ctx, map, path, "password_env", pg->password_env,
                     "password_file", pg->password_file);
}

#define S struct sl_config_postgres
static const struct sl_config_key postgres_keys[] = {
    {"dsn", SL_KT_STR, FIELD(dsn), .check = &chk_dsn,
     .def = "host=127.0.0.1 port=55432 dbname=sluice user=postgres",
     .desc =
         "libpq connection string (`host=... port=... dbname=... user=...`, or "
         "a `postgresql://` URI), never with a password; keepalives and "
         "`tcp_user_timeout=30000` are added unless it sets them."},
    {"password_env", SL_KT_STR, FIELD(password_env), .check = &chk_env_name,
     .desc = "Environment variable holding the database password, read at "
             "start-up."},
    {"password_file", SL_KT_STR, FIELD(password_file),
     .desc =
         "File holding the database password (mode 600), read at start-up."},
    {"table", SL_KT_STR, FIELD(table), .check = &chk_table,
     .def = "sluice_results",
     .desc = "Results table, `[schema.]table`; one row per message, unique by "
             "origin, so nothing is written twice."},
    {"dead_letter_table", SL_KT_STR, FIELD(dead_letter_table),
     .check = &chk_table, .def = "sluice_dead_letters",
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
    {"backlog_rows", SL_KT_INT, FIELD(backlog_rows), INT(1, 10000000, "10000"),
     .desc = "Rows waiting for the sink at most; beyond it the workers block, "
             "which in turn stops the source (backpressure)."},
    {"columns", SL_KT_OBJ, FIELD(columns), .sub = &columns_schema,
     .desc =
         "Column names of the results table, to write into an existing table."},
};
static const struct sl_config_schema postgres_schema =
    SCHEMA(postgres_keys, struct sl_config_postgres, .check = check_postgres);
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
    {"listen", SL_KT_STR, FIELD(listen), .check = &chk_host_port,
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

/* The value of steps[i].backends[j] in the document, for error places. */
static struct fy_node *step_backend_node(struct fy_node *root, size_t i,
                                         size_t j)
{
    struct fy_node *n = sl_config_lookup(root, "steps");

    if (!n || !fy_node_is_sequence(n))
        return NULL;
    n = fy_node_sequence_get_by_index(n, (int)i);
    n = n ? sl_config_lookup(fy_node_resolve_alias(n), "backends") : NULL;
    if (!n || !fy_node_is_sequence(n))
        return NULL;
    return fy_node_sequence_get_by_index(n, (int)j);
}

/*
 * Each sink.postgres.columns.vectors entry names a backend whose result
 * can be an array: not openai-chat (its result is an object).
 */
static void check_vectors(struct sl_config_ctx *ctx,
                          const struct sl_config *cfg, struct fy_node *root)
{
    const struct sl_config_kvlist *vl = &cfg->sink.postgres.columns.vectors;
    struct fy_node *vn = sl_config_lookup(
        sl_config_lookup(
            sl_config_lookup(sl_config_lookup(root, "sink"), "postgres"),
            "columns"),
        "vectors");
    char p[256];

    for (size_t i = 0; i < vl->cnt; i++) {
        const struct sl_config_kv *kv = &vl->items[i];
        const struct sl_config_backend *b =
            kv->value ? sl_config_backend_find(cfg, kv->value) : NULL;
        struct fy_node *n =
            vn && fy_node_is_mapping(vn)
                ? fy_node_mapping_lookup_by_string(vn, kv->key, FY_NT)
                : NULL;

        snprintf(p, sizeof(p), "sink.postgres.columns.vectors.%s", kv->key);
        if (!b)
            sl_config_report(ctx, n, root, p,
                             "unknown backend '%s': a vector column takes "
                             "the result of one of the pipeline's backends",
                             kv->value ? kv->value : "");
        else if (b->kind == SL_CONFIG_BACKEND_OPENAI_CHAT)
            sl_config_report(ctx, n, root, p,
                             "backend '%s' is openai-chat, whose result is an "
                             "object, not an array of numbers",
                             kv->value);
    }
}

static void check_root(struct sl_config_ctx *ctx, void *obj,
                       struct fy_node *root, const char *path)
{
    const struct sl_config *cfg = obj;
    char p[256];

    (void)path;
    /* After other errors gateway.enabled may just have failed to parse. */
    if (!cfg->source.present && !cfg->gateway.enabled &&
        sl_config_error_count(ctx) == 0)
        sl_config_report(ctx, sl_config_lookup(root, "gateway"), root, "source",
                         "nothing to do: give a 'source' or set "
                         "gateway.enabled to true");
    if (cfg->source.present && !cfg->sink.present)
        sl_config_report(ctx, NULL, root, "sink",
                         "missing required key 'sink' (required when "
                         "'source' is present)");
    if (cfg->source.present &&
        sl_config_is_null(sl_config_lookup(root, "steps")))
        sl_config_report(
            ctx, fy_node_mapping_lookup_key_by_string(root, "steps", FY_NT),
            root, "steps",
            "missing required key 'steps' (required when "
            "'source' is present)");
    /* Gateway rows go to the sink.  With a source, the missing sink is
     * reported above already. */
    if (cfg->gateway.enabled && cfg->gateway.write_rows && !cfg->sink.present &&
        !cfg->source.present) {
        struct fy_node *gw = sl_config_lookup(root, "gateway");
        sl_config_report(
            ctx,
            gw ? fy_node_mapping_lookup_key_by_string(gw, "write_rows", FY_NT)
               : NULL,
            gw ? gw : root, "gateway.write_rows",
            "write_rows is true but the pipeline has no 'sink': add "
            "sink.postgres or set write_rows to false");
    }

    if (cfg->sink.present)
        check_vectors(ctx, cfg, root);
    for (size_t i = 0; i < cfg->step_cnt; i++) {
        const struct sl_config_step *st = &cfg->steps[i];

        for (size_t k = 0; st->name && k < i; k++) {
            if (cfg->steps[k].name && !strcmp(cfg->steps[k].name, st->name)) {
                struct fy_node *sn = sl_config_lookup(
                    root, "steps"); /* the sequence, then the item */
                sn = sn ? fy_node_sequence_get_by_index(sn, (int)i) : NULL;
                snprintf(p, sizeof(p), "steps[%zu].name", i);
                sl_config_report(
                    ctx, sn ? sl_config_lookup(sn, "name") : NULL, root, p,
                    "duplicate step name '%s' (also steps[%zu])", st->name, k);
                break;
            }
        }
        for (size_t j = 0; j < st->backends.cnt; j++) {
            const char *b = st->backends.items[j];
            if (!b || sl_config_backend_find(cfg, b))
                continue;
            snprintf(p, sizeof(p), "steps[%zu].backends[%zu]", i, j);
            sl_config_report(ctx, step_backend_node(root, i, j), root, p,
                             "unknown backend '%s'", b);
        }
    }
}

#define S struct sl_config
static const struct sl_config_key root_keys[] = {
    {"version", SL_KT_INT, FIELD(version), .flags = SL_KF_REQ, .min = 1,
     .max = 1, .desc = "Version of the pipeline file format."},
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ, .check = &chk_name,
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
     .check = &chk_backend_name,
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
    SCHEMA(root_keys, struct sl_config, .check = check_root);
