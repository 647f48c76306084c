/*
 * Leveled logging on stderr, one line per event with time, level,
 * component, message and optional fields: a JSON object (the default) or
 * readable text.  Lines are written with one write(2) each, so lines from
 * different threads never interleave.
 */
#ifndef SL_LOG_H
#define SL_LOG_H

#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum sl_log_level {
    SL_LOG_DEBUG,
    SL_LOG_INFO,
    SL_LOG_WARN,
    SL_LOG_ERROR,
    SL_LOG_OFF,
};

/* Set the minimum level written.  Any thread. */
void sl_log_set_level(enum sl_log_level level);

/* Current minimum level.  Any thread. */
enum sl_log_level sl_log_get_level(void);

/*
 * Parse "debug", "info", "warn", "error" or "off" (case-insensitive).
 * Returns 0 and sets *levelp, or -SL_EINVAL.  Any thread.
 */
int sl_log_level_parse(const char *s, enum sl_log_level *levelp);

/*
 * Apply SLUICE_LOG_LEVEL from the environment when set and valid; the
 * environment wins over the pipeline file.  Returns 0, or -SL_EINVAL for
 * an invalid value (the level is then left as it was).  Main thread.
 */
int sl_log_level_from_env(void);

/* How a line is written. */
enum sl_log_format {
    SL_LOG_FORMAT_JSON, /* {"time":...,"level":...,...}: for collectors */
    SL_LOG_FORMAT_TEXT, /* 2026-12-06T04:40:00.123Z WARN  run: msg k=v */
};

/*
 * Set the line format.  In text, fields follow the message as key=value,
 * a number, boolean, object or array as its compact JSON; a value that is
 * empty or holds a space or a control character (or, in a string, '"',
 * '=' or '\\') is double-quoted with \", \\, \n, \r, \t, \xNN and \uNNNN
 * escapes, and control characters in the message are escaped too, so
 * that an event stays one line.  Any thread; set it before threads start.
 */
void sl_log_set_format(enum sl_log_format format);

/* Current line format.  Any thread. */
enum sl_log_format sl_log_get_format(void);

/*
 * Parse "json" or "text" (case-insensitive).  Returns 0 and sets
 * *formatp, or -SL_EINVAL.  Any thread.
 */
int sl_log_format_parse(const char *s, enum sl_log_format *formatp);

/*
 * Apply SLUICE_LOG_FORMAT from the environment when set and valid; the
 * environment wins over the pipeline file.  Returns 0, or -SL_EINVAL for
 * an invalid value (the format is then left as it was).  Main thread.
 */
int sl_log_format_from_env(void);

/* Write to 'fd' instead of stderr (tests).  Call before threads start. */
void sl_log_set_fd(int fd);

/* True when 'level' would be written.  Any thread. */
bool sl_log_enabled(enum sl_log_level level);

/*
 * Log a printf-formatted message for 'component' ("kafka", "sink" ...).
 * Any thread.
 */
void sl_log(enum sl_log_level level, const char *component, const char *fmt,
            ...) __attribute__((format(printf, 3, 4)));

/*
 * As sl_log() with extra fields: 'fields' is a JSON object, borrowed.
 * Values of keys that name secrets (password, api_key, authorization,
 * token, secret, sasl.password ...) are replaced by "[redacted]".
 * Any thread.
 */
void sl_log_fields(enum sl_log_level level, const char *component,
                   json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Lines of one kind at most this often (sl_log_limited()). */
#define SL_LOG_LIMIT_MS 10000

/*
 * A rate limit for one kind of line (one backend's one cause of failure):
 * shared by the threads that log it, lock-free.  Zero-initialise it.
 */
struct sl_log_limit {
    _Atomic int64_t last_ms; /* when a line last went out; 0: never */
    _Atomic uint64_t held;   /* lines held back since */
};

/*
 * Whether a line of 'lim' may go out at monotonic 'now_ms': the first
 * does, then one per 'interval_ms'.  Returns true with *heldp set to the
 * lines held back since the last one went out (and the count reset), or
 * false, counting this line as held back.  Any thread.
 */
bool sl_log_limit_pass(struct sl_log_limit *lim, int64_t now_ms,
                       int64_t interval_ms, uint64_t *heldp);

/*
 * As sl_log_fields(), at most one line per SL_LOG_LIMIT_MS for 'lim',
 * with " (N more since last)" appended when N lines were held back.
 * Nothing is counted while 'level' is not written.  Any thread.
 */
void sl_log_limited(struct sl_log_limit *lim, int64_t now_ms,
                    enum sl_log_level level, const char *component,
                    json_t *fields, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* True when a key names a secret and must not be shown.  Any thread. */
bool sl_log_key_is_secret(const char *key);

#endif
