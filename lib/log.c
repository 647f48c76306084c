/*
 * JSON-lines logger.  jansson builds each line so that every message and
 * field is escaped correctly, whatever bytes it holds.
 */
#include "log.h"
#include "err.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static _Atomic int log_level = SL_LOG_INFO;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};

void sl_log_set_level(enum sl_log_level level)
{
    atomic_store(&log_level, (int)level);
}

enum sl_log_level sl_log_get_level(void)
{
    return (enum sl_log_level)atomic_load(&log_level);
}

int sl_log_level_parse(const char *s, enum sl_log_level *levelp)
{
    for (int i = 0; i <= SL_LOG_OFF; i++) {
        if (s && strcasecmp(s, level_names[i]) == 0) {
            *levelp = (enum sl_log_level)i;
            return 0;
        }
    }
    if (s && strcasecmp(s, "warning") == 0) {
        *levelp = SL_LOG_WARN;
        return 0;
    }
    return -SL_EINVAL;
}

int sl_log_level_from_env(void)
{
    const char *s = getenv("SLUICE_LOG_LEVEL");
    enum sl_log_level level;

    if (!s || !*s)
        return 0;
    if (sl_log_level_parse(s, &level) < 0)
        return -SL_EINVAL;
    sl_log_set_level(level);
    return 0;
}

void sl_log_set_fd(int fd)
{
    log_fd = fd;
}

bool sl_log_enabled(enum sl_log_level level)
{
    return (int)level >= atomic_load(&log_level) && level < SL_LOG_OFF;
}

bool sl_log_key_is_secret(const char *key)
{
    static const char *const words[] = {
        "password", "passwd",        "secret", "api_key",
        "apikey",   "authorization", "token",  "credential"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcasestr(key, words[i]))
            return true;
    return false;
}

static void log_write(enum sl_log_level level, const char *component,
                      json_t *fields, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

static void log_write(enum sl_log_level level, const char *component,
                      json_t *fields, const char *fmt, va_list ap)
{
    char msg[2048], ts[64];
    struct timespec now;
    struct tm tm;
    json_t *line;
    char *text;

    vsnprintf(msg, sizeof(msg), fmt, ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
             tm.tm_min, tm.tm_sec, (long)(now.tv_nsec / 1000000) % 1000);

    line = json_object();
    if (!line)
        return;
    json_object_set_new(line, "time", json_string(ts));
    json_object_set_new(line, "level", json_string(level_names[level]));
    json_object_set_new(line, "component",
                        json_string(component ? component : "sluice"));
    /* Invalid UTF-8 in a message (payload bytes) must not drop the line. */
    json_t *m = json_string(msg);
    if (!m) {
        char clean[sizeof(msg) * 2];
        m = json_string(
            sl_utf8_printable(msg, strlen(msg), clean, sizeof(clean)));
    }
    json_object_set_new(line, "message", m);
    if (fields && json_is_object(fields)) {
        const char *key;
        json_t *value;
        json_object_foreach(fields, key, value)
        {
            if (sl_log_key_is_secret(key))
                json_object_set_new(line, key, json_string("[redacted]"));
            else
                json_object_set(line, key, value);
        }
    }
    text = json_dumps(line,
                      JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII);
    json_decref(line);
    if (!text)
        return;
    size_t len = strlen(text);
    text[len] = '\n'; /* replaces the NUL; write() takes the length */
    ssize_t off = 0;
    while ((size_t)off < len + 1) {
        ssize_t n = write(log_fd, text + off, len + 1 - (size_t)off);
        if (n <= 0)
            break;
        off += n;
    }
    free(text);
}

void sl_log(enum sl_log_level level, const char *component, const char *fmt,
            ...)
{
    va_list ap;

    if (!sl_log_enabled(level))
        return;
    va_start(ap, fmt);
    log_write(level, component, NULL, fmt, ap);
    va_end(ap);
}

void sl_log_fields(enum sl_log_level level, const char *component,
                   json_t *fields, const char *fmt, ...)
{
    va_list ap;

    if (!sl_log_enabled(level))
        return;
    va_start(ap, fmt);
    log_write(level, component, fields, fmt, ap);
    va_end(ap);
}

bool sl_log_limit_pass(struct sl_log_limit *lim, int64_t now_ms,
                       int64_t interval_ms, uint64_t *heldp)
{
    int64_t last = atomic_load(&lim->last_ms);

    *heldp = 0;
    /* One thread wins the slot; the others count themselves held. */
    if ((last == 0 || now_ms - last >= interval_ms) &&
        atomic_compare_exchange_strong(&lim->last_ms, &last,
                                       now_ms ? now_ms : 1)) {
        *heldp = atomic_exchange(&lim->held, 0);
        return true;
    }
    atomic_fetch_add(&lim->held, 1);
    return false;
}

void sl_log_limited(struct sl_log_limit *lim, int64_t now_ms,
                    enum sl_log_level level, const char *component,
                    json_t *fields, const char *fmt, ...)
{
    char msg[1024];
    uint64_t held;
    va_list ap;

    if (!sl_log_enabled(level) ||
        !sl_log_limit_pass(lim, now_ms, SL_LOG_LIMIT_MS, &held))
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (held)
        sl_log_fields(level, component, fields, "%s (%llu more since last)",
                      msg, (unsigned long long)held);
    else
        sl_log_fields(level, component, fields, "%s", msg);
}
