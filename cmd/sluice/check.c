/*
 * sluice check FILE...: load each pipeline file as 'sluice run' would and
 * print every error (stderr, or JSON on stdout) or "ok" (stdout), or the
 * effective pipeline as YAML, without connecting to anything or reading
 * any secret (its variable or file is checked).
 */
#include "commands.h"

#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char check_usage[] =
    "Usage: sluice check [--format text|json] FILE...\n"
    "       sluice check --print-config FILE\n"
    "       sluice check -          (the pipeline on standard input)\n"
    "\n"
    "Validate pipeline files without connecting to anything: YAML syntax,\n"
    "${VAR} and ${VAR:-default} interpolation from the environment ($$ is\n"
    "a literal '$'), unknown keys, types, ranges, required keys and\n"
    "references between keys.\n"
    "\n"
    "Every error is printed to stderr, one per line, as\n"
    "  FILE:LINE:COL: what is wrong at key.path\n"
    "(<stdin>:LINE:COL: ... for '-').  A file is at most 4 MiB.\n"
    "A valid file prints 'ok' to stdout (with several files, 'FILE: ok').\n"
    "Secrets are never read, but what 'sluice run' would refuse about\n"
    "where one is is an error: an unset or empty *_env variable, a *_file\n"
    "that is missing or readable by group or others.\n"
    "\n"
    "  --format FORMAT  text (the default), as above; or json: print\n"
    "                   nothing but one JSON array on stdout, for\n"
    "                   editors and CI: every error of every file as\n"
    "                   {\"file\", \"line\", \"column\", \"path\", "
    "\"message\"}\n"
    "                   (line, column, path null when the error is about no\n"
    "                   place or key); [] when every file is valid\n"
    "  --print-config   print the effective pipeline of one valid FILE as\n"
    "                   YAML instead of 'ok': values after ${VAR}\n"
    "                   interpolation, every default filled in, keys that\n"
    "                   do not apply left out; a secret shows only where it\n"
    "                   comes from (api_key: <from env NAME>, a header\n"
    "                   <from file PATH>), never its value\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status: 0 when every file is valid, 2 otherwise.\n";

int sl_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"print-config", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, status = 0, nstdin = 0;
    bool json = false, print = false;
    json_t *all = NULL;

    optind = 1;
    while ((c = sl_cli_getopt("check", argc, argv, longopts)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "text") && strcmp(optarg, "json"))
                return sl_cli_usage_error("check",
                                          "--format: expected text or json, "
                                          "got '%s'",
                                          optarg);
            json = !strcmp(optarg, "json");
            break;
        case 'p':
            print = true;
            break;
        case 'h':
            fputs(check_usage, stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (optind == argc)
        return sl_cli_usage_error("check", "no pipeline file given");
    if (print && argc - optind > 1)
        return sl_cli_usage_error("check",
                                  "--print-config takes one "
                                  "pipeline file, got %d",
                                  argc - optind);
    if (print && json)
        return sl_cli_usage_error("check", "--print-config prints YAML; it "
                                           "cannot be combined with "
                                           "--format json");
    for (int i = optind; i < argc; i++)
        nstdin += !strcmp(argv[i], "-");
    if (nstdin > 1)
        return sl_cli_usage_error("check",
                                  "'-' (standard input) given %d "
                                  "times",
                                  nstdin);
    if (json && !(all = json_array())) {
        fputs("sluice check: out of memory\n", stderr);
        return 2;
    }

    for (int i = optind; i < argc; i++) {
        struct sl_config_errors errs = {0};
        struct sl_config *cfg = NULL;
        bool from_stdin = !strcmp(argv[i], "-");
        const char *name = from_stdin ? "<stdin>" : argv[i];
        char *yaml = NULL;
        int err;

        if (from_stdin)
            err = sl_config_load_fd(name, STDIN_FILENO, &cfg, &errs);
        else
            err = sl_config_load(argv[i], &cfg, &errs);
        if (err == 0 && print && !(yaml = sl_config_to_yaml(cfg))) {
            fprintf(stderr, "%s: cannot print the pipeline: out of memory\n",
                    name);
            status = 2;
        } else if (err == 0 && print) {
            fputs(yaml, stdout);
        } else if (err == 0 && !json) {
            if (argc - optind == 1)
                puts("ok");
            else
                printf("%s: ok\n", name);
        } else if (err < 0 && json) {
            if (sl_config_errors_json(all, name, err, &errs) < 0)
                fprintf(stderr, "%s: out of memory\n", name);
            status = 2;
        } else if (err < 0) {
            sl_config_errors_print(stderr, name, err, &errs);
            status = 2;
        }
        free(yaml);
        sl_config_destroy(cfg);
        sl_config_errors_clear(&errs);
    }
    if (json) {
        char *text = json_dumps(all, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (text)
            puts(text);
        else
            status = 2;
        free(text);
        json_decref(all);
    }
    fflush(stdout);
    return status;
}
