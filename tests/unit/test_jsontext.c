/*
 * Numbers keep the text they came with: a model's 0.6, 0.1 and a real
 * that needs all 17 digits read in and print out unchanged.
 */
#include "cmocka_shim.h"

#include "jsontext.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse 'text', print it with sl_jsontext_dumps(), expect 'want'. */
static void expect_text(const char *text, const char *want)
{
    json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
    assert_non_null(j);
    char *out = sl_jsontext_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_non_null(out);
    assert_string_equal(out, want);
    free(out);
    json_decref(j);
}

static void test_shortest_reals(void **state)
{
    (void)state;
    expect_text("{\"score\":0.6}", "{\"score\":0.6}");
    expect_text("{\"score\":0.1}", "{\"score\":0.1}");
    expect_text("[0.6,0.1,0.7,2.5,-1.25,1e-7,123456.789]",
                "[0.6,0.1,0.7,2.5,-1.25,1e-7,123456.789]");
    expect_text("0.30000000000000004", "0.30000000000000004");
    expect_text("[0.1234567890123456]", "[0.1234567890123456]");
    expect_text("{\"n\":3,\"s\":\"0.6\",\"b\":true,\"z\":null}",
                "{\"n\":3,\"s\":\"0.6\",\"b\":true,\"z\":null}");
}

/* Every real of every precision reads back as the same double. */
static void test_round_trip(void **state)
{
    (void)state;
    double vals[] = {
        0.6,    0.1,    0.30000000000000004,    1.0 / 3.0, 2.0 / 3.0,
        1e-300, 5e-324, 1.7976931348623157e308, 0.0,       -0.0};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        json_t *j = json_pack("[f]", vals[i]);
        char *out = sl_jsontext_dumps(j, JSON_COMPACT);
        assert_non_null(out);
        json_t *back = json_loads(out, 0, NULL);
        assert_non_null(back);
        assert_true(json_real_value(json_array_get(back, 0)) == vals[i]);
        free(out);
        json_decref(back);
        json_decref(j);
    }
}

/* Each real on its own: one that needs 17 digits does not lengthen the
 * others; the whole-document precision is what indented text uses. */
static void test_precision_per_value(void **state)
{
    (void)state;
    expect_text("{\"emb\":[0.30000000000000004,0.1234567890123456],"
                "\"score\":0.6,\"label\":\"pos\\u00e9\\n/\"}",
                "{\"emb\":[0.30000000000000004,0.1234567890123456],"
                "\"score\":0.6,\"label\":\"pos\u00e9\\n/\"}");
    expect_text("{}", "{}");
    expect_text("[[],{},[{}]]", "[[],{},[{}]]");
    expect_text("{\"a\":1e300,\"b\":-2.5e-300,\"c\":1.0}",
                "{\"a\":1e300,\"b\":-2.5e-300,\"c\":1.0}");

    json_t *j = json_loads("[0.6,0.30000000000000004]", 0, NULL);
    assert_int_equal(sl_jsontext_precision(j), 17);
    char *out = sl_jsontext_dumps(j, JSON_INDENT(1));
    assert_string_equal(out,
                        "[\n 0.59999999999999998,\n 0.30000000000000004\n]");
    free(out);
    /* Flags that change scalars reach them. */
    json_decref(j);
    j = json_pack("{s:s}", "k\xc3\xa9", "a/b\xc3\xa9");
    out = sl_jsontext_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII |
                                   JSON_ESCAPE_SLASH);
    assert_string_equal(out, "{\"k\\u00E9\":\"a\\/b\\u00E9\"}");
    free(out);
    json_decref(j);
    j = json_loads("{\"a\":[{\"b\":0.6}],\"c\":1}", 0, NULL);
    assert_int_equal(sl_jsontext_precision(j), 15);
    json_decref(j);
    /* A precision in the flags is replaced, not combined. */
    j = json_loads("[0.6]", 0, NULL);
    out = sl_jsontext_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(17));
    assert_string_equal(out, "[0.6]");
    free(out);
    /* As json_dumps(): a scalar needs JSON_ENCODE_ANY. */
    json_t *r = json_real(0.6);
    assert_null(sl_jsontext_dumps(r, JSON_COMPACT));
    json_decref(r);
    json_decref(j);
    assert_null(sl_jsontext_dumps(NULL, 0));
}

/* sl_jsontext_dumps(j) is json_dumps(j) under each of flags[0..n). */
static void assert_dumps_as_jansson(const json_t *j, const size_t *flags,
                                    size_t n)
{
    for (size_t f = 0; f < n; f++) {
        char *want = json_dumps(j, flags[f]);
        char *got = sl_jsontext_dumps(j, flags[f]);
        assert_non_null(got);
        assert_string_equal(got, want);
        free(want);
        free(got);
    }
}

/* Without reals the text is json_dumps()'s, byte for byte. */
static void test_same_as_jansson(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"a\":[1,-2,true,false,null,\"x\\\"y\\\\z\\u0001\"],\"b\":{}}",
        "[\"\\u00e9\\ud83d\\ude00\",\"</script>\",\"\\t\\r\\n\"]",
        "{\"z\":1,\"a\":{\"y\":[[[]]],\"b\":9223372036854775807}}",
    };
    static const size_t flags[] = {
        JSON_COMPACT, JSON_COMPACT | JSON_ENSURE_ASCII,
        JSON_COMPACT | JSON_ESCAPE_SLASH | JSON_PRESERVE_ORDER};
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        json_t *j = json_loads(docs[i], 0, NULL);
        assert_non_null(j);
        assert_dumps_as_jansson(j, flags, sizeof(flags) / sizeof(flags[0]));
        json_decref(j);
    }
}

/* Keys, strings and integers written without jansson's writer: the same
 * text as json_dumps() for every ASCII byte in a key and a value, '/',
 * UTF-8, strings around the 62-byte fast-path limit, integers at both
 * ends. */
static void test_scalars_same_as_jansson(void **state)
{
    (void)state;
    static const size_t flags[] = {
        JSON_COMPACT, JSON_COMPACT | JSON_ENSURE_ASCII,
        JSON_COMPACT | JSON_ESCAPE_SLASH | JSON_ENSURE_ASCII};
    json_t *j = json_object();
    char text[80];
    for (int c = 1; c < 0x100; c++) {
        snprintf(text, sizeof(text), "k%cey", c);
        if (c < 0x80)
            json_object_set_new(j, text, json_stringn(text, strlen(text)));
    }
    json_object_set_new(j, "caf\xc3\xa9", json_string("na\xc3\xafve/x"));
    for (int len = 58; len <= 66; len++) {
        memset(text, 'a', (size_t)len);
        text[len] = '\0';
        json_object_set_new(j, text, json_string(text));
        text[len - 1] = '/';
        json_object_set_new(j, text, json_string(text));
    }
    json_t *ints = json_array();
    json_int_t iv[] = {0,   1,         -1,        9,         10,
                       -10, 123456789, INT64_MAX, INT64_MIN, INT64_MIN + 1};
    for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++)
        json_array_append_new(ints, json_integer(iv[i]));
    json_array_append_new(ints, json_true());
    json_array_append_new(ints, json_false());
    json_array_append_new(ints, json_null());
    json_object_set_new(j, "ints", ints);
    assert_dumps_as_jansson(j, flags, sizeof(flags) / sizeof(flags[0]));
    json_decref(j);
}

/* The reference: the fewest digits, 15 to 17, with which "%.*g" reads
 * back as 'v', written by jansson at that precision. */
static char *reference(double v)
{
    char text[40];
    int p;

    for (p = 15; p < 17; p++) {
        snprintf(text, sizeof(text), "%.*g", p, v);
        if (strtod(text, NULL) == v)
            break;
    }
    json_t *j = json_real(v);
    char *out = json_dumps(j, JSON_ENCODE_ANY | JSON_REAL_PRECISION(p));
    json_decref(j);
    return out;
}

/* One real through sl_jsontext_dumps(): jansson's text at the fewest
 * digits that read back, byte for byte, for reals of every kind. */
static void check_one(double v)
{
    if (!isfinite(v))
        return; /* JSON has none: tested in test_round_trip */
    json_t *j = json_real(v);
    char *got = sl_jsontext_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);
    char *want = reference(v);
    json_t *back = json_loads(got, JSON_DECODE_ANY, NULL);

    if (!back || json_number_value(back) != v || strcmp(got, want) != 0)
        fail_msg("%.17g: got %s, want %s", v, got ? got : "NULL", want);
    json_decref(back);
    free(want);
    free(got);
    json_decref(j);
}

static void test_against_printf(void **state)
{
    (void)state;
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17; /* xorshift64 */
        double d;
        uint64_t bits = x;
        memcpy(&d, &bits, sizeof(d));
        check_one(d); /* any double */
        check_one((double)(float)((double)(x >> 11) / 9007199254740992.0 -
                                  0.5)); /* an embedding's float */
        check_one((double)(int64_t)(x % 2000001) / 1000.0); /* decimals */
    }
    for (int e = -320; e <= 308; e++) {
        check_one(pow(10.0, e));
        check_one(9.999999999999999 * pow(10.0, e));
        check_one(-9.9999999999999995 * pow(10.0, e));
    }
    double edge[] = {0.0,     -0.0,     1e-5,    1e-4,    0.0001,
                     99999.5, 1e15,     1e16,    1e17,    123456789012345680.0,
                     5e-324,  2.5e-308, DBL_MAX, DBL_MIN, 0.1 + 0.2};
    for (size_t i = 0; i < sizeof(edge) / sizeof(edge[0]); i++)
        check_one(edge[i]);
}

/* Embedding values: mock-infer's k/255 (17 digits, like a real server's
 * Python floats), float32s, at every scale the fast path takes and beyond
 * it; and reals next to a half between two 15-, 16- and 17-digit texts,
 * where the digits must come from printf. */
static void test_embeddings_and_ties(void **state)
{
    (void)state;
    for (int k = 0; k <= 255; k++)
        for (int e = -14; e <= 19; e++) {
            double v = (double)k / 255.0 * pow(10.0, e);
            check_one(v);
            check_one(-v);
            check_one((double)(float)v);
        }
    uint64_t x = 0x2545f4914f6cdd1du;
    char text[48];
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        int ndig = 15 + (int)(x % 3);
        uint64_t lead = 1 + (x >> 8) % 9;
        /* d.ddd...5 (ndig + 1 digits) times 10^e: a half at ndig digits */
        snprintf(text, sizeof(text), "%" PRIu64 ".%0*" PRIu64 "5e%d", lead,
                 ndig - 1, (x >> 20) % (uint64_t)pow(10.0, ndig - 1),
                 (int)((x >> 40) % 40) - 20);
        double mid = strtod(text, NULL);
        check_one(mid);
        check_one(nextafter(mid, 0.0));
        check_one(nextafter(mid, INFINITY));
        /* integers in [2^54, 10^17): a 16-digit candidate there can be a
         * midpoint between two doubles */
        double big = (double)(UINT64_C(18014398509481984) +
                              (x >> 8) % UINT64_C(81985601490518016));
        check_one(big);
        check_one(nextafter(big, INFINITY));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shortest_reals),
        cmocka_unit_test(test_against_printf),
        cmocka_unit_test(test_embeddings_and_ties),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_precision_per_value),
        cmocka_unit_test(test_same_as_jansson),
        cmocka_unit_test(test_scalars_same_as_jansson),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
