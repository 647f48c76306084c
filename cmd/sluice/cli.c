/*
 * What every sluice sub-command shares on its command line: one format for
 * usage errors ("sluice CMD: what is wrong" and a hint, exit status 2) and
 * getopt_long() with those messages instead of getopt's own.
 */
#include "commands.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int sl_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    /* One line, whatever an argument echoed in it holds. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    if (cmd)
        fprintf(stderr, "sluice %s: %s\nTry 'sluice %s --help'.\n", cmd, msg,
                cmd);
    else
        fprintf(stderr, "sluice: %s\nTry 'sluice --help'.\n", msg);
    return 2;
}

int sl_cli_getopt(const char *cmd, int argc, char **argv,
                  const struct option *longopts)
{
    const char *arg, *eq;
    int c, len;

    opterr = 0;
    /* ':' first: a missing value returns ':', not '?'. */
    c = getopt_long(argc, argv, ":h", longopts, NULL);
    if (c != '?' && c != ':')
        return c;
    arg = argv[optind - 1];
    if (strncmp(arg, "--", 2)) { /* a short option: -x */
        sl_cli_usage_error(cmd,
                           c == ':' ? "option '-%c' needs a value"
                                    : "unknown option '-%c'",
                           optopt);
        return '?';
    }
    eq = strchr(arg, '=');
    len = (int)(eq ? eq - arg : (long)strlen(arg));
    if (c == ':')
        sl_cli_usage_error(cmd, "option '%.*s' needs a value", len, arg);
    else if (optopt && eq) /* a known flag given a value: --help=x */
        sl_cli_usage_error(cmd, "option '%.*s' takes no value", len, arg);
    else
        sl_cli_usage_error(cmd, "unknown option '%.*s'", len, arg);
    return '?';
}
