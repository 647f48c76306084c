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
    assert_string_equal(errstr,
                        "payload is not valid JSON: invalid UTF-8 at byte 13");
    /* Bad UTF-8 after a syntax error: the UTF-8 is what is reported. */
    assert_int_equal(sl_template_parse_payload("{oops \xc3\x28}", 9, 0, &doc,
                                               errstr, sizeof(errstr)),
                     -SL_EDECODE);
    assert_string_equal(errstr,
                        "payload is not valid JSON: invalid UTF-8 at byte 6");
    /* Surrogates and overlong forms are refused as before. */
    assert_int_equal(sl_template_parse_payload("{\"t\": \"\xed\xa0\x80\"}", 12,
                                               0, &doc, errstr, sizeof(errstr)),
                     -SL_EDECODE);
    assert_string_equal(errstr,
                        "payload is not valid JSON: invalid UTF-8 at byte 7");
    assert_int_equal(sl_template_parse_payload("{\"t\": \"\xc0\xaf\"}", 11, 0,
                                               &doc, errstr, sizeof(errstr)),
                     -SL_EDECODE);
    assert_string_equal(errstr,
                        "payload is not valid JSON: invalid UTF-8 at byte 7");
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
/* {{v}} rendered as JSON over doc {"v": ...} is json_dumps() of the value. */
static void assert_renders_as_jansson(json_t *doc)
{
    char errstr[256], *out;
    char *want = json_dumps(json_object_get(doc, "v"), JSON_ENCODE_ANY);

    assert_int_equal(sl_template_render("{{v}}", doc, SL_TEMPLATE_JSON, &out,
                                        errstr, sizeof(errstr)),
                     0);
    assert_string_equal(out, want);
    free(out);
    free(want);
}

static void test_values_as_jansson_writes_them(void **state)
{
    (void)state;
    char s[8];
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
        assert_renders_as_jansson(doc);
        json_decref(doc);
    }
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        json_t *doc = json_pack("{s:I}", "v", ints[i]);
        assert_non_null(doc);
        assert_renders_as_jansson(doc);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
