/*
 * The limiter with injected time: every call takes the monotonic time it
 * runs at, so a test walks a simulated clock and counts what is admitted.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "limiter.h"

/* Try to start a request at 'now'; give the slot back at once when it
 * started.  Returns what try_acquire said; the wait hint in *waitp. */
static int try_once(struct sl_limiter *l, int64_t now, int64_t *waitp)
{
    int err = sl_limiter_try_acquire(l, now, waitp);

    if (!err)
        sl_limiter_release(l);
    return err;
}

/*
 * A client that always has a request waiting and comes back when the
 * limiter says: how many start in [t0, t1).  'tokens' model tokens are
 * debited for each one, as a reply's usage is.
 */
static long greedy(struct sl_limiter *l, int64_t t0, int64_t t1, int64_t tokens)
{
    long n = 0;
    int64_t now = t0, wait;

    while (now < t1) {
        int err = sl_limiter_try_acquire(l, now, &wait);
        if (!err) {
            n++;
            sl_limiter_debit_tokens(l, tokens, now);
            sl_limiter_release(l);
            continue;
        }
        assert_int_equal(err, -SL_ERATELIMIT);
        assert_true(wait > 0);
        now += wait;
    }
    return n;
}

/* rate_limit_rps: a burst of one second's worth, then exactly 'rps' a
 * second, with a wait hint that is right (not early, not late).  A cap of
 * one: a slot not given back would turn a refusal into -SL_EBUSY. */
static void test_rps(void **state)
{
    struct sl_limiter *l = sl_limiter_new(1, 20, 0);
    int64_t wait;

    (void)state;
    assert_non_null(l);
    for (int i = 0; i < 20; i++)
        assert_int_equal(try_once(l, 1000, &wait), 0);
    assert_int_equal(try_once(l, 1000, &wait), -SL_ERATELIMIT);
    assert_int_equal(wait, 51); /* one token per 50 ms, +1 */
    assert_int_equal(try_once(l, 1049, &wait), -SL_ERATELIMIT);
    assert_int_equal(try_once(l, 1050, &wait), 0);
    /* 60 s of greedy use: 20 a second, to the request. */
    long n = greedy(l, 1050, 61050, 0);
    assert_true(n >= 1199 && n <= 1201);
    /* No slot is held: a second later, the one slot is free. */
    assert_int_equal(try_once(l, 62050, &wait), 0);
    sl_limiter_destroy(l);
}

/* A fractional rate: bursts of one, one request every 4 s. */
static void test_rps_fraction(void **state)
{
    struct sl_limiter *l = sl_limiter_new(0, 0.25, 0);
    int64_t wait;

    (void)state;
    assert_int_equal(try_once(l, 0, &wait), 0);
    assert_int_equal(try_once(l, 0, &wait), -SL_ERATELIMIT);
    assert_int_equal(wait, 4001);
    assert_int_equal(try_once(l, 3999, &wait), -SL_ERATELIMIT);
    assert_int_equal(try_once(l, 4000, &wait), 0);
    /* An idle hour refills one token only: no burst after a pause. */
    assert_int_equal(try_once(l, 3604000, &wait), 0);
    assert_int_equal(try_once(l, 3604000, &wait), -SL_ERATELIMIT);
    sl_limiter_destroy(l);
}

/*
 * tokens_per_minute: a minute's budget at first, then the debits of the
 * replies are paid back at tpm/60 a second; a budget in debt says how
 * long until it is paid.
 */
static void test_tokens_per_minute(void **state)
{
    struct sl_limiter *l = sl_limiter_new(0, 0, 6000);
    int64_t wait;

    (void)state;
    /* 60 requests of 100 tokens spend the first minute's budget. */
    assert_int_equal(greedy(l, 0, 1, 100), 60);
    assert_int_equal(try_once(l, 0, &wait), -SL_ERATELIMIT);
    assert_int_equal(wait, 1); /* exactly spent: any refill is enough */
    /* A reply that used 1000 tokens more: 10 s of debt. */
    sl_limiter_debit_tokens(l, 1000, 0);
    assert_int_equal(try_once(l, 0, &wait), -SL_ERATELIMIT);
    assert_int_equal(wait, 10001);
    assert_int_equal(try_once(l, 10000, &wait), -SL_ERATELIMIT);
    assert_int_equal(try_once(l, 10001, &wait), 0);
    /* Ten minutes of greedy use at 100 tokens a request: 6000 tokens a
     * minute, i.e. 600 requests, give or take the one that overdraws. */
    long n = greedy(l, 10001, 610001, 100);
    assert_true(n >= 599 && n <= 601);
    sl_limiter_destroy(l);
}

/* Both limits: the tighter one wins. */
static void test_both_limits(void **state)
{
    struct sl_limiter *l = sl_limiter_new(0, 10, 60000);

    (void)state;
    /* 10 tokens a request: the token budget allows 100/s, rps 10/s. */
    long n = greedy(l, 0, 60000, 10);
    assert_true(n >= 609 && n <= 611); /* burst 10 + 60 s x 10 */
    sl_limiter_destroy(l);
    l = sl_limiter_new(0, 100, 6000);
    /* 100 tokens a request: rps allows 100/s, the budget 1/s. */
    n = greedy(l, 0, 60000, 100);
    assert_true(n >= 119 && n <= 121); /* a minute's budget + 60 s x 1 */
    sl_limiter_destroy(l);
}

/* The concurrency cap is separate from the rates: a busy refusal spends
 * no rate token, and a rate refusal holds no slot.  With a cap of two,
 * how many slots are held shows in what a request gets: -SL_EBUSY when
 * both are, the rate's answer otherwise. */
static void test_cap_and_rate(void **state)
{
    struct sl_limiter *l = sl_limiter_new(2, 2, 0);
    int64_t wait;

    (void)state;
    assert_int_equal(sl_limiter_try_acquire(l, 0, &wait), 0);
    assert_int_equal(sl_limiter_try_acquire(l, 0, &wait), 0);
    assert_int_equal(sl_limiter_try_acquire(l, 0, &wait), -SL_EBUSY);
    sl_limiter_release(l);
    sl_limiter_release(l);
    assert_int_equal(sl_limiter_try_acquire(l, 0, &wait), -SL_ERATELIMIT);
    assert_int_equal(wait, 501);
    /* One slot held at 500: the refusal at 0 held none (else busy). */
    assert_int_equal(sl_limiter_try_acquire(l, 500, &wait), 0);
    assert_int_equal(sl_limiter_try_acquire(l, 500, &wait), -SL_ERATELIMIT);
    /* Exactly one: a second starts at 1000, and then, with tokens to
     * spare at 2000, the cap refuses. */
    assert_int_equal(sl_limiter_try_acquire(l, 1000, &wait), 0);
    assert_int_equal(sl_limiter_try_acquire(l, 2000, &wait), -SL_EBUSY);
    sl_limiter_release(l);
    sl_limiter_release(l);
    assert_int_equal(sl_limiter_try_acquire(l, 2000, &wait), 0);
    sl_limiter_release(l);
    sl_limiter_destroy(l);
}

/* No limits at all: everything starts; time may even go backwards. */
static void test_unlimited(void **state)
{
    struct sl_limiter *l = sl_limiter_new(0, 0, 0);
    int64_t wait;

    (void)state;
    for (int64_t t = 1000; t > 0; t -= 10)
        assert_int_equal(try_once(l, t, &wait), 0);
    sl_limiter_destroy(l);
    sl_limiter_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rps),
        cmocka_unit_test(test_rps_fraction),
        cmocka_unit_test(test_tokens_per_minute),
        cmocka_unit_test(test_both_limits),
        cmocka_unit_test(test_cap_and_rate),
        cmocka_unit_test(test_unlimited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
