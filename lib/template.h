/*
 * Rendering of the pipeline's templates over a message's JSON payload:
 * {{field}}, {{a.b}} and {{.}} (the syntax is in config.h).  JSON
 * templates substitute JSON values, so no payload can change a request's
 * structure; text templates substitute raw strings.
 */
#ifndef SL_TEMPLATE_H
#define SL_TEMPLATE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

enum sl_template_mode {
    SL_TEMPLATE_JSON, /* values as JSON text: strings quoted and escaped */
    SL_TEMPLATE_TEXT, /* strings raw, other values as compact JSON */
};

/*
 * Parse a payload of 'len' bytes as the document templates read.  With
 * 'raw' false the payload must be a JSON object; with 'raw' true it is
 * text (valid UTF-8) seen as {"text": payload}.
 *
 * Returns 0 and sets *docp (owned by the caller, json_decref()); or
 * -SL_EDECODE with a reason for the dead-letter table in errstr
 * ("payload is not valid JSON: ...", "payload is not a JSON object",
 * "payload is not valid UTF-8 text"); -SL_ENOMEM.  On failure *docp is
 * NULL.  Any thread.
 */
int sl_template_parse_payload(const void *payload, size_t len, int raw,
                              json_t **docp, char *errstr, size_t errstr_size);

/*
 * Render template 'tpl' over 'doc' in 'mode'.
 *
 * Returns 0 and sets *outp to a NUL-terminated string (owned by the
 * caller, free()); -SL_ENOTFOUND when a placeholder names a field 'doc'
 * lacks (errstr: "missing field 'user.id'"); -SL_EINVAL for a malformed
 * placeholder; -SL_ENOMEM.  On failure *outp is NULL.  Any thread.
 */
int sl_template_render(const char *tpl, const json_t *doc,
                       enum sl_template_mode mode, char **outp, char *errstr,
                       size_t errstr_size);

/*
 * Render JSON template 'tpl' over 'doc' into *textp (malloc'd), checked to
 * be JSON.  With 'safe' (sl_template_json_safe(tpl) said true) the text
 * is parsed to check it only when a placeholder held an object or an
 * array; a template filled with strings, numbers, booleans or nulls is
 * JSON by construction.  Returns as sl_template_render_value().  Any
 * thread.
 */
int sl_template_render_json(const char *tpl, const json_t *doc, bool safe,
                            char **textp, char *errstr, size_t errstr_size);

/*
 * Render JSON template 'tpl' over 'doc' and parse the result.
 *
 * Returns 0 and sets *valuep (a reference of the caller's, which may be
 * shared with 'doc': do not change it); -SL_ENOTFOUND as
 * sl_template_render(); -SL_EINVAL when the rendered text is not JSON
 * (the template itself is wrong, errstr says where); -SL_ENOMEM.  Any
 * thread.
 */
int sl_template_render_value(const char *tpl, const json_t *doc,
                             json_t **valuep, char *errstr, size_t errstr_size);

/*
 * Check JSON template 'tpl' without a payload: render it once with a
 * string for each named field and an object for {{.}}, and parse the
 * result.  A template that fails here fails for every payload whose
 * fields are strings ('{"text": "{{text}}"}', '{"text" {{text}}}').
 * With 'want_string' the result must also be a JSON string (an
 * embeddings input).
 *
 * Returns 0; -SL_EINVAL with the reason in errstr (it quotes the
 * template's placeholders, never the rendered text); -SL_ENOMEM.  Any
 * thread.
 */
int sl_template_check_json(const char *tpl, bool want_string, char *errstr,
                           size_t errstr_size);

/*
 * Whether JSON template 'tpl' renders to JSON whatever string, number,
 * boolean or null its placeholders hold: it does with strings and with
 * numbers in them, so every placeholder stands where a JSON value goes
 * (not an object's key, not inside a string).  Checked once (a backend's
 * body), it spares sl_template_render_json() a parse per message.  Any
 * thread.
 */
bool sl_template_json_safe(const char *tpl);

#endif
