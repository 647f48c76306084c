/*
 * sluice check FILE...: load each pipeline file as 'sluice run' would and
 * print every error (stderr) or "ok" (stdout), without connecting to
 * anything or reading any secret (its variable or file is checked).
 */
#include "commands.h"

#include "config.h"
#include "err.h"

#include <stdio.h>
#include <string.h>

static const char check_usage[] =
    "Usage: sluice check FILE...\n"
    "\n"
    "Validate pipeline files without connecting to anything: YAML syntax,\n"
    "${VAR} and ${VAR:-default} interpolation from the environment, unknown\n"
    "keys, types, ranges, required keys and references between keys.\n"
    "\n"
    "Every error is printed to stderr, one per line, as\n"
    "  FILE:LINE:COL: what is wrong at key.path\n"
    "A valid file prints 'ok' to stdout (with several files, 'FILE: ok').\n"
    "Secrets are never read, but what 'sluice run' would refuse about\n"
    "where one is is an error: an unset or empty *_env variable, a *_file\n"
    "that is missing or readable by group or others.\n"
    "\n"
    "Exit status: 0 when every file is valid, 2 otherwise.\n";

int sl_cmd_check(int argc, char **argv)
{
    int first = 1, status = 0;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(check_usage, stdout);
            return 0;
        }
    }
    if (first < argc && !strcmp(argv[first], "--"))
        first++;
    else if (first < argc && argv[first][0] == '-' && argv[first][1]) {
        fprintf(stderr, "sluice check: unknown option '%s'\n\n%s", argv[first],
                check_usage);
        return 2;
    }
    if (first >= argc) {
        fputs(check_usage, stderr);
        return 2;
    }

    for (int i = first; i < argc; i++) {
        struct sl_config_errors errs = {0};
        struct sl_config *cfg = NULL;
        int err = sl_config_load(argv[i], &cfg, &errs);

        if (err == 0) {
            if (argc - first == 1)
                puts("ok");
            else
                printf("%s: ok\n", argv[i]);
        } else {
            sl_config_errors_print(stderr, argv[i], err, &errs);
            status = 2;
        }
        sl_config_destroy(cfg);
        sl_config_errors_clear(&errs);
    }
    fflush(stdout);
    return status;
}
