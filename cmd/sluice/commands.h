/*
 * The sluice CLI's sub-commands.  Each takes the arguments after its name
 * (argv[0] is the command name) and returns the process exit status.
 */
#ifndef SL_COMMANDS_H
#define SL_COMMANDS_H

/* sluice check FILE...: 0 when every file is valid, 2 otherwise. */
int sl_cmd_check(int argc, char **argv);

/*
 * sluice produce TARGET [--file F | --generate N] [--rate R] ...: send JSON
 * lines to a Kafka topic, Redis stream or Redis list.  0 when every
 * message was delivered, 1 when some were not, 2 for bad usage.
 */
int sl_cmd_produce(int argc, char **argv);

/* sluice run PIPELINE: the worker; 0 clean drain, 1 fatal, 2 bad file. */
int sl_cmd_run(int argc, char **argv);

#endif
