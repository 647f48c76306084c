/*
 * The schema's checks (the tables are in config_schema.c): what a string
 * value must look like, one sl_config_strcheck each, and the cross-key
 * rules a mapping runs once its keys are read - secrets given once and
 * readable, credentials kept out of the file, backends that steps name.
 */
#include "config_schema_check.h"

#include "err.h"
#include "secret.h"
#include "template.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

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

const struct sl_config_strcheck sl_config_chk_header_name = {
    "a header name (an RFC 9110 token: letters, digits and "
    "!#$%&'*+-.^_`|~)",
    ok_header_name, false};
const struct sl_config_strcheck sl_config_chk_name = {
    "a name of 1 to 64 lowercase letters, digits, '_' or '-'", ok_name, false};
const struct sl_config_strcheck sl_config_chk_backend_name = {
    "a name of 1 to 64 letters, digits, '_' or '-'", ok_backend_name, false};
const struct sl_config_strcheck sl_config_chk_http_url = {
    "a URL starting with http:// or https:// (without a password)", ok_http_url,
    true};
const struct sl_config_strcheck sl_config_chk_redis_url = {
    "a URL starting with redis://, rediss:// or unix:// (without a "
    "password; use password_env or password_file)",
    ok_redis_url, true};
const struct sl_config_strcheck sl_config_chk_dsn = {
    "a libpq connection string without a password (use password_env or "
    "password_file)",
    ok_dsn, true};
const struct sl_config_strcheck sl_config_chk_table = {
    "a table name ([A-Za-z_][A-Za-z0-9_]{0,62}, optionally schema.table)",
    ok_table, false};
const struct sl_config_strcheck sl_config_chk_column = {
    "a column name ([A-Za-z_][A-Za-z0-9_]{0,62})", ok_column, false};
/* Secret: the secret itself, given by mistake for its variable's name. */
const struct sl_config_strcheck sl_config_chk_env_name = {
    "an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", ok_env_name, true};
const struct sl_config_strcheck sl_config_chk_pointer = {
    "a JSON pointer (empty or starting with '/')", ok_pointer, false};
const struct sl_config_strcheck sl_config_chk_host_port = {
    sl_config_listen_expect, ok_host_port, false};
const struct sl_config_strcheck sl_config_chk_template = {
    "a template whose placeholders read {{field}}, {{a.b}} or {{.}}",
    ok_template, false};

/* ---- cross-key checks ---- */

enum place {
    AT_VALUE, /* the value is wrong */
    AT_KEY,   /* the key should not be there at all */
};

/*
 * How every check below reports an error about key 'key' of mapping 'map',
 * whose own key path is 'path': the message ends "at path.key" and points
 * at the key's value or at the key itself ('at'), or at 'map' when the key
 * is absent.
 */
static void report_key(struct sl_config_ctx *ctx, struct fy_node *map,
                       const char *path, const char *key, enum place at,
                       const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void report_key(struct sl_config_ctx *ctx, struct fy_node *map,
                       const char *path, const char *key, enum place at,
                       const char *fmt, ...)
{
    char p[SL_CONFIG_MAX_PATH], msg[1024];
    struct fy_node *node = NULL;
    va_list ap;

    if (at == AT_VALUE)
        node = sl_config_lookup(map, key);
    else if (map && fy_node_is_mapping(map))
        node = fy_node_mapping_lookup_key_by_string(map, key, FY_NT);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sl_config_path_key(p, path, key);
    sl_config_report(ctx, node, map, p, "%s", msg);
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
    char why[768];

    if (env && file) {
        report_key(ctx, map, path, file_key, AT_KEY, "give %s or %s, not both",
                   env_key, file_key);
        return;
    }
    if (sl_secret_check(&src, why, sizeof(why)) == 0)
        return;
    report_key(ctx, map, path, env ? env_key : file_key, AT_VALUE, "%s", why);
}

/* {value_env: NAME} or {value_file: PATH} as a header or property value. */
void sl_config_check_kv_secret(struct sl_config_ctx *ctx, void *obj,
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

/*
 * librdkafka settings sluice sets itself and a pipeline may not change;
 * credentials given as values in the file.
 */
void sl_config_check_kafka(struct sl_config_ctx *ctx, void *obj,
                           struct fy_node *map, const char *path)
{
    static const char managed[] = "enable.auto.offset.store";
    const struct sl_config_kafka *k = obj;
    struct fy_node *props = sl_config_lookup(map, "properties");
    char pp[SL_CONFIG_MAX_PATH];

    sl_config_path_key(pp, path, "properties");
    for (size_t i = 0; i < k->properties.cnt; i++) {
        const struct sl_config_kv *kv = &k->properties.items[i];
        if (!kv->value || !sl_config_kafka_property_is_secret(kv->key))
            continue;
        report_key(ctx, props, pp, kv->key, AT_VALUE,
                   "kafka property '%s' carries a credential: it must not be "
                   "written in the file, nor come from ${VAR}; write %s: "
                   "{value_env: NAME} or {value_file: PATH}",
                   kv->key, kv->key);
    }

    for (size_t i = 0; i < k->properties.cnt; i++) {
        const char *key = k->properties.items[i].key;
        if (!key || strcmp(key, managed))
            continue;
        report_key(ctx, props, pp, managed, AT_KEY,
                   "kafka property '%s' is managed by sluice (offsets are "
                   "stored only once processed); remove it",
                   managed);
        break;
    }
}

void sl_config_check_redis(struct sl_config_ctx *ctx, void *obj,
                           struct fy_node *map, const char *path)
{
    const struct sl_config_redis *r = obj;

    check_secret_src(ctx, map, path, "password_env", r->password_env,
                     "password_file", r->password_file);
}

void sl_config_check_retry(struct sl_config_ctx *ctx, void *obj,
                           struct fy_node *map, const char *path)
{
    const struct sl_config_retry *r = obj;

    if (r->base_ms > r->max_ms)
        report_key(ctx, map, path, "base_ms", AT_VALUE,
                   "base_ms (%d) must not exceed max_ms (%d)", r->base_ms,
                   r->max_ms);
}

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
    char why[512];

    if (!tpl ||
        sl_template_check_json(tpl, embeddings, why, sizeof(why)) != -SL_EINVAL)
        return;
    report_key(ctx, map, path, key, AT_VALUE, "%s", why);
}

/*
 * The API key's source; headers: values that would end the header line,
 * credentials written in the file, a second Authorization, names that
 * differ only in case; the JSON template.
 */
void sl_config_check_backend(struct sl_config_ctx *ctx, void *obj,
                             struct fy_node *map, const char *path)
{
    const struct sl_config_backend *b = obj;
    struct fy_node *hmap = sl_config_lookup(map, "headers");
    char hp[SL_CONFIG_MAX_PATH];

    check_secret_src(ctx, map, path, "api_key_env", b->api_key_env,
                     "api_key_file", b->api_key_file);
    sl_config_path_key(hp, path, "headers");
    for (size_t i = 0; i < b->headers.cnt; i++) {
        const struct sl_config_kv *kv = &b->headers.items[i];

        if (kv->value && !sl_config_header_value_ok(kv->value))
            report_key(ctx, hmap, hp, kv->key, AT_VALUE,
                       "a header value must not hold CR, LF, NUL or another "
                       "control character (it would end the header line and "
                       "start another)");
        else if (kv->value && sl_config_header_is_secret(kv->key))
            report_key(ctx, hmap, hp, kv->key, AT_VALUE,
                       "header '%s' carries a credential: it must not be "
                       "written in the file, nor come from ${VAR}; write %s: "
                       "{value_env: NAME} or {value_file: PATH}",
                       kv->key, kv->key);
        if ((b->api_key_env || b->api_key_file) &&
            !strcasecmp(kv->key, "Authorization"))
            report_key(ctx, hmap, hp, kv->key, AT_KEY,
                       "header '%s' and %s both set the Authorization header; "
                       "keep one",
                       kv->key,
                       b->api_key_env ? "api_key_env" : "api_key_file");
        for (size_t j = 0; j < i; j++) {
            if (strcasecmp(b->headers.items[j].key, kv->key))
                continue;
            report_key(ctx, hmap, hp, kv->key, AT_KEY,
                       "duplicate header '%s' (header names are "
                       "case-insensitive; also '%s')",
                       kv->key, b->headers.items[j].key);
            break;
        }
    }
    check_json_template(ctx, b, map, path);
}

void sl_config_check_postgres(struct sl_config_ctx *ctx, void *obj,
                              struct fy_node *map, const char *path)
{
    const struct sl_config_postgres *pg = obj;

    check_secret_src(ctx, map, path, "password_env", pg->password_env,
                     "password_file", pg->password_file);
}

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
    const char *path = "sink.postgres.columns.vectors";

    for (size_t i = 0; i < vl->cnt; i++) {
        const struct sl_config_kv *kv = &vl->items[i];
        const struct sl_config_backend *b =
            kv->value ? sl_config_backend_find(cfg, kv->value) : NULL;

        if (!b)
            report_key(ctx, vn, path, kv->key, AT_VALUE,
                       "unknown backend '%s': a vector column takes the "
                       "result of one of the pipeline's backends",
                       kv->value ? kv->value : "");
        else if (b->kind == SL_CONFIG_BACKEND_OPENAI_CHAT)
            report_key(ctx, vn, path, kv->key, AT_VALUE,
                       "backend '%s' is openai-chat, whose result is an "
                       "object, not an array of numbers",
                       kv->value);
    }
}

void sl_config_check_root(struct sl_config_ctx *ctx, void *obj,
                          struct fy_node *root, const char *path)
{
    const struct sl_config *cfg = obj;
    char p[SL_CONFIG_MAX_PATH];

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
        report_key(ctx, root, "", "steps", AT_KEY,
                   "missing required key 'steps' (required when 'source' is "
                   "present)");
    /* Gateway rows go to the sink.  With a source, the missing sink is
     * reported above already. */
    if (cfg->gateway.enabled && cfg->gateway.write_rows && !cfg->sink.present &&
        !cfg->source.present)
        report_key(ctx, sl_config_lookup(root, "gateway"), "gateway",
                   "write_rows", AT_KEY,
                   "write_rows is true but the pipeline has no 'sink': add "
                   "sink.postgres or set write_rows to false");

    if (cfg->sink.present)
        check_vectors(ctx, cfg, root);
    for (size_t i = 0; i < cfg->step_cnt; i++) {
        const struct sl_config_step *st = &cfg->steps[i];

        for (size_t k = 0; st->name && k < i; k++) {
            if (cfg->steps[k].name && !strcmp(cfg->steps[k].name, st->name)) {
                struct fy_node *sn = sl_config_lookup(
                    root, "steps"); /* the sequence, then the item */
                sn = sn ? fy_node_sequence_get_by_index(sn, (int)i) : NULL;
                snprintf(p, sizeof(p), "steps[%zu]", i);
                report_key(ctx, sn ? sn : root, p, "name", AT_VALUE,
                           "duplicate step name '%s' (also steps[%zu])",
                           st->name, k);
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
