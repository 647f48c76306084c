/*
 * Fuzz message decoding as a file-source pipeline sees it: the input is a
 * JSON-lines file read by the real file source (lib/source_file.c, with a
 * small max_message_bytes so the oversize path runs too); each message's
 * payload is parsed as JSON and as raw text, rendered into the request
 * bodies of every backend kind, and turned into a result or dead-letter
 * row (payload classification, UTF-8 sanitising).
 *
 * Properties checked: a rendered request body is always a JSON object
 * (no payload can change a request's structure); {{text}} in a JSON body
 * comes back as exactly the payload's value; dead-letter text is valid
 * UTF-8 without NUL.
 */
#include "fuzz_engine.h"

#include "../../lib/source_file.c"

#include "row.h"
#include "template.h"
#include "utf8.h"

#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#define FUZZ_MAX_LINE 512 /* max_message_bytes of the file source */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void free_msg(void *item)
{
    sl_msg_destroy(item);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_engine_init();
    return 0;
}

static void check_clean(const char *s)
{
    if (!s)
        abort();
    if (!sl_utf8_is_clean(s, strlen(s))) {
        fprintf(stderr, "not valid UTF-8 text: \"%s\"\n", s);
        abort();
    }
}

/* The request of backend 'be' for 'doc', as job_start_step() builds it. */
static void render_backend(size_t be, json_t *doc)
{
    const struct sl_config_backend *bc = &fuzz_cfg->backends[be];
    char errstr[ERRTEXT];
    char *body = NULL;
    json_t *v = NULL;
    int err;

    errstr[0] = '\0';
    if (bc->kind == SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS) {
        err = sl_template_render_value(bc->input, doc, &v, errstr,
                                       sizeof(errstr));
        /* A non-string (e.g. {"text": 1}) is the engine's decode error
         * "input does not render to a string", not a crash. */
        json_decref(v);
        if (err)
            check_clean(errstr);
        return;
    }
    struct sl_infer_backend b = {
        .conf = bc, .body_safe = bc->body && sl_template_json_safe(bc->body)};
    err = sl_infer_proto_of(bc->kind)->render(&b, doc, &body, errstr,
                                              sizeof(errstr));
    if (err) {
        if (body)
            abort();
        check_clean(errstr);
        return;
    }
    json_error_t jerr;
    json_t *req = json_loads(body, 0, &jerr);
    if (!json_is_object(req))
        abort(); /* the payload changed the request's structure */
    if (be == FUZZ_BE_HTTP) {
        /* body: {"text": {{text}}, "id": {{user.id}}, "all": [{{.}}]} */
        if (json_object_size(req) != 3 ||
            !json_equal(json_object_get(req, "text"),
                        json_object_get(doc, "text")) ||
            !json_equal(json_array_get(json_object_get(req, "all"), 0), doc))
            abort();
    }
    if (be == FUZZ_BE_HTTP_RAW && !json_equal(req, doc))
        abort();
    json_decref(req);
    free(body);
}

static void process(struct sl_msg *msg)
{
    char errstr[ERRTEXT];
    struct sl_row *row;

    if (msg->error) {
        row = sl_row_new_dead(msg, SL_STAGE_DECODE, msg->error, NULL, 1);
        if (!row)
            abort();
        check_clean(row->error);
        sl_row_destroy(row);
        return;
    }
    for (int raw = 0; raw <= 1; raw++) {
        json_t *doc = NULL;
        errstr[0] = '\0';
        int err = sl_template_parse_payload(msg->payload, msg->payload_len, raw,
                                            &doc, errstr, sizeof(errstr));
        if (err) {
            if (doc || err != -SL_EDECODE)
                abort();
            check_clean(errstr);
            continue;
        }
        if (!json_is_object(doc))
            abort();
        for (size_t be = 0; be < FUZZ_BE_COUNT; be++)
            render_backend(be, doc);
        json_decref(doc);
    }
    /* A dead letter quoting the payload (a sink data error does this). */
    char *why = sl_utf8_sanitize((const char *)msg->payload, msg->payload_len);
    check_clean(why);
    if (strlen(why) != msg->payload_len)
        abort();
    free(why);
    json_t *any = msg->payload_len
                      ? json_loadb((const char *)msg->payload, msg->payload_len,
                                   JSON_DECODE_ANY, NULL)
                      : NULL;
    int is_json = any != NULL;
    json_decref(any);
    row = sl_row_new_result(msg, json_object(), json_object(), NULL, "w-1");
    if (!row)
        abort();
    if (row->payload_json != is_json)
        abort();
    sl_row_destroy(row);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], errstr[256];
    int fd = memfd_create("fuzz_msg", MFD_CLOEXEC);

    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        abort();
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    struct sl_queue *q = sl_queue_new(64, free_msg);
    struct sl_source_file_conf conf = {
        .path = path, .max_message_bytes = FUZZ_MAX_LINE, .batch = 16};
    struct sl_source *src =
        q ? sl_source_file_new(&conf, q, errstr, sizeof(errstr)) : NULL;
    if (!src)
        abort();
    int64_t line = 0;
    for (;;) {
        int rc = file_ops.poll(src, 0);
        void *item;
        while (sl_queue_pop(q, &item, 0) == 0) {
            struct sl_msg *msg = item;
            /* Lines come in order, each with its origin. */
            if (msg->origin.kind != SL_SOURCE_FILE ||
                msg->origin.offset <= line || msg->seq != msg->origin.offset)
                abort();
            line = msg->origin.offset;
            if (!msg->error &&
                (msg->payload_len == 0 || msg->payload_len > FUZZ_MAX_LINE))
                abort();
            process(msg);
        }
        if (rc == 1)
            break;
        if (rc < 0)
            abort();
    }
    sl_source_destroy(src);
    sl_queue_destroy(q);
    close(fd);
    return 0;
}
