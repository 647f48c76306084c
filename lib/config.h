/*
 * The pipeline file: YAML parsed with libfyaml, ${VAR} interpolated from the
 * environment, checked against a schema that is data (lib/config_schema.c),
 * and turned into typed, defaulted C structs.  Every error is collected and
 * reported as "FILE:LINE:COL: what is wrong at key.path".
 */
#ifndef SL_CONFIG_H
#define SL_CONFIG_H

#include "log.h"

#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

/*
 * Value syntax, applied to every scalar value (never to keys):
 *
 *   ${VAR}          the environment variable VAR; an error when VAR is unset
 *   ${VAR:-default} VAR when set and not empty, otherwise 'default'
 *   $$              a literal '$'
 *
 * Any other '$' is literal.  VAR is [A-Za-z_][A-Za-z0-9_]*.
 *
 * Templates (backends.*.body, backends.*.input, messages[].content) name
 * fields of the message's JSON payload with {{path}}: {{text}},
 * {{user.id}} (dot-separated object members), {{.}} for the whole payload.
 * In JSON templates (body, input) a field is substituted as a JSON value:
 * strings are quoted and escaped, so a body reads {"text": {{text}}}.  In
 * plain-text templates (messages[].content) a string field is substituted
 * as its raw text and any other value as compact JSON.  The loader checks
 * the {{...}} syntax, and renders each JSON template once with a string
 * for every field (sl_template_check_json()): one that cannot give JSON is
 * refused.  Rendering payloads belongs to the inference engine.
 *
 * Secrets are never in the file: only the *name* of an environment
 * variable (api_key_env, password_env) or a file path (api_key_file,
 * password_file) is stored.  A credential-bearing HTTP header
 * (sl_config_header_is_secret()) or Kafka property
 * (sl_config_kafka_property_is_secret()) takes the same form as a mapping,
 * {value_env: NAME} or {value_file: PATH}, which any header or property
 * may use; a value written in the file (or from ${VAR}) is refused for
 * those.  The loader never reads a secret, but it applies lib/secret.h's
 * sl_secret_check() to every such source (a variable that is unset or
 * empty, a file that is missing, unreadable, empty, too long or open to
 * group or others is an error at the key that names it), so that
 * `sluice check` refuses what `sluice run` would.  Giving both the _env
 * and the _file form of one secret is an error.
 *
 * HTTP headers: a name is an RFC 9110 token, and a value (literal or from
 * ${VAR}) holds no control character but HTAB: no CR, LF or NUL that
 * would end the header line and start another.
 */

/* source.kind; the order is that of the names in the schema. */
enum sl_config_source_kind {
    SL_CONFIG_SOURCE_KAFKA,        /* "kafka" */
    SL_CONFIG_SOURCE_REDIS_STREAM, /* "redis-stream" */
    SL_CONFIG_SOURCE_REDIS_LIST,   /* "redis-list" */
    SL_CONFIG_SOURCE_FILE,         /* "file": one message per line */
    SL_CONFIG_SOURCE_STDIN,        /* "stdin": one message per line */
};

enum sl_config_ordering {
    SL_CONFIG_ORDER_UNORDERED, /* any order (default) */
    SL_CONFIG_ORDER_KEY,       /* one message per key in flight */
    SL_CONFIG_ORDER_PARTITION, /* one message per partition in flight */
};

enum sl_config_payload_format {
    SL_CONFIG_PAYLOAD_JSON, /* payload must be JSON; bad ones dead-letter */
    SL_CONFIG_PAYLOAD_RAW,  /* payload is text, seen as {"text": ...} */
};

enum sl_config_offset_reset {
    SL_CONFIG_RESET_EARLIEST, /* "earliest" */
    SL_CONFIG_RESET_LATEST,   /* "latest" */
};

enum sl_config_backend_kind {
    SL_CONFIG_BACKEND_OPENAI_CHAT,       /* POST {url}/chat/completions */
    SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS, /* POST {url}/embeddings */
    SL_CONFIG_BACKEND_HTTP_JSON,         /* any JSON endpoint */
};

enum sl_config_role {
    SL_CONFIG_ROLE_SYSTEM,    /* "system" */
    SL_CONFIG_ROLE_USER,      /* "user" */
    SL_CONFIG_ROLE_ASSISTANT, /* "assistant" */
};

enum sl_config_response_format {
    SL_CONFIG_RESPONSE_TEXT, /* the reply is stored as a string */
    SL_CONFIG_RESPONSE_JSON, /* the reply must be a JSON object */
};

enum sl_config_encoding_format {
    SL_CONFIG_ENCODING_FLOAT,  /* embeddings as JSON number arrays */
    SL_CONFIG_ENCODING_BASE64, /* embeddings as base64 little-endian float32 */
};

enum sl_config_toast_compression {
    SL_CONFIG_TOAST_LZ4,    /* the sink's session compresses with lz4 */
    SL_CONFIG_TOAST_PGLZ,   /* ... with pglz */
    SL_CONFIG_TOAST_SERVER, /* the server's default_toast_compression */
};

enum sl_config_http_method {
    SL_CONFIG_HTTP_GET,  /* "GET" */
    SL_CONFIG_HTTP_POST, /* "POST" (default) */
    SL_CONFIG_HTTP_PUT,  /* "PUT" */
};

enum sl_config_step_mode {
    SL_CONFIG_MODE_ALL,   /* call every backend concurrently, keep all */
    SL_CONFIG_MODE_FIRST, /* call them concurrently, keep the first reply */
};

enum sl_config_on_error {
    SL_CONFIG_ON_ERROR_FAIL,    /* any failed backend dead-letters the msg */
    SL_CONFIG_ON_ERROR_PARTIAL, /* keep what succeeded, record the errors */
};

/* A list of strings, in file order. */
struct sl_config_strlist {
    char **items; /* cnt strings; owned */
    size_t cnt;   /* number of items */
};

/*
 * A key/value pair of a map whose keys are free-form.  The value is either
 * 'value' or read at start-up from one of 'value_env' / 'value_file'
 * (sl_config_kv_value()).
 */
struct sl_config_kv {
    char *key;        /* owned */
    char *value;      /* scalar, stringified; NULL for the forms below */
    char *value_env;  /* {value_env: NAME}: variable with the value; or NULL */
    char *value_file; /* {value_file: PATH}: file with the value; or NULL */
};

/* An ordered map with free-form keys (kafka properties, HTTP headers). */
struct sl_config_kvlist {
    struct sl_config_kv *items; /* cnt pairs in file order; owned */
    size_t cnt;                 /* number of pairs */
};

struct sl_config_kafka {
    char *brokers;                   /* "host:port[,host:port...]" */
    struct sl_config_strlist topics; /* 1..64 topics to subscribe */
    char *group;                     /* consumer group id */
    char *group_instance_id;         /* static membership; or NULL */
    enum sl_config_offset_reset auto_offset_reset; /* with no committed
                                                      offset */
    int revoke_timeout_ms;              /* drain time on revocation */
    struct sl_config_kvlist properties; /* extra librdkafka settings */
};

struct sl_config_redis {
    char *url;             /* redis://[user@]host:port[/db] */
    char *key;             /* stream or list name */
    char *group;           /* stream consumer group */
    char *consumer;        /* consumer name; NULL: the replica id */
    int count;             /* entries per XREADGROUP / batch */
    int block_ms;          /* XREADGROUP BLOCK */
    int min_idle_ms;       /* pending this long: claimable (XAUTOCLAIM) */
    int claim_interval_ms; /* how often to look for claimable entries */
    int max_deliveries;    /* then the entry is dead-lettered */
    int ack_batch;         /* XACKs per round trip */
    int heartbeat_ms;      /* list source: liveness of processing lists */
    char *password_env;    /* name of the env var holding the password */
    char *password_file;   /* path of a file holding the password */
};

struct sl_config_file_source {
    char *path; /* one message per line */
};

struct sl_config_source {
    bool present;                     /* false: no source (gateway only) */
    enum sl_config_source_kind kind;  /* which source */
    int max_message_bytes;            /* larger ones are dead-lettered */
    enum sl_config_ordering ordering; /* processing order guarantees */
    enum sl_config_payload_format payload_format; /* how to read payloads */
    struct sl_config_kafka kafka;                 /* kind kafka */
    struct sl_config_redis redis;      /* kind redis-stream/redis-list */
    struct sl_config_file_source file; /* kind file */
};

struct sl_config_queue {
    int capacity; /* messages between the source and the workers */
};

struct sl_config_workers {
    int threads;      /* worker threads */
    int max_inflight; /* messages in flight per worker */
};

struct sl_config_retry {
    int max_attempts;       /* including the first attempt */
    int base_ms;            /* first backoff; doubles, with jitter */
    int max_ms;             /* backoff cap */
    int retry_after_max_ms; /* cap on a server's Retry-After */
};

struct sl_config_breaker {
    int failures;         /* consecutive failures that open it; 0: never */
    int open_ms;          /* time open before probing */
    int half_open_probes; /* probes allowed while half-open */
};

struct sl_config_message {
    enum sl_config_role role; /* chat role */
    char *content;            /* plain-text template; owned */
};

struct sl_config_backend {
    char *name;                       /* key under 'backends'; owned */
    enum sl_config_backend_kind kind; /* protocol */
    char *url;                 /* openai-*: base URL ("http://h:8080/v1", we add
                                  "/chat/completions"); http-json: the endpoint */
    char *model;               /* openai-*: model name; or NULL */
    char *api_key_env;         /* env var holding the key; or NULL */
    char *api_key_file;        /* file holding the key; or NULL */
    int timeout_ms;            /* whole request */
    int connect_timeout_ms;    /* TCP + TLS connect */
    int low_speed_time_ms;     /* abort when slower than ... */
    int low_speed_bytes_per_s; /* ... this for low_speed_time_ms */
    int max_response_bytes;    /* larger responses fail */
    int max_concurrency;       /* requests in flight, all workers */
    double rate_limit_rps;     /* requests per second; 0: no limit */
    int tokens_per_minute;     /* openai-chat; 0: no limit */
    struct sl_config_retry retry;       /* retries of retriable failures */
    struct sl_config_breaker breaker;   /* circuit breaker */
    struct sl_config_message *messages; /* openai-chat: message_cnt */
    size_t message_cnt;                 /* number of messages */
    double temperature;                 /* openai-chat sampling */
    int max_tokens;                     /* openai-chat; 0: server default */
    enum sl_config_response_format response_format; /* openai-chat */
    char *input;       /* openai-embeddings: JSON template */
    int batch_max;     /* openai-embeddings: inputs/call */
    int batch_wait_ms; /* openai-embeddings: batch linger */
    enum sl_config_encoding_format encoding_format; /* openai-embeddings */
    enum sl_config_http_method method;              /* http-json */
    struct sl_config_kvlist headers; /* extra headers (any kind) */
    char *body;           /* http-json: JSON template; NULL: the payload */
    char *result_pointer; /* http-json: JSON pointer into the reply */
};

struct sl_config_step {
    char *name;                        /* unique among steps; owned */
    struct sl_config_strlist backends; /* names, each in cfg->backends */
    enum sl_config_step_mode mode;     /* all or first */
    enum sl_config_on_error on_error;  /* fail or partial */
    int deadline_ms;                   /* for the whole step */
};

/* Column names of the results table, by logical column. */
struct sl_config_columns {
    char *source;       /* source kind */
    char *topic;        /* topic, stream, list or file */
    char *partition;    /* Kafka partition */
    char *offset;       /* Kafka offset / line number */
    char *entry_id;     /* Redis entry id */
    char *key;          /* message key */
    char *payload;      /* message payload */
    char *results;      /* backend results (jsonb) */
    char *errors;       /* backend errors (jsonb) */
    char *timings;      /* per-backend timings (jsonb) */
    char *worker;       /* replica id and worker */
    char *processed_at; /* timestamptz */
    /* extra real[] columns: column name -> backend whose result fills it */
    struct sl_config_kvlist vectors;
};

struct sl_config_postgres {
    char *dsn;                /* libpq conninfo, without password */
    char *password_env;       /* env var holding the password */
    char *password_file;      /* file holding the password */
    char *table;              /* results: [schema.]table */
    char *dead_letter_table;  /* dead letters: [schema.]table */
    bool create_table;        /* CREATE TABLE IF NOT EXISTS */
    int batch_rows;           /* rows per transaction */
    int flush_ms;             /* max age of a partial batch */
    int max_batches_inflight; /* pipelined, not yet durable */
    int backlog_rows;         /* then workers block */
    enum sl_config_toast_compression toast_compression; /* large values */
    bool vectors_in_results; /* results keep what vector columns store */
    struct sl_config_columns columns; /* column names */
};

struct sl_config_sink {
    bool present;                       /* false: no 'sink' in the file */
    struct sl_config_postgres postgres; /* the only sink */
};

struct sl_config_http {
    char *listen; /* host:port for /metrics, /healthz, /readyz */
};

struct sl_config_gateway {
    bool enabled;        /* serve POST /v1/infer */
    int max_concurrency; /* requests in flight */
    bool write_rows;     /* also write results to the sink (required) */
    int max_body_bytes;  /* larger requests get 413 */
};

/* A loaded pipeline file.  Read-only after sl_config_load(). */
struct sl_config {
    char *path;                         /* the file as given; owned */
    int version;                        /* always 1 */
    char *name;                         /* [a-z0-9_-]+ */
    enum sl_log_level log_level;        /* debug, info, warn or error */
    enum sl_log_format log_format;      /* json or text */
    char *replica_id;                   /* NULL: host name + pid at run time */
    int shutdown_timeout_ms;            /* drain deadline */
    struct sl_config_source source;     /* source.present: has a source */
    struct sl_config_queue queue;       /* source -> workers */
    struct sl_config_workers workers;   /* worker pool */
    struct sl_config_backend *backends; /* backend_cnt, in file order */
    size_t backend_cnt;                 /* number of backends */
    struct sl_config_step *steps;       /* step_cnt, in order */
    size_t step_cnt;                    /* number of steps */
    struct sl_config_sink sink;         /* sink.present: has a sink; always
                                           with a source, or with the gateway
                                           and gateway.write_rows */
    struct sl_config_http http;         /* metrics / health endpoint */
    struct sl_config_gateway gateway;   /* synchronous HTTP entry */
};

/*
 * One error found in a pipeline file: 'text' for people, the other fields
 * for tools (`sluice check --format json`).  Each string is one line.
 */
struct sl_config_error {
    char *text;    /* "FILE:LINE:COL: what at key.path"; owned */
    int line;      /* 1-based; 0 when not about a place in the file */
    int column;    /* 1-based; 0 when not about a place in the file */
    char *file;    /* FILE as named in 'text'; owned */
    char *path;    /* key.path; NULL when about no key; owned */
    char *message; /* what is wrong, without place or path; owned */
};

/* Every error found in a file, sorted by line and column. */
struct sl_config_errors {
    struct sl_config_error *items; /* cnt errors; owned */
    size_t cnt;                    /* number of errors kept */
    size_t dropped;                /* errors beyond SL_CONFIG_MAX_ERRORS */
};

#define SL_CONFIG_MAX_ERRORS 200           /* errors kept per file */
#define SL_CONFIG_MAX_FILE_BYTES (4 << 20) /* larger files are refused */

/*
 * Load the pipeline file 'path': parse, interpolate, validate, default.
 *
 * Returns 0 and sets *cfgp (owned by the caller; sl_config_destroy()).
 * Otherwise *cfgp is NULL and every error found is appended to 'errs'
 * (which the caller initialises to zeros and frees with
 * sl_config_errors_clear()): -SL_ECONFIG for an invalid file,
 * -SL_ENOTFOUND or -SL_EIO when it cannot be read ("FILE: cannot open:
 * No such file or directory"), -SL_EINVAL when 'path' is not a regular
 * file (a FIFO, a device, a directory: refused without reading it),
 * -SL_ETOOBIG past SL_CONFIG_MAX_FILE_BYTES, -SL_ENOMEM.  'errs' may be
 * NULL when only the code matters.
 *
 * libfyaml first builds the document in a forked child, because 0.7.12
 * (Debian 12) crashes on some malformed YAML: when the child dies, or has
 * not finished after 10 s (it is then killed), the file is refused with
 * -SL_ECONFIG and one error, "FILE: the YAML parser (libfyaml) crashed on
 * this text; ...", instead of this process crashing.  When fork() fails,
 * the text is parsed here unguarded (a warning is logged).
 *
 * Reads the environment and forks: main thread, before other threads
 * start.
 */
int sl_config_load(const char *path, struct sl_config **cfgp,
                   struct sl_config_errors *errs);

/*
 * As sl_config_load() for the text read from descriptor 'fd' up to its
 * end (standard input or a pipe: `sluice check -`); 'name' is the name
 * used in error messages and cfg->path ("<stdin>").  'fd' stays open.
 * Main thread, before other threads start.
 */
int sl_config_load_fd(const char *name, int fd, struct sl_config **cfgp,
                      struct sl_config_errors *errs);

/*
 * As sl_config_load() for YAML text 'text' of 'len' bytes; 'name' is the
 * file name used in error messages and cfg->path; guarded the same way.
 * Main thread, before other threads start.
 */
int sl_config_parse(const char *name, const char *text, size_t len,
                    struct sl_config **cfgp, struct sl_config_errors *errs);

/*
 * As sl_config_parse() with no child process: libfyaml runs here, so the
 * texts it crashes on crash the caller.  For the fuzz target, which must
 * see those crashes and cannot afford a fork per input.  Main thread.
 */
int sl_config_parse_unguarded(const char *name, const char *text, size_t len,
                              struct sl_config **cfgp,
                              struct sl_config_errors *errs);

/*
 * True when 's' is an address http.listen accepts (an IPv4 address or
 * "localhost", a port from 0 to 65535): the check of the key, for the
 * same value given elsewhere (`sluice run --listen`).  Any thread.
 */
bool sl_config_listen_ok(const char *s);

/* What sl_config_listen_ok() accepts, for "expected ..." messages. */
extern const char sl_config_listen_expect[];

/* Free 'cfg' and every string it owns.  NULL is a no-op.  Any thread. */
void sl_config_destroy(struct sl_config *cfg);

/*
 * Print every error of a failed load of 'path' to 'fp', one per line, as
 * `sluice check` and `sluice run` show them ('err' is the load's result,
 * used when no error line was recorded).  Any thread.
 */
void sl_config_errors_print(FILE *fp, const char *path, int err,
                            const struct sl_config_errors *errs);

/*
 * Append every error of a failed load of 'path' to JSON array 'arr' as
 * {"file", "line", "column", "path", "message"} objects (line, column and
 * path null when the error is about no place or key), with the same
 * additions as sl_config_errors_print() ("N more errors not shown", or
 * the code's text when no error was recorded).  Returns 0 or -SL_ENOMEM.
 * Any thread.
 */
int sl_config_errors_json(json_t *arr, const char *path, int err,
                          const struct sl_config_errors *errs);

/* Free the errors in 'errs' and zero it; 'errs' itself is the caller's. */
void sl_config_errors_clear(struct sl_config_errors *errs);

/*
 * The effective pipeline 'cfg' as YAML (`sluice check --print-config`):
 * every key in schema order with its value after ${VAR} interpolation and
 * defaults; keys of other kinds (source.kafka under kind: redis-stream),
 * optional keys left unset and empty maps are left out.  Secrets show
 * where they come from, never their value: api_key_env: NAME becomes
 * "api_key: <from env NAME>", password_file: PATH "password: <from file
 * PATH>", and a header or Kafka property given as {value_env: NAME} or
 * {value_file: PATH} "<from env NAME>" or "<from file PATH>".  Strings
 * that a plain scalar would change are double-quoted, so that without
 * secrets the text loads as the same pipeline, unless a value holds "${"
 * or "$$" (shown as used, it would be interpolated again).  Returns malloc'd
 * text (free()), or NULL when memory is short.  Any thread.
 */
char *sl_config_to_yaml(const struct sl_config *cfg);

/*
 * Write the configuration reference to 'fp' as Markdown (`sluice
 * config-reference`, docs/configuration.md): for every key of the schema,
 * its path, type, default, range or allowed values and description, one
 * table per mapping.  Returns 0, or -SL_EIO when writing failed.  Any
 * thread.
 */
int sl_config_reference(FILE *fp);

/* The backend called 'name', or NULL.  Any thread. */
const struct sl_config_backend *
sl_config_backend_find(const struct sl_config *cfg, const char *name);

/*
 * The value of 'kv' in *valuep (malloc'd; free with sl_secret_free(), which
 * also wipes it): a copy of kv->value, or the secret read from
 * kv->value_env / kv->value_file by sl_secret_read() with 'flags'
 * (SL_SECRET_*).  Returns 0, or -SL_ESECRET / -SL_ENOMEM with errstr
 * "WHAT: why" (never the value).  Main thread (it reads the environment).
 */
int sl_config_kv_value(const struct sl_config_kv *kv, unsigned flags,
                       const char *what, char **valuep, char *errstr,
                       size_t errstr_size);

/* True when 'name' is an RFC 9110 token (a valid header name).  Any thread. */
bool sl_config_header_name_ok(const char *name);

/*
 * True when 'value' may go on a header line: no control character but
 * HTAB (no CR, LF, NUL).  Any thread.
 */
bool sl_config_header_value_ok(const char *value);

/*
 * True for a header that carries a credential (case-insensitive):
 * Authorization, Proxy-Authorization, Cookie, Api-Key, X-Api-Key, and any
 * name containing "api-key", "api_key", "apikey", "token", "secret" or
 * "password".  Any thread.
 */
bool sl_config_header_is_secret(const char *name);

/*
 * True for a librdkafka property that carries a credential: sasl.password,
 * ssl.key.password, ssl.keystore.password, ssl.truststore.password,
 * ssl.key.pem, sasl.oauthbearer.client.secret, and any name containing
 * "password", "passphrase", "secret" or "jaas", or ending in "key.pem".
 * Any thread.
 */
bool sl_config_kafka_property_is_secret(const char *name);

/* "kafka", "redis-stream" ... for 'kind'; static, never NULL. */
const char *sl_config_source_kind_name(enum sl_config_source_kind kind);

/* "openai-chat", "openai-embeddings", "http-json"; static, never NULL. */
const char *sl_config_backend_kind_name(enum sl_config_backend_kind kind);

#endif
