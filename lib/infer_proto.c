/*
 * The backend protocols of the inference engine: for each backend kind,
 * the path added to its url, how a call's request body (or, for a kind
 * whose calls share a request, its input) is rendered from the payload,
 * and how a 2xx reply becomes one value per call.  A new kind is its
 * functions here, one row of the table at the end, and its schema entry
 * (config_schema.c).
 */
#include "infer_int.h"
#include "byteorder.h"

#include "err.h"
#include "jsonload.h"
#include "jsonptr.h"
#include "jsontext.h"
#include "template.h"
#include "utf8.h"
#include "vecpack.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/*
 * jansson's error text, made valid UTF-8: it can quote reply bytes or cut
 * a character in half, and it ends up in the row's errors JSON.
 */
static const char *jansson_why(const json_error_t *jerr, char *buf, size_t size)
{
    return sl_utf8_printable(jerr->text, strlen(jerr->text), buf, size);
}

/* ---- http-json: any JSON endpoint ---- */

static int http_json_render(const struct sl_infer_backend *be,
                            const json_t *doc, char **bodyp, char *errstr,
                            size_t errstr_size)
{
    const struct sl_config_backend *bc = be->conf;

    *bodyp = NULL;
    if (bc->method == SL_CONFIG_HTTP_GET)
        return 0;
    if (!bc->body) {
        *bodyp = sl_jsontext_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        return *bodyp ? 0 : -SL_ENOMEM;
    }
    return sl_template_render_json(bc->body, doc, be->body_safe, bodyp, errstr,
                                   errstr_size);
}

static int http_json_parse(const struct sl_config_backend *bc, json_t *reply,
                           size_t ncalls, unsigned flags, json_t *values,
                           struct sl_infer_usage *usage, char *text,
                           size_t text_size)
{
    char ptr[128];
    json_t *v = NULL;

    (void)flags;
    (void)ncalls;
    (void)usage;
    if (sl_jsonptr_get(reply, bc->result_pointer, &v)) {
        snprintf(
            text, text_size, "result_pointer '%s' names nothing in the reply",
            sl_utf8_printable(bc->result_pointer, strlen(bc->result_pointer),
                              ptr, sizeof(ptr)));
        return -1;
    }
    json_array_append(values, v);
    return 0;
}

/* ---- usage: the OpenAI "usage" object, shared by both OpenAI kinds ---- */

/* usage.<key> when a non-negative integer, else -1. */
static json_int_t usage_count(const json_t *usage, const char *key)
{
    const json_t *n = json_object_get(usage, key);

    return json_is_integer(n) && json_integer_value(n) >= 0
               ? json_integer_value(n)
               : -1;
}

/*
 * The token counts of 'reply's "usage" into *u; left alone when it has
 * none.  A missing completion_tokens is 0 (embeddings report none), a
 * missing total_tokens the sum (saturated: absurd usage exhausts a token
 * budget rather than wrapping).
 */
static void usage_read(const json_t *reply, struct sl_infer_usage *u)
{
    const json_t *usage = json_object_get(reply, "usage");
    json_int_t p = usage_count(usage, "prompt_tokens");
    json_int_t c = usage_count(usage, "completion_tokens");
    json_int_t t = usage_count(usage, "total_tokens");

    if (p < 0 && c < 0 && t < 0)
        return;
    u->prompt = p < 0 ? 0 : p;
    u->completion = c < 0 ? 0 : c;
    if (t < 0 && __builtin_add_overflow(u->prompt, u->completion, &t))
        t = INT64_MAX;
    u->total = t;
}

struct sl_infer_usage sl_infer_usage_share(const struct sl_infer_usage *u,
                                           size_t ncalls, size_t i)
{
    json_int_t n = ncalls ? (json_int_t)ncalls : 1, k = (json_int_t)i;
    struct sl_infer_usage s;

    s.prompt = u->prompt < 0 ? -1 : u->prompt / n + (k < u->prompt % n);
    s.completion =
        u->completion < 0 ? -1 : u->completion / n + (k < u->completion % n);
    s.total = u->total < 0 ? -1 : u->total / n + (k < u->total % n);
    return s;
}

json_t *sl_infer_usage_json(const struct sl_infer_usage *u)
{
    if (u->total < 0)
        return NULL;
    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", u->prompt,
                     "completion_tokens", u->completion, "total_tokens",
                     u->total);
}

/* ---- openai-chat: POST {url}/chat/completions ---- */

static int chat_render(const struct sl_infer_backend *be, const json_t *doc,
                       char **bodyp, char *errstr, size_t errstr_size)
{
    const struct sl_config_backend *bc = be->conf;
    int err = 0;

    *bodyp = NULL;
    json_t *msgs = json_array();
    for (size_t i = 0; msgs && i < bc->message_cnt; i++) {
        static const char *const roles[] = {"system", "user", "assistant"};
        char *content;
        err = sl_template_render(bc->messages[i].content, doc, SL_TEMPLATE_TEXT,
                                 &content, errstr, errstr_size);
        if (err)
            break;
        json_t *m = json_pack("{s:s, s:s}", "role", roles[bc->messages[i].role],
                              "content", content);
        free(content);
        if (!m) {
            err = sl_seterr(-SL_EDECODE, errstr, errstr_size,
                            "messages[%zu] is not valid UTF-8", i);
            break;
        }
        json_array_append_new(msgs, m);
    }
    if (err || !msgs) {
        json_decref(msgs);
        return err ? err : -SL_ENOMEM;
    }
    json_t *body = json_pack("{s:s, s:o, s:f}", "model", bc->model, "messages",
                             msgs, "temperature", bc->temperature);
    if (body && bc->max_tokens > 0)
        json_object_set_new(body, "max_tokens", json_integer(bc->max_tokens));
    if (body && bc->response_format == SL_CONFIG_RESPONSE_JSON)
        json_object_set_new(body, "response_format",
                            json_pack("{s:s}", "type", "json_object"));
    *bodyp = body ? sl_jsontext_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER)
                  : NULL;
    json_decref(body);
    return *bodyp ? 0 : -SL_ENOMEM;
}

static int chat_parse(const struct sl_config_backend *bc, json_t *reply,
                      size_t ncalls, unsigned flags, json_t *values,
                      struct sl_infer_usage *usage_out, char *text,
                      size_t text_size)
{
    json_error_t jerr;
    json_t *v;

    (void)flags;
    json_t *content = json_object_get(
        json_object_get(json_array_get(json_object_get(reply, "choices"), 0),
                        "message"),
        "content");
    json_t *usage = json_object_get(reply, "usage");

    (void)ncalls;
    if (!json_is_string(content)) {
        snprintf(text, text_size,
                 "reply has no string choices[0].message.content");
        return -1;
    }
    if (bc->response_format == SL_CONFIG_RESPONSE_JSON) {
        v = json_loadb(json_string_value(content), json_string_length(content),
                       0, &jerr);
        if (!json_is_object(v)) {
            json_decref(v);
            char why[sizeof(jerr.text) * 2];
            snprintf(text, text_size,
                     "response_format json: the content is not a JSON "
                     "object (%s)",
                     v ? "another JSON value"
                       : jansson_why(&jerr, why, sizeof(why)));
            return -1;
        }
    } else {
        v = json_incref(content);
    }
    json_t *u = json_object();
    json_object_set(u, "prompt_tokens",
                    json_object_get(usage, "prompt_tokens"));
    json_object_set(u, "completion_tokens",
                    json_object_get(usage, "completion_tokens"));
    json_array_append_new(values,
                          json_pack("{s:o, s:o}", "content", v, "usage", u));
    usage_read(reply, usage_out);
    return 0;
}

/* ---- openai-embeddings: POST {url}/embeddings, calls batched ---- */

static int embeddings_input(const struct sl_config_backend *bc,
                            const json_t *doc, json_t **inputp, char *errstr,
                            size_t errstr_size)
{
    int err =
        sl_template_render_value(bc->input, doc, inputp, errstr, errstr_size);

    if (!err && !json_is_string(*inputp))
        err = sl_seterr(-SL_EDECODE, errstr, errstr_size,
                        "input does not render to a string");
    return err;
}

static char *embeddings_batch(const struct sl_config_backend *bc,
                              json_t *inputs)
{
    json_t *body = json_pack(
        "{s:s, s:o, s:s}", "model", bc->model, "input", inputs,
        "encoding_format",
        bc->encoding_format == SL_CONFIG_ENCODING_BASE64 ? "base64" : "float");
    char *text = body ? sl_jsontext_dumps(body, JSON_COMPACT) : NULL;

    json_decref(body);
    return text;
}

/*
 * The value of each base64 character of the standard alphabet (RFC 4648
 * section 4) plus one; 0 for any other byte.  A table: the decoder reads
 * ~1,400 characters a 256-float vector.
 */
#define B64_ROW(c, v) [c] = (v) + 1
static const unsigned char b64_values[256] = {
    B64_ROW('A', 0),  B64_ROW('B', 1),  B64_ROW('C', 2),  B64_ROW('D', 3),
    B64_ROW('E', 4),  B64_ROW('F', 5),  B64_ROW('G', 6),  B64_ROW('H', 7),
    B64_ROW('I', 8),  B64_ROW('J', 9),  B64_ROW('K', 10), B64_ROW('L', 11),
    B64_ROW('M', 12), B64_ROW('N', 13), B64_ROW('O', 14), B64_ROW('P', 15),
    B64_ROW('Q', 16), B64_ROW('R', 17), B64_ROW('S', 18), B64_ROW('T', 19),
    B64_ROW('U', 20), B64_ROW('V', 21), B64_ROW('W', 22), B64_ROW('X', 23),
    B64_ROW('Y', 24), B64_ROW('Z', 25), B64_ROW('a', 26), B64_ROW('b', 27),
    B64_ROW('c', 28), B64_ROW('d', 29), B64_ROW('e', 30), B64_ROW('f', 31),
    B64_ROW('g', 32), B64_ROW('h', 33), B64_ROW('i', 34), B64_ROW('j', 35),
    B64_ROW('k', 36), B64_ROW('l', 37), B64_ROW('m', 38), B64_ROW('n', 39),
    B64_ROW('o', 40), B64_ROW('p', 41), B64_ROW('q', 42), B64_ROW('r', 43),
    B64_ROW('s', 44), B64_ROW('t', 45), B64_ROW('u', 46), B64_ROW('v', 47),
    B64_ROW('w', 48), B64_ROW('x', 49), B64_ROW('y', 50), B64_ROW('z', 51),
    B64_ROW('0', 52), B64_ROW('1', 53), B64_ROW('2', 54), B64_ROW('3', 55),
    B64_ROW('4', 56), B64_ROW('5', 57), B64_ROW('6', 58), B64_ROW('7', 59),
    B64_ROW('8', 60), B64_ROW('9', 61), B64_ROW('+', 62), B64_ROW('/', 63),
};
#undef B64_ROW

/* The value of one base64 character, or -1. */
static int b64_value(unsigned char c)
{
    return (int)b64_values[c] - 1;
}

/*
 * Decode 'n' bytes of base64 'in' (standard alphabet, padded to a multiple
 * of 4, no white space, unused bits zero: what Python's b64encode and every
 * OpenAI-compatible server send) into 'out', which has room for n / 4 * 3
 * bytes.  Returns the number of bytes decoded, or -1 with the reason in
 * 'why'.  Any thread.
 */
static long b64_decode(const char *in, size_t n, unsigned char *out, char *why,
                       size_t why_size)
{
    const unsigned char *p = (const unsigned char *)in;
    size_t pad = 0, o = 0, i = 0;

    if (n % 4) {
        snprintf(why, why_size, "%zu characters, not a multiple of 4", n);
        return -1;
    }
    if (n > 0 && p[n - 1] == '=')
        pad = n > 1 && p[n - 2] == '=' ? 2 : 1;
    /* Whole quads but the last; the loop below takes the rest and says
     * what is wrong with a bad one. */
    for (; i + 4 < n; i += 4) {
        unsigned a = b64_values[p[i]], b = b64_values[p[i + 1]],
                 c = b64_values[p[i + 2]], d = b64_values[p[i + 3]];
        if (!a || !b || !c || !d)
            break;
        unsigned long quad = (unsigned long)(a - 1) << 18 |
                             (unsigned long)(b - 1) << 12 | (c - 1) << 6 |
                             (d - 1);
        out[o++] = (unsigned char)(quad >> 16);
        out[o++] = (unsigned char)(quad >> 8);
        out[o++] = (unsigned char)quad;
    }
    for (; i < n; i += 4) {
        unsigned long quad = 0;
        size_t k, used = i + 4 == n ? 4 - pad : 4;
        for (k = 0; k < 4; k++) {
            int v = k < used ? b64_value(p[i + k]) : 0;
            if (v < 0) {
                if (p[i + k] >= 0x21 && p[i + k] < 0x7f)
                    snprintf(why, why_size, "unexpected '%c' at offset %zu",
                             p[i + k], i + k);
                else
                    snprintf(why, why_size,
                             "unexpected byte 0x%02x at offset %zu", p[i + k],
                             i + k);
                return -1;
            }
            quad = quad << 6 | (unsigned long)v;
        }
        if ((used == 3 && (quad & 0xff)) || (used == 2 && (quad & 0xffff))) {
            snprintf(why, why_size,
                     "non-zero bits in the padding at offset %zu", i);
            return -1;
        }
        out[o++] = (unsigned char)(quad >> 16);
        if (used > 2)
            out[o++] = (unsigned char)(quad >> 8);
        if (used > 3)
            out[o++] = (unsigned char)quad;
    }
    return (long)o;
}

/*
 * A base64 embedding (little-endian float32s) as an array of reals, each
 * the float's exact value: the numbers jansson would give for the same
 * floats sent as JSON numbers (printed as doubles, e.g. by Python); or,
 * with 'pack', as one packed vector (vecpack.h).  NULL with the reason in
 * 'why' for a string that is not base64 of whole, finite float32s.
 */
static json_t *b64_floats(const json_t *str, bool pack, char *why,
                          size_t why_size)
{
    unsigned char stack[4096]; /* a 1,024-float vector */
    size_t n = json_string_length(str);
    unsigned char *bytes =
        n / 4 * 3 <= sizeof(stack) ? stack : malloc(n / 4 * 3 + 1);
    json_t *arr = NULL;
    long len, i;

    if (!bytes) {
        snprintf(why, why_size, "out of memory");
        return NULL;
    }
    len = b64_decode(json_string_value(str), n, bytes, why, why_size);
    if (len < 0)
        goto done;
    if (len % 4) {
        snprintf(why, why_size, "%ld bytes, not whole float32s", len);
        goto done;
    }
    for (i = 0; i < len; i += 4) {
        uint32_t u = sl_get_le32(bytes + i);
        float f;
        memcpy(&f, &u, sizeof(f));
        if (!isfinite(f)) {
            snprintf(why, why_size, "float %ld is not finite", i / 4);
            json_decref(arr);
            arr = NULL;
            goto done;
        }
        if (!pack) {
            if (!arr && !(arr = json_array()))
                break;
            if (json_array_append_new(arr, json_real((double)f))) {
                json_decref(arr);
                arr = NULL;
                break;
            }
        }
    }
    if (i < len)
        snprintf(why, why_size, "out of memory");
    else if (pack)
        arr = sl_vecpack_new(bytes, (size_t)len / 4);
    else if (!arr)
        arr = json_array(); /* no floats */
    if (!arr && i >= len)
        snprintf(why, why_size, "out of memory");
done:
    if (bytes != stack)
        free(bytes);
    return arr;
}

static int embeddings_parse(const struct sl_config_backend *bc, json_t *reply,
                            size_t ncalls, unsigned flags, json_t *values,
                            struct sl_infer_usage *usage, char *text,
                            size_t text_size)
{
    json_t *data = json_object_get(reply, "data"), *item;
    size_t i;

    /*
     * Either form is taken whatever encoding_format asked for: servers
     * that ignore the field send numbers, and a string is base64 in the
     * OpenAI API.
     */
    (void)bc;
    if (!json_is_array(data) || json_array_size(data) != ncalls) {
        snprintf(text, text_size, "reply has %zu embeddings for %zu inputs",
                 json_array_size(data), ncalls);
        return -1;
    }
    for (i = 0; i < ncalls; i++)
        json_array_append_new(values, json_null());
    json_array_foreach(data, i, item)
    {
        json_t *idx = json_object_get(item, "index");
        json_t *emb = json_object_get(item, "embedding");
        size_t k = json_is_integer(idx) ? (size_t)json_integer_value(idx) : i;
        if (k >= ncalls || !(json_is_array(emb) || json_is_string(emb))) {
            snprintf(text, text_size,
                     "reply's data[%zu] has no valid index/embedding", i);
            return -1;
        }
        if (json_is_array(emb)) {
            json_array_set(values, k, emb);
            continue;
        }
        char why[96];
        json_t *floats =
            b64_floats(emb, flags & SL_PROTO_PACK_VECTORS, why, sizeof(why));
        if (!floats) {
            snprintf(text, text_size,
                     "reply's data[%zu].embedding is not base64 of "
                     "little-endian float32s: %s",
                     i, why);
            return -1;
        }
        json_array_set_new(values, k, floats);
    }
    usage_read(reply, usage);
    return 0;
}

/* ---- errors ---- */

enum sl_infer_errclass sl_infer_proto_status_class(long status)
{
    return status == 429   ? SL_INFER_EC_HTTP_429
           : status >= 500 ? SL_INFER_EC_HTTP_5XX
                           : SL_INFER_EC_HTTP_4XX;
}

bool sl_infer_proto_retry_after(const char *data, size_t n, char *out,
                                size_t size)
{
    static const char name[] = "retry-after:";

    if (n <= sizeof(name) - 1 || strncasecmp(data, name, sizeof(name) - 1) ||
        size == 0)
        return false;
    const char *v = data + sizeof(name) - 1;
    size_t len = n - (sizeof(name) - 1);
    while (len > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len > 0 && (v[len - 1] == '\r' || v[len - 1] == '\n' ||
                       v[len - 1] == ' ' || v[len - 1] == '\t'))
        len--;
    if (len >= size)
        len = size - 1;
    memcpy(out, v, len);
    out[len] = '\0';
    return true;
}

/* ---- the table ---- */

static const struct sl_infer_proto protos[] = {
    [SL_CONFIG_BACKEND_OPENAI_CHAT] = {.path = "/chat/completions",
                                       .render = chat_render,
                                       .parse = chat_parse},
    [SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS] = {.path = "/embeddings",
                                             .render_input = embeddings_input,
                                             .render_batch = embeddings_batch,
                                             .parse = embeddings_parse},
    [SL_CONFIG_BACKEND_HTTP_JSON] = {.path = "",
                                     .render = http_json_render,
                                     .parse = http_json_parse},
};

const struct sl_infer_proto *sl_infer_proto_of(enum sl_config_backend_kind kind)
{
    return &protos[kind];
}

int sl_infer_proto_parse(const struct sl_config_backend *bc, const char *resp,
                         size_t resp_len, size_t ncalls, unsigned flags,
                         json_t **valuesp, struct sl_infer_usage *usage,
                         char *text, size_t text_size)
{
    json_error_t jerr;
    json_t *reply, *values;

    *valuesp = NULL;
    usage->prompt = usage->completion = usage->total = -1;
    /* yajl's lexer first; jansson for its own value or error text */
    reply = sl_json_loadb_fast(resp, resp_len);
    if (!reply)
        reply = json_loadb(resp ? resp : "", resp_len, 0, &jerr);
    if (!reply) {
        char why[sizeof(jerr.text) * 2];
        snprintf(text, text_size, "reply is not valid JSON: %s at byte %d",
                 jansson_why(&jerr, why, sizeof(why)), jerr.position);
        return -1;
    }
    values = json_array();
    if (sl_infer_proto_of(bc->kind)->parse(bc, reply, ncalls, flags, values,
                                           usage, text, text_size) < 0) {
        json_decref(values);
        json_decref(reply);
        return -1;
    }
    json_decref(reply);
    *valuesp = values;
    return 0;
}
