/*
 * Circuit breaker state changes, with the clock given by the test:
 * closed -> open after N failures, fail fast, half-open after open_ms,
 * probe success closes, probe failure reopens.
 */
#include "cmocka_shim.h"

#include "breaker.h"
#include "err.h"

static void test_opens_after_failures(void **state)
{
    (void)state;
    struct sl_config_breaker bc = {
        .failures = 3, .open_ms = 1000, .half_open_probes = 1};
    struct sl_breaker *b = sl_breaker_new(&bc);
    int64_t t = 5000;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(sl_breaker_allow(b, t), 0);
        sl_breaker_record(b, SL_BREAKER_FAILURE, t);
    }
    /* a success resets the count */
    assert_int_equal(sl_breaker_allow(b, t), 0);
    sl_breaker_record(b, SL_BREAKER_SUCCESS, t);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(sl_breaker_state(b, t), SL_BREAKER_CLOSED);
        assert_int_equal(sl_breaker_allow(b, t), 0);
        sl_breaker_record(b, SL_BREAKER_FAILURE, t);
    }
    assert_int_equal(sl_breaker_state(b, t), SL_BREAKER_OPEN);
    assert_string_equal(sl_breaker_state_name(SL_BREAKER_OPEN), "open");
    assert_int_equal(sl_breaker_allow(b, t + 999), -SL_EBREAKER);
    sl_breaker_destroy(b);
}

static void test_half_open_probes(void **state)
{
    (void)state;
    struct sl_config_breaker bc = {
        .failures = 1, .open_ms = 100, .half_open_probes = 2};
    struct sl_breaker *b = sl_breaker_new(&bc);

    assert_int_equal(sl_breaker_allow(b, 0), 0);
    sl_breaker_record(b, SL_BREAKER_FAILURE, 0);
    assert_int_equal(sl_breaker_state(b, 50), SL_BREAKER_OPEN);
    assert_int_equal(sl_breaker_state(b, 100), SL_BREAKER_HALF_OPEN);
    assert_int_equal(sl_breaker_allow(b, 100), 0);
    assert_int_equal(sl_breaker_allow(b, 100), 0);
    assert_int_equal(sl_breaker_allow(b, 100), -SL_EBREAKER); /* 2 probes */
    sl_breaker_record(b, SL_BREAKER_CANCEL, 101); /* frees one slot */
    assert_int_equal(sl_breaker_allow(b, 101), 0);
    /* a probe fails: open again, from now */
    sl_breaker_record(b, SL_BREAKER_FAILURE, 110);
    assert_int_equal(sl_breaker_state(b, 150), SL_BREAKER_OPEN);
    assert_int_equal(sl_breaker_allow(b, 209), -SL_EBREAKER);
    assert_int_equal(sl_breaker_allow(b, 210), 0);
    /* a probe succeeds: closed */
    sl_breaker_record(b, SL_BREAKER_SUCCESS, 220);
    assert_int_equal(sl_breaker_state(b, 220), SL_BREAKER_CLOSED);
    for (int i = 0; i < 10; i++)
        assert_int_equal(sl_breaker_allow(b, 221), 0);
    sl_breaker_destroy(b);
}

static void test_disabled(void **state)
{
    (void)state;
    struct sl_config_breaker bc = {
        .failures = 0, .open_ms = 100, .half_open_probes = 1};
    struct sl_breaker *b = sl_breaker_new(&bc);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(sl_breaker_allow(b, i), 0);
        sl_breaker_record(b, SL_BREAKER_FAILURE, i);
    }
    assert_int_equal(sl_breaker_state(b, 100), SL_BREAKER_CLOSED);
    sl_breaker_destroy(b);
}

/* record() says which report opened, reopened or closed the breaker, so
 * that the engine logs each change once. */
static void test_record_reports_changes(void **state)
{
    (void)state;
    struct sl_config_breaker bc = {
        .failures = 2, .open_ms = 1000, .half_open_probes = 1};
    struct sl_breaker *b = sl_breaker_new(&bc);
    int64_t t = 5000;

    assert_int_equal(sl_breaker_allow(b, t), 0);
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_FAILURE, t), -1);
    assert_int_equal(sl_breaker_allow(b, t), 0);
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_FAILURE, t),
                     SL_BREAKER_OPEN);
    /* a late answer while open changes nothing */
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_FAILURE, t + 1), -1);
    t += 1000;
    assert_int_equal(sl_breaker_allow(b, t), 0); /* the probe */
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_FAILURE, t),
                     SL_BREAKER_OPEN);
    t += 1000;
    assert_int_equal(sl_breaker_allow(b, t), 0);
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_SUCCESS, t),
                     SL_BREAKER_CLOSED);
    assert_int_equal(sl_breaker_record(b, SL_BREAKER_SUCCESS, t), -1);
    sl_breaker_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_opens_after_failures),
        cmocka_unit_test(test_half_open_probes),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_record_reports_changes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
