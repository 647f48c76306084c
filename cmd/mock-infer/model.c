/*
 * The mock model: answers that are pure functions of the request, so that
 * a test can compute what must land for a message.  The formulas are
 * documented in the README ("mock-infer"); keep the two in step.
 */
#include "mock.h"

#include "err.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_ENTITIES 32       /* /predict/ner answers at most this many */
#define SUMMARY_WORDS 8       /* /predict/summary keeps this many words */
#define MAX_EMBED_INPUTS 2048 /* /v1/embeddings input array length */

/* Reals that are n/100 print as "0.6"; 16 digits still round-trip them. */
#define DUMP_SHORT                                                             \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(16))
/* Embedding values k/255 need all 17 digits to parse back exactly. */
#define DUMP_EXACT                                                             \
    (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17))

static const char *const positive_words[] = {
    "good",  "great",   "excellent", "love",
    "happy", "amazing", "best",      "wonderful",
};
static const char *const negative_words[] = {
    "bad", "terrible", "awful", "hate", "sad", "worst", "poor", "horrible",
};

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
           c == '\r';
}

static bool is_punct(unsigned char c)
{
    return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) ||
           (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
}

/*
 * Find the next word at or after *posp in text[len].  Returns true and sets
 * *wordp, *wlenp and *posp (past the word), or false at the end.
 */
static bool next_word(const char *text, size_t len, size_t *posp,
                      const char **wordp, size_t *wlenp)
{
    size_t pos = *posp;

    while (pos < len && is_space((unsigned char)text[pos]))
        pos++;
    if (pos >= len)
        return false;
    size_t start = pos;
    while (pos < len && !is_space((unsigned char)text[pos]))
        pos++;
    *wordp = text + start;
    *wlenp = pos - start;
    *posp = pos;
    return true;
}

size_t sl_mock_count_words(const char *text, size_t len)
{
    size_t pos = 0, n = 0, wlen;
    const char *w;

    while (next_word(text, len, &pos, &w, &wlen))
        n++;
    return n;
}

/* True when w[len], trimmed and lowercased, is one of list[n]. */
static bool word_in(const char *w, size_t len, const char *const *list,
                    size_t n)
{
    while (len > 0 && is_punct((unsigned char)w[0])) {
        w++;
        len--;
    }
    while (len > 0 && is_punct((unsigned char)w[len - 1]))
        len--;
    for (size_t i = 0; i < n; i++) {
        const char *cand = list[i];
        if (strlen(cand) != len)
            continue;
        size_t j = 0;
        for (; j < len; j++) {
            unsigned char c = (unsigned char)w[j];
            if (c >= 'A' && c <= 'Z')
                c = (unsigned char)(c - 'A' + 'a');
            if (c != (unsigned char)cand[j])
                break;
        }
        if (j == len)
            return true;
    }
    return false;
}

void sl_mock_sentiment(const char *text, size_t len, const char **labelp,
                       double *scorep)
{
    size_t pos = 0, wlen;
    const char *w;
    long diff = 0;

    while (next_word(text, len, &pos, &w, &wlen)) {
        if (word_in(w, wlen, positive_words,
                    sizeof(positive_words) / sizeof(positive_words[0])))
            diff++;
        else if (word_in(w, wlen, negative_words,
                         sizeof(negative_words) / sizeof(negative_words[0])))
            diff--;
    }
    *labelp = diff > 0 ? "positive" : diff < 0 ? "negative" : "neutral";
    if (diff > 5)
        diff = 5;
    if (diff < -5)
        diff = -5;
    *scorep = (double)(50 + 10 * diff) / 100.0;
}

/* The string member 'key' of 'req': -SL_EINVAL with the reason if absent. */
static int get_string(const json_t *req, const char *key, const char **sp,
                      size_t *lenp, char *errstr, size_t errstr_size)
{
    const json_t *v = json_object_get(req, key);

    *sp = NULL;
    *lenp = 0;
    if (!v)
        return sl_seterr(-SL_EINVAL, errstr, errstr_size, "missing field '%s'",
                         key);
    if (!json_is_string(v))
        return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                         "field '%s' must be a string", key);
    *sp = json_string_value(v);
    *lenp = json_string_length(v);
    return 0;
}

static json_t *sentiment_object(const char *text, size_t len)
{
    const char *label;
    double score;

    sl_mock_sentiment(text, len, &label, &score);
    return json_pack("{s:s, s:f}", "label", label, "score", score);
}

static json_t *answer_chat(const json_t *req, char *errstr, size_t errstr_size)
{
    const char *model, *text = NULL;
    size_t model_len, text_len = 0, prompt_words = 0, i;
    const json_t *messages, *m;
    int err;

    err = get_string(req, "model", &model, &model_len, errstr, errstr_size);
    if (err)
        return NULL;
    messages = json_object_get(req, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "missing field 'messages' (a non-empty array)");
        return NULL;
    }
    json_array_foreach(messages, i, m)
    {
        const json_t *role = json_object_get(m, "role");
        const json_t *content = json_object_get(m, "content");
        if (!json_is_object(m) || !json_is_string(role)) {
            sl_seterr(-SL_EINVAL, errstr, errstr_size,
                      "messages[%zu] needs a string 'role'", i);
            return NULL;
        }
        if (!content || json_is_null(content))
            continue;
        if (!json_is_string(content)) {
            sl_seterr(-SL_EINVAL, errstr, errstr_size,
                      "messages[%zu].content must be a string", i);
            return NULL;
        }
        prompt_words += sl_mock_count_words(json_string_value(content),
                                            json_string_length(content));
        if (!strcmp(json_string_value(role), "user")) {
            text = json_string_value(content);
            text_len = json_string_length(content);
        }
    }
    if (!text) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "no message with role 'user' and string content");
        return NULL;
    }

    const json_t *rf = json_object_get(req, "response_format");
    const char *rf_type = json_string_value(json_object_get(rf, "type"));
    bool json_mode = rf_type && !strcmp(rf_type, "json_object");
    char *content;
    if (json_mode) {
        json_t *obj = sentiment_object(text, text_len);
        content = obj ? json_dumps(obj, DUMP_SHORT) : NULL;
        json_decref(obj);
    } else {
        const char *label;
        double score;
        char buf[64];
        sl_mock_sentiment(text, text_len, &label, &score);
        snprintf(buf, sizeof(buf), "label: %s", label);
        content = strdup(buf);
    }
    if (!content)
        return NULL;

    char id[32];
    snprintf(id, sizeof(id), "chatcmpl-%016llx",
             (unsigned long long)sl_fnv1a64(SL_FNV1A64_INIT, text, text_len));
    size_t completion_words = sl_mock_count_words(content, strlen(content));
    json_t *out = json_pack("{s:s, s:s, s:i, s:s%, s:[{s:i, s:{s:s, s:s}, "
                            "s:s}], s:{s:I, s:I, s:I}}",
                            "id", id, "object", "chat.completion", "created", 0,
                            "model", model, model_len, "choices", "index", 0,
                            "message", "role", "assistant", "content", content,
                            "finish_reason", "stop", "usage", "prompt_tokens",
                            (json_int_t)prompt_words, "completion_tokens",
                            (json_int_t)completion_words, "total_tokens",
                            (json_int_t)(prompt_words + completion_words));
    free(content);
    return out;
}

/* Element j of the embedding of text[len]: see the README. */
static double embed_value(const char *text, size_t len, unsigned j)
{
    uint64_t h = sl_fnv1a64(SL_FNV1A64_INIT, text, len);

    if (j >= 8) {
        unsigned char block = (unsigned char)(j / 8);
        h = sl_fnv1a64(h, &block, 1);
    }
    return (double)((h >> ((j % 8) * 8)) & 0xff) / 255.0;
}

/*
 * 'n' bytes as base64 (standard alphabet, padded) into 'out', which has
 * room for (n + 2) / 3 * 4 + 1 bytes.
 */
static void base64_encode(const unsigned char *in, size_t n, char *out)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    for (size_t i = 0; i < n; i += 3) {
        unsigned long quad = (unsigned long)in[i] << 16;
        if (i + 1 < n)
            quad |= (unsigned long)in[i + 1] << 8;
        if (i + 2 < n)
            quad |= in[i + 2];
        *out++ = abc[quad >> 18 & 63];
        *out++ = abc[quad >> 12 & 63];
        *out++ = i + 1 < n ? abc[quad >> 6 & 63] : '=';
        *out++ = i + 2 < n ? abc[quad & 63] : '=';
    }
    *out = '\0';
}

/*
 * The float32 of each value, little-endian, as base64: what OpenAI's
 * encoding_format "base64" sends.
 */
static json_t *embedding_base64(const char *text, size_t len, unsigned dim)
{
    unsigned char *bytes = malloc((size_t)dim * 4 + 1);
    char *b64 = malloc(((size_t)dim * 4 + 2) / 3 * 4 + 1);
    json_t *str = NULL;

    if (bytes && b64) {
        for (unsigned j = 0; j < dim; j++) {
            float f = (float)embed_value(text, len, j);
            uint32_t u;
            memcpy(&u, &f, sizeof(u));
            for (unsigned b = 0; b < 4; b++)
                bytes[(size_t)j * 4 + b] = (unsigned char)(u >> (8 * b));
        }
        base64_encode(bytes, (size_t)dim * 4, b64);
        str = json_string(b64);
    }
    free(bytes);
    free(b64);
    return str;
}

static json_t *embedding_item(size_t index, const char *text, size_t len,
                              unsigned dim, bool b64)
{
    json_t *vec = b64 ? embedding_base64(text, len, dim) : json_array();

    for (unsigned j = 0; vec && !b64 && j < dim; j++) {
        if (json_array_append_new(vec, json_real(embed_value(text, len, j)))) {
            json_decref(vec);
            vec = NULL;
        }
    }
    if (!vec)
        return NULL;
    return json_pack("{s:s, s:I, s:o}", "object", "embedding", "index",
                     (json_int_t)index, "embedding", vec);
}

static json_t *answer_embeddings(const json_t *req, unsigned dim, char *errstr,
                                 size_t errstr_size)
{
    const char *model;
    size_t model_len, words = 0, i;
    const json_t *input = json_object_get(req, "input"), *v;
    const char *fmt =
        json_string_value(json_object_get(req, "encoding_format"));

    if (get_string(req, "model", &model, &model_len, errstr, errstr_size))
        return NULL;
    if (fmt && strcmp(fmt, "float") && strcmp(fmt, "base64")) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "encoding_format must be \"float\" or \"base64\"");
        return NULL;
    }
    if (!input) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size, "missing field 'input'");
        return NULL;
    }
    if (json_is_array(input)) {
        if (json_array_size(input) == 0 ||
            json_array_size(input) > MAX_EMBED_INPUTS) {
            sl_seterr(-SL_EINVAL, errstr, errstr_size,
                      "'input' must hold 1 to %d strings", MAX_EMBED_INPUTS);
            return NULL;
        }
        json_array_foreach(input, i, v)
        {
            if (!json_is_string(v)) {
                sl_seterr(-SL_EINVAL, errstr, errstr_size,
                          "input[%zu] must be a string", i);
                return NULL;
            }
        }
    } else if (!json_is_string(input)) {
        sl_seterr(-SL_EINVAL, errstr, errstr_size,
                  "'input' must be a string or an array of strings");
        return NULL;
    }

    json_t *data = json_array();
    size_t n = json_is_array(input) ? json_array_size(input) : 1;
    for (i = 0; data && i < n; i++) {
        v = json_is_array(input) ? json_array_get(input, i) : input;
        const char *s = json_string_value(v);
        size_t len = json_string_length(v);
        words += sl_mock_count_words(s, len);
        if (json_array_append_new(
                data, embedding_item(i, s, len, dim,
                                     fmt && !strcmp(fmt, "base64")))) {
            json_decref(data);
            data = NULL;
        }
    }
    if (!data)
        return NULL;
    return json_pack("{s:s, s:o, s:s%, s:{s:I, s:I}}", "object", "list", "data",
                     data, "model", model, model_len, "usage", "prompt_tokens",
                     (json_int_t)words, "total_tokens", (json_int_t)words);
}

/* Strip the trailing ,.!?;: of a NER word. */
static size_t ner_trim(const char *w, size_t len)
{
    while (len > 0 && w[len - 1] != '\0' && strchr(",.!?;:", w[len - 1]))
        len--;
    return len;
}

static json_t *answer_ner(const char *text, size_t len)
{
    json_t *ents = json_array();
    size_t pos = 0, wlen, n = 0;
    const char *w;

    while (ents && n < MAX_ENTITIES && next_word(text, len, &pos, &w, &wlen)) {
        if (w[0] < 'A' || w[0] > 'Z')
            continue;
        json_t *e = json_pack("{s:s%, s:s}", "text", w, ner_trim(w, wlen),
                              "type", "PROPER");
        if (json_array_append_new(ents, e)) {
            json_decref(ents);
            ents = NULL;
        }
        n++;
    }
    return ents ? json_pack("{s:o}", "entities", ents) : NULL;
}

static json_t *answer_summary(const char *text, size_t len)
{
    size_t pos = 0, wlen, n = 0, out_len = 0;
    const char *w;
    char *out = malloc(len + 1); /* the summary is never longer */

    if (!out)
        return NULL;
    while (next_word(text, len, &pos, &w, &wlen)) {
        if (n < SUMMARY_WORDS) {
            if (n > 0)
                out[out_len++] = ' ';
            memcpy(out + out_len, w, wlen);
            out_len += wlen;
        }
        n++;
    }
    json_t *res = json_pack("{s:s%, s:I}", "summary", out, out_len, "words",
                            (json_int_t)n);
    free(out);
    return res;
}

int sl_mock_model_answer(enum sl_mock_endpoint ep, const char *body, size_t len,
                         unsigned embed_dim, char **outp, char *errstr,
                         size_t errstr_size)
{
    json_error_t jerr;
    json_t *req, *res = NULL;
    const char *text;
    size_t text_len;
    int err = 0, flags = DUMP_SHORT;

    *outp = NULL;
    if (errstr && errstr_size)
        errstr[0] = '\0';
    req = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!req)
        return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                         "invalid JSON body: %s (line %d, column %d)",
                         jerr.text, jerr.line, jerr.column);
    if (!json_is_object(req)) {
        json_decref(req);
        return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                         "the body must be a JSON object");
    }

    switch (ep) {
    case SL_MOCK_EP_CHAT:
        res = answer_chat(req, errstr, errstr_size);
        break;
    case SL_MOCK_EP_EMBEDDINGS:
        res = answer_embeddings(req, embed_dim, errstr, errstr_size);
        flags = DUMP_EXACT;
        break;
    case SL_MOCK_EP_SENTIMENT:
    case SL_MOCK_EP_NER:
    case SL_MOCK_EP_SUMMARY:
        err = get_string(req, "text", &text, &text_len, errstr, errstr_size);
        if (err)
            break;
        res = ep == SL_MOCK_EP_SENTIMENT ? sentiment_object(text, text_len)
              : ep == SL_MOCK_EP_NER     ? answer_ner(text, text_len)
                                         : answer_summary(text, text_len);
        break;
    default:
        err = sl_seterr(-SL_EINVAL, errstr, errstr_size, "not a model route");
        break;
    }
    json_decref(req);
    if (!res)
        return err ? err : (errstr && errstr[0]) ? -SL_EINVAL : -SL_ENOMEM;
    *outp = json_dumps(res, flags);
    json_decref(res);
    return *outp ? 0 : -SL_ENOMEM;
}
