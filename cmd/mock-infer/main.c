/*
 * mock-infer: the command line.  Parses options, starts the server,
 * writes the bound port for tests, waits for SIGTERM or SIGINT and prints
 * a one-line summary of what it served.
 */
#include "mock.h"

#include "err.h"
#include "log.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define FD_RESERVE 64 /* descriptors kept for everything but connections */

static const char usage[] =
    "Usage: mock-infer [options]\n"
    "\n"
    "A fake OpenAI-compatible model server for tests and benchmarks.\n"
    "Answers are deterministic functions of the request (see the README).\n"
    "\n"
    "Routes: POST /v1/chat/completions, /v1/embeddings, /predict/sentiment,\n"
    "        /predict/ner, /predict/summary; GET /healthz, /stats.\n"
    "\n"
    "Options:\n"
    "  --listen HOST:PORT      address to listen on (127.0.0.1:8080);\n"
    "                          port 0 picks a free one\n"
    "  --port-file PATH        write the bound port to PATH once listening\n"
    "  --threads N             HTTP worker threads (2)\n"
    "  --latency-ms MS         latency added to every model answer (0)\n"
    "  --latency-dist D        fixed | uniform | lognormal (fixed)\n"
    "  --latency-max-ms MS     uniform: upper bound (required, at least\n"
    "                          --latency-ms); lognormal: cap (600000)\n"
    "  --latency-sigma S       lognormal shape; the median is --latency-ms "
    "(0.5)\n"
    "  --fault-rate KIND=P     inject KIND with probability P; repeatable.\n"
    "                          KIND: 500 503 429 timeout trickle bad-json\n"
    "                          huge reset\n"
    "  --seed N                seed of fault and latency draws (1)\n"
    "  --max-body-bytes N      larger request bodies get 413 (1048576)\n"
    "  --huge-bytes N          body size of the 'huge' fault (67108864)\n"
    "  --embed-dim D           embedding length (8)\n"
    "  --timeout-hold-ms MS    how long 'timeout' holds a request (60000)\n"
    "  --trickle-interval-ms MS  one body byte per interval for 'trickle'"
    " (500)\n"
    "  --connection-limit N    concurrent connections (4096; lowered, with\n"
    "                          a warning, to what RLIMIT_NOFILE allows)\n"
    "  --help                  print this help\n"
    "\n"
    "Per-request headers: X-Mock-Fault: KIND, X-Mock-Fault-Times: N with\n"
    "X-Mock-Fault-Key: K (fault only the first N requests with key K),\n"
    "X-Mock-Retry-After: V (429/503), X-Mock-Latency-Ms: MS,\n"
    "X-Mock-Echo: 1 (answer the request body verbatim, not the model's).\n"
    "SIGTERM or SIGINT stops it and prints a summary on stderr.\n";

enum {
    OPT_LISTEN = 256,
    OPT_PORT_FILE,
    OPT_THREADS,
    OPT_LATENCY_MS,
    OPT_LATENCY_DIST,
    OPT_LATENCY_MAX_MS,
    OPT_LATENCY_SIGMA,
    OPT_FAULT_RATE,
    OPT_SEED,
    OPT_MAX_BODY,
    OPT_HUGE_BYTES,
    OPT_EMBED_DIM,
    OPT_TIMEOUT_HOLD,
    OPT_TRICKLE_INTERVAL,
    OPT_CONNECTION_LIMIT,
    OPT_HELP,
};

static const struct option options[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"latency-ms", required_argument, NULL, OPT_LATENCY_MS},
    {"latency-dist", required_argument, NULL, OPT_LATENCY_DIST},
    {"latency-max-ms", required_argument, NULL, OPT_LATENCY_MAX_MS},
    {"latency-sigma", required_argument, NULL, OPT_LATENCY_SIGMA},
    {"fault-rate", required_argument, NULL, OPT_FAULT_RATE},
    {"seed", required_argument, NULL, OPT_SEED},
    {"max-body-bytes", required_argument, NULL, OPT_MAX_BODY},
    {"huge-bytes", required_argument, NULL, OPT_HUGE_BYTES},
    {"embed-dim", required_argument, NULL, OPT_EMBED_DIM},
    {"timeout-hold-ms", required_argument, NULL, OPT_TIMEOUT_HOLD},
    {"trickle-interval-ms", required_argument, NULL, OPT_TRICKLE_INTERVAL},
    {"connection-limit", required_argument, NULL, OPT_CONNECTION_LIMIT},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char *const dist_names[] = {"fixed", "uniform", "lognormal"};

/* Parse an unsigned decimal in [min, max]; -SL_EINVAL names the option. */
static int parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max,
                     uint64_t *out)
{
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        fprintf(stderr,
                "mock-infer: --%s '%s': expected a whole number from %llu "
                "to %llu\n",
                opt, s, (unsigned long long)min, (unsigned long long)max);
        return -SL_EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_double(const char *opt, const char *s, double min, double max,
                        double *out)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        fprintf(stderr,
                "mock-infer: --%s '%s': expected a number from %g to %g\n", opt,
                s, min, max);
        return -SL_EINVAL;
    }
    *out = v;
    return 0;
}

static int parse_fault_rate(struct sl_mock_config *cfg, const char *s)
{
    char kind[32];
    const char *eq = strchr(s, '=');
    enum sl_mock_fault fault;
    double p;

    if (!eq || (size_t)(eq - s) >= sizeof(kind)) {
        fprintf(stderr,
                "mock-infer: --fault-rate '%s': expected KIND=P, e.g. "
                "500=0.05\n",
                s);
        return -SL_EINVAL;
    }
    memcpy(kind, s, (size_t)(eq - s));
    kind[eq - s] = '\0';
    if (sl_mock_fault_parse(kind, &fault)) {
        fprintf(stderr,
                "mock-infer: --fault-rate: unknown fault '%s' (500, 503, "
                "429, timeout, trickle, bad-json, huge, reset)\n",
                kind);
        return -SL_EINVAL;
    }
    if (parse_double("fault-rate", eq + 1, 0.0, 1.0, &p))
        return -SL_EINVAL;
    cfg->fault_rate[fault] = p;
    return 0;
}

/* Returns 0, 1 for --help, or -SL_EINVAL (already reported). */
static int parse_args(struct sl_mock_config *cfg, int argc, char **argv)
{
    uint64_t v;
    int opt, err = 0;

    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        const char *name = opt >= OPT_LISTEN && opt <= OPT_HELP
                               ? options[opt - OPT_LISTEN].name
                               : "?";
        switch (opt) {
        case OPT_LISTEN:
            cfg->listen = optarg;
            break;
        case OPT_PORT_FILE:
            cfg->port_file = optarg;
            break;
        case OPT_THREADS:
            err = parse_u64(name, optarg, 1, 64, &v);
            cfg->threads = (unsigned)v;
            break;
        case OPT_LATENCY_MS:
            err = parse_u64(name, optarg, 0, 600000, &v);
            cfg->latency_ms = (unsigned)v;
            break;
        case OPT_LATENCY_DIST: {
            size_t i = 0;
            while (i < 3 && strcmp(optarg, dist_names[i]))
                i++;
            if (i == 3) {
                fprintf(stderr,
                        "mock-infer: --latency-dist '%s': expected fixed, "
                        "uniform or lognormal\n",
                        optarg);
                err = -SL_EINVAL;
            }
            cfg->dist = (enum sl_mock_dist)i;
            break;
        }
        case OPT_LATENCY_MAX_MS:
            err = parse_u64(name, optarg, 0, 600000, &v);
            cfg->latency_max_ms = (unsigned)v;
            break;
        case OPT_LATENCY_SIGMA:
            err = parse_double(name, optarg, 0.0, 10.0, &cfg->latency_sigma);
            break;
        case OPT_FAULT_RATE:
            err = parse_fault_rate(cfg, optarg);
            break;
        case OPT_SEED:
            err = parse_u64(name, optarg, 0, UINT64_MAX, &cfg->seed);
            break;
        case OPT_MAX_BODY:
            err = parse_u64(name, optarg, 1, (uint64_t)1 << 32, &v);
            cfg->max_body_bytes = (size_t)v;
            break;
        case OPT_HUGE_BYTES:
            err = parse_u64(name, optarg, 16, (uint64_t)1 << 40,
                            &cfg->huge_bytes);
            break;
        case OPT_EMBED_DIM:
            err = parse_u64(name, optarg, 1, 1024, &v);
            cfg->embed_dim = (unsigned)v;
            break;
        case OPT_TIMEOUT_HOLD:
            err = parse_u64(name, optarg, 0, 3600000, &v);
            cfg->timeout_hold_ms = (unsigned)v;
            break;
        case OPT_TRICKLE_INTERVAL:
            err = parse_u64(name, optarg, 1, 60000, &v);
            cfg->trickle_interval_ms = (unsigned)v;
            break;
        case OPT_CONNECTION_LIMIT:
            err = parse_u64(name, optarg, 1, 1000000, &v);
            cfg->connection_limit = (unsigned)v;
            break;
        case OPT_HELP:
        case 'h':
            return 1;
        default:
            fputs("Run 'mock-infer --help' for the options.\n", stderr);
            return -SL_EINVAL;
        }
        if (err)
            return err;
    }
    if (optind < argc) {
        fprintf(stderr, "mock-infer: unexpected argument '%s'\n", argv[optind]);
        return -SL_EINVAL;
    }

    double sum = 0.0;
    for (int i = 0; i < SL_MOCK_FAULT_COUNT; i++)
        sum += cfg->fault_rate[i];
    if (sum > 1.0 + 1e-9) {
        fprintf(stderr,
                "mock-infer: --fault-rate: the rates add up to %g, "
                "more than 1\n",
                sum);
        return -SL_EINVAL;
    }
    if (cfg->dist == SL_MOCK_DIST_UNIFORM &&
        cfg->latency_max_ms < cfg->latency_ms) {
        fprintf(stderr, "mock-infer: --latency-dist uniform needs "
                        "--latency-max-ms >= --latency-ms\n");
        return -SL_EINVAL;
    }
    return 0;
}

/* Make room for the connection limit in RLIMIT_NOFILE, or lower it. */
static void fit_fd_limit(struct sl_mock_config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->connection_limit + FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl))
        return;
    if (rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= want
                          ? want
                          : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < want) {
        unsigned limit = rl.rlim_cur > 2 * FD_RESERVE
                             ? (unsigned)(rl.rlim_cur - FD_RESERVE)
                             : FD_RESERVE;
        sl_log(SL_LOG_WARN, "mock-infer",
               "open-file limit %llu is too low for %u connections; "
               "serving at most %u",
               (unsigned long long)rl.rlim_cur, cfg->connection_limit, limit);
        cfg->connection_limit = limit;
    }
}

/* Write the port to PATH via a temporary file, so readers never see half. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -SL_EINVAL;
    f = fopen(tmp, "w");
    if (!f)
        return sl_err_from_errno(errno);
    fprintf(f, "%u\n", port);
    if (fclose(f) || rename(tmp, path)) {
        int err = sl_err_from_errno(errno);
        unlink(tmp);
        return err;
    }
    return 0;
}

static json_t *config_json(const struct sl_mock_config *cfg, unsigned port)
{
    json_t *rates = json_object();

    for (int i = 1; rates && i < SL_MOCK_FAULT_COUNT; i++)
        if (cfg->fault_rate[i] > 0.0)
            json_object_set_new(rates, sl_mock_fault_name(i),
                                json_real(cfg->fault_rate[i]));
    return json_pack(
        "{s:s, s:i, s:i, s:i, s:s, s:i, s:f, s:o*, s:I, s:I, "
        "s:i, s:i}",
        "listen", cfg->listen, "port", (int)port, "pid", (int)getpid(),
        "threads", (int)cfg->threads, "latency_dist", dist_names[cfg->dist],
        "latency_ms", (int)cfg->latency_ms, "latency_sigma", cfg->latency_sigma,
        "fault_rates", rates, "seed", (json_int_t)cfg->seed, "max_body_bytes",
        (json_int_t)cfg->max_body_bytes, "embed_dim", (int)cfg->embed_dim,
        "connection_limit", (int)cfg->connection_limit);
}

int main(int argc, char **argv)
{
    struct sl_mock_config cfg = {
        .listen = "127.0.0.1:8080",
        .threads = 2,
        .dist = SL_MOCK_DIST_FIXED,
        .latency_sigma = 0.5,
        .seed = 1,
        .max_body_bytes = 1024 * 1024,
        .huge_bytes = 64ULL * 1024 * 1024,
        .embed_dim = 8,
        .timeout_hold_ms = 60000,
        .trickle_interval_ms = 500,
        .connection_limit = 4096,
    };
    struct sl_mock_server *server;
    char errstr[512];
    sigset_t sigs;
    int err, sig = 0;

    err = parse_args(&cfg, argc, argv);
    if (err == 1) {
        fputs(usage, stdout);
        return 0;
    }
    if (err)
        return 2;
    sl_log_level_from_env();
    fit_fd_limit(&cfg);

    /* Signals are taken by sigwait() below; every thread inherits the
     * mask, so none of them is interrupted. */
    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    err = sl_mock_server_start(&server, &cfg, errstr, sizeof(errstr));
    if (err) {
        sl_log(SL_LOG_ERROR, "mock-infer", "%s; exiting", errstr);
        return 1;
    }
    unsigned port = sl_mock_server_port(server);
    if (cfg.port_file) {
        err = write_port_file(cfg.port_file, port);
        if (err) {
            sl_log(SL_LOG_ERROR, "mock-infer",
                   "cannot write --port-file %s (%s); exiting", cfg.port_file,
                   sl_strerror(err));
            sl_mock_server_stop(server, NULL);
            return 1;
        }
    }
    json_t *fields = config_json(&cfg, port);
    sl_log_fields(SL_LOG_INFO, "mock-infer", fields, "listening on port %u",
                  port);
    json_decref(fields);

    while (sigwait(&sigs, &sig) != 0)
        ;

    json_t *stats;
    sl_mock_server_stop(server, &stats);
    json_int_t total = json_integer_value(json_object_get(stats, "requests"));
    double mean =
        (double)json_integer_value(json_object_get(stats, "mean_latency_us")) /
        1000.0;
    if (stats)
        json_object_set_new(stats, "signal", json_string(strsignal(sig)));
    sl_log_fields(SL_LOG_INFO, "mock-infer", stats,
                  "stopped: %lld requests, mean latency %.3f ms",
                  (long long)total, mean);
    json_decref(stats);
    return 0;
}
