/*
 * The one secret reader: *_env and *_file sources under the same rules
 * (set and not empty, a private regular file, trailing line breaks
 * trimmed, no line break inside unless asked), error texts that name the
 * source and never the value, and the check that reads nothing.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "secret.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define VALUE "s3cr3t-VALUE-77"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/sl-secret.XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Write 'len' bytes of 'text' to dir/name with 'mode'; the path in out. */
static void put(char *out, size_t size, const char *name, const char *text,
                size_t len, mode_t mode)
{
    snprintf(out, size, "%s/%s", dir, name);
    FILE *f = fopen(out, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    assert_int_equal(chmod(out, mode), 0);
}

/* Read 'src'; expect 'want' (NULL: an error containing 'why'). */
static void expect(const struct sl_secret_src *src, unsigned flags,
                   const char *want, const char *why)
{
    char errstr[1024] = "", *v = (char *)"x";
    int err =
        sl_secret_read(src, flags, "test secret", &v, errstr, sizeof(errstr));

    if (want) {
        if (err)
            fail_msg("unexpected error: %s", errstr);
        assert_non_null(v);
        assert_string_equal(v, want);
        sl_secret_free(v);
        return;
    }
    assert_int_equal(err, -SL_ESECRET);
    assert_null(v);
    if (!strstr(errstr, why))
        fail_msg("'%s' not in: %s", why, errstr);
    assert_non_null(strstr(errstr, "test secret: "));
    assert_null(strstr(errstr, VALUE));
}

static void test_env(void **state)
{
    struct sl_secret_src src = {"SL_TEST_SECRET", NULL};

    (void)state;
    setenv("SL_TEST_SECRET", VALUE "\r\n", 1);
    expect(&src, 0, VALUE, NULL);
    setenv("SL_TEST_SECRET", "", 1);
    expect(&src, 0, NULL, "environment variable SL_TEST_SECRET is empty");
    setenv("SL_TEST_SECRET", "\n", 1);
    expect(&src, 0, NULL, "environment variable SL_TEST_SECRET is empty");
    setenv("SL_TEST_SECRET", VALUE "\r\nX-Injected: yes", 1);
    expect(&src, 0, NULL, "holds a line break inside its value");
    expect(&src, SL_SECRET_MULTILINE, VALUE "\r\nX-Injected: yes", NULL);
    unsetenv("SL_TEST_SECRET");
    expect(&src, 0, NULL, "environment variable SL_TEST_SECRET is not set");

    /* Nothing named: no secret, no error. */
    struct sl_secret_src none = {NULL, ""};
    char *v = (char *)"x";
    assert_int_equal(sl_secret_read(&none, 0, "w", &v, NULL, 0), 0);
    assert_null(v);
    assert_int_equal(sl_secret_check(&none, NULL, 0), 0);
}

static void test_file(void **state)
{
    char path[128], why[512];
    struct sl_secret_src src = {NULL, path};

    (void)state;
    put(path, sizeof(path), "ok", VALUE "\n\n", strlen(VALUE) + 2, 0600);
    expect(&src, 0, VALUE, NULL);
    assert_int_equal(sl_secret_check(&src, NULL, 0), 0);

    put(path, sizeof(path), "open", VALUE "\n", strlen(VALUE) + 1, 0640);
    snprintf(why, sizeof(why),
             "file %s is readable by group or others (mode 0640); refusing "
             "it: chmod 600 %s",
             path, path);
    expect(&src, 0, NULL, why);

    put(path, sizeof(path), "lines", "a\nb\n", 4, 0600);
    expect(&src, 0, NULL, "holds a line break inside its value");
    expect(&src, SL_SECRET_MULTILINE, "a\nb", NULL);

    put(path, sizeof(path), "nul", "a\0b\n", 4, 0600);
    expect(&src, 0, NULL, "holds a NUL byte");

    put(path, sizeof(path), "empty", "", 0, 0600);
    expect(&src, 0, NULL, "is empty");
    put(path, sizeof(path), "newline", "\r\n", 2, 0600);
    expect(&src, 0, NULL, "holds nothing but line breaks");

    static char big[SL_SECRET_MAX + 1];
    memset(big, 'k', sizeof(big));
    put(path, sizeof(path), "big", big, sizeof(big), 0600);
    expect(&src, 0, NULL, "is longer than 65536 bytes");

    snprintf(path, sizeof(path), "%s/missing", dir);
    snprintf(why, sizeof(why), "file %s: cannot open: No such file", path);
    expect(&src, 0, NULL, why);

    /* A directory, and a FIFO: refused at once, not waited on. */
    snprintf(path, sizeof(path), "%s", dir);
    expect(&src, 0, NULL, "not a regular file");
    snprintf(path, sizeof(path), "%s/fifo", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    expect(&src, 0, NULL, "not a regular file");
}

/* The check gives the reader's verdict on the source, reading nothing. */
static void test_check(void **state)
{
    char path[128], errstr[512];
    struct sl_secret_src src = {NULL, path};

    (void)state;
    put(path, sizeof(path), "c", VALUE, strlen(VALUE), 0604);
    assert_int_equal(sl_secret_check(&src, errstr, sizeof(errstr)),
                     -SL_ESECRET);
    assert_non_null(strstr(errstr, "readable by group or others (mode 0604)"));
    assert_null(strstr(errstr, "test secret"));
    chmod(path, 0400);
    assert_int_equal(sl_secret_check(&src, errstr, sizeof(errstr)), 0);

    struct sl_secret_src env = {"SL_TEST_SECRET_UNSET", path};
    unsetenv("SL_TEST_SECRET_UNSET");
    assert_int_equal(sl_secret_check(&env, errstr, sizeof(errstr)),
                     -SL_ESECRET);
    assert_string_equal(errstr,
                        "environment variable SL_TEST_SECRET_UNSET is not set");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_check),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
