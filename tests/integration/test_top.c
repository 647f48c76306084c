/*
 * `sluice top` as an operator sees it: run in a tmux pane (a real
 * terminal), watching two replicas; the screen, read with capture-pane,
 * shows each replica's lag and messages in flight as their /metrics have
 * them, and a failing backend's breaker and errors by class; 'q' quits
 * with exit status 0 and leaves the terminal as it was (canonical mode,
 * echo, the main screen).
 */
#include "harness.h"

#define N 50 /* entries waiting in the stream */

static struct h_mock mock;
static char dir[64];     /* this run's files */
static char sluice[512]; /* the binary under test */
static char sock[96];    /* our own tmux server: -L sock */

/* Replica a: a Redis stream whose messages all wait on a slow model. */
static void write_slow(const char *path, const char *key, const char *group,
                       const char *table)
{
    char yaml[4096];
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: test-top\n"
             "source:\n"
             "  kind: redis-stream\n"
             "  redis:\n"
             "    url: redis://%s\n"
             "    key: %s\n"
             "    group: %s\n"
             "queue:\n  capacity: 8\n"
             "workers:\n  threads: 1\n  max_inflight: 3\n"
             "backends:\n"
             "  slow:\n"
             "    kind: http-json\n"
             "    url: %s/predict/sentiment\n"
             "    body: '{\"text\": {{text}}}'\n"
             "    result_pointer: /label\n"
             "    timeout_ms: 600000\n"
             "    headers:\n      X-Mock-Latency-Ms: \"300000\"\n"
             "steps:\n"
             "  - name: analyse\n"
             "    backends: [slow]\n"
             "sink:\n"
             "  postgres:\n"
             "    dsn: %s\n"
             "    table: %s\n"
             "    create_table: true\n"
             "http:\n  listen: 127.0.0.1:0\n",
             H_REDIS, key, group, mock.url, H_PG_DSN, table);
    h_write_file(path, yaml);
}

/* Replica b: a gateway whose one backend refuses connections. */
static void write_down(const char *path)
{
    h_write_file(path, "version: 1\n"
                       "name: test-top-gateway\n"
                       "gateway:\n  enabled: true\n"
                       "backends:\n"
                       "  down:\n"
                       "    kind: http-json\n"
                       "    url: http://127.0.0.1:1/predict\n"
                       "    body: '{\"text\": {{text}}}'\n"
                       "    retry:\n      max_attempts: 1\n"
                       "    breaker:\n      failures: 1\n"
                       "      open_ms: 3600000\n"
                       "steps:\n"
                       "  - name: analyse\n"
                       "    backends: [down]\n"
                       "http:\n  listen: 127.0.0.1:0\n");
}

static void tmux(const char *args, char *out, size_t size)
{
    char cmd[4096];
    snprintf(cmd, sizeof(cmd), "tmux -L %s %s 2>&1", sock, args);
    int rc = h_shell(cmd, out, size);
    if (rc != 0)
        fail_msg("%s: exit %d: %s", cmd, rc, out);
}

/* The screen's line that starts with 'word' followed by a space. */
static bool screen_line(const char *screen, const char *word, char *line,
                        size_t size)
{
    size_t n = strlen(word);
    for (const char *s = screen; s && *s;) {
        const char *eol = strchr(s, '\n');
        size_t len = eol ? (size_t)(eol - s) : strlen(s);
        if (len > n && !strncmp(s, word, n) && s[n] == ' ') {
            snprintf(line, size, "%.*s", (int)len, s);
            return true;
        }
        s = eol ? eol + 1 : NULL;
    }
    return false;
}

/* The first sample of 'name' in 'text' with a nonzero value: its class. */
static bool error_class(const char *text, char *cls, size_t size, double *v)
{
    const char *name = "sluice_backend_errors_total{backend=\"down\",class=\"";
    for (const char *s = strstr(text, name); s; s = strstr(s + 1, name)) {
        const char *c = s + strlen(name), *q = strchr(c, '"');
        *v = strtod(strstr(s, "} ") + 2, NULL);
        if (q && *v > 0) {
            snprintf(cls, size, "%.*s", (int)(q - c), c);
            return true;
        }
    }
    return false;
}

static void test_top_two_replicas(void **state)
{
    (void)state;
    char key[96], group[96], table[96], ya[256], yb[256], cmd[2048];
    char out[8192], screen[16384], line[512], cls[64], want[256];
    struct h_proc a, b;

    h_unique(key, sizeof(key), "top");
    h_unique(group, sizeof(group), "top_g");
    h_unique(table, sizeof(table), "top_t");
    h_produce("redis://%s/%s --generate %d", H_REDIS, key, N);
    snprintf(ya, sizeof(ya), "%s/a.yaml", dir);
    snprintf(yb, sizeof(yb), "%s/b.yaml", dir);
    write_slow(ya, key, group, table);
    write_down(yb);
    int pa = h_sluice_start(&a, dir, ya, "top-a");
    int pb = h_sluice_start(&b, dir, yb, "top-b");
    struct h_reply rep;
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/process", pb);
    h_http(url, "{\"text\": \"hello\"}", "Content-Type: application/json",
           &rep);
    assert_int_equal(rep.status, 502);
    free(rep.body);

    /* Our own tmux server, a 160x40 terminal running top, then a shell
     * line that reports how it exited and the terminal's modes. */
    snprintf(cmd, sizeof(cmd),
             "new-session -d -x 160 -y 40 \"%s top 127.0.0.1:%d "
             "http://127.0.0.1:%d/metrics; echo EXIT=\\$?; stty -a | tr ' ;' "
             "'\\n\\n' | grep -x -e icanon -e -icanon -e echo -e -echo | "
             "sed 's/^/MODE=/'; exec sleep 600\"",
             sluice, pa, pb);
    tmux(cmd, out, sizeof(out));

    /* Wait until the screen shows what /metrics says; the numbers of a
     * are steady once its queue and workers are full. */
    int64_t end = h_now_ms() + 60000;
    for (;;) {
        assert_true(h_now_ms() < end);
        h_pause();
        tmux("capture-pane -p", screen, sizeof(screen));
        char *text = NULL;
        assert_int_equal(h_get(pa, "/metrics", &text), 200);
        int c1 = 0, c2 = 0;
        double lag = h_prom_sum(text, "sluice_source_lag_messages", &c1) +
                     h_prom_sum(text, "sluice_source_pending_messages", &c2);
        double inflight = h_prom_value(text, "sluice_inflight");
        free(text);
        if (!c1 || !c2 || !screen_line(screen, "top-a", line, sizeof(line)))
            continue;
        char name[64], in[32], o[32], l[32], f[32];
        if (sscanf(line, "%63s %31s %31s %31s %31s", name, in, o, l, f) != 5)
            continue;
        if (strtod(l, NULL) != lag || strtod(f, NULL) != inflight ||
            strcmp(in, "-") == 0) /* rates from the second frame on */
            continue;
        assert_true(lag == N && inflight == 3); /* nothing acked */
        break;
    }
    size_t len = strlen(screen); /* what an operator saw, for the log */
    while (len && screen[len - 1] == '\n')
        len--;
    printf("%.*s\n", (int)len, screen);
    assert_non_null(strstr(screen, "2 replicas"));
    assert_true(screen_line(screen, "top-b", line, sizeof(line)));

    /* b's backend: breaker open, its errors under their class. */
    char *text = NULL;
    double errors = 0;
    assert_int_equal(h_get(pb, "/metrics", &text), 200);
    assert_true(error_class(text, cls, sizeof(cls), &errors));
    assert_true(h_prom_value(text, "sluice_backend_circuit_state{backend="
                                   "\"down\"}") == 1);
    free(text);
    snprintf(want, sizeof(want), "%s %.0f (", cls, errors);
    bool shown = false;
    for (const char *s = screen; s && *s && !shown;) {
        if (screen_line(s, "top-b", line, sizeof(line)) &&
            strstr(line, " down ") && strstr(line, " open ") &&
            strstr(line, want))
            shown = true;
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (!shown)
        fail_msg("no line 'top-b down open ... %s' on the screen:\n%s", want,
                 screen);

    /* q quits: exit 0, canonical mode and echo back, the main screen. */
    tmux("send-keys q", out, sizeof(out));
    end = h_now_ms() + 10000;
    for (;;) {
        tmux("capture-pane -p", screen, sizeof(screen));
        if (strstr(screen, "MODE=") && strstr(screen, "EXIT="))
            break;
        assert_true(h_now_ms() < end);
        h_pause();
    }
    if (!strstr(screen, "EXIT=0") || !strstr(screen, "MODE=icanon") ||
        !strstr(screen, "MODE=echo") || strstr(screen, "REPLICA"))
        fail_msg("after q:\n%s", screen);
    h_kill(&a); /* its messages wait on the model for minutes */
    h_sluice_stop(&b, 30000);
}

/* Usage errors exit 2 with one line and a hint; --once says who is down. */
static void test_top_cli(void **state)
{
    (void)state;
    char cmd[700], out[4096];

    snprintf(cmd, sizeof(cmd), "%s top --interval 5 2>&1", sluice);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 2);
    assert_string_equal(out, "sluice top: --interval wants milliseconds from "
                             "100 to 60000, not '5'\n"
                             "Try 'sluice top --help'.\n");
    snprintf(cmd, sizeof(cmd), "%s help top", sluice);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "Usage: sluice top [options] [URL...]"));
    snprintf(cmd, sizeof(cmd), "%s --help", sluice);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\n  top [URL...]     a live view"));
    /* Nothing listens on port 1: one plain view, exit 1. */
    snprintf(cmd, sizeof(cmd), "%s top --once --interval 100 127.0.0.1:1 2>&1",
             sluice);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "127.0.0.1:1 "));
    assert_non_null(strstr(out, "unreachable: "));
    assert_null(strchr(out, '\033'));
}

static int setup(void **state)
{
    (void)state;
    char out[256];
    h_require_postgres();
    h_require_redis();
    if (h_shell("command -v tmux", out, sizeof(out)) != 0) {
        if (h_ci())
            fail_msg("tmux is missing: scripts/setup installs it");
        printf("SKIPPED: tmux is not installed (scripts/setup installs it)\n");
        exit(H_SKIP_RC);
    }
    h_unique(sock, sizeof(sock), "sluice_top");
    return h_group_setup(0, dir, sizeof(dir), sluice, sizeof(sluice), &mock);
}

static int teardown(void **state)
{
    (void)state;
    char out[256];
    char cmd[512];
    /* kill-server leaves its socket file behind: remove it too. */
    snprintf(cmd, sizeof(cmd),
             "tmux -L %s kill-server 2>/dev/null; rm -f \"${TMUX_TMPDIR:-/tmp}"
             "/tmux-$(id -u)/%s\"",
             sock, sock);
    h_shell(cmd, out, sizeof(out));
    return h_group_teardown(&mock);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_top_cli),
        cmocka_unit_test(test_top_two_replicas),
    };
    return h_status(cmocka_run_group_tests(tests, setup, teardown));
}
