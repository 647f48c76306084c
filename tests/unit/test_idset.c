/*
 * The in-flight id set: add, has, remove, capacity, against a reference
 * model under many random operations.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "idset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void test_basics(void **state)
{
    (void)state;
    struct sl_idset *s = sl_idset_new(2);
    assert_non_null(s);
    assert_int_equal(sl_idset_add(s, "1700000000000-0"), 0);
    assert_int_equal(sl_idset_add(s, "1700000000000-0"), 0);
    assert_int_equal(sl_idset_add(s, "1700000000000-1"), 0);
    assert_int_equal(sl_idset_add(s, "1700000000000-2"), -SL_ETOOBIG);
    assert_true(sl_idset_has(s, "1700000000000-1"));
    assert_false(sl_idset_has(s, "1700000000000-2"));
    assert_int_equal(sl_idset_count(s), 2);
    sl_idset_remove(s, "1700000000000-0");
    assert_false(sl_idset_has(s, "1700000000000-0"));
    assert_true(sl_idset_has(s, "1700000000000-1"));
    assert_int_equal(sl_idset_count(s), 1);
    char longid[64];
    memset(longid, '7', sizeof(longid) - 1);
    longid[63] = '\0';
    assert_int_equal(sl_idset_add(s, longid), -SL_ETOOBIG);
    sl_idset_destroy(s);
    sl_idset_destroy(NULL);
}

static void test_random_against_model(void **state)
{
    (void)state;
    enum { IDS = 3000, OPS = 200000, MAX = 1000 };
    struct sl_idset *s = sl_idset_new(MAX);
    static bool model[IDS];
    size_t held = 0;
    char id[32];

    srand(12345);
    for (int op = 0; op < OPS; op++) {
        int n = rand() % IDS;
        snprintf(id, sizeof(id), "%d-%d", 1700000000 + n / 7, n % 7);
        int what = rand() % 3;
        if (what == 0) {
            int rc = sl_idset_add(s, id);
            if (!model[n] && held == MAX) {
                assert_int_equal(rc, -SL_ETOOBIG);
            } else {
                assert_int_equal(rc, 0);
                held += !model[n];
                model[n] = true;
            }
        } else if (what == 1) {
            sl_idset_remove(s, id);
            held -= model[n];
            model[n] = false;
        } else {
            assert_int_equal(sl_idset_has(s, id), model[n]);
        }
        assert_int_equal(sl_idset_count(s), held);
    }
    for (int n = 0; n < IDS; n++) {
        snprintf(id, sizeof(id), "%d-%d", 1700000000 + n / 7, n % 7);
        assert_int_equal(sl_idset_has(s, id), model[n]);
    }
    sl_idset_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basics),
        cmocka_unit_test(test_random_against_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
