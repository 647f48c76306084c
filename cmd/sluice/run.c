/*
 * sluice run PIPELINE.yaml: load and check the pipeline, then run the
 * worker until the input ends or a signal arrives.
 */
#include "commands.h"
#include "config.h"
#include "log.h"
#include "run.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char run_usage[] =
    "Usage: sluice run PIPELINE.yaml [--replica-id ID] [--listen HOST:PORT]\n"
    "\n"
    "Run the worker: read from the pipeline's source, call its model\n"
    "backends for each message, write results to PostgreSQL, and commit\n"
    "or acknowledge each message only once its row is durable.  With\n"
    "gateway.enabled, POST /v1/process runs the steps for a JSON body and\n"
    "answers with the results; a pipeline may have a source, the gateway,\n"
    "or both.\n"
    "\n"
    "  --replica-id ID     name of this replica in consumer groups, rows and\n"
    "                      logs (default: the pipeline's replica_id, else\n"
    "                      host name plus pid)\n"
    "  --listen HOST:PORT  address of /metrics, /healthz, /readyz and, with\n"
    "                      gateway.enabled, POST /v1/process (default: the\n"
    "                      pipeline's http.listen; port 0 picks a free one,\n"
    "                      logged as \"listening on http://HOST:PORT\")\n"
    "  -h, --help          this help\n"
    "\n"
    "SIGTERM, SIGINT or SIGHUP drains: the source stops, gateway requests\n"
    "in flight are answered, workers finish what they hold, the sink\n"
    "flushes, durable offsets are committed; a second signal stops at once.\n"
    "\n"
    "Exit status:\n"
    "  0  clean drain (or the input ended and every message is durable)\n"
    "  1  fatal runtime error; its cause is the last log line\n"
    "  2  bad pipeline file (the messages of 'sluice check') or usage\n"
    "  3  stopped with messages that were not made durable and that the\n"
    "     source cannot redeliver (file, stdin): they are lost; the log\n"
    "     says how many\n";

/* A replica id: 1 to 127 bytes (the longest that names rows), no control
   characters. */
static bool replica_id_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 127)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return false;
    return true;
}

int sl_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"replica-id", required_argument, NULL, 'r'},
        {"listen", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct sl_run_opts opts = {0};
    int c;

    optind = 1;
    while ((c = sl_cli_getopt("run", argc, argv, longopts)) != -1) {
        switch (c) {
        case 'r':
            if (!replica_id_ok(optarg))
                return sl_cli_usage_error(
                    "run",
                    "--replica-id: expected 1 to 127 characters, none "
                    "of them a control character, got '%s'",
                    optarg);
            opts.replica_id = optarg;
            break;
        case 'l':
            if (!sl_config_listen_ok(optarg))
                return sl_cli_usage_error("run",
                                          "--listen: expected %s, got "
                                          "'%s'",
                                          sl_config_listen_expect, optarg);
            opts.listen = optarg;
            break;
        case 'h':
            fputs(run_usage, stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (optind == argc)
        return sl_cli_usage_error("run", "no pipeline file given");
    if (optind < argc - 1)
        return sl_cli_usage_error("run", "unexpected argument '%s'",
                                  argv[optind + 1]);

    const char *path = argv[optind];
    struct sl_config *cfg = NULL;
    struct sl_config_errors errs = {0};
    int err = sl_config_load(path, &cfg, &errs);
    if (err < 0) {
        sl_config_errors_print(stderr, path, err, &errs);
        sl_config_errors_clear(&errs);
        return 2;
    }
    sl_config_errors_clear(&errs);
    sl_log_set_level(cfg->log_level);
    sl_log_set_format(cfg->log_format);
    if (sl_log_format_from_env() < 0)
        sl_log(SL_LOG_WARN, "run",
               "SLUICE_LOG_FORMAT is not one of json, text; using the "
               "pipeline's log_format");
    if (sl_log_level_from_env() < 0)
        sl_log(SL_LOG_WARN, "run",
               "SLUICE_LOG_LEVEL is not one of debug, info, warn, error; "
               "using the pipeline's level");
    int status = sl_run(cfg, &opts);
    sl_config_destroy(cfg);
    return status;
}
