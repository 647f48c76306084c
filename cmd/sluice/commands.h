/*
 * The sluice CLI's sub-commands.  Each takes the arguments after its name
 * (argv[0] is the command name) and returns the process exit status.
 */
#ifndef SL_COMMANDS_H
#define SL_COMMANDS_H

/* sluice check FILE...: 0 when every file is valid, 2 otherwise. */
int sl_cmd_check(int argc, char **argv);

#endif
