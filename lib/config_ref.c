/*
 * The configuration reference (sluice config-reference, which writes
 * docs/configuration.md): one Markdown table per mapping, from the schema
 * tables and their descriptions.
 */
#include "config_int.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

/*
 * 's' into a Markdown table cell: '|' escaped; 'text': plain text (a
 * check's "expected ..."), so Markdown's marks are escaped too.
 */
static void md_cell(FILE *fp, const char *s, bool text)
{
    for (; *s; s++) {
        if (*s == '|' || (text && strchr("\\`*_[]<>", *s)))
            fputc('\\', fp);
        fputc(*s, fp);
    }
}

/* "`a`, `b` or `c`": the kinds of 'kinds' of schema 's'. */
static void md_kinds(FILE *fp, const struct sl_config_schema *s, unsigned kinds)
{
    const char *const *names = sl_config_find_key(s, s->kind_key)->enums;
    size_t total = 0, seen = 0;

    for (size_t i = 0; names[i]; i++)
        total += (kinds >> i) & 1u;
    for (size_t i = 0; names[i]; i++) {
        if (!((kinds >> i) & 1u))
            continue;
        seen++;
        fprintf(fp, "%s`%s`",
                seen == 1       ? ""
                : seen == total ? " or "
                                : ", ",
                names[i]);
    }
}

static const char *md_type(const struct sl_config_key *k)
{
    switch (k->type) {
    case SL_KT_STR:
        return "string";
    case SL_KT_INT:
        return "integer";
    case SL_KT_NUM:
        return "number";
    case SL_KT_BOOL:
        return "boolean";
    case SL_KT_ENUM:
        return "string (one of)";
    case SL_KT_OBJ:
        return "mapping";
    case SL_KT_STRLIST:
        return "list of strings";
    case SL_KT_OBJLIST:
        return "list of mappings";
    case SL_KT_OBJMAP:
        return "mapping of name to mapping";
    case SL_KT_KVMAP:
        return "mapping of name to value";
    }
    return "value";
}

/* What 'k' accepts: a range, the names, the check's text. */
static void md_allowed(FILE *fp, const struct sl_config_key *k)
{
    switch (k->type) {
    case SL_KT_STR:
        if (k->check)
            md_cell(fp, k->check->expect, true);
        else
            fputs(k->flags & SL_KF_EMPTY_OK ? "any string"
                                            : "any non-empty string",
                  fp);
        break;
    case SL_KT_INT:
        if (k->min == k->max)
            fprintf(fp, "%lld", k->min);
        else
            fprintf(fp, "%lld to %lld", k->min, k->max);
        break;
    case SL_KT_NUM:
        fprintf(fp, "%.15g to %.15g", k->fmin, k->fmax);
        break;
    case SL_KT_BOOL:
        fputs("`true`, `false`", fp);
        break;
    case SL_KT_ENUM:
        for (size_t i = 0; k->enums[i]; i++)
            fprintf(fp, "%s`%s`", i ? ", " : "", k->enums[i]);
        break;
    case SL_KT_STRLIST:
    case SL_KT_OBJLIST:
        fprintf(fp, "%lld to %lld items", k->min, k->max);
        if (k->check) {
            fputs(", each ", fp);
            md_cell(fp, k->check->expect, true);
        }
        break;
    case SL_KT_OBJMAP:
    case SL_KT_KVMAP:
        fprintf(fp, "up to %lld entries", k->max);
        if (k->check) {
            fputs("; names: ", fp);
            md_cell(fp, k->check->expect, true);
        }
        if (k->type == SL_KT_KVMAP && k->sub)
            fputs("; values: a string, number or boolean, or "
                  "`{value_env: NAME}` or `{value_file: PATH}`",
                  fp);
        break;
    case SL_KT_OBJ:
        fputs("see below", fp);
        break;
    }
}

/* Where the keys of 'k's value live: "a.b", "a.<name>", "a[]". */
static void md_sub_path(char *out, const char *path,
                        const struct sl_config_key *k)
{
    sl_config_path_key(out, path, k->name);
    if (k->type == SL_KT_OBJMAP || k->type == SL_KT_KVMAP)
        strncat(out, ".<name>", SL_CONFIG_MAX_PATH - strlen(out) - 1);
    else if (k->type == SL_KT_OBJLIST)
        strncat(out, "[]", SL_CONFIG_MAX_PATH - strlen(out) - 1);
}

/* The section of mapping 's' at 'path' ("" for the top), then its
   mappings' sections. */
static void md_section(FILE *fp, const struct sl_config_schema *s,
                       const char *path)
{
    char kpath[SL_CONFIG_MAX_PATH], sub[SL_CONFIG_MAX_PATH];

    if (*path)
        fprintf(fp, "\n## `%s`\n\n", path);
    else
        fputs("\n## Top level\n\n", fp);
    fputs("| Key | Type | Default | Allowed | Description |\n"
          "|-----|------|---------|---------|-------------|\n",
          fp);
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        sl_config_path_key(kpath, path, k->name);
        fputs("| `", fp);
        md_cell(fp, kpath, false);
        fprintf(fp, "` | %s | ", md_type(k));
        if (k->def && *k->def) {
            fputs("`", fp);
            md_cell(fp, k->def, false);
            fputs("`", fp);
        } else if (k->def) {
            fputs("empty", fp);
        } else if (k->type == SL_KT_OBJ && !(k->flags & SL_KF_REQ) &&
                   !(k->flags & SL_KF_HAS)) {
            fputs("its keys' defaults", fp);
        } else if ((k->flags & SL_KF_REQ) && k->kinds) {
            fputs("required for ", fp);
            md_kinds(fp, s, k->kinds);
        } else {
            fputs(k->flags & SL_KF_REQ ? "required" : "none", fp);
        }
        fputs(" | ", fp);
        md_allowed(fp, k);
        fputs(" | ", fp);
        if (k->kinds) {
            fprintf(fp, "Only when `%s` is ", s->kind_label);
            md_kinds(fp, s, k->kinds);
            fputs(". ", fp);
        }
        md_cell(fp, k->desc ? k->desc : "", false);
        fputs(" |\n", fp);
    }
    for (size_t i = 0; i < s->nkeys; i++) {
        const struct sl_config_key *k = &s->keys[i];

        if (!k->sub)
            continue;
        md_sub_path(sub, path, k);
        md_section(fp, k->sub, sub);
    }
}

/* The reference's title and how to read it. */
static const char ref_intro[] =
    "# Configuration reference\n"
    "\n"
    "<!-- Generated by `sluice config-reference` from the schema\n"
    "     tables in lib/config_schema.c: edit the descriptions there,\n"
    "     then run `build/sluice config-reference > docs/configuration.md`.\n"
    "     -->\n"
    "\n"
    "Every key a pipeline file may hold, section by section. In a key\n"
    "path, `<name>` stands for a name you choose (`backends.<name>.url`\n"
    "is the `url` of each backend) and `[]` for each item of a list\n"
    "(`steps[].name`). A key with a default may be left out; `none`\n"
    "marks a key without one. Durations are in milliseconds (`_ms`),\n"
    "sizes in bytes. Every value may use `${VAR}`, `${VAR:-default}`\n"
    "and `$$` (README: Pipeline files). Secrets are never written in\n"
    "the file: `*_env` and `*_file` keys and `{value_env: NAME}` /\n"
    "`{value_file: PATH}` name where they are. `sluice check\n"
    "--print-config FILE` shows a file with every default filled in.\n";

int sl_config_reference(FILE *fp)
{
    fputs(ref_intro, fp);
    md_section(fp, &sl_config_schema_root, "");
    fflush(fp);
    return ferror(fp) ? -SL_EIO : 0;
}
