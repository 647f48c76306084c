/*
 * The shared half of the inference engine: one entry per backend with its
 * endpoint URL, request headers (API key included), limiter, breaker and
 * counters.  Built once from the config; read-only afterwards except for
 * the atomics, the limiter and the breaker, which are thread-safe.
 */
#include "infer_int.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 4096 /* longest API key read from a file */

const char *sl_infer_errclass_name(enum sl_infer_errclass ec)
{
    static const char *const names[] = {
#define SL_INFER_EC_NAME(name, text) text,
        SL_INFER_ERRCLASSES(SL_INFER_EC_NAME)
#undef SL_INFER_EC_NAME
    };
    return (unsigned)ec < SL_INFER_EC_COUNT ? names[ec] : "unknown";
}

/* Read the API key of 'bc' into key[KEY_MAX]; "" when none configured. */
static int read_key(const struct sl_config_backend *bc, char *key, char *errstr,
                    size_t errstr_size)
{
    key[0] = '\0';
    if (bc->api_key_env) {
        const char *v = getenv(bc->api_key_env);
        if (!v || !*v)
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "backend '%s': api_key_env %s is not set",
                             bc->name, bc->api_key_env);
        if (strlen(v) >= KEY_MAX)
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "backend '%s': the key in %s is too long",
                             bc->name, bc->api_key_env);
        strcpy(key, v);
        return 0;
    }
    if (!bc->api_key_file)
        return 0;
    int fd = open(bc->api_key_file, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                         "backend '%s': cannot open api_key_file %s (%s)",
                         bc->name, bc->api_key_file, strerror(errno));
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        close(fd);
        return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                         "backend '%s': api_key_file %s must be a regular "
                         "file readable by its owner only (chmod 600)",
                         bc->name, bc->api_key_file);
    }
    ssize_t n = read(fd, key, KEY_MAX - 1);
    close(fd);
    if (n < 0)
        return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                         "backend '%s': cannot read api_key_file %s", bc->name,
                         bc->api_key_file);
    key[n] = '\0';
    while (n > 0 && (key[n - 1] == '\n' || key[n - 1] == '\r' ||
                     key[n - 1] == ' ' || key[n - 1] == '\t'))
        key[--n] = '\0';
    if (!n)
        return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                         "backend '%s': api_key_file %s is empty", bc->name,
                         bc->api_key_file);
    return 0;
}

static int backend_init(struct sl_infer_backend *be,
                        const struct sl_config_backend *bc, char *errstr,
                        size_t errstr_size)
{
    char key[KEY_MAX], line[KEY_MAX + 32];
    const char *suffix = "";
    int err;

    be->conf = bc;
    if (bc->kind == SL_CONFIG_BACKEND_OPENAI_CHAT)
        suffix = "/chat/completions";
    else if (bc->kind == SL_CONFIG_BACKEND_OPENAI_EMBEDDINGS)
        suffix = "/embeddings";
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
    h = h ? curl_slist_append(h, "Accept: application/json") : NULL;
    h = h ? curl_slist_append(h, "Expect:") : NULL;
    for (size_t i = 0; h && i < bc->headers.cnt; i++) {
        snprintf(line, sizeof(line), "%s: %s", bc->headers.items[i].key,
                 bc->headers.items[i].value);
        h = curl_slist_append(h, line);
    }
    be->headers = h;
    if (!h)
        return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
    err = read_key(bc, key, errstr, errstr_size);
    if (!err && key[0]) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", key);
        struct curl_slist *h2 = curl_slist_append(be->headers, line);
        if (!h2)
            err = sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        else
            be->headers = h2;
        be->has_key = true;
    }
    explicit_bzero(key, sizeof(key));
    explicit_bzero(line, sizeof(line));
    return err;
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
    for (size_t i = 0; i < cfg->backend_cnt; i++)
        if (backend_init(&inf->be[i], &cfg->backends[i], errstr, errstr_size))
            goto fail;
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
