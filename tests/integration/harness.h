/*
 * Helpers for integration tests that drive the built binaries: start
 * sluice and mock-infer as child processes, wait on conditions with
 * deadlines, talk HTTP (curl) and PostgreSQL (libpq), check Prometheus
 * text.  Header-only (tests are single-file executables): all static.
 */
#ifndef SL_TEST_HARNESS_H
#define SL_TEST_HARNESS_H

#include "cmocka_shim.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <libpq-fe.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

/*
 * The shared servers' addresses (scripts/services); each port can be moved
 * with SLUICE_PG_PORT, SLUICE_REDIS_PORT or SLUICE_KAFKA_PORT, as
 * tests/fault/faultlib.py does.
 */
#define H_PG_PORT h_port("SLUICE_PG_PORT", 55432)
#define H_REDIS_PORT h_port("SLUICE_REDIS_PORT", 56379)
#define H_KAFKA_PORT h_port("SLUICE_KAFKA_PORT", 59092)
#define H_PG_DSN h_pg_dsn() /* "host=127.0.0.1 port=55432 ..." */
#define H_KAFKA h_kafka()   /* "127.0.0.1:59092" */
#define H_REDIS h_redis()   /* "127.0.0.1:56379" */
#define H_POLL_MS 20        /* between two looks at a condition */
#define H_SKIP_RC 77        /* exit status CTest counts as Skipped */

/* ---- time ---- */

/* Monotonic time in microseconds (durations) and milliseconds (deadlines). */
static inline int64_t h_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t h_now_ms(void)
{
    return h_now_us() / 1000;
}

/* The pause between two looks at a condition (never synchronisation). */
static inline void h_pause(void)
{
    struct timespec ts = {0, H_POLL_MS * 1000000L};

    nanosleep(&ts, NULL);
}

/*
 * Let 'ms' pass on purpose (a breaker's open_ms, a rate window), where
 * the test is about time itself; never to wait for a condition.
 */
static inline void h_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* A name no other run or test uses: prefix_pid_time_counter. */
static inline void h_unique(char *buf, size_t size, const char *prefix)
{
    static int seq;
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s_%ld_%lld_%d", prefix, (long)getpid(),
             (long long)(ts.tv_sec % 100000) * 1000 + ts.tv_nsec / 1000000,
             seq++);
}

/* ---- servers, and tests that cannot run here ---- */

/* The port in environment variable 'env', or 'def'. */
static inline int h_port(const char *env, int def)
{
    const char *v = getenv(env);
    int port = v && *v ? atoi(v) : 0;

    return port > 0 && port < 65536 ? port : def;
}

static inline const char *h_pg_dsn(void)
{
    static char dsn[128];

    snprintf(dsn, sizeof(dsn),
             "host=127.0.0.1 port=%d dbname=sluice user=postgres", H_PG_PORT);
    return dsn;
}

static inline const char *h_kafka(void)
{
    static char addr[64];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", H_KAFKA_PORT);
    return addr;
}

static inline const char *h_redis(void)
{
    static char addr[64];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", H_REDIS_PORT);
    return addr;
}

/* True under CI: CI=true (or 1), or SLUICE_REQUIRE_SERVERS=1 (.ci/run
 * sets it). */
static inline bool h_ci(void)
{
    const char *ci = getenv("CI"), *req = getenv("SLUICE_REQUIRE_SERVERS");

    return (ci && (!strcasecmp(ci, "true") || !strcmp(ci, "1"))) ||
           (req && !strcmp(req, "1"));
}

/* True when a TCP connection to 127.0.0.1:'port' opens within 2 s. */
static inline bool h_tcp_open(int port)
{
    struct sockaddr_in sin = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    bool ok = false;

    if (fd < 0)
        return false;
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0) {
        ok = true;
    } else if (errno == EINPROGRESS) {
        struct pollfd pfd = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        ok = poll(&pfd, 1, 2000) == 1 &&
             getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && !err;
    }
    close(fd);
    return ok;
}

/*
 * A test executable's prerequisite (a server, a tool, a venv): when 'ok'
 * is false, under CI (CI=true, or SLUICE_REQUIRE_SERVERS=1: see h_ci()) the
 * executable fails with "FAILED: <what>"; otherwise it prints "SKIPPED:
 * <what>" and exits H_SKIP_RC, which CTest reports as Skipped, never as
 * passed.  'hint' says how to provide it.  Call before any test runs.
 */
static inline void h_require(bool ok, const char *what, const char *hint)
{
    if (ok)
        return;
    fflush(stdout);
    if (h_ci()) {
        fprintf(stderr,
                "FAILED: %s (CI=true or SLUICE_REQUIRE_SERVERS=1: a missing "
                "prerequisite fails the test; %s)\n",
                what, hint);
        exit(1);
    }
    printf("SKIPPED: %s (%s; under CI=true this test fails)\n", what, hint);
    fflush(stdout);
    exit(H_SKIP_RC);
}

/* h_require() for a server of scripts/services listening on 'port'. */
static inline void h_require_server(const char *name, int port)
{
    char what[160];

    snprintf(what, sizeof(what), "%s not reachable on 127.0.0.1:%d", name,
             port);
    h_require(h_tcp_open(port), what, "scripts/services start starts it");
}

static inline void h_require_postgres(void)
{
    h_require_server("PostgreSQL", H_PG_PORT);
}

static inline void h_require_redis(void)
{
    h_require_server("Redis", H_REDIS_PORT);
}

static inline void h_require_kafka(void)
{
    h_require_server("Kafka", H_KAFKA_PORT);
}

/* How many tests h_skip() skipped in this executable. */
static inline int *h_skipped(void)
{
    static int n;

    return &n;
}

/*
 * Skip the running test for a reason that is not a missing server (no
 * pg_ctl data directory, no network namespace, a tool not installed):
 * prints "SKIPPED: <reason>" and counts it, so that h_status() makes the
 * executable report Skipped instead of passed.  Expands to a statement.
 */
#define h_skip(...)                                                            \
    do {                                                                       \
        printf("SKIPPED: ");                                                   \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        fflush(stdout);                                                        \
        ++*h_skipped();                                                        \
        skip();                                                                \
    } while (0)

/*
 * main()'s exit status from cmocka_run_group_tests()'s 'failed': failures
 * win; otherwise H_SKIP_RC when h_skip() skipped a test, else 0.
 */
static inline int h_status(int failed)
{
    return failed ? failed : *h_skipped() ? H_SKIP_RC : 0;
}

/* ---- files ---- */

static inline void h_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/*
 * The whole file, NUL-terminated (free()), its length in *lenp when
 * 'lenp' is not NULL (it may hold NUL bytes); NULL when it cannot be
 * opened.
 */
static inline char *h_read_file_len(const char *path, size_t *lenp)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!f)
        return NULL;
    do {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    buf[len] = '\0';
    fclose(f);
    if (lenp)
        *lenp = len;
    return buf;
}

/* The whole file, NUL-terminated (free()), or NULL. */
static inline char *h_read_file(const char *path)
{
    return h_read_file_len(path, NULL);
}

/* A fresh temporary directory for one test's files. */
static inline void h_tmpdir(char *buf, size_t size)
{
    snprintf(buf, size, "/tmp/sl-test.XXXXXX");
    assert_non_null(mkdtemp(buf));
}

/* ---- processes ---- */

struct h_proc {
    pid_t pid;     /* running child, or 0 once reaped */
    int status;    /* exit status once reaped; 128 + signal if killed */
    char log[512]; /* its stdout and stderr */
};

static inline const char *h_bindir(void)
{
    const char *d = getenv("SLUICE_BINARY_DIR");

    return d && *d ? d : ".";
}

/* Start argv[0] (a path) with stdout and stderr into 'log'. */
static inline void h_spawn(struct h_proc *p, const char *log,
                           char *const argv[])
{
    pid_t parent = getpid();

    memset(p, 0, sizeof(*p));
    snprintf(p->log, sizeof(p->log), "%s", log);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* die with the test */
        if (getppid() != parent)
            _exit(127);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
        }
        execv(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
}

/* Reap 'p' if it exited.  True once it has. */
static inline bool h_exited(struct h_proc *p)
{
    int st;

    if (p->pid <= 0)
        return true;
    if (waitpid(p->pid, &st, WNOHANG) != p->pid)
        return false;
    p->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    p->pid = 0;
    return true;
}

/* Wait up to 'ms' for 'p' to exit.  True when it did. */
static inline bool h_wait_exit(struct h_proc *p, int64_t ms)
{
    int64_t end = h_now_ms() + ms;

    while (!h_exited(p)) {
        if (h_now_ms() > end)
            return false;
        h_pause();
    }
    return true;
}

static inline void h_kill(struct h_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

/* Print the last 'max' bytes of a process log (for failures). */
static inline void h_dump_log(const char *log, size_t max)
{
    char *text = h_read_file(log);

    if (!text)
        return;
    size_t len = strlen(text);
    print_message("---- %s ----\n%s\n", log,
                  len > max ? text + len - max : text);
    free(text);
}

/*
 * Wait for "listening on http://HOST:PORT" in a sluice log; returns the
 * port, or 0 when the process exited or the deadline passed.
 */
static inline int h_wait_listen(struct h_proc *p, int64_t ms)
{
    int64_t end = h_now_ms() + ms;

    for (;;) {
        char *text = h_read_file(p->log);
        const char *at = text ? strstr(text, "listening on http://") : NULL;
        if (at) {
            const char *colon = strchr(at + 20, ':');
            int port = colon ? atoi(colon + 1) : 0;
            free(text);
            return port;
        }
        free(text);
        if (h_exited(p) || h_now_ms() > end)
            return 0;
        h_pause();
    }
}

/*
 * Start `<bindir>/sluice run yaml --replica-id id --listen 127.0.0.1:0`
 * with its log under 'dir'; returns its HTTP port.  Fails the test when it
 * does not listen within 30 s.
 */
static inline int h_sluice_start(struct h_proc *p, const char *dir,
                                 const char *yaml, const char *id)
{
    char bin[512], log[256];
    static int seq; /* one log per process: ports are read from it */

    snprintf(bin, sizeof(bin), "%s/sluice", h_bindir());
    snprintf(log, sizeof(log), "%s/sluice-%d-%s.log", dir, ++seq, id);
    char *argv[] = {bin,        "run",      (char *)yaml,  "--replica-id",
                    (char *)id, "--listen", "127.0.0.1:0", NULL};
    h_spawn(p, log, argv);
    int port = h_wait_listen(p, 30000);
    if (!port) {
        h_dump_log(log, 4000);
        fail_msg("sluice did not start");
    }
    return port;
}

/*
 * SIGTERM 'p' and wait up to limit_ms + 10 s; returns how long the drain
 * took.  Asserts exit status 0.
 */
static inline int64_t h_sluice_stop(struct h_proc *p, int64_t limit_ms)
{
    int64_t t0 = h_now_ms();

    kill(p->pid, SIGTERM);
    if (!h_wait_exit(p, limit_ms + 10000)) {
        h_dump_log(p->log, 4000);
        h_kill(p);
        fail_msg("sluice did not exit after SIGTERM");
    }
    int64_t ms = h_now_ms() - t0;
    if (p->status != 0)
        h_dump_log(p->log, 4000);
    assert_int_equal(p->status, 0);
    return ms;
}

/*
 * The last line of 'out', which must end with a line break (cut here, so
 * that the line ends the string).
 */
static inline const char *h_last_line(char *out)
{
    size_t len = strlen(out);

    assert_true(len > 0 && out[len - 1] == '\n');
    out[len - 1] = '\0';
    const char *last = strrchr(out, '\n');
    return last ? last + 1 : out;
}

/* Run a shell command; its exit status, output (up to size) in 'out'. */
static inline int h_shell(const char *cmd, char *out, size_t size)
{
    FILE *fp = popen(cmd, "r");
    size_t n = 0;

    assert_non_null(fp);
    out[0] = '\0';
    while (n + 1 < size && fgets(out + n, (int)(size - n), fp))
        n = strlen(out);
    if (n + 1 >= size) { /* drain the rest so the child can finish */
        char sink[4096];
        while (fgets(sink, sizeof(sink), fp))
            ;
    }
    int st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/*
 * `<bindir>/sluice produce TARGET OPTIONS`, the words from 'fmt' (quote
 * what the shell must not expand, such as a '?' in a target); fails the
 * test, with what it printed, unless it exits 0.
 */
static inline void h_produce(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static inline void h_produce(const char *fmt, ...)
{
    char words[1024], cmd[2048], out[2048];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(words, sizeof(words), fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof(cmd), "%s/sluice produce %s 2>&1", h_bindir(), words);
    int rc = h_shell(cmd, out, sizeof(out));
    if (rc != 0)
        fail_msg("%s: exit %d: %s", cmd, rc, out);
}

/* ---- mock-infer ---- */

struct h_mock {
    struct h_proc proc; /* the server */
    char dir[64];       /* its port file lives here */
    int port;           /* bound port */
    char url[64];       /* "http://127.0.0.1:PORT" */
};

/*
 * Start mock-infer with 'args' (NULL-terminated extra options, or NULL);
 * 0 once it listens, -1 when it did not start within 10 s.
 */
static inline int h_mock_start_args(struct h_mock *m, const char *const *args)
{
    char bin[1024], port_file[128], log[128];
    int64_t end = h_now_ms() + 10000;
    char *argv[32] = {
        bin,         "--listen", "127.0.0.1:0", "--port-file", port_file,
        "--threads", "4"};
    size_t argc = 7;

    h_tmpdir(m->dir, sizeof(m->dir));
    snprintf(bin, sizeof(bin), "%s/mock-infer", h_bindir());
    snprintf(port_file, sizeof(port_file), "%s/port", m->dir);
    snprintf(log, sizeof(log), "%s/mock.log", m->dir);
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(argc + 1 < sizeof(argv) / sizeof(argv[0]));
        argv[argc++] = (char *)args[i];
    }
    argv[argc] = NULL;
    h_spawn(&m->proc, log, argv);
    for (;;) {
        FILE *f = fopen(port_file, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port > 0) {
            m->port = port;
            snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", port);
            return 0;
        }
        if (h_exited(&m->proc) || h_now_ms() > end) {
            h_dump_log(log, 2000);
            h_kill(&m->proc);
            return -1;
        }
        h_pause();
    }
}

static inline int h_mock_start(struct h_mock *m)
{
    return h_mock_start_args(m, NULL);
}

static inline void h_mock_stop(struct h_mock *m)
{
    h_kill(&m->proc);
}

/* Stop 'm' and remove its directory (the port file and the log). */
static inline void h_mock_cleanup(struct h_mock *m)
{
    char path[128];

    h_mock_stop(m);
    snprintf(path, sizeof(path), "%s/port", m->dir);
    unlink(path);
    snprintf(path, sizeof(path), "%s/mock.log", m->dir);
    unlink(path);
    rmdir(m->dir);
}

/* ---- a test group of `sluice run` end to end ---- */

/*
 * mock-infer's sentiment backend as lines under "backends:" of a test
 * pipeline: a printf format fragment whose one %s is mock-infer's URL
 * (h_mock.url); more keys of the backend may follow it.
 */
#define H_SENTIMENT_BACKEND                                                    \
    "  sentiment:\n"                                                           \
    "    kind: http-json\n"                                                    \
    "    url: %s/predict/sentiment\n"                                          \
    "    body: '{\"text\": {{text}}}'\n"                                       \
    "    result_pointer: /label\n"

/*
 * The "sink:" section of a test pipeline into buf[size]: PostgreSQL at
 * H_PG_DSN, table 'table' and its dead letters 'table'_dead (created when
 * missing), then the lines 'extra' under postgres ("    flush_ms: 10\n";
 * "" for none).
 */
static inline void h_sink_yaml(char *buf, size_t size, const char *table,
                               const char *extra)
{
    snprintf(buf, size,
             "sink:\n"
             "  postgres:\n"
             "    dsn: %s\n"
             "    table: %s\n"
             "    dead_letter_table: %s_dead\n"
             "    create_table: true\n%s",
             H_PG_DSN, table, table, extra);
}

#define H_NEED_PG 1u    /* h_require_postgres() */
#define H_NEED_REDIS 2u /* h_require_redis() */
#define H_NEED_KAFKA 4u /* h_require_kafka() */

/*
 * Group set-up: the servers in 'need' (H_NEED_*) must answer; a fresh
 * directory for the group's files in dir[dir_size]; the binary under test
 * in sluice[sluice_size] unless it is NULL; curl ready; and mock-infer
 * started in 'mock' unless it is NULL.  0, or -1 when mock-infer did not start.
 */
static inline int h_group_setup(unsigned need, char *dir, size_t dir_size,
                                char *sluice, size_t sluice_size,
                                struct h_mock *mock)
{
    if (need & H_NEED_PG)
        h_require_postgres();
    if (need & H_NEED_REDIS)
        h_require_redis();
    if (need & H_NEED_KAFKA)
        h_require_kafka();
    h_tmpdir(dir, dir_size);
    if (sluice)
        snprintf(sluice, sluice_size, "%s/sluice", h_bindir());
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return mock && h_mock_start(mock) < 0 ? -1 : 0;
}

/* Group tear-down after h_group_setup() with the same 'mock'. */
static inline int h_group_teardown(struct h_mock *mock)
{
    if (mock)
        h_mock_stop(mock);
    curl_global_cleanup();
    return 0;
}
/*
 * The mock's sentiment rule (cmd/mock-infer/model.c, README): count words
 * (runs of non-space) that, trimmed of ASCII punctuation and lowercased,
 * are in the positive or negative list.
 */
static inline const char *h_mock_sentiment(const char *text)
{
    static const char *const pos[] = {"good", "great",    "excellent",
                                      "love", "happy",    "amazing",
                                      "best", "wonderful"};
    static const char *const neg[] = {"bad", "terrible", "awful", "hate",
                                      "sad", "worst",    "poor",  "horrible"};
    long diff = 0;
    const char *s = text;

    for (;;) {
        while (*s && strchr(" \t\n\v\f\r", *s))
            s++;
        if (!*s)
            break;
        const char *w = s;
        while (*s && !strchr(" \t\n\v\f\r", *s))
            s++;
        size_t len = (size_t)(s - w);
        while (len && ispunct((unsigned char)*w)) {
            w++;
            len--;
        }
        while (len && ispunct((unsigned char)w[len - 1]))
            len--;
        for (int list = 0; list < 2; list++) {
            const char *const *words = list ? neg : pos;
            for (int i = 0; i < 8; i++)
                if (strlen(words[i]) == len && !strncasecmp(words[i], w, len))
                    diff += list ? -1 : 1;
        }
    }
    return diff > 0 ? "positive" : diff < 0 ? "negative" : "neutral";
}

/* ---- HTTP ---- */

struct h_reply {
    long status;          /* 0 when the transfer failed */
    char *body;           /* NUL-terminated; free() */
    size_t len;           /* body bytes */
    char retry_after[32]; /* Retry-After, or "" */
    char allow[64];       /* Allow, or "" */
    char ctype[128];      /* Content-Type, or "" */
};

static inline size_t h_on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct h_reply *rep = arg;
    size_t n = size * nmemb;
    char *b = realloc(rep->body, rep->len + n + 1);

    if (!b)
        return 0;
    memcpy(b + rep->len, data, n);
    rep->body = b;
    rep->len += n;
    rep->body[rep->len] = '\0';
    return n;
}

/* Copy header 'name' (with its colon) of 'data' into 'out' if it is it. */
static inline void h_header_value(const char *data, size_t n, const char *name,
                                  char *out, size_t size)
{
    size_t len = strlen(name), j = 0;

    if (n <= len || strncasecmp(data, name, len))
        return;
    while (len < n && data[len] == ' ')
        len++;
    while (len < n && data[len] != '\r' && data[len] != '\n' && j + 1 < size)
        out[j++] = data[len++];
    out[j] = '\0';
}

static inline size_t h_on_header(char *data, size_t size, size_t nmemb,
                                 void *arg)
{
    struct h_reply *rep = arg;
    size_t n = size * nmemb;

    h_header_value(data, n, "Retry-After:", rep->retry_after,
                   sizeof(rep->retry_after));
    h_header_value(data, n, "Allow:", rep->allow, sizeof(rep->allow));
    h_header_value(data, n, "Content-Type:", rep->ctype, sizeof(rep->ctype));
    return n;
}

/*
 * 'method' (NULL: GET, or POST with a body; "HEAD" reads no body) to
 * 'url' with 'body' (or NULL) sent as 'ctype' (NULL: no Content-Type
 * header at all) and one more header 'header' (or NULL).  Fills *rep
 * (free rep->body); rep->status 0 on a transport failure.
 */
static inline void h_request(const char *method, const char *url,
                             const char *body, const char *ctype,
                             const char *header, struct h_reply *rep)
{
    CURL *c = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    char h[256];

    memset(rep, 0, sizeof(*rep));
    rep->body = calloc(1, 1);
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (method && !strcmp(method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        snprintf(h, sizeof(h), "Content-Type:%s%s", ctype ? " " : "",
                 ctype ? ctype : "");
        hdrs = curl_slist_append(hdrs, h);
    }
    if (header)
        hdrs = curl_slist_append(hdrs, header);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, h_on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, rep);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, h_on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, rep);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
}

/*
 * GET (body NULL) or POST 'body' as JSON to 'url', with extra 'header' (or
 * NULL).  Fills *rep as h_request() does.
 */
static inline void h_http(const char *url, const char *body, const char *header,
                          struct h_reply *rep)
{
    h_request(NULL, url, body, "application/json", header, rep);
}

/* GET http://127.0.0.1:port/path: its status; the body in *bodyp if asked. */
static inline long h_get(int port, const char *path, char **bodyp)
{
    char url[128];
    struct h_reply rep;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    h_http(url, NULL, NULL, &rep);
    if (bodyp)
        *bodyp = rep.body;
    else
        free(rep.body);
    return rep.status;
}

/*
 * How many requests mock-infer got on endpoint 'ep' ("chat", "sentiment",
 * ...: the keys of GET /stats "endpoints"); -1 when it does not answer.
 */
static inline long long h_mock_calls(const struct h_mock *m, const char *ep)
{
    char *body = NULL, key[64];
    long long n = -1;

    snprintf(key, sizeof(key), "\"%s\":", ep);
    if (h_get(m->port, "/stats", &body) == 200) {
        const char *eps = strstr(body, "\"endpoints\":");
        const char *at = eps ? strstr(eps, key) : NULL;
        if (at)
            n = atoll(at + strlen(key));
    }
    free(body);
    return n;
}

/* ---- Prometheus text ---- */

static inline bool h_prom_name(const char **sp)
{
    const char *s = *sp;

    if (!(*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') ||
          (*s >= 'A' && *s <= 'Z')))
        return false;
    while (*s == '_' || *s == ':' || (*s >= 'a' && *s <= 'z') ||
           (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9'))
        s++;
    *sp = s;
    return true;
}

/*
 * Check 'text' line by line: comments are "# HELP name text" or
 * "# TYPE name counter|gauge|histogram|summary|untyped"; every other
 * non-empty line is `name{label="value",...} value` with a valid float.
 * Returns the number of samples, or -(line number) of the first bad line.
 */
static inline long h_prom_check(const char *text)
{
    long lineno = 0, samples = 0;
    const char *line = text;

    while (*line) {
        const char *eol = strchr(line, '\n');
        size_t len = eol ? (size_t)(eol - line) : strlen(line);
        char buf[2048];
        lineno++;
        if (len >= sizeof(buf))
            return -lineno;
        memcpy(buf, line, len);
        buf[len] = '\0';
        line = eol ? eol + 1 : line + len;
        const char *s = buf;
        if (!*s)
            continue;
        if (*s == '#') {
            if (!strncmp(s, "# HELP ", 7)) {
                s += 7;
                if (!h_prom_name(&s) || (*s && *s != ' '))
                    return -lineno;
            } else if (!strncmp(s, "# TYPE ", 7)) {
                s += 7;
                if (!h_prom_name(&s) || *s++ != ' ')
                    return -lineno;
                if (strcmp(s, "counter") && strcmp(s, "gauge") &&
                    strcmp(s, "histogram") && strcmp(s, "summary") &&
                    strcmp(s, "untyped"))
                    return -lineno;
            }
            continue;
        }
        if (!h_prom_name(&s))
            return -lineno;
        if (*s == '{') {
            s++;
            while (*s != '}') {
                if (!h_prom_name(&s) || *s++ != '=' || *s++ != '"')
                    return -lineno;
                while (*s && *s != '"') {
                    if (*s == '\\') {
                        s++;
                        if (*s != '\\' && *s != '"' && *s != 'n')
                            return -lineno;
                    }
                    s++;
                }
                if (*s++ != '"')
                    return -lineno;
                if (*s == ',')
                    s++;
                else if (*s != '}')
                    return -lineno;
            }
            s++;
        }
        if (*s++ != ' ')
            return -lineno;
        char *end;
        if (strcmp(s, "+Inf") && strcmp(s, "-Inf") && strcmp(s, "NaN")) {
            errno = 0;
            double v = strtod(s, &end);
            (void)v;
            if (end == s || *end || errno)
                return -lineno;
        }
        samples++;
    }
    return samples;
}

/* The value of series 'series' (exactly as printed, labels included). */
static inline double h_prom_value(const char *text, const char *series)
{
    size_t n = strlen(series);

    for (const char *s = text; s && *s;) {
        if (!strncmp(s, series, n) && s[n] == ' ')
            return strtod(s + n + 1, NULL);
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    return NAN;
}

/*
 * The sum of every sample of family 'name' (with or without labels; not
 * its _bucket/_sum/_count lines); their number in *count when not NULL.
 */
static inline double h_prom_sum(const char *text, const char *name, int *count)
{
    size_t n = strlen(name);
    double sum = 0;
    int k = 0;

    for (const char *s = text; s && *s;) {
        if (!strncmp(s, name, n) && (s[n] == '{' || s[n] == ' ')) {
            const char *sp = s[n] == ' ' ? s + n : strstr(s, "} ");
            if (sp) {
                sum += strtod(sp + (*sp == '}' ? 2 : 1), NULL);
                k++;
            }
        }
        s = strchr(s, '\n');
        if (s)
            s++;
    }
    if (count)
        *count = k;
    return sum;
}

/* Scrape /metrics and return 'series', NAN when absent or unreachable. */
static inline double h_metric(int port, const char *series)
{
    char *body = NULL;
    double v = NAN;

    if (h_get(port, "/metrics", &body) == 200)
        v = h_prom_value(body, series);
    free(body);
    return v;
}

/* ---- PostgreSQL ---- */

static inline PGconn *h_db(void)
{
    const char *dsn = getenv("SLUICE_PG_DSN");
    PGconn *c = PQconnectdb(dsn && *dsn ? dsn : H_PG_DSN);

    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("cannot connect to PostgreSQL: %s", PQerrorMessage(c));
    return c;
}

/* PQexec() of printf-formatted SQL, its text left in sql[size]. */
static inline PGresult *h_pg_vexec(PGconn *c, char *sql, size_t size,
                                   const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));
static inline PGresult *h_pg_vexec(PGconn *c, char *sql, size_t size,
                                   const char *fmt, va_list ap)
{
    vsnprintf(sql, size, fmt, ap);
    return PQexec(c, sql);
}

/* The first column of the first row of a query as an integer; -1 when the
 * query failed (a table not created yet) or returned nothing. */
static inline long long h_pg_int(PGconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline long long h_pg_int(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    PGresult *res = h_pg_vexec(c, sql, sizeof(sql), fmt, ap);
    va_end(ap);
    long long v = -1;
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 &&
        !PQgetisnull(res, 0, 0))
        v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

/* A query whose result the caller walks (PQclear() it). */
static inline PGresult *h_pg_query(PGconn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline PGresult *h_pg_query(PGconn *c, const char *fmt, ...)
{
    char sql[2048];
    va_list ap;

    va_start(ap, fmt);
    PGresult *res = h_pg_vexec(c, sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (PQresultStatus(res) != PGRES_TUPLES_OK &&
        PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    return res;
}

/* Wait up to 'ms' until count(*) of 'table' is at least 'want'. */
static inline long long h_wait_rows(PGconn *c, const char *table,
                                    long long want, int64_t ms)
{
    int64_t end = h_now_ms() + ms;
    long long n;

    while ((n = h_pg_int(c, "SELECT count(*) FROM %s", table)) < want &&
           h_now_ms() < end)
        h_pause();
    return n;
}

/*
 * pipelines/review-sentiment.yaml (under 'srcdir') copied to 'path' with
 * this test's topic and tables: topic and table 'name', dead letters in
 * '<name>_dead'; 'kafka_props' (NULL for none) goes in after the
 * auto_offset_reset line ("    properties:\n      key: value\n").  Fails
 * the test when the file no longer has the lines it rewrites.
 */
static inline void h_review_pipeline(const char *srcdir, const char *path,
                                     const char *name, const char *kafka_props)
{
    char src[1200], line[1024];
    FILE *in, *out;
    int topics = 0, table = 0, dl = 0, props = 0;

    snprintf(src, sizeof(src), "%s/pipelines/review-sentiment.yaml", srcdir);
    assert_non_null(in = fopen(src, "r"));
    assert_non_null(out = fopen(path, "w"));
    while (fgets(line, sizeof(line), in)) {
        if (strstr(line, "topics: [reviews]")) {
            fprintf(out, "    topics: [%s]\n", name);
            topics++;
        } else if (strstr(line, "dead_letter_table:")) {
            fprintf(out, "    dead_letter_table: %s_dead\n", name);
            dl++;
        } else if (strstr(line, "table:")) {
            fprintf(out, "    table: %s\n", name);
            table++;
        } else if (kafka_props && strstr(line, "auto_offset_reset:")) {
            fputs(line, out);
            fputs(kafka_props, out);
            props++;
        } else {
            fputs(line, out);
        }
    }
    fclose(in);
    assert_int_equal(fclose(out), 0);
    if (topics != 1 || table != 1 || dl != 1 || props != (kafka_props != NULL))
        fail_msg("%s changed shape (topics %d, table %d, dead letters %d, "
                 "auto_offset_reset %d): update this test",
                 src, topics, table, dl, props);
}

#endif
