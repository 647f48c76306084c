/*
 * sluice: the command-line entry point.  Dispatches to the sub-commands
 * (run, check, config-reference, produce, top, version) and prints help.
 */
#include "commands.h"

#include <curl/curl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <libfyaml.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <malloc.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_version.h>

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
    "                   (exit 0 when valid, 2 otherwise); --format json for\n"
    "                   tools, --print-config for the effective pipeline\n"
    "  config-reference print every pipeline key with its type, default,\n"
    "                   allowed values and meaning, as Markdown\n"
    "  produce TARGET   feed a Kafka topic or a Redis stream or list from\n"
    "                   JSON lines or a generator (--generate N)\n"
    "  top [URL...]     a live view of running workers' /metrics: per\n"
    "                   replica messages/s in and out, lag, in flight, sink\n"
    "                   batch latency; breakers and errors per backend\n"
    "  version          print sluice's version, build type and commit and\n"
    "                   the version of every library it links\n"
    "  help [COMMAND]   print this help, or COMMAND's\n"
    "\n"
    "Run 'sluice <command> --help' or 'sluice help <command>' for a\n"
    "command's options; every option also reads --name=value.\n"
    "Environment: SLUICE_LOG_LEVEL=debug|info|warn|error and\n"
    "SLUICE_LOG_FORMAT=json|text override the pipeline file's log_level\n"
    "and log_format; the pipeline's ${VAR} references and\n"
    "*_env keys, libpq's PG* variables and libcurl's proxy variables are\n"
    "read too (README: Environment variables).\n";

static const char version_usage[] =
    "Usage: sluice version\n"
    "\n"
    "Print sluice's version, the commit and build type it was built from,\n"
    "and the version of every library it links (the TLS library is the one\n"
    "libcurl uses for https:// backends).\n";

int sl_cmd_version(int argc, char **argv)
{
    unsigned v = (unsigned)PQlibVersion();
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);

    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        fputs(version_usage, stdout);
        return 0;
    }
    if (argc > 1)
        return sl_cli_usage_error("version", "unexpected argument '%s'",
                                  argv[1]);
    printf("sluice %s (commit %s, %s build)\n", SLUICE_VERSION, SLUICE_COMMIT,
           SLUICE_BUILD_TYPE);
    printf("librdkafka %s\n", rd_kafka_version_str());
    printf("libpq %u.%u\n", v / 10000, v % 10000);
    printf("hiredis %d.%d.%d\n", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
    printf("libcurl %s\n", cv->version);
    printf("TLS (libcurl's) %s\n", cv->ssl_version ? cv->ssl_version : "none");
    printf("jansson %s\n", jansson_version_str());
    printf("yajl %d.%d.%d\n", yajl_version() / 10000,
           yajl_version() / 100 % 100, yajl_version() % 100);
    printf("libmicrohttpd %s\n", MHD_get_version());
    printf("libfyaml %s\n", fy_library_version());
    return 0;
}

/* 'sluice help [COMMAND]': COMMAND's help, or sluice's. */
static int cmd_help(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {
        {"run", sl_cmd_run},
        {"check", sl_cmd_check},
        {"config-reference", sl_cmd_config_reference},
        {"produce", sl_cmd_produce},
        {"top", sl_cmd_top},
        {"version", sl_cmd_version},
    };

    if (argc > 2)
        return sl_cli_usage_error("help", "unexpected argument '%s'", argv[2]);
    if (argc < 2 || !strcmp(argv[1], "help")) {
        fputs(usage, stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (!strcmp(argv[1], cmds[i].name)) {
            char *args[] = {argv[1], "--help", NULL};
            return cmds[i].fn(2, args);
        }
    }
    return sl_cli_usage_error(NULL, "unknown command '%s'", argv[1]);
}

/*
 * Two malloc arenas for the whole process, unless the environment chooses
 * (MALLOC_ARENA_MAX, or glibc.malloc.arena_max in GLIBC_TUNABLES).
 * glibc gives each thread that allocates an arena of its own, up to 8 per
 * core, and an arena keeps the memory it once held: a message is
 * allocated by the source thread, its result by a worker, its row's
 * encoding by the sink, its fetch by a librdkafka thread, so each arena
 * grew to its own thread's peak and the worker's RSS was the sum of them
 * (7 to 11 arenas, three or four of 5-16 MiB, most of it free, for ~7 MiB
 * live).  One arena saved a little more but cost a fifth of the 3-model
 * throughput in lock waits (bench/results/rss-2026-12-06.md); two cost
 * none measurable.  Before any thread starts.
 */
#define MALLOC_ARENAS 2

static void malloc_few_arenas(void)
{
#ifdef M_ARENA_MAX
    const char *tunables = getenv("GLIBC_TUNABLES");

    if (getenv("MALLOC_ARENA_MAX") ||
        (tunables && strstr(tunables, "glibc.malloc.arena_max")))
        return;
    mallopt(M_ARENA_MAX, MALLOC_ARENAS);
#endif
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    malloc_few_arenas();
    if (!cmd)
        return sl_cli_usage_error(NULL, "no command given");
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h"))
        return cmd_help(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version"))
        return sl_cmd_version(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return sl_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "produce"))
        return sl_cmd_produce(argc - 1, argv + 1);
    if (!strcmp(cmd, "top"))
        return sl_cmd_top(argc - 1, argv + 1);
    if (!strcmp(cmd, "check"))
        return sl_cmd_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "config-reference"))
        return sl_cmd_config_reference(argc - 1, argv + 1);
    return sl_cli_usage_error(NULL, "unknown command '%s'", cmd);
}
