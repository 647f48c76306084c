/*
 * Fuzz template rendering: an arbitrary template (as a pipeline file could
 * hold one) over an arbitrary payload, in JSON and text mode, the parse
 * of a rendered JSON template, and the loader's check of it without a
 * payload (sl_template_check_json()).
 *
 * Input: byte 0 holds flags (bit 0: the payload is raw text); then the
 * template up to the first NUL byte; the rest is the payload.  When the
 * payload is refused, a fixed document is used instead.
 */
#include "err.h"
#include "log.h"
#include "template.h"
#include "utf8.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *fixed_doc;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sl_log_set_level(SL_LOG_OFF);
    fixed_doc = json_loads("{\"text\": \"I \\\"love\\\" it}}\", \"user\": "
                           "{\"id\": 7, \"name\": \"{{text}}\", \"a.b\": 1},"
                           " \"n\": null, \"list\": [1, \"x\"], \"\": 0}",
                           0, NULL);
    if (!fixed_doc)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char errstr[256];
    json_t *doc = NULL;

    if (size < 1)
        return 0;
    int raw = data[0] & 1;
    data++;
    size--;
    const uint8_t *nul = memchr(data, '\0', size);
    size_t tlen = nul ? (size_t)(nul - data) : size;
    char *tpl = strndup((const char *)data, tlen);
    if (!tpl)
        return 0;
    const uint8_t *payload = nul ? nul + 1 : data + size;
    size_t plen = nul ? size - tlen - 1 : 0;

    if (sl_template_parse_payload(payload, plen, raw, &doc, errstr,
                                  sizeof(errstr)))
        doc = json_incref(fixed_doc);

    for (int mode = SL_TEMPLATE_JSON; mode <= SL_TEMPLATE_TEXT; mode++) {
        char *out = NULL;
        errstr[0] = '\0';
        int err =
            sl_template_render(tpl, doc, mode, &out, errstr, sizeof(errstr));
        if (err) {
            if (out || (err != -SL_ENOTFOUND && err != -SL_EINVAL))
                abort();
            if (!memchr(errstr, '\0', sizeof(errstr)))
                abort();
        } else if (!out) {
            abort();
        }
        free(out);
    }
    json_t *v = NULL;
    int err = sl_template_render_value(tpl, doc, &v, errstr, sizeof(errstr));
    if (err ? v != NULL : v == NULL)
        abort();
    /* The loader's check of a JSON template, with and without a string. */
    for (int want_string = 0; want_string <= 1; want_string++) {
        errstr[0] = '\0';
        int rc =
            sl_template_check_json(tpl, want_string, errstr, sizeof(errstr));
        if (rc != 0 && rc != -SL_EINVAL && rc != -SL_ENOMEM)
            abort();
        if (rc && !memchr(errstr, '\0', sizeof(errstr)))
            abort();
    }
    json_decref(v);
    json_decref(doc);
    free(tpl);
    return 0;
}
