/*
 * sluice: the command-line entry point.  Dispatches to the sub-commands
 * (run, check, produce, version) and prints help.
 */
#include "commands.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

static const char usage[] =
    "Usage: sluice <command> [options]\n"
    "\n"
    "A stream-processing worker: reads messages from Kafka or Redis, calls\n"
    "model servers over HTTP for each, and writes the results to PostgreSQL\n"
    "with nothing lost or written twice.\n"
    "\n"
    "Commands:\n"
    "  run PIPELINE     run the worker until the input ends or a signal\n"
    "  check FILE...    validate pipeline files; prints 'ok' or every error\n"
    "                   as file:line:col: what is wrong at key.path\n"
    "                   (exit 0 when valid, 2 otherwise)\n"
    "  produce TARGET   feed a Kafka topic or a Redis stream or list from\n"
    "                   JSON lines or a generator (--generate N)\n"
    "  version          print sluice's version and its libraries' versions\n"
    "  help             print this help\n"
    "\n"
    "Run 'sluice <command> --help' for a command's options.\n"
    "Environment: SLUICE_LOG_LEVEL=debug|info|warn|error overrides the\n"
    "pipeline file's log level.\n";

static int cmd_version(void)
{
    unsigned v = (unsigned)PQlibVersion();
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

    printf("sluice %s\n", SLUICE_VERSION);
    printf("librdkafka %s\n", rd_kafka_version_str());
    printf("libpq %u.%u\n", v / 10000, v % 10000);
    printf("hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    printf("libcurl %s\n", cv->version);
    printf("jansson %s\n", jansson_version_str());
    printf("libmicrohttpd %s\n", MHD_get_version());
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (!cmd || !strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
        !strcmp(cmd, "-h")) {
        fputs(usage, cmd ? stdout : stderr);
        return cmd ? 0 : 2;
    }
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
        return cmd_version();
    if (!strcmp(cmd, "run"))
        return sl_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "produce"))
        return sl_cmd_produce(argc - 1, argv + 1);
    if (!strcmp(cmd, "check"))
        return sl_cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
