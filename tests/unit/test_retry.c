/*
 * Retry timing: full-jitter bounds, and Retry-After in both forms, with
 * garbage ignored and huge values capped.
 */
#include "cmocka_shim.h"

#include "retry.h"

#include <time.h>

static void test_backoff_bounds(void **state)
{
    (void)state;
    struct sl_config_retry rc = {
        .max_attempts = 10, .base_ms = 100, .max_ms = 2000};
    uint64_t rng = 12345;

    assert_int_equal(sl_retry_backoff_cap_ms(&rc, 1), 100);
    assert_int_equal(sl_retry_backoff_cap_ms(&rc, 2), 200);
    assert_int_equal(sl_retry_backoff_cap_ms(&rc, 5), 1600);
    assert_int_equal(sl_retry_backoff_cap_ms(&rc, 6), 2000);
    assert_int_equal(sl_retry_backoff_cap_ms(&rc, 60), 2000);
    for (int retry = 1; retry <= 8; retry++) {
        int64_t cap = sl_retry_backoff_cap_ms(&rc, retry), lo = cap, hi = 0;
        for (int i = 0; i < 2000; i++) {
            int64_t d = sl_retry_backoff_ms(&rc, retry, &rng);
            assert_true(d >= 0 && d <= cap);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
        }
        /* full jitter spreads over the whole range */
        assert_true(lo < cap / 10 + 1);
        assert_true(hi > cap - cap / 10 - 1);
    }
}

static void test_retry_after(void **state)
{
    (void)state;
    int64_t now = 1700000000; /* 2023-11-14T22:13:20Z */
    char date[64];
    time_t t;
    struct tm tm;

    assert_int_equal(sl_retry_after_ms("5", now, 60000), 5000);
    assert_int_equal(sl_retry_after_ms(" 0 ", now, 60000), 0);
    assert_int_equal(sl_retry_after_ms("86400", now, 30000), 30000);
    assert_int_equal(sl_retry_after_ms("99999999999999999999", now, 30000),
                     30000);
    assert_int_equal(sl_retry_after_ms("soon", now, 30000), -1);
    assert_int_equal(sl_retry_after_ms("5s", now, 30000), -1);
    assert_int_equal(sl_retry_after_ms("-5", now, 30000), -1);
    assert_int_equal(sl_retry_after_ms("", now, 30000), -1);
    assert_int_equal(sl_retry_after_ms(NULL, now, 30000), -1);

    t = (time_t)(now + 7);
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_int_equal(sl_retry_after_ms(date, now, 60000), 7000);
    assert_int_equal(sl_retry_after_ms(date, now, 3000), 3000);
    t = (time_t)(now - 100);
    gmtime_r(&t, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    assert_int_equal(sl_retry_after_ms(date, now, 60000), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_retry_after),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
