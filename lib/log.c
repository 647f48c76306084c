/*
 * Line logger.  jansson builds each line as an object, so that every
 * message and field is escaped correctly whatever bytes it holds; the
 * object is written as JSON, or as one line of text for people.
 */
#include "log.h"
#include "err.h"
#include "jsontext.h"
#include "utf8.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_TEXT_LINE (1 << 20) /* a text line is cut beyond this */

static _Atomic int log_level = SL_LOG_INFO;
static _Atomic int log_format = SL_LOG_FORMAT_JSON;
static int log_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error",
                                          "off"};
static const char *const format_names[] = {"json", "text"};

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

void sl_log_set_format(enum sl_log_format format)
{
    atomic_store(&log_format, (int)format);
}

enum sl_log_format sl_log_get_format(void)
{
    return (enum sl_log_format)atomic_load(&log_format);
}

int sl_log_format_parse(const char *s, enum sl_log_format *formatp)
{
    for (int i = 0; i <= SL_LOG_FORMAT_TEXT; i++) {
        if (s && strcasecmp(s, format_names[i]) == 0) {
            *formatp = (enum sl_log_format)i;
            return 0;
        }
    }
    return -SL_EINVAL;
}

int sl_log_format_from_env(void)
{
    const char *s = getenv("SLUICE_LOG_FORMAT");
    enum sl_log_format format;

    if (!s || !*s)
        return 0;
    if (sl_log_format_parse(s, &format) < 0)
        return -SL_EINVAL;
    sl_log_set_format(format);
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

/* ---- text lines ---- */

/* A text line being built, cut at MAX_TEXT_LINE. */
struct tline {
    char *p;     /* NUL-terminated once anything is added */
    size_t len;  /* without the NUL */
    size_t cap;  /* allocated */
    bool failed; /* out of memory */
    bool cut;    /* reached MAX_TEXT_LINE */
};

static void tl_add(struct tline *tl, const char *s, size_t n)
{
    if (tl->failed || tl->cut)
        return;
    if (tl->len + n > MAX_TEXT_LINE) {
        n = MAX_TEXT_LINE - tl->len;
        tl->cut = true;
    }
    if (tl->len + n + 1 > tl->cap) {
        size_t cap = tl->cap ? tl->cap : 256;
        while (cap < tl->len + n + 1)
            cap *= 2;
        char *p = realloc(tl->p, cap);
        if (!p) {
            tl->failed = true;
            return;
        }
        tl->p = p;
        tl->cap = cap;
    }
    memcpy(tl->p + tl->len, s, n);
    tl->len += n;
    tl->p[tl->len] = '\0';
}

static void tl_str(struct tline *tl, const char *s)
{
    tl_add(tl, s, strlen(s));
}

/*
 * Length of the character at 's' that would break or hide a line: an
 * ASCII or C1 control character, U+2028 or U+2029; 0 for any other.
 * 's' is valid UTF-8 (a jansson string).
 */
static size_t control_len(const unsigned char *s)
{
    if (*s < 0x20 || *s == 0x7f)
        return 1;
    if (s[0] == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f)
        return 2;
    if (s[0] == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9))
        return 3;
    return 0;
}

/*
 * True when field value 's' must be quoted: it is empty, or holds a space
 * or a control character, or, unless 'json' (compact JSON, whose quotes
 * are its own), '"', '=' or '\\'.
 */
static bool needs_quotes(const char *s, bool json)
{
    if (!*s)
        return true;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c == ' ' || control_len(c) ||
            (!json && (*c == '"' || *c == '=' || *c == '\\')))
            return true;
    return false;
}

/*
 * Append 's' with its control characters escaped (\n, \r, \t, \xNN,
 * \uNNNN); 'quoted': also '"' and '\\', between double quotes.
 */
static void tl_escaped(struct tline *tl, const char *s, bool quoted)
{
    const unsigned char *c = (const unsigned char *)s, *run = c;
    char esc[16];

    if (quoted)
        tl_add(tl, "\"", 1);
    while (*c) {
        size_t n = control_len(c);
        if (!n && !(quoted && (*c == '"' || *c == '\\'))) {
            c++;
            continue;
        }
        tl_add(tl, (const char *)run, (size_t)(c - run));
        if (*c == '\n')
            snprintf(esc, sizeof(esc), "\\n");
        else if (*c == '\r')
            snprintf(esc, sizeof(esc), "\\r");
        else if (*c == '\t')
            snprintf(esc, sizeof(esc), "\\t");
        else if (n == 1)
            snprintf(esc, sizeof(esc), "\\x%02x", *c);
        else if (n == 2)
            snprintf(esc, sizeof(esc), "\\u%04x", c[1]);
        else if (n == 3)
            snprintf(esc, sizeof(esc), "\\u%04x",
                     c[2] == 0xa8 ? 0x2028 : 0x2029);
        else
            snprintf(esc, sizeof(esc), "\\%c", *c);
        tl_str(tl, esc);
        c += n ? n : 1;
        run = c;
    }
    tl_add(tl, (const char *)run, (size_t)(c - run));
    if (quoted)
        tl_add(tl, "\"", 1);
}

/* A field value: a string as it is, anything else as its compact JSON. */
static void tl_value(struct tline *tl, const json_t *value)
{
    char *text = NULL;
    const char *s;

    if (json_is_string(value)) {
        s = json_string_value(value);
    } else {
        text = sl_jsontext_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY |
                                            JSON_PRESERVE_ORDER);
        s = text ? text : "?";
    }
    tl_escaped(tl, s, needs_quotes(s, text != NULL));
    free(text);
}

/* The string 'key' of 'line'; "?" when a field replaced it by another type. */
static const char *own_text(json_t *line, const char *key)
{
    const char *s = json_string_value(json_object_get(line, key));
    return s ? s : "?";
}

/*
 * 'line' (time, level, component, message, then the fields) as
 * "TIME LEVEL component: message key=value ...", malloc'd, with room for
 * a newline after the NUL's place; NULL when memory is short.
 */
static char *text_line(json_t *line, enum sl_log_level level)
{
    static const char *const upper[] = {"DEBUG", "INFO ", "WARN ", "ERROR",
                                        "OFF  "};
    static const char *const own[] = {"time", "level", "component", "message"};
    struct tline tl = {0};
    const char *key;
    json_t *value;

    tl_escaped(&tl, own_text(line, "time"), false);
    tl_add(&tl, " ", 1);
    tl_str(&tl, upper[level]);
    tl_add(&tl, " ", 1);
    tl_escaped(&tl, own_text(line, "component"), false);
    tl_add(&tl, ": ", 2);
    tl_escaped(&tl, own_text(line, "message"), false);
    json_object_foreach(line, key, value)
    {
        bool skip = false;
        for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
            skip |= !strcmp(key, own[i]);
        if (skip)
            continue;
        tl_add(&tl, " ", 1);
        tl_escaped(&tl, key, needs_quotes(key, false));
        tl_add(&tl, "=", 1);
        tl_value(&tl, value);
    }
    if (tl.cut) {
        /* Room for "...\n", cut where a character starts. */
        tl.cut = false;
        tl.len -= tl.len > 4 ? 4 : tl.len;
        while (tl.len > 0 && ((unsigned char)tl.p[tl.len] & 0xc0) == 0x80)
            tl.len--;
        tl_add(&tl, "...", 3);
    }
    tl_add(&tl, "\n", 1); /* room for the newline; then made the NUL */
    if (tl.failed) {
        free(tl.p);
        return NULL;
    }
    tl.p[tl.len - 1] = '\0';
    return tl.p;
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
    if (atomic_load(&log_format) == SL_LOG_FORMAT_TEXT)
        text = text_line(line, level);
    else
        text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                    JSON_ENSURE_ASCII);
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
