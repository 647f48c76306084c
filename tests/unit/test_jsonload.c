/*
 * sl_json_loadb_fast() builds jansson's own tree or gives up: for every
 * input either NULL (the caller asks jansson) or a tree equal to
 * json_loadb()'s, printed the same (key order, integer or real).
 */
#include "cmocka_shim.h"

#include "infer_int.h"
#include "jsonload.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum want {
    ANY,      /* NULL, or jansson's tree */
    FAST,     /* jansson's tree, not NULL */
    FALLBACK, /* NULL: jansson reads it (or refuses it) its own way */
};

/* At most 80 bytes of an input, for a failure's message. */
#define SHOWN(len) ((int)((len) < 80 ? (len) : 80))

/* Compare the fast loader with json_loadb(text, len, 0) as 'want' says. */
static void check_len(const char *text, size_t len, enum want want)
{
    json_error_t jerr;
    json_t *fast = sl_json_loadb_fast(text, len);
    json_t *slow = json_loadb(text, len, 0, &jerr);

    if (want == FALLBACK && fast) {
        fprintf(stderr, "fast path taken for %.*s\n", SHOWN(len), text);
        fail();
    }
    if (want == FAST && !fast) {
        fprintf(stderr, "fast path not taken for %.*s\n", SHOWN(len), text);
        fail();
    }
    if (fast) {
        if (!slow) {
            fprintf(stderr, "jansson refuses %.*s: %s\n", SHOWN(len), text,
                    jerr.text);
            fail();
        }
        assert_true(json_equal(fast, slow));
        char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
        char *b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY);
        assert_non_null(a);
        assert_non_null(b);
        assert_string_equal(a, b);
        free(a);
        free(b);
    }
    json_decref(fast);
    json_decref(slow);
}

static void check(const char *text, enum want want)
{
    check_len(text, strlen(text), want);
}

static void test_same_tree_as_jansson(void **state)
{
    (void)state;
    check("{}", FAST);
    check("[]", FAST);
    check(" \t\r\n[ ] \n", FAST);
    check("{\"a\":[1]} \t\r\n", FAST);
    check("{\"a\":{},\"b\":[],\"c\":[{}],\"d\":{\"e\":[]}}", FAST);
    check("[null,true,false,\"s\",1,-1,1.5,{\"k\":[1,[2,[3]]]}]", FAST);
    check("{\"z\":1,\"a\":2,\"m\":3}", FAST); /* key order kept */
    check("{\"a\":1,\"b\":2,\"a\":3}", FAST); /* the last duplicate wins */
    check("{\"a\":[1],\"a\":{\"b\":2}}", FAST);
    check("[0,7,-7,123456789012,-0]", FAST);
    check("[9223372036854775807,-9223372036854775808]", FAST);
    check("[0.0,-0.0,1.25,-2.5e3,1e10,1E+2,1e-2,6.02214076e23]", FAST);
    check("[0.1,0.30000000000000004,1.7976931348623157e308]", FAST);
    check("[4.9e-324,1e-400,-1e-400]", FAST); /* underflow is not an error */
    check("[1.0,1e0,10E-1]", FAST);           /* reals, not integers */
    check("[\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"]", FAST);
    check("{\"\xc3\xa9t\xc3\xa9\":\"\xe6\x97\xa5\"}", FAST);
    check("[\"a\\nb\",\"\\\"\",\"\\\\\",\"\\/\",\"\\t\\r\\b\\f\"]", FAST);
    check("{\"k\\n\\\"\":\"v\"}", FAST);
    check("[\"\x7f\"]", FAST);
    check("[\"abcdefgh\xc3\xa9\",\"\xf4\x8f\xbf\xbf"
          "abcdefghijklmnop\"]",
          FAST);
}

static void test_falls_back(void **state)
{
    (void)state;
    /* top level not an object or array (jansson refuses it, flags 0) */
    check("1", FALLBACK);
    check("\"s\"", FALLBACK);
    check("null", FALLBACK);
    check("true", FALLBACK);
    check("", FALLBACK);
    check("   ", FALLBACK);
    /* out of json_int_t, overflow to infinity */
    check("[9223372036854775808]", FALLBACK);
    check("[-9223372036854775809]", FALLBACK);
    check("[1e400]", FALLBACK);
    check("[-1e400]", FALLBACK);
    /* \u anywhere: jansson refuses lone surrogates, yajl makes them '?' */
    check("[\"\\u00e9\"]", FALLBACK);
    check("[\"\\ud800\"]", FALLBACK);
    check("[\"\\ud83d\\ude00\"]", FALLBACK);
    check("[\"\\u0000\"]", FALLBACK);
    check("{\"\\u0061\":1}", FALLBACK);
    check("[\"\\\\u\"]", FALLBACK); /* the two bytes, whatever they mean */
    /* whitespace to yajl, not to jansson */
    check("[1,\f2]", FALLBACK);
    check("[1,\v2]", FALLBACK);
    /* invalid UTF-8 yajl lets through: overlong, surrogate, past U+10FFFF */
    check("[\"\xc0\x80\"]", FALLBACK);
    check("[\"\xe0\x80\x80\"]", FALLBACK);
    check("[\"\xed\xa0\x80\"]", FALLBACK);
    check("[\"\xf4\x90\x80\x80\"]", FALLBACK);
    check("[\"\xf5\x80\x80\x80\"]", FALLBACK);
    check("{\"\xc0\x80\":1}", FALLBACK);
    check("[\"abcdefgh\xed\xa0\x80\"]", FALLBACK);
    check("[\"\xed\xa0\x80"
          "abcdefghijklmnop\"]",
          FALLBACK);
    check("[\"abcdefghijklmnop\",\"abcdefg\xf4\x90\x80\x80\"]", FALLBACK);
    check("{\"abcdefghijklmnopq\xe0\x80\x80\":1}", FALLBACK);
    /* invalid UTF-8 both refuse */
    check("[\"\xff\"]", FALLBACK);
    check("[\"\xc3\"]", FALLBACK);
    check("[\"\x80\"]", FALLBACK);
    /* syntax */
    check("[1] x", FALLBACK);
    /* an unterminated string after the value: yajl 2.1 waits for its
     * end and then calls the text complete (found by fuzz_reply) */
    check("{\"summary\":\"A lo~g y.\",\"words\":6}\"", FALLBACK);
    check("[1] \"abc", FALLBACK);
    check("[1]\"\\", FALLBACK);
    check("[1]\n\"\xc3", FALLBACK);
    check("[1][2]", FALLBACK);
    check("{\"a\":1}}", FALLBACK);
    check("[1,]", FALLBACK);
    check("{\"a\":1,}", FALLBACK);
    check("[01]", FALLBACK);
    check("[1.]", FALLBACK);
    check("[.5]", FALLBACK);
    check("[+1]", FALLBACK);
    check("[1e]", FALLBACK);
    check("[-]", FALLBACK);
    check("[NaN]", FALLBACK);
    check("[Infinity]", FALLBACK);
    check("[tru]", FALLBACK);
    check("{'a':1}", FALLBACK);
    check("{a:1}", FALLBACK);
    check("/* c */[1]", FALLBACK);
    check("[1] // c", FALLBACK);
    check("[\"a\\x\"]", FALLBACK);
    check("[\"a\tb\"]", FALLBACK); /* a raw control character */
    check("[\"a\x01\"]", FALLBACK);
    check("[\"abc", FALLBACK);
    check("{\"a\":", FALLBACK);
    check("[", FALLBACK);
    check("\xef\xbb\xbf[1]", FALLBACK); /* a byte order mark */
    check_len("[1]\0", 4, FALLBACK);
    check_len("[\"a\0b\"]", 7, FALLBACK);
    check_len("\0[1]", 4, FALLBACK);
    assert_null(sl_json_loadb_fast(NULL, 0));
}

/* 'depth' nested arrays (or objects under "a"), with 'inner' innermost. */
static char *nested(int depth, bool objects, const char *inner)
{
    size_t size = (size_t)depth * 6 + strlen(inner) + 1;
    char *s = malloc(size), *p = s;

    assert_non_null(s);
    for (int i = 0; i < depth; i++)
        p += objects ? (memcpy(p, "{\"a\":", 5), 5) : (*p = '[', 1);
    p += strlen(strcpy(p, inner));
    for (int i = 0; i < depth; i++)
        *p++ = objects ? '}' : ']';
    *p = '\0';
    return s;
}

/* jansson counts each value a level, a scalar too, and allows 2048. */
static void test_depth_as_jansson(void **state)
{
    static const struct {
        int depth;      /* containers */
        bool objects;   /* objects, else arrays */
        const char *in; /* innermost value */
        enum want want;
    } cases[] = {
        {2047, false, "1", FAST},     {2048, false, "", FAST},
        {2048, false, "1", FALLBACK}, {2049, false, "", FALLBACK},
        {2047, true, "1", FAST},      {2047, true, "{}", FAST},
        {2048, true, "1", FALLBACK},  {2048, true, "{}", FALLBACK},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = nested(cases[i].depth, cases[i].objects, cases[i].in);
        check(s, cases[i].want);
        free(s);
    }
}

/* The replies the engine reads most take the fast path. */
static void test_replies_take_the_fast_path(void **state)
{
    (void)state;
    /* an OpenAI embeddings reply, encoding_format: base64 */
    check(
        "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
        "\"embedding\":\"AACAPwAAAEAAAEBAAACAQAAAoEAAAMBAAADgQAAAAEE=\"},"
        "{\"object\":\"embedding\",\"index\":1,\"embedding\":"
        "\"AAAAAAAAgL8AAAA/AAAAvw==\"}],\"model\":\"text-embedding-3-small\","
        "\"usage\":{\"prompt_tokens\":16,\"total_tokens\":16}}",
        FAST);
    /* a chat completion */
    check(
        "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion\",\"created\":"
        "1733472000,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"positive\\n"
        "The service was \\\"fine\\\".\",\"refusal\":null},\"logprobs\":null,"
        "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":31,"
        "\"completion_tokens\":7,\"total_tokens\":38,\"prompt_tokens_details\":"
        "{\"cached_tokens\":0}},\"system_fingerprint\":\"fp_0\"}",
        FAST);
}

/*
 * Through the engine's reply parser: text yajl would take and jansson
 * refuses gets jansson's error text, unchanged.
 */
static void test_reply_errors_are_janssons(void **state)
{
    static const struct sl_config_backend emb = {
        .kind = SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS,
        .model = "m",
        .encoding_format = SL_CONFIG_ENCODING_FLOAT};
    static const struct {
        const char *reply;
        const char *text;
    } cases[] = {
        {"{\"data\":[]}\"", "reply is not valid JSON: premature end of "
                            "input near '\"' at byte 12"},
        {"{\"data\":[],\f\"model\":\"m\"}",
         "reply is not valid JSON: string or '}' expected near '\f' at byte "
         "12"},
        {"{\"data\":[\"\xed\xa0\x80\"]}",
         "reply is not valid JSON: unable to decode byte 0xed near '\"' at "
         "byte 10"},
        {"{\"data\":[\"\\ud800\"]}",
         "reply is not valid JSON: invalid Unicode '\\uD800' near "
         "'\"\\ud800\"' at byte 17"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct sl_infer_usage u;
        json_t *values = NULL;
        char text[512] = "";
        int rc =
            sl_infer_proto_parse(&emb, cases[i].reply, strlen(cases[i].reply),
                                 1, 0, &values, &u, text, sizeof(text));
        assert_int_equal(rc, -1);
        assert_null(values);
        assert_string_equal(text, cases[i].text);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_tree_as_jansson),
        cmocka_unit_test(test_falls_back),
        cmocka_unit_test(test_depth_as_jansson),
        cmocka_unit_test(test_replies_take_the_fast_path),
        cmocka_unit_test(test_reply_errors_are_janssons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
