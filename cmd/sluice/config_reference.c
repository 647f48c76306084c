/*
 * sluice config-reference: every key a pipeline file may hold, printed as
 * Markdown from the loader's own schema tables, so that the reference
 * (docs/configuration.md is this output) cannot drift from what is
 * accepted.
 */
#include "commands.h"

#include "config.h"

#include <stdio.h>

static const char config_reference_usage[] =
    "Usage: sluice config-reference\n"
    "\n"
    "Print the reference of every key a pipeline file may hold, as\n"
    "Markdown: its path, type, default, range or allowed values and what\n"
    "it does, one table per section, generated from the schema that\n"
    "'sluice check' and 'sluice run' apply (docs/configuration.md is this\n"
    "output).\n"
    "\n"
    "  -h, --help  this help\n";

int sl_cmd_config_reference(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    optind = 1;
    while ((c = sl_cli_getopt("config-reference", argc, argv, longopts)) !=
           -1) {
        if (c != 'h')
            return 2;
        fputs(config_reference_usage, stdout);
        return 0;
    }
    if (optind < argc)
        return sl_cli_usage_error("config-reference",
                                  "unexpected argument '%s'", argv[optind]);
    if (sl_config_reference(stdout) < 0) {
        perror("sluice config-reference: cannot write the reference");
        return 1;
    }
    return 0;
}
