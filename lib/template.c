/*
 * Template rendering: copy literal text, look each {{path}} up in the
 * document and append it, as JSON text (jansson escapes strings) or as raw
 * text.  Output grows in a buffer; nothing is evaluated but lookups.
 */
#include "template.h"

#include "err.h"
#include "jsontext.h"
#include "strbuf.h"
#include "utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int sl_template_parse_payload(const void *payload, size_t len, int raw,
                              json_t **docp, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *doc;
    char shown[96];

    *docp = NULL;
    if (raw) {
        if (!sl_utf8_is_clean(payload, len))
            return sl_seterr(
                -SL_EDECODE, errstr, errstr_size,
                "payload is not valid UTF-8 text: %s",
                sl_utf8_printable(payload, len, shown, sizeof(shown)));
        doc = json_pack("{s:s%}", "text", (const char *)payload, len);
        if (!doc)
            return -SL_ENOMEM;
        *docp = doc;
        return 0;
    }
    doc = json_loadb(payload ? payload : "", len, 0, &jerr);
    if (!doc) {
        /* jansson reads only valid UTF-8 (as strict as sl_utf8): look for
         * the bad byte only when it refused. */
        size_t valid = sl_utf8_valid_prefix(payload ? payload : "", len);
        if (valid < len)
            return sl_seterr(-SL_EDECODE, errstr, errstr_size,
                             "payload is not valid JSON: invalid UTF-8 at "
                             "byte %zu",
                             valid);
        /* jansson may quote half a character: keep the reason UTF-8. */
        char why[sizeof(jerr.text) * 2];
        sl_utf8_printable(jerr.text, strlen(jerr.text), why, sizeof(why));
        return sl_seterr(-SL_EDECODE, errstr, errstr_size,
                         "payload is not valid JSON: %s at byte %d", why,
                         jerr.position);
    }
    if (!json_is_object(doc)) {
        json_decref(doc);
        return sl_seterr(-SL_EDECODE, errstr, errstr_size,
                         "payload is not a JSON object");
    }
    *docp = doc;
    return 0;
}

/* Look up dotted path p[0..len) ("." = the whole document). */
static const json_t *lookup(const json_t *doc, const char *p, size_t len)
{
    if (len == 1 && p[0] == '.')
        return doc;
    const json_t *cur = doc;
    while (len > 0) {
        const char *dot = memchr(p, '.', len);
        size_t seg = dot ? (size_t)(dot - p) : len;
        if (!json_is_object(cur))
            return NULL;
        cur = json_object_getn(cur, p, seg);
        if (!cur)
            return NULL;
        if (!dot)
            break;
        len -= seg + 1;
        p = dot + 1;
    }
    return cur;
}

/* Spaces around a placeholder's path are ignored: narrow [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && **s == ' ')
        (*s)++;
    while (*e > *s && (*e)[-1] == ' ')
        (*e)--;
}

/* The value the placeholder text [s, e) names (spaces around the path
 * ignored), or NULL with -SL_ENOTFOUND in errstr. */
static const json_t *placeholder(const json_t *doc, const char *s,
                                 const char *e, char *errstr,
                                 size_t errstr_size)
{
    trim(&s, &e);
    const json_t *v = lookup(doc, s, (size_t)(e - s));
    if (!v)
        sl_seterr(-SL_ENOTFOUND, errstr, errstr_size, "missing field '%.*s'",
                  (int)(e - s), s);
    return v;
}

/*
 * Stand-ins for a payload's fields when a template is checked without one
 * (sl_template_check_json()): a string for each named field, an object for
 * {{.}}, which is always the whole payload object.
 */
struct probe {
    json_t *field; /* "x" */
    json_t *whole; /* {} */
};

/* The probe's stand-in for the placeholder text [s, e). */
static const json_t *probe_value(const struct probe *probe, const char *s,
                                 const char *e)
{
    trim(&s, &e);
    return e - s == 1 && *s == '.' ? probe->whole : probe->field;
}

/*
 * Append 'v' as 'mode' says.  The common values (a string with nothing to
 * escape, an integer) are written by sl_jsontext_put_plain(), byte for
 * byte as json_dumps() writes them; the others go through json_dumps().
 */
static int append_value(struct sl_strbuf *b, const json_t *v,
                        enum sl_template_mode mode)
{
    if (mode == SL_TEMPLATE_TEXT && json_is_string(v))
        return sl_strbuf_add(b, json_string_value(v), json_string_length(v));
    int plain = sl_jsontext_put_plain(b, v, JSON_COMPACT);
    if (plain)
        return plain < 0 ? -SL_ENOMEM : 0;
    char *text =
        json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    if (!text)
        return -SL_ENOMEM;
    int err = sl_strbuf_add(b, text, strlen(text));
    free(text);
    return err;
}

/* sl_template_render(), with 'probe' (when not NULL) in place of 'doc';
 * sets *nestedp (when not NULL) to whether a placeholder held an object or
 * an array. */
static int render(const char *tpl, const json_t *doc, const struct probe *probe,
                  enum sl_template_mode mode, char **outp, bool *nestedp,
                  char *errstr, size_t errstr_size)
{
    struct sl_strbuf b = {0};
    const char *p = tpl;
    int err = 0;

    *outp = NULL;
    err = sl_strbuf_add(&b, "", 0);
    while (!err) {
        const char *open = strstr(p, "{{");
        if (!open) {
            err = sl_strbuf_add(&b, p, strlen(p));
            break;
        }
        err = sl_strbuf_add(&b, p, (size_t)(open - p));
        if (err)
            break;
        const char *s = open + 2, *close = strstr(s, "}}");
        if (!close) {
            err = sl_seterr(-SL_EINVAL, errstr, errstr_size,
                            "unterminated '{{' in template");
            break;
        }
        const json_t *v = probe
                              ? probe_value(probe, s, close)
                              : placeholder(doc, s, close, errstr, errstr_size);
        if (!v) {
            err = -SL_ENOTFOUND;
            break;
        }
        if (nestedp && (json_is_object(v) || json_is_array(v)))
            *nestedp = true;
        err = append_value(&b, v, mode);
        p = close + 2;
    }
    if (err) {
        if (err == -SL_ENOMEM)
            sl_seterr(err, errstr, errstr_size, "out of memory");
        sl_strbuf_free(&b);
        return err;
    }
    *outp = b.p;
    return 0;
}

int sl_template_render(const char *tpl, const json_t *doc,
                       enum sl_template_mode mode, char **outp, char *errstr,
                       size_t errstr_size)
{
    return render(tpl, doc, NULL, mode, outp, NULL, errstr, errstr_size);
}

int sl_template_render_json(const char *tpl, const json_t *doc, bool safe,
                            char **textp, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *v;
    bool nested = false;
    int err;

    *textp = NULL;
    err = render(tpl, doc, NULL, SL_TEMPLATE_JSON, textp, &nested, errstr,
                 errstr_size);
    if (err)
        return err;
    /*
     * A safe template filled with scalars is JSON by construction (a
     * payload parsed by jansson holds no \u0000 its parser would refuse).
     * Otherwise the text is parsed only to be sure it is JSON: an object
     * or array can nest deeper than jansson's parser allows.
     */
    if (safe && !nested)
        return 0;
    if (!(v = json_loads(*textp, JSON_DECODE_ANY, &jerr))) {
        free(*textp);
        *textp = NULL;
        return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                         "template does not render to JSON: %s at byte %d",
                         jerr.text, jerr.position);
    }
    json_decref(v);
    return 0;
}

int sl_template_render_value(const char *tpl, const json_t *doc,
                             json_t **valuep, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    char *text;
    int err;

    *valuep = NULL;
    /* A template that is one placeholder is that value: no text round
     * trip (embeddings' "{{text}}"). */
    size_t n = strlen(tpl);
    if (n > 4 && !strncmp(tpl, "{{", 2) && !strcmp(tpl + n - 2, "}}") &&
        !strstr(tpl + 2, "{{") && strstr(tpl + 2, "}}") == tpl + n - 2) {
        const json_t *v =
            placeholder(doc, tpl + 2, tpl + n - 2, errstr, errstr_size);
        if (!v)
            return -SL_ENOTFOUND;
        *valuep = json_incref((json_t *)v);
        return 0;
    }
    err = render(tpl, doc, NULL, SL_TEMPLATE_JSON, &text, NULL, errstr,
                 errstr_size);
    if (err)
        return err;
    *valuep = json_loads(text, JSON_DECODE_ANY, &jerr);
    free(text);
    if (!*valuep)
        return sl_seterr(-SL_EINVAL, errstr, errstr_size,
                         "template does not render to JSON: %s at byte %d",
                         jerr.text, jerr.position);
    return 0;
}

/*
 * Where rendered byte 'pos' of 'tpl' (rendered with 'probe') comes from:
 * returns the template offset of that byte, and sets *inp to the
 * placeholder [*inp, *endp) whose value holds it, or to NULL.
 */
static size_t template_offset(const char *tpl, const struct probe *probe,
                              size_t pos, const char **inp, const char **endp)
{
    const char *p = tpl;
    size_t at = 0; /* rendered bytes before p */

    *inp = *endp = NULL;
    for (;;) {
        const char *open = strstr(p, "{{");
        const char *close = open ? strstr(open + 2, "}}") : NULL;
        if (!open || !close || pos < at + (size_t)(open - p))
            return (size_t)(p - tpl) + (pos - at);
        at += (size_t)(open - p);
        char *text = json_dumps(probe_value(probe, open + 2, close),
                                JSON_COMPACT | JSON_ENCODE_ANY);
        size_t n = text ? strlen(text) : 0;
        free(text);
        if (pos < at + n) {
            *inp = open;
            *endp = close + 2;
            return (size_t)(open - tpl);
        }
        at += n;
        p = close + 2;
    }
}

/*
 * True when template offset 'off' of 'tpl' is inside a JSON string of the
 * template's own text (placeholders skipped).
 */
static bool in_json_string(const char *tpl, size_t off)
{
    bool in = false;

    for (size_t i = 0; i < off && tpl[i]; i++) {
        if (!strncmp(tpl + i, "{{", 2)) {
            const char *close = strstr(tpl + i + 2, "}}");
            if (!close)
                break;
            i = (size_t)(close + 1 - tpl);
        } else if (in && tpl[i] == '\\' && tpl[i + 1]) {
            i++;
        } else if (tpl[i] == '"') {
            in = !in;
        }
    }
    return in;
}

int sl_template_check_json(const char *tpl, bool want_string, char *errstr,
                           size_t errstr_size)
{
    struct probe probe = {json_string("x"), json_object()};
    json_error_t jerr;
    json_t *v = NULL;
    char *text = NULL, why[sizeof(jerr.text)];
    int err;

    if (!probe.field || !probe.whole) {
        err = sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        goto out;
    }
    err = render(tpl, NULL, &probe, SL_TEMPLATE_JSON, &text, NULL, errstr,
                 errstr_size);
    if (err)
        goto out;
    v = json_loads(text, JSON_DECODE_ANY, &jerr);
    if (!v) {
        const char *in, *end;
        /* jansson's position is just past the token it stopped at. */
        size_t pos = jerr.position > 0 ? (size_t)jerr.position - 1 : 0;
        size_t off = template_offset(tpl, &probe, pos, &in, &end);
        char where[64];
        /* Its "near '...'" quotes the rendered text, which may hold a
         * ${VAR}'s value: point into the template instead. */
        snprintf(why, sizeof(why), "%s", jerr.text);
        char *near = strstr(why, " near ");
        bool at_end = near && !strcmp(near, " near end of file");
        if (near)
            *near = '\0';
        if (in && in_json_string(tpl, (size_t)(in - tpl))) {
            err = sl_seterr(-SL_EINVAL, errstr, errstr_size,
                            "placeholder %.*s is inside a JSON string, but "
                            "it is replaced by a JSON value, quotes "
                            "included: write %.*s without quotes around it",
                            (int)(end - in), in, (int)(end - in), in);
            goto out;
        }
        if (at_end)
            snprintf(where, sizeof(where), "the end of the template");
        else if (in)
            snprintf(where, sizeof(where), "%.*s",
                     (int)(end - in) < 48 ? (int)(end - in) : 48, in);
        else
            snprintf(where, sizeof(where), "byte %zu of the template", off + 1);
        err = sl_seterr(-SL_EINVAL, errstr, errstr_size,
                        "template does not render to JSON when its fields "
                        "hold strings: %s at %s",
                        why, where);
        goto out;
    }
    if (want_string && !json_is_string(v))
        err = sl_seterr(-SL_EINVAL, errstr, errstr_size,
                        "template renders to a JSON %s, not to a string",
                        json_is_object(v)    ? "object"
                        : json_is_array(v)   ? "array"
                        : json_is_number(v)  ? "number"
                        : json_is_boolean(v) ? "boolean"
                                             : "null");
out:
    json_decref(v);
    free(text);
    json_decref(probe.field);
    json_decref(probe.whole);
    return err;
}

bool sl_template_json_safe(const char *tpl)
{
    struct probe probe[2] = {{json_string("x"), json_object()},
                             {json_integer(0), json_object()}};
    bool safe = true;

    for (size_t i = 0; i < 2 && safe; i++) {
        char *text = NULL;
        json_t *v = NULL;
        safe = probe[i].field && probe[i].whole &&
               !render(tpl, NULL, &probe[i], SL_TEMPLATE_JSON, &text, NULL,
                       NULL, 0) &&
               (v = json_loads(text, JSON_DECODE_ANY, NULL)) != NULL;
        json_decref(v);
        free(text);
    }
    for (size_t i = 0; i < 2; i++) {
        json_decref(probe[i].field);
        json_decref(probe[i].whole);
    }
    return safe;
}
