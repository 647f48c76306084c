/*
 * The shared half of the inference engine: one entry per backend with its
 * endpoint URL, request headers (API key included), limiter, breaker and
 * counters.  Built once from the config; read-only afterwards except for
 * the atomics, the limiter and the breaker, which are thread-safe.
 */
#include "infer_int.h"

#include "err.h"
#include "log.h"
#include "secret.h"
#include "template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sl_infer_errclass_name(enum sl_infer_errclass ec)
{
    static const char *const names[] = {
#define SL_INFER_EC_NAME(name, text, code) text,
        SL_INFER_ERRCLASSES(SL_INFER_EC_NAME)
#undef SL_INFER_EC_NAME
    };
    return (unsigned)ec < SL_INFER_EC_COUNT ? names[ec] : "unknown";
}

int sl_infer_errclass_err(enum sl_infer_errclass ec)
{
    static const int codes[] = {
#define SL_INFER_EC_CODE(name, text, code) -SL_##code,
        SL_INFER_ERRCLASSES(SL_INFER_EC_CODE)
#undef SL_INFER_EC_CODE
    };
    return (unsigned)ec < SL_INFER_EC_COUNT ? codes[ec] : -SL_EINVAL;
}

/*
 * Append "NAME: PREFIXVALUE" to be->headers, refusing a value that would
 * end the header line (the loader checks values in the file; this checks
 * those read at start-up too).  The line is wiped: it may hold a secret.
 */
static int add_header(struct sl_infer_backend *be, const char *what,
                      const char *name, const char *prefix, const char *value,
                      char *errstr, size_t errstr_size)
{
    struct curl_slist *h;
    char *line;

    if (!sl_config_header_name_ok(name))
        return sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                         "%s: not a valid header name", what);
    if (!sl_config_header_value_ok(value))
        return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                         "%s: the value holds CR, LF, NUL or another control "
                         "character (it would end the header line); refusing "
                         "it",
                         what);
    if (asprintf(&line, "%s: %s%s", name, prefix, value) < 0)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    h = curl_slist_append(be->headers, line);
    explicit_bzero(line, strlen(line));
    free(line);
    if (!h)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    be->headers = h;
    return 0;
}

static int backend_init(struct sl_infer_backend *be,
                        const struct sl_config_backend *bc, char *errstr,
                        size_t errstr_size)
{
    const char *suffix = sl_infer_proto_of(bc->kind)->path;
    int err;

    be->conf = bc;
    be->body_safe = bc->body && sl_template_json_safe(bc->body);
    size_t ulen = strlen(bc->url);
    while (*suffix && ulen > 0 && bc->url[ulen - 1] == '/')
        ulen--;
    if (asprintf(&be->url, "%.*s%s", (int)ulen, bc->url, suffix) < 0) {
        be->url = NULL;
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    }
    be->limiter = sl_limiter_new(bc->max_concurrency, bc->rate_limit_rps,
                                 bc->tokens_per_minute);
    static const double latency_s[] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.05,
                                       0.1,   0.2,   0.5,   1,    2,    5};
    sl_histo_init(&be->stats.latency, latency_s,
                  (int)(sizeof(latency_s) / sizeof(latency_s[0])));
    be->breaker = sl_breaker_new(&bc->breaker);
    if (!be->limiter || !be->breaker)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    /* No Accept header (servers answer their one type, JSON); "Accept:"
     * keeps libcurl's default (any type) out too.  Each header byte costs
     * libcurl's printf engine ~100 instructions a request (perf #15). */
    h = h ? curl_slist_append(h, "Accept:") : NULL;
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    be->headers = h;
    if (!h)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    for (size_t i = 0; i < bc->headers.cnt; i++) {
        const struct sl_config_kv *kv = &bc->headers.items[i];
        char what[256], *value;

        snprintf(what, sizeof(what), "backend '%s': header '%s'", bc->name,
                 kv->key);
        if ((err = sl_config_kv_value(kv, 0, what, &value, errstr,
                                      errstr_size)) < 0)
            return err;
        err = add_header(be, what, kv->key, "", value, errstr, errstr_size);
        sl_secret_free(value);
        if (err < 0)
            return err;
    }
    struct sl_secret_src src = {bc->api_key_env, bc->api_key_file};
    char what[256], *key;
    snprintf(what, sizeof(what), "backend '%s': %s", bc->name,
             bc->api_key_env ? "api_key_env" : "api_key_file");
    if ((err = sl_secret_read(&src, 0, what, &key, errstr, errstr_size)) < 0)
        return err;
    if (key) {
        err = add_header(be, what, "Authorization", "Bearer ", key, errstr,
                         errstr_size);
        sl_secret_free(key);
        be->has_key = err == 0;
    }
    return err;
}

/*
 * Whether backend 'bc''s result only ever goes to a real[] column: an
 * embeddings backend named in sink.postgres.columns.vectors with
 * vectors_in_results false, and no gateway (which answers with the
 * results).  Its base64 vectors can then travel packed (vecpack.h).
 */
static bool vector_only(const struct sl_config *cfg,
                        const struct sl_config_backend *bc)
{
    const struct sl_config_postgres *pg = &cfg->sink.postgres;

    if (bc->kind != SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS || !cfg->sink.present ||
        pg->vectors_in_results || cfg->gateway.enabled)
        return false;
    for (size_t k = 0; k < pg->columns.vectors.cnt; k++)
        if (pg->columns.vectors.items[k].value &&
            !strcmp(pg->columns.vectors.items[k].value, bc->name))
            return true;
    return false;
}

struct sl_infer *sl_infer_new(const struct sl_config *cfg, char *errstr,
                              size_t errstr_size)
{
    struct sl_infer *inf = calloc(1, sizeof(*inf));

    if (!inf) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return NULL;
    }
    inf->cfg = cfg;
    inf->be_cnt = cfg->backend_cnt;
    inf->be = calloc(cfg->backend_cnt ? cfg->backend_cnt : 1, sizeof(*inf->be));
    inf->step_be =
        calloc(cfg->step_cnt ? cfg->step_cnt : 1, sizeof(*inf->step_be));
    if (!inf->be || !inf->step_be) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->backend_cnt; i++) {
        if (backend_init(&inf->be[i], &cfg->backends[i], errstr, errstr_size))
            goto fail;
        if (vector_only(cfg, &cfg->backends[i]))
            inf->be[i].proto_flags |= SL_PROTO_PACK_VECTORS;
    }
    for (size_t s = 0; s < cfg->step_cnt; s++) {
        const struct sl_config_step *st = &cfg->steps[s];
        inf->step_be[s] =
            calloc(st->backends.cnt ? st->backends.cnt : 1, sizeof(size_t));
        if (!inf->step_be[s]) {
            sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < st->backends.cnt; j++) {
            const struct sl_config_backend *bc =
                sl_config_backend_find(cfg, st->backends.items[j]);
            if (!bc) {
                sl_seterr(-SL_ECONFIG, errstr, errstr_size,
                          "step '%s': unknown backend '%s'", st->name,
                          st->backends.items[j]);
                goto fail;
            }
            inf->step_be[s][j] = (size_t)(bc - cfg->backends);
        }
    }
    return inf;
fail:
    sl_infer_destroy(inf);
    return NULL;
}

void sl_infer_destroy(struct sl_infer *inf)
{
    if (!inf)
        return;
    for (size_t i = 0; inf->be && i < inf->be_cnt; i++) {
        free(inf->be[i].url);
        curl_slist_free_all(inf->be[i].headers);
        sl_limiter_destroy(inf->be[i].limiter);
        sl_breaker_destroy(inf->be[i].breaker);
    }
    for (size_t s = 0; inf->step_be && s < inf->cfg->step_cnt; s++)
        free(inf->step_be[s]);
    free(inf->step_be);
    free(inf->be);
    free(inf);
}

const struct sl_infer_stats *sl_infer_stats(const struct sl_infer *inf,
                                            size_t i)
{
    return i < inf->be_cnt ? &inf->be[i].stats : NULL;
}

enum sl_breaker_state sl_infer_breaker_state(const struct sl_infer *inf,
                                             size_t i)
{
    if (i >= inf->be_cnt)
        return SL_BREAKER_CLOSED;
    return sl_breaker_state(inf->be[i].breaker, sl_mono_ms());
}
