/*
 * JSON Pointer: the RFC 6901 section 5 examples, escapes, array indices
 * and what names nothing.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "jsonptr.h"

static const char *doc_text =
    "{\"foo\": [\"bar\", \"baz\"], \"\": 0, \"a/b\": 1, \"c%d\": 2, "
    "\"e^f\": 3, \"g|h\": 4, \"i\\\\j\": 5, \"k\\\"l\": 6, \" \": 7, "
    "\"m~n\": 8, \"deep\": {\"x\": [{\"y\": true}]}}";

static void expect_int(json_t *doc, const char *ptr, json_int_t want)
{
    json_t *v;
    assert_int_equal(sl_jsonptr_get(doc, ptr, &v), 0);
    assert_true(json_is_integer(v));
    assert_int_equal(json_integer_value(v), want);
}

static void test_rfc6901_examples(void **state)
{
    (void)state;
    json_t *doc = json_loads(doc_text, 0, NULL), *v;
    assert_non_null(doc);
    assert_int_equal(sl_jsonptr_get(doc, "", &v), 0);
    assert_ptr_equal(v, doc);
    assert_int_equal(sl_jsonptr_get(doc, "/foo", &v), 0);
    assert_int_equal(json_array_size(v), 2);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/0", &v), 0);
    assert_string_equal(json_string_value(v), "bar");
    expect_int(doc, "/", 0);
    expect_int(doc, "/a~1b", 1);
    expect_int(doc, "/c%d", 2);
    expect_int(doc, "/e^f", 3);
    expect_int(doc, "/g|h", 4);
    expect_int(doc, "/i\\j", 5);
    expect_int(doc, "/k\"l", 6);
    expect_int(doc, "/ ", 7);
    expect_int(doc, "/m~0n", 8);
    assert_int_equal(sl_jsonptr_get(doc, "/deep/x/0/y", &v), 0);
    assert_true(json_is_true(v));
    json_decref(doc);
}

static void test_not_found_and_invalid(void **state)
{
    (void)state;
    json_t *doc = json_loads(doc_text, 0, NULL), *v = (json_t *)1;
    assert_int_equal(sl_jsonptr_get(doc, "/nope", &v), -SL_ENOTFOUND);
    assert_null(v);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/2", &v), -SL_ENOTFOUND);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/-", &v), -SL_ENOTFOUND);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/0/x", &v), -SL_ENOTFOUND);
    assert_int_equal(sl_jsonptr_get(doc, "/a/b", &v), -SL_ENOTFOUND);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/01", &v), -SL_EINVAL);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/+1", &v), -SL_EINVAL);
    assert_int_equal(sl_jsonptr_get(doc, "/m~2n", &v), -SL_EINVAL);
    assert_int_equal(sl_jsonptr_get(doc, "foo", &v), -SL_EINVAL);
    assert_int_equal(sl_jsonptr_get(doc, "/foo/99999999999999999999999", &v),
                     -SL_ENOTFOUND);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6901_examples),
        cmocka_unit_test(test_not_found_and_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
