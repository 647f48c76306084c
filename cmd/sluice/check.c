/*
 * sluice check FILE...: load each pipeline file as 'sluice run' would and
 * print every error (stderr) or "ok" (stdout), without connecting to
 * anything or reading any secret (its variable or file is checked).
 */
#include "commands.h"

#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char check_usage[] =
    "Usage: sluice check FILE...\n"
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
    "Exit status: 0 when every file is valid, 2 otherwise.\n";

int sl_cmd_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, status = 0, nstdin = 0;

    optind = 1;
    while ((c = sl_cli_getopt("check", argc, argv, longopts)) != -1) {
        if (c != 'h')
            return 2;
        fputs(check_usage, stdout);
        return 0;
    }
    if (optind == argc)
        return sl_cli_usage_error("check", "no pipeline file given");
    for (int i = optind; i < argc; i++)
        nstdin += !strcmp(argv[i], "-");
    if (nstdin > 1)
        return sl_cli_usage_error("check",
                                  "'-' (standard input) given %d "
                                  "times",
                                  nstdin);

    for (int i = optind; i < argc; i++) {
        struct sl_config_errors errs = {0};
        struct sl_config *cfg = NULL;
        bool from_stdin = !strcmp(argv[i], "-");
        const char *name = from_stdin ? "<stdin>" : argv[i];
        int err;

        if (from_stdin)
            err = sl_config_load_fd(name, STDIN_FILENO, &cfg, &errs);
        else
            err = sl_config_load(argv[i], &cfg, &errs);
        if (err < 0)
            sl_config_errors_print(stderr, name, err, &errs);
        if (err == 0) {
            if (argc - optind == 1)
                puts("ok");
            else
                printf("%s: ok\n", name);
        } else {
            status = 2;
        }
        sl_config_destroy(cfg);
        sl_config_errors_clear(&errs);
    }
    fflush(stdout);
    return status;
}
