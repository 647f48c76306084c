/*
 * Templates: JSON substitution keeps every payload a value (quotes,
 * backslashes, control characters, break-out attempts); text substitution
 * is raw; bad payloads and missing fields give clear reasons.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "template.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *doc_of(const char *text)
{
    char errstr[256];
    json_t *doc;
    assert_int_equal(sl_template_parse_payload(text, strlen(text), 0, &doc,
                                               errstr, sizeof(errstr)),
                     0);
    return doc;
}

static void test_json_escaping(void **state)
{
    (void)state;
    const char *nasty = "\"}, \"x\": \"";
    json_t *src = json_pack("{s:s, s:s}", "text", nasty, "more",
                            "back\\slash \"q\" \n\t\x01 end");
    char *payload = json_dumps(src, JSON_COMPACT);
    json_t *doc = doc_of(payload), *v;
    char errstr[256];

    assert_int_equal(sl_template_render_value("{\"text\": {{text}}, \"m\": "
                                              "{{ more }}}",
                                              doc, &v, errstr, sizeof(errstr)),
                     0);
    assert_true(json_is_object(v));
    assert_int_equal(json_object_size(v), 2); /* no "x" member injected */
    assert_string_equal(json_string_value(json_object_get(v, "text")), nasty);
    assert_string_equal(json_string_value(json_object_get(v, "m")),
                        "back\\slash \"q\" \n\t\x01 end");
    json_decref(v);
    free(payload);
    json_decref(src);
    json_decref(doc);
}

static void test_values_and_paths(void **state)
{
    (void)state;
    json_t *doc =
        doc_of("{\"n\": 42, \"user\": {\"id\": 7, \"name\": \"Ann\"}, "
               "\"tags\": [\"a\"]}");
    char *out, errstr[256];

    assert_int_equal(sl_template_render("{\"id\": {{user.id}}, \"t\": "
                                        "{{tags}}, \"n\": {{n}}}",
                                        doc, SL_TEMPLATE_JSON, &out, errstr,
                                        sizeof(errstr)),
                     0);
    assert_string_equal(out, "{\"id\": 7, \"t\": [\"a\"], \"n\": 42}");
    free(out);
    assert_int_equal(sl_template_render("Hi {{user.name}} #{{n}} {{tags}}", doc,
                                        SL_TEMPLATE_TEXT, &out, errstr,
                                        sizeof(errstr)),
                     0);
    assert_string_equal(out, "Hi Ann #42 [\"a\"]");
    free(out);
    assert_int_equal(sl_template_render("{{.}}", doc, SL_TEMPLATE_JSON, &out,
                                        errstr, sizeof(errstr)),
                     0);
    json_t *back = json_loads(out, 0, NULL);
    assert_true(json_equal(back, doc));
    json_decref(back);
    free(out);
    json_decref(doc);
}

static void test_text_mode_raw_string(void **state)
{
    (void)state;
    json_t *doc = doc_of("{\"text\": \"say \\\"hi\\\"\\n\"}");
    char *out, errstr[256];
    assert_int_equal(sl_template_render("<{{text}}>", doc, SL_TEMPLATE_TEXT,
                                        &out, errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out, "<say \"hi\"\n>");
    free(out);
    json_decref(doc);
}

static void test_missing_field(void **state)
{
    (void)state;
    json_t *doc = doc_of("{\"user\": {\"id\": 1}}");
    char *out = (char *)1, errstr[256];
    assert_int_equal(sl_template_render("{{user.name}}", doc, SL_TEMPLATE_JSON,
                                        &out, errstr, sizeof(errstr)),
                     -SL_ENOTFOUND);
    assert_null(out);
    assert_string_equal(errstr, "missing field 'user.name'");
    assert_int_equal(sl_template_render("{{text}}", doc, SL_TEMPLATE_TEXT, &out,
                                        errstr, sizeof(errstr)),
                     -SL_ENOTFOUND);
    assert_string_equal(errstr, "missing field 'text'");
    json_decref(doc);
}

static void test_bad_payloads(void **state)
{
    (void)state;
    json_t *doc = (json_t *)1;
    char errstr[256];
    const char bad_utf8[] = "{\"text\": \"caf\xc3\x28\"}";

    assert_int_equal(sl_template_parse_payload(bad_utf8, strlen(bad_utf8), 0,
                                               &doc, errstr, sizeof(errstr)),
                     -SL_EDECODE);
    assert_null(doc);
    assert_non_null(strstr(errstr, "payload is not valid JSON"));
    assert_non_null(strstr(errstr, "UTF-8"));
    assert_int_equal(sl_template_parse_payload("not json", 8, 0, &doc, errstr,
                                               sizeof(errstr)),
                     -SL_EDECODE);
    assert_non_null(strstr(errstr, "payload is not valid JSON"));
    assert_int_equal(
        sl_template_parse_payload("[1]", 3, 0, &doc, errstr, sizeof(errstr)),
        -SL_EDECODE);
    assert_string_equal(errstr, "payload is not a JSON object");
    assert_int_equal(sl_template_parse_payload("caf\xc3\x28", 5, 1, &doc,
                                               errstr, sizeof(errstr)),
                     -SL_EDECODE);
    assert_non_null(strstr(errstr, "not valid UTF-8"));
    assert_int_equal(sl_template_parse_payload("plain \"text\"", 12, 1, &doc,
                                               errstr, sizeof(errstr)),
                     0);
    assert_string_equal(json_string_value(json_object_get(doc, "text")),
                        "plain \"text\"");
    json_decref(doc);
}

/* One placeholder is the value itself; a body renders to its own text. */
static void test_single_placeholder_and_json_text(void **state)
{
    (void)state;
    json_t *doc = doc_of("{\"text\": \"a \\\"q\\\"\", \"n\": 7, "
                         "\"o\": {\"k\": [1, 2]}}");
    json_t *v;
    char errstr[256], *text;

    assert_int_equal(
        sl_template_render_value("{{text}}", doc, &v, errstr, sizeof(errstr)),
        0);
    assert_string_equal(json_string_value(v), "a \"q\"");
    json_decref(v);
    assert_int_equal(
        sl_template_render_value("{{ o.k }}", doc, &v, errstr, sizeof(errstr)),
        0);
    assert_int_equal(json_array_size(v), 2);
    json_decref(v);
    assert_int_equal(
        sl_template_render_value("{{n}}", doc, &v, errstr, sizeof(errstr)), 0);
    assert_int_equal(json_integer_value(v), 7);
    json_decref(v);
    assert_int_equal(
        sl_template_render_value("{{nope}}", doc, &v, errstr, sizeof(errstr)),
        -SL_ENOTFOUND);
    assert_string_equal(errstr, "missing field 'nope'");
    /* Two placeholders are no single value. */
    assert_int_equal(sl_template_render_value("{{text}}{{text}}", doc, &v,
                                              errstr, sizeof(errstr)),
                     -SL_EINVAL);

    assert_int_equal(sl_template_render_json("{\"t\": {{text}}, \"n\": {{n}}}",
                                             doc, false, &text, errstr,
                                             sizeof(errstr)),
                     0);
    assert_string_equal(text, "{\"t\": \"a \\\"q\\\"\", \"n\": 7}");
    free(text);
    assert_int_equal(sl_template_render_json("{\"t\": {{text}}", doc, false,
                                             &text, errstr, sizeof(errstr)),
                     -SL_EINVAL);
    assert_null(text);
    assert_non_null(strstr(errstr, "template does not render to JSON"));
    json_decref(doc);
}

/*
 * perf #15: strings and integers are written without json_dumps(), byte
 * for byte as it writes them.
 */
static void test_values_as_jansson_writes_them(void **state)
{
    (void)state;
    char s[8], errstr[256], *out, *want;
    static const json_int_t ints[] = {0,         -1,       7, 2147483648LL,
                                      INT64_MIN, INT64_MAX};

    for (int c = 1; c < 256; c++) {
        json_t *doc;
        if (c < 0x80) {
            s[0] = (char)c, s[1] = 'a', s[2] = '\0';
        } else { /* U+0080..U+00FF and U+FFFD */
            s[0] = (char)(0xc0 | (c >> 6)), s[1] = (char)(0x80 | (c & 0x3f));
            s[2] = '\0';
            if (c == 0xff)
                strcpy(s, "\xef\xbf\xbd");
        }
        doc = json_pack("{s:s}", "v", s);
        assert_non_null(doc);
        want = json_dumps(json_object_get(doc, "v"), JSON_ENCODE_ANY);
        assert_int_equal(sl_template_render("{{v}}", doc, SL_TEMPLATE_JSON,
                                            &out, errstr, sizeof(errstr)),
                         0);
        assert_string_equal(out, want);
        free(out);
        free(want);
        json_decref(doc);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *doc = json_pack("{s:I}", "v", ints[i]);
        want = json_dumps(json_object_get(doc, "v"), JSON_ENCODE_ANY);
        assert_int_equal(sl_template_render("{{v}}", doc, SL_TEMPLATE_JSON,
                                            &out, errstr, sizeof(errstr)),
                         0);
        assert_string_equal(out, want);
        free(out);
        free(want);
        json_decref(doc);
    }
}

/* perf #15: which templates are JSON whatever scalars fill them. */
static void test_json_safe(void **state)
{
    (void)state;
    assert_true(sl_template_json_safe("{\"text\": {{text}}}"));
    assert_true(sl_template_json_safe("{{text}}"));
    assert_true(sl_template_json_safe("[{{a}}, {{ b.c }}, {{.}}]"));
    assert_true(sl_template_json_safe("{\"k\": \"no placeholder\"}"));
    assert_false(sl_template_json_safe("{ {{k}}: 1}"));
    assert_false(sl_template_json_safe("{\"t\": \"{{text}}\"}"));
    assert_false(sl_template_json_safe("{\"t\": {{text}}"));
    assert_false(sl_template_json_safe("[{{a}}{{b}}]"));
    assert_false(sl_template_json_safe("{\"t\": {{text}"));
}

/* A safe template is still checked where its value could break it. */
static void test_render_json_safe(void **state)
{
    (void)state;
    char errstr[256], *text, deep[4200];
    json_t *doc;
    size_t n = 0;

    /* The key of an object: not safe, and the error of before. */
    doc = doc_of("{\"k\": 5, \"text\": \"x\"}");
    const char *keyed = "{\"t\": {{text}}, {{k}}: 1}";
    assert_int_equal(sl_template_render_json(keyed, doc,
                                             sl_template_json_safe(keyed),
                                             &text, errstr, sizeof(errstr)),
                     -SL_EINVAL);
    assert_null(text);
    assert_string_equal(errstr, "template does not render to JSON: string or "
                                "'}' expected near '5' at byte 12");
    json_decref(doc);
    /* A value nested deeper than jansson's parser allows (2048). */
    n += (size_t)snprintf(deep, sizeof(deep), "{\"d\": ");
    for (int i = 0; i < 2047; i++)
        deep[n++] = '[';
    for (int i = 0; i < 2047; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, "}");
    doc = doc_of(deep);
    assert_int_equal(sl_template_render_json("[[{{d}}]]", doc, true, &text,
                                             errstr, sizeof(errstr)),
                     -SL_EINVAL);
    assert_null(text);
    assert_non_null(strstr(errstr, "template does not render to JSON: "
                                   "maximum parsing depth reached"));
    assert_int_equal(sl_template_render_json("{{d}}", doc, true, &text, errstr,
                                             sizeof(errstr)),
                     0);
    free(text);
    json_decref(doc);
}

/*
 * perf #15: sl_template_json_quick() gives json_loadb()'s value or leaves
 * the text to it: compared on hand-picked texts and on 200,000 random
 * ones (random JSON, then bytes changed).
 */
static bool expect_as_jansson(const char *text, size_t len, bool must_read)
{
    bool read;
    json_error_t jerr;
    json_t *q = sl_template_json_quick(text, len);
    json_t *j = json_loadb(text, len, 0, &jerr);

    read = q != NULL;
    if (must_read && !q)
        fail_msg("not read quickly: %.*s", (int)len, text);
    if (q) {
        if (!j)
            fail_msg("read, but jansson refuses (%s): %.*s", jerr.text,
                     (int)len, text);
        size_t f = JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17);
        char *qs = json_dumps(q, f), *js = json_dumps(j, f);
        if (!json_equal(q, j) || strcmp(qs, js))
            fail_msg("%s != %s for %.*s", qs, js, (int)len, text);
        free(qs);
        free(js);
    }
    json_decref(q);
    json_decref(j);
    return read;
}

static uint64_t rnd_state = 88172645463325252ULL;

static unsigned rnd(unsigned n)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return (unsigned)(rnd_state % n);
}

static void gen_value(char *b, size_t *o, size_t size, int depth)
{
    static const char *atoms[] = {"0",
                                  "-0",
                                  "7",
                                  "-12",
                                  "123456789012345678",
                                  "1234567890123456789",
                                  "99999999999999999999",
                                  "1.5",
                                  "-0.25e3",
                                  "1E400",
                                  "1e-400",
                                  "2.",
                                  "01",
                                  "-",
                                  "true",
                                  "false",
                                  "null",
                                  "tru",
                                  "nulll",
                                  "\"\"",
                                  "\"plain\"",
                                  "\"caf\xc3\xa9\"",
                                  "\"\\n\\t\\\"\\\\\\/\\b\\f\\r\"",
                                  "\"\\u00e9\"",
                                  "\"\\u0000\"",
                                  "\"a\\x\"",
                                  "\"\xed\xa0\x80\"",
                                  "\"\xc3\"",
                                  "\"tab\there\"",
                                  "\"\xf0\x9f\x98\x80\""};
    static const char *ws[] = {"", " ", "\n", "\t ", "\r\n", "\f"};

    if (*o + 64 >= size)
        return;
    size_t k = rnd(depth > 4 ? 1 : 3);
    if (k == 0) {
        *o += (size_t)snprintf(b + *o, size - *o, "%s%s",
                               atoms[rnd(sizeof(atoms) / sizeof(*atoms))],
                               ws[rnd(6)]);
        return;
    }
    bool obj = k == 1;
    b[(*o)++] = obj ? '{' : '[';
    unsigned n = rnd(4);
    for (unsigned i = 0; i < n && *o + 64 < size; i++) {
        if (i)
            b[(*o)++] = ',';
        if (obj)
            *o +=
                (size_t)snprintf(b + *o, size - *o, "%s\"k%u\"%s:", ws[rnd(6)],
                                 rnd(3), ws[rnd(6)]);
        gen_value(b, o, size, depth + 1);
    }
    if (*o + 2 < size)
        b[(*o)++] = obj ? '}' : ']';
}

static void test_json_quick(void **state)
{
    (void)state;
    static const char *usual[] = {
        "{\"id\": 1, \"text\": \"message 1: the service was fine\"}",
        "{\"label\": \"positive\", \"score\": 0.9312345678901234}",
        " [1, -2, 3.25e-3, true, false, null, {}, [], \"x\"] ",
        "{\"a\": {\"b\": [{\"c\": \"caf\xc3\xa9 \\\"q\\\" \\n\"}]}}",
        "{\"dup\": 1, \"dup\": 2, \"k\": 0}",
        "{\"n\": -0, \"r\": -0.0, \"big\": 123456789012345678}"};
    static const char *left[] = {"",
                                 "   ",
                                 "1",
                                 "\"s\"",
                                 "{",
                                 "{\"a\" 1}",
                                 "{\"a\": 1,}",
                                 "[1,]",
                                 "{\"a\": \"\\u00e9\"}",
                                 "[1] x",
                                 "[01]",
                                 "[1e999]",
                                 "[-]",
                                 "{\"a\": 99999999999999999999}",
                                 "[\"\xc3\x28\"]",
                                 "[nul]",
                                 "[truex]",
                                 "[\"a\tb\"]",
                                 "{'a': 1}"};
    char b[1024];

    for (size_t i = 0; i < sizeof(usual) / sizeof(*usual); i++)
        expect_as_jansson(usual[i], strlen(usual[i]), true);
    for (size_t i = 0; i < sizeof(left) / sizeof(*left); i++) {
        json_t *q = sl_template_json_quick(left[i], strlen(left[i]));
        if (q)
            fail_msg("read quickly: %s", left[i]);
    }
    /* Deeper than the quick reader goes: jansson's value all the same. */
    size_t o = 0;
    for (int i = 0; i < 100; i++)
        b[o++] = '[';
    for (int i = 0; i < 100; i++)
        b[o++] = ']';
    assert_null(sl_template_json_quick(b, o));
    expect_as_jansson(b, o, false);
    size_t nread = 0, nvalid = 0;
    for (int i = 0; i < 200000; i++) {
        o = 0;
        gen_value(b, &o, sizeof(b), 0);
        if (o && rnd(2))
            b[rnd((unsigned)o)] = "{}[]\",:0-e.\\ a\x80\xc3"[rnd(17)];
        nread += expect_as_jansson(b, o, false);
        json_t *j = json_loadb(b, o, 0, NULL);
        nvalid += j != NULL;
        json_decref(j);
    }
    /* Most of what jansson reads, the quick reader reads too. */
    print_message("quick reader: %zu of %zu texts jansson reads\n", nread,
                  nvalid);
    assert_true(nread > nvalid / 2);
}

/* Expect sl_template_check_json(tpl, want_string) to refuse with 'why'. */
static void check_refused(const char *tpl, bool want_string, const char *why)
{
    char errstr[512];

    assert_int_equal(
        sl_template_check_json(tpl, want_string, errstr, sizeof(errstr)),
        -SL_EINVAL);
    assert_string_equal(errstr, why);
}

/* hardening #7: a JSON template that cannot render to JSON is found without
 * a payload, and the reason points into the template. */
static void test_check_json(void **state)
{
    (void)state;
    static const char *const good[] = {
        "{\"text\": {{text}}}",
        "{{.}}",
        "{\"a\": {{ a.b }}, \"all\": {{.}}, \"n\": [1, {{n}}]}",
        "{\"q\": \"say \\\"hi\\\"\", \"t\": {{text}}}",
        "{\"lit\": \"{ not a placeholder }\"}",
    };
    char errstr[512];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        assert_int_equal(
            sl_template_check_json(good[i], false, errstr, sizeof(errstr)), 0);
    assert_int_equal(
        sl_template_check_json("{{text}}", true, errstr, sizeof(errstr)), 0);

    check_refused("{\"text\": \"{{text}}\"}", false,
                  "placeholder {{text}} is inside a JSON string, but it is "
                  "replaced by a JSON value, quotes included: write {{text}} "
                  "without quotes around it");
    /* An escaped quote does not end the string. */
    check_refused("{\"a\": \"x\\\" {{ b }}\"}", false,
                  "placeholder {{ b }} is inside a JSON string, but it is "
                  "replaced by a JSON value, quotes included: write {{ b }} "
                  "without quotes around it");
    check_refused("{\"text\" {{text}}}", false,
                  "template does not render to JSON when its fields hold "
                  "strings: ':' expected at {{text}}");
    check_refused("{\"a\": {{a}}{{b}}}", false,
                  "template does not render to JSON when its fields hold "
                  "strings: '}' expected at {{b}}");
    check_refused("{\"a\": [1, 2,]}", false,
                  "template does not render to JSON when its fields hold "
                  "strings: unexpected token at byte 13 of the template");
    check_refused("{\"text\": {{text}}", false,
                  "template does not render to JSON when its fields hold "
                  "strings: '}' expected at the end of the template");
    check_refused("{{.}}", true,
                  "template renders to a JSON object, not to a string");
    check_refused("[{{text}}]", true,
                  "template renders to a JSON array, not to a string");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_values_and_paths),
        cmocka_unit_test(test_text_mode_raw_string),
        cmocka_unit_test(test_missing_field),
        cmocka_unit_test(test_bad_payloads),
        cmocka_unit_test(test_single_placeholder_and_json_text),
        cmocka_unit_test(test_check_json),
        cmocka_unit_test(test_values_as_jansson_writes_them),
        cmocka_unit_test(test_json_safe),
        cmocka_unit_test(test_render_json_safe),
        cmocka_unit_test(test_json_quick),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
