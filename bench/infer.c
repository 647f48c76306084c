/*
 * Inference engine throughput against mock-infer: requests/s through N
 * workers x max_inflight beside wrk on the same mock, 20 ms latency with
 * 256 in flight against the 12,800 req/s ceiling, and embeddings
 * messages/s with batch_max 64.  Prints a markdown table.
 * Usage: bench_infer [seconds]  (mock-infer next to this binary).
 */
#include "clock.h"
#include "config.h"
#include "infer.h"
#include "log.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[64];

static pid_t start_mock(const char *bin, int latency_ms, char *dir)
{
    char port_file[128], lat[16];
    unsigned port = 0;

    snprintf(port_file, 128, "%s/port", dir);
    unlink(port_file);
    snprintf(lat, sizeof(lat), "%d", latency_ms);
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, STDERR_FILENO);
        execl(bin, bin, "--listen", "127.0.0.1:0", "--port-file", port_file,
              "--threads", "2", "--latency-ms", lat, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *f = fopen(port_file, "r");
        if (f) {
            int ok = fscanf(f, "%u", &port) == 1 && port;
            fclose(f);
            if (ok)
                break;
        }
        usleep(10000);
    }
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
    usleep(50000);
    return pid;
}

static void stop_mock(pid_t pid)
{
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

struct run {
    struct sl_infer *inf; /* shared engine */
    int inflight;         /* per worker */
    double seconds;       /* duration */
    long done;            /* messages finished OK */
    long failed;          /* messages failed */
};

static void on_done(void *arg, void *item, const struct sl_infer_result *res)
{
    struct run *r = arg;
    (void)item;
    if (res->status == SL_INFER_OK)
        r->done++;
    else
        r->failed++;
}

static void *worker(void *arg)
{
    struct run *r = arg;
    char errstr[256];
    struct sl_infer_worker *w =
        sl_infer_worker_new(r->inf, r->inflight, errstr, sizeof(errstr));
    json_t *doc = json_pack("{s:s}", "text", "I love this, it is great");
    int64_t end = sl_mono_ms() + (int64_t)(r->seconds * 1000);
    int n = 0;

    while (sl_mono_ms() < end) {
        while (n < r->inflight) {
            sl_infer_worker_submit_json(w, doc, NULL, on_done, r);
            n++;
        }
        n = sl_infer_worker_progress(w, 5);
    }
    while (sl_infer_worker_progress(w, 5) > 0)
        ;
    json_decref(doc);
    sl_infer_worker_destroy(w);
    return NULL;
}

static double engine_rate(const char *yaml_fmt, int threads, int inflight,
                          double seconds, long *failedp)
{
    char yaml[2048], errstr[256];
    struct sl_config *cfg;
    snprintf(yaml, sizeof(yaml), "%s", yaml_fmt);
    char *at = strstr(yaml, "@B");
    if (at) {
        char rest[2048];
        snprintf(rest, sizeof(rest), "%s", at + 2);
        snprintf(at, sizeof(yaml) - (size_t)(at - yaml), "%s%s", base, rest);
    }
    if (sl_config_parse("bench.yaml", yaml, strlen(yaml), &cfg, NULL))
        return -1;
    struct sl_infer *inf = sl_infer_new(cfg, errstr, sizeof(errstr));
    struct run runs[16];
    pthread_t tids[16];
    int64_t t0 = sl_mono_ms();
    for (int i = 0; i < threads; i++) {
        runs[i] =
            (struct run){.inf = inf, .inflight = inflight, .seconds = seconds};
        pthread_create(&tids[i], NULL, worker, &runs[i]);
    }
    long total = 0, failed = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(tids[i], NULL);
        total += runs[i].done;
        failed += runs[i].failed;
    }
    double secs = (double)(sl_mono_ms() - t0) / 1000.0;
    sl_infer_destroy(inf);
    sl_config_destroy(cfg);
    *failedp = failed;
    return (double)total / secs;
}

static double wrk_rate(const char *dir, int conns, int seconds)
{
    char lua[160], cmd[512], line[256];
    double rate = -1;

    snprintf(lua, sizeof(lua), "%s/post.lua", dir);
    FILE *f = fopen(lua, "w");
    if (!f)
        return -1;
    fputs("wrk.method = \"POST\"\nwrk.body = "
          "'{\"text\": \"I love this, it is great\"}'\n"
          "wrk.headers[\"Content-Type\"] = \"application/json\"\n",
          f);
    fclose(f);
    snprintf(cmd, sizeof(cmd),
             "wrk -t2 -c%d -d%ds -s %s %s/predict/sentiment 2>/dev/null", conns,
             seconds, lua, base);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    while (fgets(line, sizeof(line), p))
        if (sscanf(line, "Requests/sec: %lf", &rate) == 1)
            break;
    pclose(p);
    unlink(lua);
    return rate;
}

#define HTTP_YAML                                                              \
    "version: 1\nname: b\ngateway: {enabled: true}\nbackends:\n"               \
    "  s:\n    kind: http-json\n    url: @B/predict/sentiment\n"               \
    "    body: '{\"text\": {{text}}}'\n    result_pointer: /label\n"           \
    "    max_concurrency: 4096\n"                                              \
    "steps:\n  - name: s\n    backends: [s]\n"
#define EMB_YAML                                                               \
    "version: 1\nname: b\ngateway: {enabled: true}\nbackends:\n"               \
    "  e:\n    kind: openai-embeddings\n    url: @B/v1\n    model: m\n"        \
    "    batch_max: 64\n    batch_wait_ms: 2\n    max_concurrency: 4096\n"     \
    "steps:\n  - name: s\n    backends: [e]\n"

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 3.0;
    char bin[4096], dir[] = "/tmp/sl-bench-infer.XXXXXX", self[4096];
    long failed;

    snprintf(self, sizeof(self), "%s", argv[0]);
    snprintf(bin, sizeof(bin), "%s/mock-infer", dirname(self));
    if (!mkdtemp(dir))
        return 1;
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    sl_log_set_level(SL_LOG_ERROR);

    printf("| scenario | workers x in flight | result | reference |\n");
    printf("| --- | --- | --- | --- |\n");
    pid_t pid = start_mock(bin, 0, dir);
    double eng = engine_rate(HTTP_YAML, 2, 32, seconds, &failed);
    double wrk = wrk_rate(dir, 64, (int)(seconds + 0.5));
    printf("| http-json, 0 ms latency | 2 x 32 | %.0f req/s (%ld failed) | "
           "wrk -c64: %.0f req/s (engine/wrk %.2f) |\n",
           eng, failed, wrk, wrk > 0 ? eng / wrk : 0.0);
    double emb = engine_rate(EMB_YAML, 2, 256, seconds, &failed);
    printf("| embeddings, batch_max 64, 0 ms | 2 x 256 | %.0f msg/s (%ld "
           "failed) | - |\n",
           emb, failed);
    stop_mock(pid);

    pid = start_mock(bin, 20, dir);
    eng = engine_rate(HTTP_YAML, 2, 128, seconds, &failed);
    printf("| http-json, 20 ms latency | 2 x 128 = 256 | %.0f req/s (%ld "
           "failed) | theoretical 12800 req/s (%.0f%%) |\n",
           eng, failed, eng / 128.0);
    stop_mock(pid);
    unlink(dir);
    rmdir(dir);
    curl_global_cleanup();
    return 0;
}
