/*
 * Fuzz the parsing of model-server replies (lib/infer_req.c parse_reply,
 * lib/infer_proto.c per kind): chat completions (text and response_format
 * json), embeddings batches and http-json replies with a fuzzed result_pointer.
 *
 * Input: byte 0 picks the backend, byte 1 the number of inputs of an
 * embeddings batch (1..8); for http-json the JSON pointer runs to the
 * first '\n'; the rest is the reply body.
 *
 * Each body also goes to sl_json_loadb_fast() and json_loadb(): when the
 * fast loader gives a tree, jansson must give an equal one that prints
 * the same (key order, integer or real), else abort().
 */
#include "fuzz_engine.h"

#include "jsonload.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_engine_init();
    return 0;
}

/* The fast loader's tree, when it gives one, is jansson's. */
static void same_tree_as_jansson(const char *body, size_t len)
{
    json_t *fast = sl_json_loadb_fast(body, len);
    if (!fast)
        return;
    json_t *slow = json_loadb(body, len, 0, NULL);
    if (!slow || !json_equal(fast, slow))
        abort();
    char *a = json_dumps(fast, JSON_COMPACT | JSON_ENCODE_ANY);
    char *b = json_dumps(slow, JSON_COMPACT | JSON_ENCODE_ANY);
    /* (both NULL past json_dumps' own depth limit) */
    if (!a != !b || (a && strcmp(a, b) != 0))
        abort();
    free(a);
    free(b);
    json_decref(fast);
    json_decref(slow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct req req = {0};
    struct call_err ce = {0};
    json_t *values = NULL;
    char *pointer = NULL;
    char head[BODY_SHOWN * 4 + 8];

    if (size < 2)
        return 0;
    req.be = data[0] % FUZZ_BE_COUNT;
    req.ncalls = 1 + data[1] % 8;
    data += 2;
    size -= 2;
    struct sl_config_backend *bc = &fuzz_cfg->backends[req.be];
    if (bc->kind == SL_CONFIG_BACKEND_HTTP_JSON) {
        const uint8_t *nl = memchr(data, '\n', size);
        size_t plen = nl ? (size_t)(nl - data) : size;
        pointer = strndup((const char *)data, plen);
        if (!pointer)
            return 0;
        data += nl ? plen + 1 : plen;
        size -= nl ? plen + 1 : plen;
    }
    if (bc->kind != SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS)
        req.ncalls = 1;
    char *saved = bc->result_pointer;
    if (pointer)
        bc->result_pointer = pointer;

    /* As on_body() leaves it: exactly the bytes, NUL-terminated. */
    req.resp = malloc(size + 1);
    if (!req.resp)
        abort();
    memcpy(req.resp, data, size);
    req.resp[size] = '\0';
    req.resp_len = size;
    req.resp_cap = size + 1;
    same_tree_as_jansson(req.resp, req.resp_len);

    struct sl_infer_usage usage;
    int rc = parse_reply(&fuzz_w, &req, &values, &usage, &ce);
    if (rc == 0) {
        /* One value per call carried, whatever the reply said. */
        if (!json_is_array(values) || json_array_size(values) != req.ncalls)
            abort();
        char *text = json_dumps(values, JSON_COMPACT | JSON_ENCODE_ANY);
        free(text);
    } else {
        /* The text goes into the row's errors JSON: it must be UTF-8. */
        if (values || ce.ec != SL_INFER_EC_BAD_JSON ||
            !memchr(ce.text, '\0', sizeof(ce.text)) ||
            !sl_utf8_is_clean(ce.text, strlen(ce.text)))
            abort();
    }
    json_decref(values);
    reply_head(&req, head, sizeof(head));
    if (strlen(head) >= sizeof(head))
        abort();

    bc->result_pointer = saved;
    free(pointer);
    free(req.resp);
    return 0;
}
