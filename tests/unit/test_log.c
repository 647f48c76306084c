/*
 * JSON-lines logging: one parseable object per line with the expected
 * fields, levels filtered, secrets redacted, invalid UTF-8 survived.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "log.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run 'emit' with the log going into a pipe; return the text written. */
static char *capture(void (*emit)(void))
{
    static char buf[8192];
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    sl_log_set_fd(fds[1]);
    emit();
    sl_log_set_fd(2);
    close(fds[1]);
    ssize_t n = read(fds[0], buf, sizeof(buf) - 1);
    close(fds[0]);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void emit_info(void)
{
    sl_log_set_level(SL_LOG_INFO);
    sl_log(SL_LOG_DEBUG, "test", "hidden");
    sl_log(SL_LOG_INFO, "sink", "wrote %d rows", 42);
}

static void test_line_is_json_with_fields(void **state)
{
    (void)state;
    char *out = capture(emit_info);
    assert_null(strstr(out, "hidden"));
    assert_int_equal(out[strlen(out) - 1], '\n');
    json_error_t jerr;
    json_t *line = json_loads(out, 0, &jerr);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")),
                        "info");
    assert_string_equal(json_string_value(json_object_get(line, "component")),
                        "sink");
    assert_string_equal(json_string_value(json_object_get(line, "message")),
                        "wrote 42 rows");
    const char *t = json_string_value(json_object_get(line, "time"));
    assert_non_null(t);
    assert_int_equal(strlen(t), strlen("2026-01-01T00:00:00.000Z"));
    json_decref(line);
}

static void emit_secret(void)
{
    json_t *f = json_pack("{s:s, s:s, s:i}", "api_key", "sk-very-secret",
                          "host", "db1", "attempt", 3);
    sl_log_fields(SL_LOG_WARN, "http", f, "bad \xff bytes");
    json_decref(f);
}

static void test_secrets_redacted_and_bad_utf8_kept(void **state)
{
    (void)state;
    char *out = capture(emit_secret);
    assert_null(strstr(out, "sk-very-secret"));
    json_t *line = json_loads(out, 0, NULL);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "api_key")),
                        "[redacted]");
    assert_string_equal(json_string_value(json_object_get(line, "host")),
                        "db1");
    assert_int_equal(json_integer_value(json_object_get(line, "attempt")), 3);
    assert_string_equal(json_string_value(json_object_get(line, "message")),
                        "bad \\xff bytes");
    json_decref(line);
}

static void test_level_parse_and_env(void **state)
{
    (void)state;
    enum sl_log_level level;
    assert_int_equal(sl_log_level_parse("WARN", &level), 0);
    assert_int_equal(level, SL_LOG_WARN);
    assert_int_equal(sl_log_level_parse("loud", &level), -SL_EINVAL);

    setenv("SLUICE_LOG_LEVEL", "error", 1);
    sl_log_set_level(SL_LOG_DEBUG);
    assert_int_equal(sl_log_level_from_env(), 0);
    assert_int_equal(sl_log_get_level(), SL_LOG_ERROR);
    setenv("SLUICE_LOG_LEVEL", "chatty", 1);
    assert_int_equal(sl_log_level_from_env(), -SL_EINVAL);
    assert_int_equal(sl_log_get_level(), SL_LOG_ERROR);
    unsetenv("SLUICE_LOG_LEVEL");
}

/* The limiter with injected time: the first line passes, then one per
 * interval, each saying how many were held back. */
static void test_limit_pass(void **state)
{
    (void)state;
    struct sl_log_limit lim = {0};
    uint64_t held = 99;

    assert_true(sl_log_limit_pass(&lim, 5, 10000, &held));
    assert_int_equal(held, 0);
    for (int i = 0; i < 100; i++)
        assert_false(sl_log_limit_pass(&lim, 5 + i * 99, 10000, &held));
    assert_false(sl_log_limit_pass(&lim, 10004, 10000, &held));
    assert_true(sl_log_limit_pass(&lim, 10005, 10000, &held));
    assert_int_equal(held, 101);
    assert_false(sl_log_limit_pass(&lim, 10006, 10000, &held));
    assert_true(sl_log_limit_pass(&lim, 90000, 10000, &held));
    assert_int_equal(held, 1);
    /* A clock at 0 still counts as a line that went out. */
    struct sl_log_limit zero = {0};
    assert_true(sl_log_limit_pass(&zero, 0, 10000, &held));
    assert_false(sl_log_limit_pass(&zero, 1, 10000, &held));
}

static void emit_limited(void)
{
    static struct sl_log_limit lim;
    sl_log_set_level(SL_LOG_INFO);
    for (int i = 0; i < 100; i++)
        sl_log_limited(&lim, 1000 + i, SL_LOG_WARN, "infer", NULL,
                       "backend '%s' failed", "b");
    sl_log_limited(&lim, 1000 + SL_LOG_LIMIT_MS, SL_LOG_WARN, "infer", NULL,
                   "backend '%s' failed", "b");
    /* Below the level: neither written nor counted. */
    sl_log_set_level(SL_LOG_ERROR);
    sl_log_limited(&lim, 1000 + 3 * SL_LOG_LIMIT_MS, SL_LOG_WARN, "infer", NULL,
                   "hidden");
    sl_log_set_level(SL_LOG_INFO);
    sl_log_limited(&lim, 1000 + 4 * SL_LOG_LIMIT_MS, SL_LOG_WARN, "infer", NULL,
                   "backend '%s' failed", "c");
}

/* A burst of 100 gives one line, the next interval's line counts the 99
 * held back, and a line below the level counts nothing. */
static void test_limited_lines(void **state)
{
    (void)state;
    char *out = capture(emit_limited);
    const char *want[] = {"backend 'b' failed",
                          "backend 'b' failed (99 more since last)",
                          "backend 'c' failed"};
    char *line = out;
    for (size_t i = 0; i < 3; i++) {
        char *eol = strchr(line, '\n');
        assert_non_null(eol);
        *eol = '\0';
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        assert_string_equal(json_string_value(json_object_get(j, "level")),
                            "warn");
        assert_string_equal(json_string_value(json_object_get(j, "message")),
                            want[i]);
        json_decref(j);
        line = eol + 1;
    }
    assert_string_equal(line, "");
}

static void emit_text(void)
{
    json_t *f = json_pack("{s:s, s:i, s:s, s:s, s:s, s:{s:i}, s:b, s:s}",
                          "host", "db1", "attempt", 3, "api_key", "sk-secret",
                          "note", "a b\nc\"d\\", "empty", "", "obj", "a", 1,
                          "ok", 1, "ctl", "\x1b[2J\xe2\x80\xa8x=y");
    sl_log_set_level(SL_LOG_INFO);
    sl_log_set_format(SL_LOG_FORMAT_TEXT);
    sl_log_fields(SL_LOG_WARN, "run", f, "lost %s\r\nFAKE LINE", "db");
    sl_log(SL_LOG_ERROR, "sink", "plain");
    sl_log_set_format(SL_LOG_FORMAT_JSON);
    json_decref(f);
}

/* Text: "TIME LEVEL component: message key=value ...", one line per event
 * whatever the message and fields hold, secrets still redacted. */
static void test_text_lines(void **state)
{
    (void)state;
    char *out = capture(emit_text);
    const char *ts = "2026-01-01T00:00:00.000Z ";
    char *second = strchr(out, '\n');

    assert_non_null(second);
    *second++ = '\0';
    assert_true(strlen(out) > strlen(ts));
    assert_int_equal(out[4], '-');
    assert_int_equal(out[23], 'Z');
    assert_string_equal(
        out + strlen(ts),
        "WARN  run: lost db\\r\\nFAKE LINE host=db1 attempt=3 "
        "api_key=[redacted] note=\"a b\\nc\\\"d\\\\\" empty=\"\" "
        "obj={\"a\":1} ok=true ctl=\"\\x1b[2J\\u2028x=y\"");
    assert_non_null(strstr(second, "Z ERROR sink: plain\n"));
    assert_string_equal(strchr(second, '\n'), "\n");
}

static void test_format_parse_and_env(void **state)
{
    (void)state;
    enum sl_log_format format;
    assert_int_equal(sl_log_format_parse("TEXT", &format), 0);
    assert_int_equal(format, SL_LOG_FORMAT_TEXT);
    assert_int_equal(sl_log_format_parse("json", &format), 0);
    assert_int_equal(format, SL_LOG_FORMAT_JSON);
    assert_int_equal(sl_log_format_parse("logfmt", &format), -SL_EINVAL);

    assert_int_equal(sl_log_get_format(), SL_LOG_FORMAT_JSON); /* default */
    setenv("SLUICE_LOG_FORMAT", "text", 1);
    assert_int_equal(sl_log_format_from_env(), 0);
    assert_int_equal(sl_log_get_format(), SL_LOG_FORMAT_TEXT);
    setenv("SLUICE_LOG_FORMAT", "xml", 1);
    assert_int_equal(sl_log_format_from_env(), -SL_EINVAL);
    assert_int_equal(sl_log_get_format(), SL_LOG_FORMAT_TEXT);
    unsetenv("SLUICE_LOG_FORMAT");
    sl_log_set_format(SL_LOG_FORMAT_JSON);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_is_json_with_fields),
        cmocka_unit_test(test_secrets_redacted_and_bad_utf8_kept),
        cmocka_unit_test(test_level_parse_and_env),
        cmocka_unit_test(test_limit_pass),
        cmocka_unit_test(test_limited_lines),
        cmocka_unit_test(test_text_lines),
        cmocka_unit_test(test_format_parse_and_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
