/*
 * The openai-embeddings protocol's encoding_format (lib/infer_proto.c):
 * the request body asks for `float` or `base64`, and a base64 embedding in
 * a reply decodes to the float32 values as reals, printed in a row exactly
 * as the same floats sent as JSON numbers by a Python server would be.
 */
#include "cmocka_shim.h"

#include "infer_int.h"
#include "jsontext.h"
#include "row.h"
#include "vecpack.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct sl_config_backend emb_float = {
    .kind = SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS,
    .model = "m",
    .encoding_format = SL_CONFIG_ENCODING_FLOAT};
static const struct sl_config_backend emb_b64 = {
    .kind = SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS,
    .model = "m",
    .encoding_format = SL_CONFIG_ENCODING_BASE64};

/* The request body for inputs "a" and "b". */
static char *batch_body(const struct sl_config_backend *bc)
{
    const struct sl_infer_proto *p = sl_infer_proto_of(bc->kind);

    return p->render_batch(bc, json_pack("[s, s]", "a", "b"));
}

static void test_request_body(void **state)
{
    char *body;

    (void)state;
    body = batch_body(&emb_float);
    assert_string_equal(
        body, "{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"encoding_format\":"
              "\"float\"}");
    free(body);
    body = batch_body(&emb_b64);
    assert_string_equal(
        body, "{\"model\":\"m\",\"input\":[\"a\",\"b\"],\"encoding_format\":"
              "\"base64\"}");
    free(body);
}

/*
 * Parse a reply whose one embedding is 'embedding' (JSON text) as
 * backend 'bc'.  Returns the embedding's row text (sl_jsontext_dumps,
 * compact, as the sink writes it), or NULL with the error in 'text'.
 */
static json_t *parse_values(const struct sl_config_backend *bc,
                            const char *embedding, unsigned flags, char *text,
                            size_t text_size)
{
    char reply[1024];
    struct sl_infer_usage u;
    json_t *values = NULL;

    snprintf(reply, sizeof(reply),
             "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\","
             "\"index\":0,\"embedding\":%s}],\"model\":\"m\","
             "\"usage\":{\"prompt_tokens\":1,\"total_tokens\":1}}",
             embedding);
    text[0] = '\0';
    if (sl_infer_proto_parse(bc, reply, strlen(reply), 1, flags, &values, &u,
                             text, text_size) < 0) {
        assert_null(values);
        return NULL;
    }
    assert_int_equal(u.total, 1);
    return values;
}

static char *parse_one(const struct sl_config_backend *bc,
                       const char *embedding, char *text, size_t text_size)
{
    json_t *values = parse_values(bc, embedding, 0, text, text_size);

    if (!values)
        return NULL;
    char *row = sl_jsontext_dumps(json_array_get(values, 0), JSON_COMPACT);
    json_decref(values);
    assert_non_null(row);
    return row;
}

/*
 * Ten float32s, little-endian, base64 (56 characters, two '=' of padding),
 * and the same floats as a float32 model's output printed by Python:
 *   b = struct.pack('<10f', 0.1, -0.5, 1e-8, 3.4028234663852886e38,
 *                   0.0123456789, -0.0, 1.0, 2.5e-3, 1.4e-45, -123.456)
 *   base64.b64encode(b)
 *   json.dumps(list(struct.unpack('<10f', b)), separators=(',', ':'))
 */
static const char py_b64[] =
    "\"zczMPQAAAL93zCsy//9/f4hFSjwAAACAAACAPwrXIzsBAAAAeen2wg==\"";
static const char py_json[] =
    "[0.10000000149011612,-0.5,9.99999993922529e-09,3.4028234663852886e+38,"
    "0.012345679104328156,-0.0,1.0,0.0024999999441206455,"
    "1.401298464324817e-45,-123.45600128173828]";

/* The row text of py_json: jansson writes exponents without '+' or 0s. */
static const char row_json[] =
    "[0.10000000149011612,-0.5,9.99999993922529e-9,3.4028234663852886e38,"
    "0.012345679104328156,-0.0,1.0,0.0024999999441206455,"
    "1.401298464324817e-45,-123.45600128173828]";

static void test_base64_is_the_float32_values(void **state)
{
    char text[256], *row_b64, *row_float, *row;

    (void)state;
    /* the base64 reply and the number reply give the same row, byte for
     * byte */
    row_b64 = parse_one(&emb_b64, py_b64, text, sizeof(text));
    if (!row_b64)
        fail_msg("%s", text);
    row_float = parse_one(&emb_float, py_json, text, sizeof(text));
    assert_non_null(row_float);
    assert_string_equal(row_b64, row_float);
    assert_string_equal(row_b64, row_json);
    free(row_b64);
    free(row_float);
    /* a number array is taken when base64 was asked (servers that ignore
     * the field) */
    row = parse_one(&emb_b64, py_json, text, sizeof(text));
    assert_string_equal(row, row_json);
    free(row);
    /* a string is base64 in the OpenAI API, even when float was asked */
    row = parse_one(&emb_float, py_b64, text, sizeof(text));
    assert_string_equal(row, row_json);
    free(row);
}

/* The float4 elements a row gets from 'values'[0] as vector column "v". */
static struct sl_row_vec row_vec(json_t *values)
{
    static const char *const backends[] = {"e"}, *const columns[] = {"v"};
    const struct sl_row_vectors spec = {backends, columns, 1, false};
    struct sl_row_vec vec = {0};
    char err[256];
    json_t *results = json_pack("{s:O}", "e", json_array_get(values, 0));

    assert_int_equal(sl_row_vectors_of(&spec, results, &vec, err, sizeof(err)),
                     0);
    json_decref(results);
    return vec;
}

/* SL_PROTO_PACK_VECTORS: a base64 vector travels as one packed value, no
 * json_t a number, and a row gets the same float4s from it as from the
 * numbers; a number array stays an array. */
static void test_packed_vector(void **state)
{
    char text[256];
    size_t n = 0;

    (void)state;
    json_t *packed = parse_values(&emb_b64, py_b64, SL_PROTO_PACK_VECTORS, text,
                                  sizeof(text));
    json_t *numbers = parse_values(&emb_float, py_json, SL_PROTO_PACK_VECTORS,
                                   text, sizeof(text));
    assert_non_null(packed);
    assert_non_null(numbers);
    assert_non_null(sl_vecpack_get(json_array_get(packed, 0), &n));
    assert_int_equal(n, 10);
    assert_true(json_is_array(json_array_get(numbers, 0)));
    struct sl_row_vec a = row_vec(packed), b = row_vec(numbers);
    assert_int_equal(a.count, 10);
    assert_int_equal(b.count, 10);
    assert_memory_equal(a.elems, b.elems, 10 * 8);
    /* the first element: length 4, then 0.1f (0x3dcccccd) in network order */
    static const unsigned char first[8] = {0, 0, 0, 4, 0x3d, 0xcc, 0xcc, 0xcd};
    assert_memory_equal(a.elems, first, 8);
    free(a.elems);
    free(b.elems);
    json_decref(packed);
    json_decref(numbers);
}

static void test_base64_padding(void **state)
{
    static const struct {
        const char *in, *want;
    } ok[] = {
        {"\"AACAPw==\"", "[1.0]"},                  /* 4 bytes: "==" */
        {"\"AACAPwAAAMA=\"", "[1.0,-2.0]"},         /* 8 bytes: "=" */
        {"\"AACAPwAAAMAAAAA/\"", "[1.0,-2.0,0.5]"}, /* 12 bytes: none */
        {"\"\"", "[]"},
    };
    char text[256];

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *row = parse_one(&emb_b64, ok[i].in, text, sizeof(text));
        if (!row)
            fail_msg("%s: %s", ok[i].in, text);
        assert_string_equal(row, ok[i].want);
        free(row);
    }
}

static void test_base64_rejected(void **state)
{
    static const struct {
        const char *in, *why;
    } bad[] = {
        {"\"AACAPw=\"", "7 characters, not a multiple of 4"},
        {"\"AACAPw\"", "6 characters, not a multiple of 4"},
        {"\"AACA\"", "3 bytes, not whole float32s"},
        {"\"AACAPwAA\"", "6 bytes, not whole float32s"},
        {"\"AAC*Pw==\"", "unexpected '*' at offset 3"},
        {"\"AA=APw==\"", "unexpected '=' at offset 2"},
        {"\"AACAP===\"", "unexpected '=' at offset 5"},
        {"\"====\"", "unexpected '=' at offset 0"},
        {"\"AACAPw==AACAPw==\"", "unexpected '=' at offset 6"},
        {"\"AACA\\nPw=\"", "unexpected byte 0x0a at offset 4"},
        {"\"AACA Pw=\"", "unexpected byte 0x20 at offset 4"},
        {"\"AAC-Pw==\"", "unexpected '-' at offset 3"}, /* base64url */
        /* in a quad before the last (the decoder's whole-quad loop) */
        {"\"AAAAAAA*AAAA\"", "unexpected '*' at offset 7"},
        {"\"AAAA.AAAAAAA\"", "unexpected '.' at offset 4"},
        {"\"AACAPx==\"", "non-zero bits in the padding at offset 4"},
        {"\"AACAPwAAAMB=\"", "non-zero bits in the padding at offset 8"},
        {"\"AADAfw==\"", "float 0 is not finite"},     /* NaN */
        {"\"AACAPwAAgH8=\"", "float 1 is not finite"}, /* +Inf */
    };
    char text[256], want[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *row = parse_one(&emb_b64, bad[i].in, text, sizeof(text));
        if (row)
            fail_msg("%s: accepted as %s", bad[i].in, row);
        snprintf(want, sizeof(want),
                 "reply's data[0].embedding is not base64 of little-endian "
                 "float32s: %s",
                 bad[i].why);
        assert_string_equal(text, want);
        /* the same when the vector would travel packed */
        assert_null(parse_values(&emb_b64, bad[i].in, SL_PROTO_PACK_VECTORS,
                                 text, sizeof(text)));
        assert_string_equal(text, want);
    }
    /* neither a string nor an array */
    assert_null(parse_one(&emb_b64, "{}", text, sizeof(text)));
    assert_string_equal(text, "reply's data[0] has no valid index/embedding");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_body),
        cmocka_unit_test(test_base64_is_the_float32_values),
        cmocka_unit_test(test_base64_padding),
        cmocka_unit_test(test_base64_rejected),
        cmocka_unit_test(test_packed_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
