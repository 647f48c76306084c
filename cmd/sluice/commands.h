/*
 * The sluice CLI's sub-commands.  Each takes the arguments after its name
 * (argv[0] is the command name) and returns the process exit status.
 */
#ifndef SL_COMMANDS_H
#define SL_COMMANDS_H

#include <getopt.h>

/*
 * sluice check FILE...: 0 when every file is valid, 2 otherwise; '-'
 * reads the pipeline from standard input.
 */
int sl_cmd_check(int argc, char **argv);

/*
 * sluice config-reference: the pipeline keys' reference as Markdown on
 * stdout; 0, 1 when it could not be written, 2 for bad usage.
 */
int sl_cmd_config_reference(int argc, char **argv);

/*
 * sluice produce TARGET [--file F | --generate N] [--rate R] ...: send JSON
 * lines to a Kafka topic, Redis stream or Redis list.  0 when every
 * message was delivered, 1 when some were not, 2 for bad usage.
 */
int sl_cmd_produce(int argc, char **argv);

/* sluice run PIPELINE: the worker; 0 clean drain, 1 fatal, 2 bad file. */
int sl_cmd_run(int argc, char **argv);

/*
 * sluice top [URL...]: a live view of workers' /metrics until 'q' or a
 * signal; 0, 1 when --once found a worker unreachable, 2 for bad usage.
 */
int sl_cmd_top(int argc, char **argv);

/* sluice version: sluice's build and every linked library's version. */
int sl_cmd_version(int argc, char **argv);

/*
 * Print a usage error for sub-command 'cmd' (NULL: sluice itself) as two
 * lines on stderr:
 *   sluice CMD: <fmt...>
 *   Try 'sluice CMD --help'.
 * Returns 2, the exit status of every usage error.
 */
int sl_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * getopt_long() over 'argv' (argv[0] is the command name) with 'longopts'
 * and "-h": returns the option's value, or -1 when the options are done;
 * the operands are then argv[optind..argc-1] (options and operands may
 * mix, GNU style; "--name=value" works as "--name value").  For an unknown
 * option, a missing value or a value given to a flag, prints the usage error
 * for 'cmd' and returns '?'.  Reset optind to 1 before the first call.
 */
int sl_cli_getopt(const char *cmd, int argc, char **argv,
                  const struct option *longopts);

#endif
