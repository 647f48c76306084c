/*
 * The error table: text, names and retriability for every code.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "infer.h"

#include <errno.h>
#include <string.h>

static void test_strerror_and_names(void **state)
{
    (void)state;
    assert_string_equal(sl_strerror(-SL_ETIMEDOUT), "timed out");
    assert_string_equal(sl_strerror(SL_ETIMEDOUT), "timed out");
    assert_string_equal(sl_strerror(0), "success");
    assert_string_equal(sl_strerror(-9999), "unknown error");
    assert_string_equal(sl_err_name(-SL_ECLOSED), "SL_ECLOSED");
    for (int e = 1; e < SL_ERR_COUNT_; e++) {
        assert_true(strlen(sl_strerror(-e)) > 0);
        assert_true(strncmp(sl_err_name(-e), "SL_E", 4) == 0);
    }
}

static void test_retriable(void **state)
{
    (void)state;
    assert_true(sl_err_retriable(-SL_ETIMEDOUT));
    assert_true(sl_err_retriable(-SL_ECONN));
    assert_true(sl_err_retriable(-SL_ERATELIMIT));
    assert_false(sl_err_retriable(-SL_ECONFIG));
    assert_false(sl_err_retriable(-SL_EDECODE));
    assert_false(sl_err_retriable(-9999));
}

/*
 * The engine's retries follow the table: a backend call is tried again
 * after a timeout, a lost connection, a 5xx or a 429, never after another
 * 4xx, a bad reply or one too large.
 */
static void test_engine_retries_follow_the_table(void **state)
{
    static const enum sl_infer_errclass again[] = {
        SL_INFER_EC_TIMEOUT, SL_INFER_EC_CONNECT, SL_INFER_EC_HTTP_5XX,
        SL_INFER_EC_HTTP_429};
    static const enum sl_infer_errclass never[] = {
        SL_INFER_EC_HTTP_4XX, SL_INFER_EC_BAD_JSON, SL_INFER_EC_TOO_LARGE,
        SL_INFER_EC_DEADLINE, SL_INFER_EC_INPUT,    SL_INFER_EC_INTERNAL};

    (void)state;
    for (size_t i = 0; i < sizeof(again) / sizeof(again[0]); i++)
        assert_true(sl_err_retriable(sl_infer_errclass_err(again[i])));
    for (size_t i = 0; i < sizeof(never) / sizeof(never[0]); i++)
        assert_false(sl_err_retriable(sl_infer_errclass_err(never[i])));
}

static void test_errno_translation(void **state)
{
    (void)state;
    assert_int_equal(sl_err_from_errno(ECONNREFUSED), -SL_ECONN);
    assert_int_equal(sl_err_from_errno(ETIMEDOUT), -SL_ETIMEDOUT);
    assert_int_equal(sl_err_from_errno(ENOMEM), -SL_ENOMEM);
    assert_int_equal(sl_err_from_errno(0), 0);
    assert_int_equal(sl_err_from_errno(EXDEV), -SL_EIO);
}

static void test_seterr(void **state)
{
    (void)state;
    char buf[16];
    assert_int_equal(sl_seterr(-SL_EINVAL, buf, sizeof(buf), "bad %s", "x"),
                     -SL_EINVAL);
    assert_string_equal(buf, "bad x");
    assert_int_equal(sl_seterr(-SL_EINVAL, NULL, 0, "ignored"), -SL_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strerror_and_names),
        cmocka_unit_test(test_retriable),
        cmocka_unit_test(test_engine_retries_follow_the_table),
        cmocka_unit_test(test_errno_translation),
        cmocka_unit_test(test_seterr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
