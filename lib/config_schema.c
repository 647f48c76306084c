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

/* "path.key" into out[512]. */
static void key_path(char *out, const char *path, const char *key)
{
    snprintf(out, 512, "%s%s%s", path, *path ? "." : "", key);
}

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
    char p[512], why[768];

    if (env && file) {
        key_path(p, path, file_key);
        sl_config_report(
            ctx, fy_node_mapping_lookup_key_by_string(map, file_key, FY_NT),
            map, p, "give %s or %s, not both", env_key, file_key);
        return;
    }
    if (sl_secret_check(&src, why, sizeof(why)) == 0)
        return;
    key_path(p, path, env ? env_key : file_key);
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
    {"value_env", SL_KT_STR, FIELD(value_env), .check = &chk_env_name},
    {"value_file", SL_KT_STR, FIELD(value_file)},
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
    {"brokers", SL_KT_STR, FIELD(brokers), .def = "127.0.0.1:59092"},
    {"topics", SL_KT_STRLIST, FIELD(topics), .flags = SL_KF_REQ, .min = 1,
     .max = 64},
    {"group", SL_KT_STR, FIELD(group), .flags = SL_KF_REQ},
    {"group_instance_id", SL_KT_STR, FIELD(group_instance_id)},
    {"auto_offset_reset", SL_KT_ENUM, FIELD(auto_offset_reset),
     .enums = offset_resets, .def = "earliest"},
    {"revoke_timeout_ms", SL_KT_INT, FIELD(revoke_timeout_ms),
     INT(100, 600000, "10000")},
    {"properties", SL_KT_KVMAP, FIELD(properties), .max = 256,
     .sub = &kv_secret_schema},
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
     .def = "redis://127.0.0.1:56379"},
    {"key", SL_KT_STR, FIELD(key), .flags = SL_KF_REQ},
    {"group", SL_KT_STR, FIELD(group), .def = "sluice"},
    {"consumer", SL_KT_STR, FIELD(consumer)},
    {"count", SL_KT_INT, FIELD(count), INT(1, 10000, "128")},
    {"block_ms", SL_KT_INT, FIELD(block_ms), INT(1, 60000, "1000")},
    {"min_idle_ms", SL_KT_INT, FIELD(min_idle_ms),
     INT(1000, 86400000, "60000")},
    {"claim_interval_ms", SL_KT_INT, FIELD(claim_interval_ms),
     INT(100, 3600000, "10000")},
    {"max_deliveries", SL_KT_INT, FIELD(max_deliveries), INT(1, 1000, "5")},
    {"ack_batch", SL_KT_INT, FIELD(ack_batch), INT(1, 10000, "128")},
    {"heartbeat_ms", SL_KT_INT, FIELD(heartbeat_ms), INT(100, 600000, "5000")},
    {"password_env", SL_KT_STR, FIELD(password_env), .check = &chk_env_name},
    {"password_file", SL_KT_STR, FIELD(password_file)},
};
static const struct sl_config_schema redis_schema =
    SCHEMA(redis_keys, struct sl_config_redis, .check = check_redis);
#undef S

#define S struct sl_config_file_source
static const struct sl_config_key file_keys[] = {
    {"path", SL_KT_STR, FIELD(path), .flags = SL_KF_REQ},
};
static const struct sl_config_schema file_schema =
    SCHEMA(file_keys, struct sl_config_file_source);
#undef S

#define S struct sl_config_source
static const struct sl_config_key source_keys[] = {
    {"kind", SL_KT_ENUM, FIELD(kind), .flags = SL_KF_REQ,
     .enums = sl_config_source_kinds},
    {"max_message_bytes", SL_KT_INT, FIELD(max_message_bytes),
     INT(1, 67108864, "1048576")},
    {"ordering", SL_KT_ENUM, FIELD(ordering), .enums = orderings,
     .def = "unordered"},
    {"payload_format", SL_KT_ENUM, FIELD(payload_format),
     .enums = payload_formats, .def = "json"},
    {"kafka", SL_KT_OBJ, FIELD(kafka), .flags = SL_KF_REQ, .sub = &kafka_schema,
     .kinds = KAFKA},
    {"redis", SL_KT_OBJ, FIELD(redis), .flags = SL_KF_REQ, .sub = &redis_schema,
     .kinds = REDIS},
    {"file", SL_KT_OBJ, FIELD(file), .flags = SL_KF_REQ, .sub = &file_schema,
     .kinds = FILESRC},
};
static const struct sl_config_schema source_schema =
    SCHEMA(source_keys, struct sl_config_source, .kind_key = "kind",
           .kind_label = "source.kind");
#undef S

/* ---- queue, workers ---- */

#define S struct sl_config_queue
static const struct sl_config_key queue_keys[] = {
    {"capacity", SL_KT_INT, FIELD(capacity), INT(1, 1048576, "1024")},
};
static const struct sl_config_schema queue_schema =
    SCHEMA(queue_keys, struct sl_config_queue);
#undef S

#define S struct sl_config_workers
static const struct sl_config_key workers_keys[] = {
    {"threads", SL_KT_INT, FIELD(threads), INT(1, 256, "2")},
    {"max_inflight", SL_KT_INT, FIELD(max_inflight), INT(1, 65536, "64")},
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
    {"max_attempts", SL_KT_INT, FIELD(max_attempts), INT(1, 100, "4")},
    {"base_ms", SL_KT_INT, FIELD(base_ms), INT(1, 600000, "100")},
    {"max_ms", SL_KT_INT, FIELD(max_ms), MS("10000")},
    {"retry_after_max_ms", SL_KT_INT, FIELD(retry_after_max_ms),
     INT(0, 86400000, "60000")},
};
static const struct sl_config_schema retry_schema =
    SCHEMA(retry_keys, struct sl_config_retry, .check = check_retry);
#undef S

#define S struct sl_config_breaker
static const struct sl_config_key breaker_keys[] = {
    {"failures", SL_KT_INT, FIELD(failures), INT(0, 10000, "5")},
    {"open_ms", SL_KT_INT, FIELD(open_ms), INT(100, 3600000, "10000")},
    {"half_open_probes", SL_KT_INT, FIELD(half_open_probes), INT(1, 1000, "1")},
};
static const struct sl_config_schema breaker_schema =
    SCHEMA(breaker_keys, struct sl_config_breaker);
#undef S

#define S struct sl_config_message
static const struct sl_config_key message_keys[] = {
    {"role", SL_KT_ENUM, FIELD(role), .flags = SL_KF_REQ, .enums = roles},
    {"content", SL_KT_STR, FIELD(content), .flags = SL_KF_REQ,
     .check = &chk_template},
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
     .enums = sl_config_backend_kinds},
    {"url", SL_KT_STR, FIELD(url), .flags = SL_KF_REQ, .check = &chk_http_url},
    {"model", SL_KT_STR, FIELD(model), .flags = SL_KF_REQ, .kinds = CHAT | EMB},
    {"api_key_env", SL_KT_STR, FIELD(api_key_env), .check = &chk_env_name},
    {"api_key_file", SL_KT_STR, FIELD(api_key_file)},
    {"timeout_ms", SL_KT_INT, FIELD(timeout_ms), MS("30000")},
    {"connect_timeout_ms", SL_KT_INT, FIELD(connect_timeout_ms),
     INT(1, 600000, "5000")},
    {"low_speed_time_ms", SL_KT_INT, FIELD(low_speed_time_ms),
     INT(0, 3600000, "10000")},
    {"low_speed_bytes_per_s", SL_KT_INT, FIELD(low_speed_bytes_per_s),
     INT(0, 1073741824, "1")},
    {"max_response_bytes", SL_KT_INT, FIELD(max_response_bytes),
     INT(1, 1073741824, "4194304")},
    {"max_concurrency", SL_KT_INT, FIELD(max_concurrency), INT(1, 65536, "64")},
    {"rate_limit_rps", SL_KT_NUM, FIELD(rate_limit_rps), .fmin = 0.001,
     .fmax = 1000000},
    {"tokens_per_minute", SL_KT_INT, FIELD(tokens_per_minute),
     INT(1, 1000000000, NULL), .kinds = CHAT},
    {"retry", SL_KT_OBJ, FIELD(retry), .sub = &retry_schema},
    {"breaker", SL_KT_OBJ, FIELD(breaker), .sub = &breaker_schema},
    /* openai-chat */
    {"messages", SL_KT_OBJLIST, FIELD(messages),
     .cnt_off = offsetof(S, message_cnt), .flags = SL_KF_REQ, .min = 1,
     .max = 64, .sub = &message_schema, .kinds = CHAT},
    {"temperature", SL_KT_NUM, FIELD(temperature), .fmin = 0, .fmax = 2,
     .def = "0", .kinds = CHAT},
    {"max_tokens", SL_KT_INT, FIELD(max_tokens), INT(1, 1000000, NULL),
     .kinds = CHAT},
    {"response_format", SL_KT_ENUM, FIELD(response_format),
     .enums = response_formats, .def = "text", .kinds = CHAT},
    /* openai-embeddings */
    {"input", SL_KT_STR, FIELD(input), .check = &chk_template,
     .def = "{{text}}", .kinds = EMB},
    {"batch_max", SL_KT_INT, FIELD(batch_max), INT(1, 2048, "64"),
     .kinds = EMB},
    {"batch_wait_ms", SL_KT_INT, FIELD(batch_wait_ms), INT(0, 60000, "5"),
     .kinds = EMB},
    /* http-json */
    {"method", SL_KT_ENUM, FIELD(method), .enums = methods, .def = "POST",
     .kinds = HTTP},
    {"headers", SL_KT_KVMAP, FIELD(headers), .max = 64,
     .sub = &kv_secret_schema, .check = &chk_header_name},
    {"body", SL_KT_STR, FIELD(body), .check = &chk_template, .kinds = HTTP},
    {"result_pointer", SL_KT_STR, FIELD(result_pointer),
     .flags = SL_KF_EMPTY_OK, .check = &chk_pointer, .def = "", .kinds = HTTP},
};
static const struct sl_config_schema backend_schema =
    SCHEMA(backend_keys, struct sl_config_backend, .kind_key = "kind",
           .kind_label = "kind", .named = true, .name_off = offsetof(S, name),
           .check = check_backend);
#undef S

/* ---- steps ---- */

#define S struct sl_config_step
static const struct sl_config_key step_keys[] = {
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ, .check = &chk_name},
    {"backends", SL_KT_STRLIST, FIELD(backends), .flags = SL_KF_REQ, .min = 1,
     .max = 16, .check = &chk_backend_name},
    {"mode", SL_KT_ENUM, FIELD(mode), .enums = step_modes, .def = "all"},
    {"on_error", SL_KT_ENUM, FIELD(on_error), .enums = on_errors,
     .def = "fail"},
    {"deadline_ms", SL_KT_INT, FIELD(deadline_ms), MS("60000")},
};
static const struct sl_config_schema step_schema =
    SCHEMA(step_keys, struct sl_config_step);
#undef S

/* ---- sink ---- */

#define S struct sl_config_columns
#define COLUMN(n)                                                              \
    {                                                                          \
#n, SL_KT_STR, FIELD(n), .check = &chk_column, .def = #n               \
    }
static const struct sl_config_key columns_keys[] = {
    COLUMN(source),   COLUMN(topic),   COLUMN(partition), COLUMN(offset),
    COLUMN(entry_id), COLUMN(key),     COLUMN(payload),   COLUMN(results),
    COLUMN(errors),   COLUMN(timings), COLUMN(worker),    COLUMN(processed_at),
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
     .def = "host=127.0.0.1 port=55432 dbname=sluice user=postgres"},
    {"password_env", SL_KT_STR, FIELD(password_env), .check = &chk_env_name},
    {"password_file", SL_KT_STR, FIELD(password_file)},
    {"table", SL_KT_STR, FIELD(table), .check = &chk_table,
     .def = "sluice_results"},
    {"dead_letter_table", SL_KT_STR, FIELD(dead_letter_table),
     .check = &chk_table, .def = "sluice_dead_letters"},
    {"create_table", SL_KT_BOOL, FIELD(create_table), .def = "true"},
    {"batch_rows", SL_KT_INT, FIELD(batch_rows), INT(1, 100000, "500")},
    {"flush_ms", SL_KT_INT, FIELD(flush_ms), INT(1, 60000, "50")},
    {"max_batches_inflight", SL_KT_INT, FIELD(max_batches_inflight),
     INT(1, 64, "4")},
    {"backlog_rows", SL_KT_INT, FIELD(backlog_rows), INT(1, 10000000, "10000")},
    {"columns", SL_KT_OBJ, FIELD(columns), .sub = &columns_schema},
};
static const struct sl_config_schema postgres_schema =
    SCHEMA(postgres_keys, struct sl_config_postgres, .check = check_postgres);
#undef S

#define S struct sl_config_sink
static const struct sl_config_key sink_keys[] = {
    {"postgres", SL_KT_OBJ, FIELD(postgres), .flags = SL_KF_REQ,
     .sub = &postgres_schema},
};
static const struct sl_config_schema sink_schema =
    SCHEMA(sink_keys, struct sl_config_sink);
#undef S

/* ---- http, gateway ---- */

#define S struct sl_config_http
static const struct sl_config_key http_keys[] = {
    {"listen", SL_KT_STR, FIELD(listen), .check = &chk_host_port,
     .def = "127.0.0.1:9464"},
};
static const struct sl_config_schema http_schema =
    SCHEMA(http_keys, struct sl_config_http);
#undef S

#define S struct sl_config_gateway
static const struct sl_config_key gateway_keys[] = {
    {"enabled", SL_KT_BOOL, FIELD(enabled), .def = "false"},
    {"max_concurrency", SL_KT_INT, FIELD(max_concurrency), INT(1, 65536, "64")},
    {"write_rows", SL_KT_BOOL, FIELD(write_rows), .def = "false"},
    {"max_body_bytes", SL_KT_INT, FIELD(max_body_bytes),
     INT(1, 67108864, "1048576")},
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
     .max = 1},
    {"name", SL_KT_STR, FIELD(name), .flags = SL_KF_REQ, .check = &chk_name},
    {"log_level", SL_KT_ENUM, FIELD(log_level), .enums = log_levels,
     .def = "info"},
    {"log_format", SL_KT_ENUM, FIELD(log_format), .enums = log_formats,
     .def = "json"},
    {"replica_id", SL_KT_STR, FIELD(replica_id)},
    {"shutdown_timeout_ms", SL_KT_INT, FIELD(shutdown_timeout_ms),
     INT(100, 3600000, "30000")},
    {"source", SL_KT_OBJ, FIELD(source), .flags = SL_KF_HAS,
     .has_off = offsetof(S, source.present), .sub = &source_schema},
    {"queue", SL_KT_OBJ, FIELD(queue), .sub = &queue_schema},
    {"workers", SL_KT_OBJ, FIELD(workers), .sub = &workers_schema},
    {"backends", SL_KT_OBJMAP, FIELD(backends),
     .cnt_off = offsetof(S, backend_cnt), .max = 64, .sub = &backend_schema,
     .check = &chk_backend_name},
    {"steps", SL_KT_OBJLIST, FIELD(steps), .cnt_off = offsetof(S, step_cnt),
     .min = 1, .max = 32, .sub = &step_schema},
    {"sink", SL_KT_OBJ, FIELD(sink), .flags = SL_KF_HAS,
     .has_off = offsetof(S, sink.present), .sub = &sink_schema},
    {"http", SL_KT_OBJ, FIELD(http), .sub = &http_schema},
    {"gateway", SL_KT_OBJ, FIELD(gateway), .sub = &gateway_schema},
};
#undef S

const struct sl_config_schema sl_config_schema_root =
    SCHEMA(root_keys, struct sl_config, .check = check_root);
