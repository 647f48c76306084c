/*
 * UTF-8 validation and the printable copy used in logs and dead letters.
 */
#include "cmocka_shim.h"

#include "utf8.h"

#include <string.h>

static void test_valid_and_invalid(void **state)
{
    (void)state;
    assert_true(
        sl_utf8_is_clean("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80", 15));
    assert_false(sl_utf8_is_clean("a\0b", 3));             /* NUL */
    assert_false(sl_utf8_is_clean("\xc0\xaf", 2));         /* overlong */
    assert_false(sl_utf8_is_clean("\xed\xa0\x80", 3));     /* surrogate */
    assert_false(sl_utf8_is_clean("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    assert_false(sl_utf8_is_clean("\xe2\x82", 2));         /* truncated */
    assert_int_equal(sl_utf8_valid_prefix("ab\xffzz", 5), 2);
}

static void test_printable(void **state)
{
    (void)state;
    char out[32];
    assert_string_equal(sl_utf8_printable("a\xff\0b", 4, out, sizeof(out)),
                        "a\\xff\\x00b");
    assert_string_equal(sl_utf8_printable("0123456789abcdef", 16, out, 10),
                        "012345...");
    assert_string_equal(sl_utf8_printable("", 0, out, sizeof(out)), "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_and_invalid),
        cmocka_unit_test(test_printable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
