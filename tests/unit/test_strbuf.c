/*
 * The growable text buffer: appends, printf appends, growth far past the
 * first allocation, and what done() hands over.
 */
#include "cmocka_shim.h"

#include "strbuf.h"

#include <malloc.h>
#include <stdlib.h>
#include <string.h>

static void test_add_and_done(void **state)
{
    struct sl_strbuf b = {0};
    char *text;

    (void)state;
    assert_int_equal(sl_strbuf_add(&b, "ab", 2), 0);
    assert_int_equal(sl_strbuf_add(&b, "cdef", 1), 0);
    assert_int_equal(sl_strbuf_addf(&b, "-%d-%s", 42, "x"), 0);
    assert_string_equal(b.p, "abc-42-x");
    assert_int_equal(b.len, 8);
    text = sl_strbuf_done(&b);
    assert_string_equal(text, "abc-42-x");
    assert_null(b.p); /* handed over: 'b' is empty again */
    assert_int_equal(b.len, 0);
    free(text);
}

static void test_empty_done_is_empty_text(void **state)
{
    struct sl_strbuf b = {0};
    char *text;

    (void)state;
    text = sl_strbuf_done(&b);
    assert_non_null(text);
    assert_string_equal(text, "");
    free(text);
    sl_strbuf_free(&b); /* an empty buffer: no-op */
}

static void test_grows(void **state)
{
    struct sl_strbuf b = {0};
    char chunk[100];

    (void)state;
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 1000; i++) {
        assert_int_equal(sl_strbuf_add(&b, chunk, sizeof(chunk)), 0);
        assert_int_equal(sl_strbuf_addf(&b, "%04d", i), 0);
    }
    assert_int_equal(b.len, 1000 * 104);
    assert_int_equal(strlen(b.p), b.len);
    assert_memory_equal(b.p + 103 * 104 + 100, "0103", 4);
    assert_false(b.failed);
    sl_strbuf_free(&b);
    assert_null(b.p);
}

/*
 * A short text handed over keeps no more than it needs: a row keeps its
 * results, errors and timings texts until its batch commits, 10000 rows
 * and more at once (was 256 bytes each for a 20-byte text).
 */
static void test_done_fits(void **state)
{
    struct sl_strbuf b = {0};
    char *text;

    (void)state;
    assert_int_equal(sl_strbuf_add(&b, "{\"label\": \"positive\"}", 21), 0);
    text = sl_strbuf_done(&b);
    assert_string_equal(text, "{\"label\": \"positive\"}");
    assert_true(malloc_usable_size(text) < 64);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_and_done),
        cmocka_unit_test(test_empty_done_is_empty_text),
        cmocka_unit_test(test_grows),
        cmocka_unit_test(test_done_fits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
