/*
 * A model-server engine for the fuzz targets, without any network: the
 * per-thread half (lib/infer_worker.c and lib/infer_req.c) is compiled
 * into the target so that its file-local reply handling (parse_reply,
 * on_header) can be called directly; body rendering is the protocols'
 * table (lib/infer_proto.c, sl_infer_proto_of()).  Include this once,
 * from a fuzz_*.c file; the library's own infer_worker.o and infer_req.o
 * are then never linked (every symbol they define is here).
 */
#ifndef SL_FUZZ_ENGINE_H
#define SL_FUZZ_ENGINE_H

#include "../../lib/infer_req.c"
#include "../../lib/infer_worker.c"

#include "config.h"
#include "log.h"

/* Backends of FUZZ_PIPELINE, by index in cfg->backends. */
enum fuzz_backend {
    FUZZ_BE_CHAT,      /* openai-chat, text replies */
    FUZZ_BE_CHAT_JSON, /* openai-chat, response_format json */
    FUZZ_BE_EMBED,     /* openai-embeddings */
    FUZZ_BE_HTTP,      /* http-json with a body template */
    FUZZ_BE_HTTP_RAW,  /* http-json, the payload is the body */
    FUZZ_BE_COUNT
};

/* Templates as the shipped pipelines use them, plus nested lookups. */
static const char FUZZ_PIPELINE[] =
    "version: 1\n"
    "name: fuzz\n"
    "source:\n"
    "  kind: file\n"
    "  file: {path: /dev/null}\n"
    "backends:\n"
    "  chat:\n"
    "    kind: openai-chat\n"
    "    url: http://127.0.0.1:9/v1\n"
    "    model: m\n"
    "    messages:\n"
    "      - {role: system, content: 'Classify. {\"label\": ...}'}\n"
    "      - {role: user, content: '{{text}} ({{ user.name }}) {{.}}'}\n"
    "    tokens_per_minute: 100000\n"
    "  chatjson:\n"
    "    kind: openai-chat\n"
    "    url: http://127.0.0.1:9/v1\n"
    "    model: m\n"
    "    response_format: json\n"
    "    max_tokens: 16\n"
    "    messages:\n"
    "      - {role: user, content: '{{text}}'}\n"
    "  embed:\n"
    "    kind: openai-embeddings\n"
    "    url: http://127.0.0.1:9/v1\n"
    "    model: m\n"
    "    input: '{{text}}'\n"
    "  http:\n"
    "    kind: http-json\n"
    "    url: http://127.0.0.1:9/predict\n"
    "    body: '{\"text\": {{text}}, \"id\": {{user.id}}, \"all\": [{{.}}]}'\n"
    "    result_pointer: /label\n"
    "  httpraw:\n"
    "    kind: http-json\n"
    "    url: http://127.0.0.1:9/predict\n"
    "    result_pointer: ''\n"
    "steps:\n"
    "  - name: all\n"
    "    backends: [chat, chatjson, embed, http, httpraw]\n"
    "sink:\n"
    "  postgres:\n"
    "    dsn: host=127.0.0.1 port=9 dbname=fuzz\n"
    "    table: fuzz\n"
    "    dead_letter_table: fuzz_dead\n";

static struct sl_config *fuzz_cfg;
static struct sl_infer *fuzz_inf;
static struct sl_infer_worker fuzz_w; /* only 'inf' is set: no curl */

/* Load FUZZ_PIPELINE and make the engine; aborts on failure. */
__attribute__((unused)) static void fuzz_engine_init(void)
{
    struct sl_config_errors errs = {0};
    char errstr[256];

    sl_log_set_level(SL_LOG_OFF);
    if (sl_config_parse("fuzz.yaml", FUZZ_PIPELINE, sizeof(FUZZ_PIPELINE) - 1,
                        &fuzz_cfg, &errs)) {
        sl_config_errors_print(stderr, "fuzz.yaml", -SL_ECONFIG, &errs);
        abort();
    }
    if (fuzz_cfg->backend_cnt != FUZZ_BE_COUNT)
        abort();
    fuzz_inf = sl_infer_new(fuzz_cfg, errstr, sizeof(errstr));
    if (!fuzz_inf) {
        fprintf(stderr, "sl_infer_new: %s\n", errstr);
        abort();
    }
    fuzz_w.inf = fuzz_inf;
}

#endif
