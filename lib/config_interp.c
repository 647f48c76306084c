/*
 * ${VAR} interpolation of the config's scalar values: ${NAME},
 * ${NAME:-default} (also when NAME is empty) and $$ for a literal '$'; an
 * unset variable without a default is an error at its place in the file.
 */
#include "config_int.h"
#include "strbuf.h"

#include <stdlib.h>
#include <string.h>

#define MAX_VALUE_BYTES (1 << 20) /* a scalar after interpolation */

/* The value being built; past MAX_VALUE_BYTES it stops growing. */
struct capped {
    struct sl_strbuf sb; /* the text so far */
    bool toolong;        /* past MAX_VALUE_BYTES: the value is refused */
};

static void add(struct capped *b, const char *s, size_t n)
{
    if (b->toolong)
        return;
    if (b->sb.len + n + 1 > MAX_VALUE_BYTES) {
        b->toolong = true;
        return;
    }
    sl_strbuf_add(&b->sb, s, n);
}

static bool env_name_char(char c, bool first)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
           (!first && c >= '0' && c <= '9');
}

char *sl_config_interpolate(struct sl_config_ctx *ctx, struct fy_node *fyn,
                            const char *path)
{
    size_t len, i = 0;
    const char *s = fy_node_get_scalar(fyn, &len);
    struct capped b = {0};
    char *out;
    struct sl_config_mark m = sl_config_node_mark(fyn);

    if (!s)
        s = "";
    if (memchr(s, '\0', len)) {
        sl_config_report_at(ctx, m, path, "a value must not contain NUL bytes");
        return NULL;
    }
    while (i < len) {
        const char *d = memchr(s + i, '$', len - i);
        size_t j;

        if (!d) {
            add(&b, s + i, len - i);
            break;
        }
        add(&b, s + i, (size_t)(d - (s + i)));
        i = (size_t)(d - s);
        if (i + 1 < len && s[i + 1] == '$') {
            add(&b, "$", 1);
            i += 2;
            continue;
        }
        if (i + 1 >= len || s[i + 1] != '{') {
            add(&b, "$", 1);
            i++;
            continue;
        }
        /* ${NAME} or ${NAME:-default} */
        j = i + 2;
        while (j < len && env_name_char(s[j], j == i + 2))
            j++;
        size_t name_len = j - (i + 2);
        const char *def = NULL;
        size_t def_len = 0;
        if (name_len > 0 && j + 1 < len && s[j] == ':' && s[j + 1] == '-') {
            const char *close = memchr(s + j + 2, '}', len - (j + 2));
            if (close) {
                def = s + j + 2;
                def_len = (size_t)(close - def);
                j = (size_t)(close - s);
            }
        }
        if (name_len == 0 || j >= len || s[j] != '}' || name_len > 255) {
            sl_config_report_at(
                ctx, m, path,
                "malformed variable reference '%.*s' (write ${NAME}, "
                "${NAME:-default} or $$ for a literal '$')",
                (int)((j < len ? j + 1 : len) - i), s + i);
            sl_strbuf_free(&b.sb);
            return NULL;
        }
        char name[256];
        memcpy(name, s + i + 2, name_len);
        name[name_len] = '\0';
        const char *val = getenv(name);
        if (def && (!val || !*val))
            add(&b, def, def_len);
        else if (val)
            add(&b, val, strlen(val));
        else {
            sl_config_report_at(
                ctx, m, path,
                "environment variable '%s' is not set (set it, or give a "
                "default: ${%s:-default})",
                name, name);
            sl_strbuf_free(&b.sb);
            return NULL;
        }
        i = j + 1;
    }
    if (b.toolong) {
        sl_strbuf_free(&b.sb);
        sl_config_report_at(ctx, m, path, "value longer than %d bytes",
                            MAX_VALUE_BYTES);
        return NULL;
    }
    if (!(out = sl_strbuf_done(&b.sb)))
        ctx->oom = true;
    return out;
}
