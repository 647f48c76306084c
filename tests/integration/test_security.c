/*
 * Security checks of the built binaries against real servers: secrets
 * (PostgreSQL password, API key, Redis password) never reach logs at any
 * level, /proc/<pid>/cmdline or /metrics; secret files readable by others
 * are refused; TLS to PostgreSQL with sslmode=verify-full fails closed on a
 * wrong host name (a private TLS PostgreSQL is started for that).
 */
#include "cmocka_shim.h"
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#define PG_ADMIN H_PG_DSN
#define PG_ROLE "sluice_sec"
/* Private servers of this test, on ports below Linux's ephemeral range
 * (32768-60999): there, a client connection of a test running beside it
 * could hold the port and turn the test into a skip. */
#define REDIS_PORT 31389  /* a private Redis with requirepass */
#define TLS_PG_PORT 31442 /* a private PostgreSQL with ssl=on */
#define SL_XSTR(x) #x
#define SL_STR(x) SL_XSTR(x)
#define START_MS 15000 /* a child becomes ready within this */
#define EXIT_MS 30000  /* a child exits within this */

/* Recognisable secrets: none may appear anywhere we look. */
#define SECRET_PG "pw-sec-XYZZY-7a1f"
#define SECRET_KEY "sk-sec-PLUGH-93c2"
#define SECRET_REDIS "rpw-sec-FROTZ-4e08"
#define SECRET_WRONG "rpw-sec-WRONG-5d11"
static const char *const secrets[] = {SECRET_PG, SECRET_KEY, SECRET_REDIS,
                                      SECRET_WRONG};

static struct {
    char bindir[1024];   /* SLUICE_BINARY_DIR */
    char dir[64];        /* scratch directory */
    pid_t mock;          /* mock-infer */
    unsigned mock_port;  /* its port */
    pid_t redis;         /* private Redis, or 0 */
    char tls_dir[64];    /* private TLS PostgreSQL, or "" */
    char pg_bindir[512]; /* its binaries */
    int uniq;            /* suffix of table names */
} g;

/* ---- helpers ---- */

/* The whole file 'path', NUL-terminated ("" when missing); free(). */
static char *slurp(const char *path, size_t *lenp)
{
    char *buf = h_read_file_len(path, lenp);

    if (!buf) {
        buf = calloc(1, 1);
        assert_non_null(buf);
        if (lenp)
            *lenp = 0;
    }
    return buf;
}

static void write_file(const char *path, mode_t mode, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, mode), 0); /* whatever the umask */
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Fail naming where a secret showed up; 'len' bytes, NULs allowed. */
static void assert_no_secret(const char *where, const char *buf, size_t len)
{
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
        if (memmem(buf, len, secrets[i], strlen(secrets[i])))
            fail_msg("secret '%s' appears in %s", secrets[i], where);
}

/*
 * Start 'argv' with extra environment 'env' ("NAME=value", NULL-ended),
 * stdout and stderr to files "<dir>/<tag>.out|err", stdin from 'in' (a
 * path, or NULL for /dev/null).  The child dies with the test.
 */
static pid_t spawn(const char *tag, const char *const argv[],
                   const char *const env[], const char *in)
{
    char out[256], err[256];
    pid_t parent = getpid(), pid;

    snprintf(out, sizeof(out), "%s/%s.out", g.dir, tag);
    snprintf(err, sizeof(err), "%s/%s.err", g.dir, tag);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fi = open(in ? in : "/dev/null", O_RDONLY);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        int fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fi < 0 || fo < 0 || fe < 0)
            _exit(127);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        for (size_t i = 0; env && env[i]; i++)
            putenv((char *)env[i]);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* Wait up to 'ms' for 'pid'; returns its exit code, or -1 on timeout. */
static int wait_exit(pid_t pid, int64_t ms)
{
    int64_t deadline = h_now_ms() + ms;
    int status;

    for (;;) {
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status)
                                     : 128 + WTERMSIG(status);
        if (h_now_ms() > deadline)
            return -1;
        h_sleep_ms(20);
    }
}

static void kill_wait(pid_t *pidp)
{
    if (*pidp > 0) {
        kill(*pidp, SIGKILL);
        waitpid(*pidp, NULL, 0);
        *pidp = 0;
    }
}

static char *tag_file(const char *tag, const char *ext, size_t *lenp)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s.%s", g.dir, tag, ext);
    return slurp(path, lenp);
}

/* Wait until the child's stderr contains 'needle'; returns it or NULL. */
static char *wait_log(const char *tag, pid_t pid, const char *needle,
                      int64_t ms)
{
    int64_t deadline = h_now_ms() + ms;

    for (;;) {
        char *log = tag_file(tag, "err", NULL);
        if (strstr(log, needle))
            return log;
        free(log);
        if (h_now_ms() > deadline || (pid > 0 && waitpid(pid, NULL, WNOHANG)))
            return NULL;
        h_sleep_ms(50);
    }
}

/* Run 'sql' on the shared server as postgres; fails the test on error. */
static void pg_exec(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);

    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("cannot connect (%s): %s", conninfo, PQerrorMessage(conn));
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
}

/* The integer in the first cell of 'sql', or -1 on any error. */
static long pg_long(const char *conninfo, const char *sql)
{
    PGconn *conn = PQconnectdb(conninfo);
    long v = -1;

    if (PQstatus(conn) == CONNECTION_OK) {
        PGresult *res = PQexec(conn, sql);
        if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
            !PQgetisnull(res, 0, 0))
            v = atol(PQgetvalue(res, 0, 0));
        PQclear(res);
    }
    PQfinish(conn);
    return v;
}

/* Rows in 'table' (-1 while it does not exist or on error). */
static long pg_rows(const char *conninfo, const char *table)
{
    char q[256];

    snprintf(q, sizeof(q), "SELECT (to_regclass('%s') IS NOT NULL)::int",
             table);
    if (pg_long(conninfo, q) != 1)
        return -1;
    snprintf(q, sizeof(q), "SELECT count(*) FROM %s", table);
    return pg_long(conninfo, q);
}

static bool wait_rows(const char *conninfo, const char *table, long n,
                      int64_t ms)
{
    int64_t deadline = h_now_ms() + ms;

    while (pg_rows(conninfo, table) != n) {
        if (h_now_ms() > deadline)
            return false;
        h_sleep_ms(100);
    }
    return true;
}

static bool port_free(unsigned port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    bool ok;

    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

static unsigned metrics_port(const char *log)
{
    /* "... listening on http://127.0.0.1:PORT" */
    const char *p = strstr(log, "listening on http://");
    p = p ? strchr(p + 20, ':') : NULL;
    return p ? (unsigned)strtoul(p + 1, NULL, 10) : 0;
}

/* Write a pipeline: 'source' and 'sink' are YAML blocks (indented). */
/* The sink's dsn line for the shared PostgreSQL, without a user. */
static const char *dsn_line(void)
{
    static char line[96];

    snprintf(line, sizeof(line),
             "    dsn: host=127.0.0.1 port=%d dbname=sluice", H_PG_PORT);
    return line;
}

static void write_pipeline(const char *path, const char *source,
                           const char *backend_extra, const char *sink)
{
    char text[8192];

    snprintf(text, sizeof(text),
             "version: 1\n"
             "name: sec\n"
             "shutdown_timeout_ms: 3000\n"
             "%s"
             "backends:\n"
             "  chat:\n"
             "    kind: openai-chat\n"
             "    url: http://127.0.0.1:%u/v1\n"
             "    model: mock-sentiment\n"
             "%s"
             "    retry: {max_attempts: 2}\n"
             "    messages:\n"
             "      - {role: user, content: '{{text}}'}\n"
             "steps:\n"
             "  - name: s\n"
             "    backends: [chat]\n"
             "sink:\n"
             "  postgres:\n"
             "%s"
             "    create_table: true\n"
             "http:\n"
             "  listen: 127.0.0.1:0\n",
             source, g.mock_port, backend_extra, sink);
    write_file(path, 0600, text);
}

static void sluice_argv(const char **argv, char *bin, size_t size,
                        const char *pipeline)
{
    snprintf(bin, size, "%s/sluice", g.bindir);
    argv[0] = bin;
    argv[1] = "run";
    argv[2] = pipeline;
    argv[3] = NULL;
}

/* ---- fixtures ---- */

static bool read_port(const char *path, unsigned *portp)
{
    FILE *f = fopen(path, "r");
    bool ok;

    if (!f)
        return false;
    ok = fscanf(f, "%u", portp) == 1 && *portp > 0;
    fclose(f);
    return ok;
}

static int setup(void **state)
{
    const char *bindir = getenv("SLUICE_BINARY_DIR");
    char bin[1100], port_file[128];

    (void)state;
    if (!bindir) {
        fprintf(stderr, "SLUICE_BINARY_DIR is not set (run under ctest)\n");
        return -1;
    }
    snprintf(g.bindir, sizeof(g.bindir), "%s", bindir);
    snprintf(g.dir, sizeof(g.dir), "/tmp/sl-security.XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    g.uniq = (int)getpid();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    snprintf(bin, sizeof(bin), "%s/mock-infer", g.bindir);
    snprintf(port_file, sizeof(port_file), "%s/mock.port", g.dir);
    const char *argv[] = {bin,           "--listen", "127.0.0.1:0",
                          "--port-file", port_file,  NULL};
    g.mock = spawn("mock", argv, NULL, NULL);
    int64_t deadline = h_now_ms() + START_MS;
    while (!read_port(port_file, &g.mock_port)) {
        if (h_now_ms() > deadline || waitpid(g.mock, NULL, WNOHANG)) {
            fprintf(stderr, "mock-infer did not start; see %s/mock.err\n",
                    g.dir);
            return -1;
        }
        h_sleep_ms(20);
    }

    /* A role with a password; local auth is trust, so it is passed but
     * not checked.  PostgreSQL 15 needs CREATE on public for tables. */
    h_require_postgres();
    PGconn *conn = PQconnectdb(PG_ADMIN);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "PostgreSQL on %d: %s(scripts/services start)\n",
                H_PG_PORT, PQerrorMessage(conn));
        PQfinish(conn);
        return -1;
    }
    PGresult *res = PQexec(
        conn, "DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname "
              "= '" PG_ROLE "') THEN CREATE ROLE " PG_ROLE " LOGIN; END IF; "
              "END$$; ALTER ROLE " PG_ROLE " PASSWORD '" SECRET_PG "'; "
              "GRANT CREATE ON SCHEMA public TO " PG_ROLE ";");
    bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "creating role: %s", PQerrorMessage(conn));
    PQclear(res);
    PQfinish(conn);
    return ok ? 0 : -1;
}

static void tls_pg_stop(void);

static int teardown(void **state)
{
    char cmd[128];

    (void)state;
    kill_wait(&g.mock);
    kill_wait(&g.redis);
    tls_pg_stop();
    if (getenv("SLUICE_TEST_KEEP")) { /* logs of every child, for a look */
        fprintf(stderr, "kept %s\n", g.dir);
        curl_global_cleanup();
        return 0;
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", g.dir);
    curl_global_cleanup();
    return 0;
}

/* ---- secrets in logs, cmdline and metrics ---- */

/*
 * Check a running sluice: its command line, /metrics, /healthz and
 * /readyz never show a secret.  'tag' names its log files.
 */
static void check_running(const char *tag, pid_t pid)
{
    char path[64], url[128];
    size_t len;
    struct h_reply b;

    snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
    char *cmdline = slurp(path, &len);
    assert_true(len > 0);
    assert_no_secret("/proc/<pid>/cmdline", cmdline, len);
    free(cmdline);

    char *log = wait_log(tag, pid, "listening on http://", START_MS);
    assert_non_null(log);
    unsigned port = metrics_port(log);
    free(log);
    assert_true(port > 0);
    static const char *const paths[] = {"/metrics", "/healthz", "/readyz"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, paths[i]);
        h_http(url, NULL, NULL, &b);
        if (i == 0) {
            assert_int_equal(b.status, 200);
            assert_non_null(strstr(b.body, "# TYPE"));
        }
        assert_no_secret(paths[i], b.body, b.len);
        free(b.body);
    }
}

/* The whole output of a finished run: no secret, at debug level. */
static void check_output(const char *tag)
{
    size_t len;
    char *text = tag_file(tag, "err", &len);

    assert_no_secret("stderr (debug log)", text, len);
    free(text);
    text = tag_file(tag, "out", &len);
    assert_no_secret("stdout", text, len);
    free(text);
}

/* File source (a FIFO we feed), API key, PostgreSQL password. */
static void test_no_secret_file_source(void **state)
{
    char fifo[128], pipeline[128], table[64], dead[64], src[256], sink[512];
    char bin[1100];
    const char *argv[4];

    (void)state;
    snprintf(fifo, sizeof(fifo), "%s/in.fifo", g.dir);
    snprintf(pipeline, sizeof(pipeline), "%s/file.yaml", g.dir);
    snprintf(table, sizeof(table), "sec_%d_file", g.uniq);
    snprintf(dead, sizeof(dead), "sec_%d_file_dead", g.uniq);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    snprintf(src, sizeof(src), "source:\n  kind: file\n  file: {path: %s}\n",
             fifo);
    snprintf(sink, sizeof(sink),
             "%s user=" PG_ROLE "\n    password_env: SEC_PG_PASSWORD\n"
             "    table: %s\n    dead_letter_table: %s\n",
             dsn_line(), table, dead);
    write_pipeline(pipeline, src, "    api_key_env: SEC_API_KEY\n", sink);

    const char *env[] = {"SEC_PG_PASSWORD=" SECRET_PG,
                         "SEC_API_KEY=" SECRET_KEY, "SLUICE_LOG_LEVEL=debug",
                         NULL};
    sluice_argv(argv, bin, sizeof(bin), pipeline);
    pid_t pid = spawn("file", argv, env, NULL);

    /* The source opens the FIFO for reading; then we can write. */
    int fd = -1;
    int64_t deadline = h_now_ms() + START_MS;
    while ((fd = open(fifo, O_WRONLY | O_NONBLOCK)) < 0) {
        if (h_now_ms() > deadline || waitpid(pid, NULL, WNOHANG)) {
            char *log = tag_file("file", "err", NULL);
            fail_msg("sluice never opened its input: %s", log);
        }
        h_sleep_ms(20);
    }
    fcntl(fd, F_SETFL, 0);
    static const char lines[] = "{\"text\": \"I love it\"}\n"
                                "{\"text\": \"not great\"}\n"
                                "{\"text\": \"fine\"}\n";
    assert_int_equal(write(fd, lines, sizeof(lines) - 1),
                     (ssize_t)sizeof(lines) - 1);
    if (!wait_rows(PG_ADMIN, table, 3, 20000)) {
        char *log = tag_file("file", "err", NULL);
        close(fd);
        kill(pid, SIGKILL);
        fail_msg("3 rows never reached %s; log:\n%s", table, log);
    }
    /* The rows came through the role given in the DSN. */
    assert_true(pg_long(PG_ADMIN, "SELECT count(*) FROM pg_stat_activity "
                                  "WHERE usename = '" PG_ROLE "'") >= 1);
    check_running("file", pid);

    close(fd); /* end of input: sluice drains and exits */
    int rc = wait_exit(pid, EXIT_MS);
    if (rc != 0)
        kill(pid, SIGKILL);
    assert_int_equal(rc, 0);
    check_output("file");
    /* Debug logging did show the request, with the key redacted. */
    char *log = tag_file("file", "err", NULL);
    assert_non_null(strstr(log, "\"authorization\":\"[redacted]\""));
    free(log);

    char sql[160];
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s", table, dead);
    pg_exec(PG_ADMIN, sql);
}

static void redis_cmd(redisContext *rc, const char *fmt, const char *arg)
{
    redisReply *r = redisCommand(rc, fmt, arg);

    if (!r || r->type == REDIS_REPLY_ERROR)
        fail_msg("redis %s: %s", fmt, r ? r->str : rc->errstr);
    freeReplyObject(r);
}

/* Redis stream source with a password, on a private Redis. */
static void test_no_secret_redis_source(void **state)
{
    char bin[1100], pipeline[128], table[64], dead[64], src[512], sink[512];
    char conf[128], key[64];
    const char *argv[4];

    (void)state;
    if (!port_free(REDIS_PORT))
        h_skip("port %d is in use (another run owns it)", REDIS_PORT);
    /* The password goes in through stdin, not the command line. */
    snprintf(conf, sizeof(conf), "%s/redis.conf", g.dir);
    write_file(conf, 0600,
               "port " SL_STR(
                   REDIS_PORT) "\nbind 127.0.0.1\nsave \"\"\nappendonly no\n"
                               "requirepass " SECRET_REDIS "\n");
    const char *rargv[] = {"/usr/bin/redis-server", "-", NULL};
    if (access(rargv[0], X_OK) != 0)
        h_skip("%s is not installed", rargv[0]);
    g.redis = spawn("redis", rargv, NULL, conf);

    redisContext *rc = NULL;
    int64_t deadline = h_now_ms() + START_MS;
    for (;;) {
        rc = redisConnect("127.0.0.1", REDIS_PORT);
        if (rc && !rc->err)
            break;
        redisFree(rc);
        rc = NULL;
        if (h_now_ms() > deadline)
            fail_msg("private redis-server did not start");
        h_sleep_ms(50);
    }
    redis_cmd(rc, "AUTH %s", SECRET_REDIS);
    snprintf(key, sizeof(key), "sec-%d", g.uniq);
    redisReply *r = redisCommand(rc, "XGROUP CREATE %s sec 0 MKSTREAM", key);
    freeReplyObject(r);
    for (int i = 0; i < 3; i++) {
        r = redisCommand(rc, "XADD %s * payload {\"text\":\"entry\"}", key);
        assert_non_null(r);
        freeReplyObject(r);
    }
    redisFree(rc);

    snprintf(pipeline, sizeof(pipeline), "%s/redis.yaml", g.dir);
    snprintf(table, sizeof(table), "sec_%d_redis", g.uniq);
    snprintf(dead, sizeof(dead), "sec_%d_redis_dead", g.uniq);
    snprintf(src, sizeof(src),
             "source:\n  kind: redis-stream\n  redis:\n"
             "    url: redis://127.0.0.1:%d\n    key: %s\n    group: sec\n"
             "    password_env: SEC_REDIS_PASSWORD\n",
             REDIS_PORT, key);
    snprintf(sink, sizeof(sink),
             "%s user=" PG_ROLE "\n    password_env: SEC_PG_PASSWORD\n"
             "    table: %s\n    dead_letter_table: %s\n",
             dsn_line(), table, dead);
    write_pipeline(pipeline, src, "    api_key_env: SEC_API_KEY\n", sink);
    sluice_argv(argv, bin, sizeof(bin), pipeline);

    /* A wrong password: refused, and neither password is shown. */
    const char *bad_env[] = {
        "SEC_PG_PASSWORD=" SECRET_PG, "SEC_API_KEY=" SECRET_KEY,
        "SEC_REDIS_PASSWORD=" SECRET_WRONG, "SLUICE_LOG_LEVEL=debug", NULL};
    pid_t pid = spawn("redis-bad", argv, bad_env, NULL);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    assert_int_equal(code, 1);
    char *log = tag_file("redis-bad", "err", NULL);
    if (!strstr(log, "AUTH") && !strstr(log, "WRONGPASS"))
        fail_msg("no authentication error in:\n%s", log);
    free(log);
    check_output("redis-bad");

    /* The right one: entries flow, nothing shows a secret. */
    const char *env[] = {
        "SEC_PG_PASSWORD=" SECRET_PG, "SEC_API_KEY=" SECRET_KEY,
        "SEC_REDIS_PASSWORD=" SECRET_REDIS, "SLUICE_LOG_LEVEL=debug", NULL};
    pid = spawn("redis", argv, env, NULL);
    if (!wait_rows(PG_ADMIN, table, 3, 20000)) {
        log = tag_file("redis", "err", NULL);
        kill(pid, SIGKILL);
        fail_msg("3 rows never reached %s; log:\n%s", table, log);
    }
    check_running("redis", pid);
    kill(pid, SIGTERM);
    code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    assert_int_equal(code, 0);
    check_output("redis");
    kill_wait(&g.redis);

    char sql[160];
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s", table, dead);
    pg_exec(PG_ADMIN, sql);
}

/* A password or URL given inline is refused without being echoed. */
static void test_inline_secret_not_echoed(void **state)
{
    char bin[1100], pipeline[128];
    const char *argv[4];

    (void)state;
    snprintf(pipeline, sizeof(pipeline), "%s/inline.yaml", g.dir);
    char src[256];
    snprintf(src, sizeof(src),
             "source:\n  kind: redis-stream\n  redis:\n"
             "    url: redis://:" SECRET_REDIS "@%s\n"
             "    key: k\n    group: g\n",
             H_REDIS);
    write_pipeline(pipeline, src, "",
                   "    dsn: host=127.0.0.1 password=" SECRET_PG "\n"
                   "    table: t\n    dead_letter_table: d\n");
    sluice_argv(argv, bin, sizeof(bin), pipeline);
    pid_t pid = spawn("inline", argv, NULL, NULL);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    assert_int_equal(code, 2); /* a bad pipeline file */
    char *log = tag_file("inline", "err", NULL);
    assert_non_null(strstr(log, "source.redis.url"));
    assert_non_null(strstr(log, "sink.postgres.dsn"));
    free(log);
    check_output("inline");
}

/* ---- secret files readable by others ---- */

/*
 * Run `sluice CMD pipeline` ("run" or "check") with 'env'; expect exit 2
 * and a config error "PIPELINE:LINE:COL: ...'what'... at 'key'".
 */
static void expect_config_error(const char *tag, const char *cmd,
                                const char *pipeline, const char *what,
                                const char *key, const char *const env[])
{
    char bin[1100], want[300];
    const char *argv[4];

    sluice_argv(argv, bin, sizeof(bin), pipeline);
    argv[1] = cmd;
    pid_t pid = spawn(tag, argv, env, NULL);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    char *log = tag_file(tag, "err", NULL);
    snprintf(want, sizeof(want), "%s:", pipeline);
    const char *line = strstr(log, want);
    int l = 0, c = 0;
    if (code != 2 || !line ||
        sscanf(line + strlen(want), "%d:%d:", &l, &c) != 2 || l < 1 || c < 1 ||
        !strstr(line, what) || !strstr(line, key))
        fail_msg("sluice %s (%s): expected exit 2 and \"%s:LINE:COL: ...%s... "
                 "at %s\", got %d:\n%s",
                 cmd, tag, pipeline, what, key, code, log);
    free(log);
    check_output(tag);
}

/* Both `sluice check` and `sluice run` refuse it as a config error. */
static void expect_refused(const char *tag, const char *pipeline,
                           const char *what, const char *key,
                           const char *const env[])
{
    char check_tag[64];

    snprintf(check_tag, sizeof(check_tag), "%s-check", tag);
    expect_config_error(check_tag, "check", pipeline, what, key, env);
    expect_config_error(tag, "run", pipeline, what, key, env);
}

static void test_secret_file_mode_refused(void **state)
{
    char pipeline[128], keyf[128], pgf[128], redisf[128], extra[256];
    char sink[512], src[512], why[300];

    (void)state;
    snprintf(keyf, sizeof(keyf), "%s/api.key", g.dir);
    snprintf(pgf, sizeof(pgf), "%s/pg.pw", g.dir);
    snprintf(redisf, sizeof(redisf), "%s/redis.pw", g.dir);
    write_file(keyf, 0644, SECRET_KEY "\n");
    write_file(pgf, 0644, SECRET_PG "\n");
    write_file(redisf, 0644, SECRET_REDIS "\n");
    const char *file_src = "source:\n  kind: file\n  file: {path: /dev/null}\n";
    const char *env[] = {"SLUICE_LOG_LEVEL=debug", "SEC_PG_PASSWORD=" SECRET_PG,
                         NULL};
    char sink_td[256]; /* a sink with tables t and d */
    snprintf(sink_td, sizeof(sink_td),
             "%s\n    table: t\n    dead_letter_table: d\n", dsn_line());

    /* api_key_file */
    snprintf(pipeline, sizeof(pipeline), "%s/keyfile.yaml", g.dir);
    snprintf(extra, sizeof(extra), "    api_key_file: %s\n", keyf);
    write_pipeline(pipeline, file_src, extra, sink_td);
    snprintf(why, sizeof(why), "file %s is readable by group or others", keyf);
    expect_refused("keyfile", pipeline, why, "backends.chat.api_key_file", env);

    /* postgres password_file */
    snprintf(pipeline, sizeof(pipeline), "%s/pgfile.yaml", g.dir);
    snprintf(sink, sizeof(sink),
             "%s user=" PG_ROLE "\n    password_file: %s\n    table: t\n"
             "    dead_letter_table: d\n",
             dsn_line(), pgf);
    write_pipeline(pipeline, file_src, "", sink);
    snprintf(why, sizeof(why), "file %s is readable by group or others", pgf);
    expect_refused("pgfile", pipeline, why, "sink.postgres.password_file", env);

    /* redis password_file */
    snprintf(pipeline, sizeof(pipeline), "%s/redisfile.yaml", g.dir);
    snprintf(src, sizeof(src),
             "source:\n  kind: redis-stream\n  redis:\n"
             "    url: redis://%s\n    key: k\n    group: g\n"
             "    password_file: %s\n",
             H_REDIS, redisf);
    write_pipeline(pipeline, src, "", sink_td);
    snprintf(why, sizeof(why), "file %s is readable by group or others",
             redisf);
    expect_refused("redisfile", pipeline, why, "source.redis.password_file",
                   env);

    /* Group-readable counts as readable by others too. */
    chmod(keyf, 0640);
    snprintf(pipeline, sizeof(pipeline), "%s/keyfile.yaml", g.dir);
    snprintf(why, sizeof(why),
             "file %s is readable by group or others (mode "
             "0640)",
             keyf);
    expect_refused("keyfile640", pipeline, why, "backends.chat.api_key_file",
                   env);

    /* A missing file, an unset variable: known before anything starts. */
    snprintf(pipeline, sizeof(pipeline), "%s/nokey.yaml", g.dir);
    snprintf(extra, sizeof(extra), "    api_key_file: %s/absent.key\n", g.dir);
    write_pipeline(pipeline, file_src, extra, sink_td);
    expect_refused("nokey", pipeline, "absent.key: cannot open: No such file",
                   "backends.chat.api_key_file", env);
    snprintf(pipeline, sizeof(pipeline), "%s/noenv.yaml", g.dir);
    snprintf(sink, sizeof(sink),
             "%s\n    password_env: SEC_PG_PASSWORD\n"
             "    table: t\n    dead_letter_table: d\n",
             dsn_line());
    write_pipeline(pipeline, file_src, "    api_key_env: SEC_NOT_SET\n", sink);
    expect_refused("noenv", pipeline,
                   "environment variable SEC_NOT_SET is not set",
                   "backends.chat.api_key_env", env);
}

/* ---- headers: no injection, credentials only from outside the file ---- */

/* A one-thread HTTP server that records every request it gets. */
static struct {
    int fd;           /* listening socket */
    unsigned port;    /* its port */
    pthread_t thread; /* serve() */
    atomic_bool stop; /* ask serve() to return */
    char buf[65536];  /* every request's bytes, in order */
    size_t len;       /* bytes in buf */
    int conns;        /* connections accepted */
} wire;

/* Read one request (head + Content-Length body) into wire.buf; answer. */
static void serve_one(int c)
{
    size_t start = wire.len, want = 0;
    int64_t deadline = h_now_ms() + 5000;

    for (;;) {
        struct pollfd pfd = {.fd = c, .events = POLLIN};
        if (h_now_ms() > deadline || poll(&pfd, 1, 100) < 0)
            break;
        if (!(pfd.revents & (POLLIN | POLLHUP)))
            continue;
        ssize_t n =
            read(c, wire.buf + wire.len, sizeof(wire.buf) - 1 - wire.len);
        if (n <= 0)
            break;
        wire.len += (size_t)n;
        wire.buf[wire.len] = '\0';
        const char *end = strstr(wire.buf + start, "\r\n\r\n");
        if (end && !want) {
            const char *cl = strcasestr(wire.buf + start, "\ncontent-length:");
            want = (size_t)(end + 4 - (wire.buf + start)) +
                   (cl && cl < end ? strtoul(cl + 16, NULL, 10) : 0);
        }
        if (want && wire.len - start >= want)
            break;
    }
    static const char reply[] = "HTTP/1.1 200 OK\r\n"
                                "Content-Type: application/json\r\n"
                                "Content-Length: 11\r\n"
                                "Connection: close\r\n\r\n"
                                "{\"ok\":true}";
    /* A client that went away gets no answer: nothing to do then. */
    ssize_t w = write(c, reply, sizeof(reply) - 1);
    (void)w;
}

static void *serve(void *arg)
{
    (void)arg;
    while (!atomic_load(&wire.stop)) {
        struct pollfd pfd = {.fd = wire.fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(wire.fd, NULL, NULL);
        if (c < 0)
            continue;
        wire.conns++;
        serve_one(c);
        close(c);
    }
    return NULL;
}

static void wire_start(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t alen = sizeof(a);

    memset(wire.buf, 0, sizeof(wire.buf));
    wire.len = 0;
    wire.conns = 0;
    atomic_store(&wire.stop, false);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    wire.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(wire.fd >= 0);
    assert_int_equal(bind(wire.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(wire.fd, 16), 0);
    assert_int_equal(getsockname(wire.fd, (struct sockaddr *)&a, &alen), 0);
    wire.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&wire.thread, NULL, serve, NULL), 0);
}

/* Stop the server; wire.buf then holds what it received. */
static void wire_stop(void)
{
    atomic_store(&wire.stop, true);
    pthread_join(wire.thread, NULL);
    close(wire.fd);
}

/*
 * A pipeline whose http-json backend 'h' calls the wire server with the
 * header lines 'headers' (YAML, indented 6), for one line of input.
 */
static void write_header_pipeline(const char *path, const char *headers,
                                  const char *table)
{
    char text[4096], input[128];

    snprintf(input, sizeof(input), "%s/one.jsonl", g.dir);
    write_file(input, 0600, "{\"text\": \"hello\"}\n");
    snprintf(text, sizeof(text),
             "version: 1\n"
             "name: hdr\n"
             "shutdown_timeout_ms: 3000\n"
             "source:\n  kind: file\n  file: {path: %s}\n"
             "backends:\n"
             "  h:\n"
             "    kind: http-json\n"
             "    url: http://127.0.0.1:%u/infer\n"
             "    timeout_ms: 2000\n"
             "    retry: {max_attempts: 1}\n"
             "    headers:\n%s"
             "steps:\n  - {name: s, backends: [h]}\n"
             "sink:\n  postgres:\n"
             "%s user=postgres\n"
             "    table: %s\n    dead_letter_table: %s_dead\n"
             "http:\n  listen: 127.0.0.1:0\n",
             input, wire.port, headers, dsn_line(), table, table);
    write_file(path, 0600, text);
}

/*
 * A header value with CR LF, literal or from ${VAR}, is refused by check
 * and run (exit 2, file:line:col) and never reaches the server; before,
 * it went out as a second header line.
 */
static void test_header_injection_refused(void **state)
{
    char pipeline[128], table[64], sql[160];
    static const struct {
        const char *tag;     /* log files */
        const char *headers; /* the header, as YAML */
        const char *key;     /* its key path */
    } cases[] = {
        {"inject-env", "      X-Note: ${SEC_HDR}\n",
         "backends.h.headers.X-Note"},
        {"inject-lit", "      X-Note: \"a\\r\\nX-Injected: yes\"\n",
         "backends.h.headers.X-Note"},
    };
    const char *env[] = {"SEC_HDR=a\r\nX-Injected: yes", NULL};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wire_start();
        snprintf(pipeline, sizeof(pipeline), "%s/%s.yaml", g.dir, cases[i].tag);
        snprintf(table, sizeof(table), "sec_%d_inject", g.uniq);
        write_header_pipeline(pipeline, cases[i].headers, table);
        char bin[1100];
        const char *argv[4];
        sluice_argv(argv, bin, sizeof(bin), pipeline);
        pid_t pid = spawn(cases[i].tag, argv, env, NULL);
        int code = wait_exit(pid, EXIT_MS);
        if (code < 0)
            kill_wait(&pid);
        wire_stop();
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s_dead", table,
                 table);
        pg_exec(PG_ADMIN, sql);
        if (wire.conns || strstr(wire.buf, "X-Injected"))
            fail_msg("%s: sluice run exited %d and the server got %d "
                     "request(s):\n%s",
                     cases[i].tag, code, wire.conns, wire.buf);
        expect_refused(cases[i].tag, pipeline,
                       "a header value must not hold CR, LF, NUL", cases[i].key,
                       env);
    }

    /* From a file, only `run` reads it: a runtime error, nothing sent. */
    char keyf[128], headers[256], bin[1100];
    const char *argv[4];
    snprintf(keyf, sizeof(keyf), "%s/inject.hdr", g.dir);
    write_file(keyf, 0600, "a\r\nX-Injected: yes\n");
    snprintf(headers, sizeof(headers), "      X-Note: {value_file: %s}\n",
             keyf);
    snprintf(pipeline, sizeof(pipeline), "%s/inject-file.yaml", g.dir);
    wire_start();
    write_header_pipeline(pipeline, headers, table);
    sluice_argv(argv, bin, sizeof(bin), pipeline);
    pid_t pid = spawn("inject-file", argv, env, NULL);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    wire_stop();
    pg_exec(PG_ADMIN, sql);
    char *log = tag_file("inject-file", "err", NULL);
    if (code != 1 || wire.conns || !strstr(log, "header 'X-Note'") ||
        !strstr(log, "holds a line break inside its value"))
        fail_msg("inject-file: exit %d, %d request(s):\n%s\nlog:\n%s", code,
                 wire.conns, wire.buf, log);
    free(log);
}

/*
 * Credential headers: a value in the file is refused without being
 * shown; {value_env} and {value_file} reach the server, and no log line.
 */
static void test_credential_headers(void **state)
{
    char pipeline[128], table[64], keyf[128], headers[512], sql[160];
    char bin[1100];
    const char *argv[4];
    const char *env[] = {"SEC_HDR_KEY=" SECRET_KEY "\n",
                         "SEC_HDR_PLAIN=" SECRET_KEY, "SLUICE_LOG_LEVEL=debug",
                         NULL};

    (void)state;
    snprintf(table, sizeof(table), "sec_%d_hdr", g.uniq);
    wire_start();

    /* In the file: refused, the value never echoed. */
    snprintf(pipeline, sizeof(pipeline), "%s/hdr-literal.yaml", g.dir);
    write_header_pipeline(
        pipeline, "      Authorization: Bearer " SECRET_KEY "\n", table);
    expect_refused("hdr-literal", pipeline,
                   "header 'Authorization' carries a credential",
                   "backends.h.headers.Authorization", env);
    snprintf(pipeline, sizeof(pipeline), "%s/hdr-var.yaml", g.dir);
    write_header_pipeline(pipeline, "      X-Api-Key: ${SEC_HDR_PLAIN}\n",
                          table);
    expect_refused("hdr-var", pipeline,
                   "header 'X-Api-Key' carries a credential",
                   "backends.h.headers.X-Api-Key", env);

    /* From the environment and from a private file: on the wire only. */
    snprintf(keyf, sizeof(keyf), "%s/hdr.key", g.dir);
    write_file(keyf, 0600, SECRET_REDIS "\n");
    snprintf(headers, sizeof(headers),
             "      Authorization: {value_env: SEC_HDR_KEY}\n"
             "      X-Api-Key: {value_file: %s}\n",
             keyf);
    snprintf(pipeline, sizeof(pipeline), "%s/hdr-ok.yaml", g.dir);
    write_header_pipeline(pipeline, headers, table);
    sluice_argv(argv, bin, sizeof(bin), pipeline);
    pid_t pid = spawn("hdr-ok", argv, env, NULL);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    wire_stop();
    if (code != 0) {
        char *log = tag_file("hdr-ok", "err", NULL);
        fail_msg("sluice run exited %d:\n%s", code, log);
    }
    if (!strstr(wire.buf, "\r\nAuthorization: " SECRET_KEY "\r\n") ||
        !strstr(wire.buf, "\r\nX-Api-Key: " SECRET_REDIS "\r\n"))
        fail_msg("the secret headers did not arrive as sent:\n%s", wire.buf);
    /* perf #15: the request carries Content-Type, offers gzip only, and
     * has neither Accept (it was "application/json"; libcurl's own default
     * is suppressed) nor Expect. */
    if (!strstr(wire.buf, "\r\nContent-Type: application/json\r\n") ||
        !strstr(wire.buf, "\r\nAccept-Encoding: gzip\r\n") ||
        strcasestr(wire.buf, "\nAccept:") || strcasestr(wire.buf, "\nExpect:"))
        fail_msg("request headers other than expected:\n%s", wire.buf);
    assert_int_equal(pg_rows(PG_ADMIN, table), 1);
    check_output("hdr-ok");
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s_dead", table,
             table);
    pg_exec(PG_ADMIN, sql);
}

/* ---- TLS: sslmode=verify-full fails closed on a wrong host name ---- */

static bool find_pg_bindir(void)
{
    const char *env = getenv("SLUICE_PG_BINDIR");
    static const char *const dirs[] = {"/usr/lib/postgresql/17/bin",
                                       "/usr/lib/postgresql/16/bin",
                                       "/usr/lib/postgresql/15/bin",
                                       "/usr/lib/postgresql/14/bin",
                                       "/usr/lib/postgresql/13/bin",
                                       "/usr/local/bin",
                                       "/usr/bin"};
    char path[600];

    if (env && *env) {
        snprintf(g.pg_bindir, sizeof(g.pg_bindir), "%s", env);
        return true;
    }
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        snprintf(path, sizeof(path), "%s/initdb", dirs[i]);
        if (access(path, X_OK) == 0) {
            snprintf(path, sizeof(path), "%s/pg_ctl", dirs[i]);
            if (access(path, X_OK) == 0) {
                snprintf(g.pg_bindir, sizeof(g.pg_bindir), "%s", dirs[i]);
                return true;
            }
        }
    }
    return false;
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* As root the server runs as 'postgres'. */
static const char *as_pg(void)
{
    return geteuid() == 0 ? "runuser -u postgres -- " : "";
}

static void tls_pg_stop(void)
{
    if (!g.tls_dir[0])
        return;
    sh("%s'%s/pg_ctl' -D '%s/data' -s -m immediate -w stop >/dev/null 2>&1",
       as_pg(), g.pg_bindir, g.tls_dir);
    sh("rm -rf '%s'", g.tls_dir);
    g.tls_dir[0] = '\0';
}

/* A throwaway CA, a server cert for "localhost", a TLS PostgreSQL. */
static const char *tls_pg_start(void)
{
    if (sh("command -v openssl >/dev/null 2>&1") != 0)
        return "openssl is not installed";
    if (!find_pg_bindir())
        return "initdb/pg_ctl not found (set SLUICE_PG_BINDIR)";
    if (geteuid() == 0 && sh("id postgres >/dev/null 2>&1") != 0)
        return "running as root without a 'postgres' user for the server";
    if (!port_free(TLS_PG_PORT))
        return "port " SL_STR(TLS_PG_PORT) " is in use";
    snprintf(g.tls_dir, sizeof(g.tls_dir), "/tmp/sl-sec-tls.XXXXXX");
    if (!mkdtemp(g.tls_dir)) {
        g.tls_dir[0] = '\0';
        return "mkdtemp failed";
    }
    const char *d = g.tls_dir;
    if (sh("cd '%s' && chmod 755 . && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
           " -nodes -keyout ca.key -out ca.pem -days 2"
           " -subj /CN=sluice-test-ca >/dev/null 2>&1 && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
           " -nodes -keyout server.key -out server.csr -subj /CN=localhost"
           " >/dev/null 2>&1 && "
           "printf 'subjectAltName=DNS:localhost\\n' > san.ext && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key"
           " -CAcreateserial -out server.crt -days 2 -extfile san.ext"
           " >/dev/null 2>&1 && chmod 600 server.key ca.key",
           d) != 0)
        return "openssl could not make the test certificates";
    if (geteuid() == 0 && sh("chown -R postgres:postgres '%s'", d) != 0)
        return "chown to postgres failed";
    if (sh("%s'%s/initdb' -D '%s/data' -U postgres --auth=trust -E UTF8"
           " --no-sync >'%s/initdb.log' 2>&1",
           as_pg(), g.pg_bindir, d, d) != 0)
        return "initdb failed (see its log in the scratch directory)";
    if (sh("%s'%s/pg_ctl' -D '%s/data' -l '%s/server.log' -s -w -t 60"
           " -o \"-p %d -c listen_addresses=127.0.0.1"
           " -c unix_socket_directories='%s' -c ssl=on"
           " -c ssl_cert_file='%s/server.crt' -c ssl_key_file='%s/server.key'"
           " -c fsync=off\" start >/dev/null 2>&1",
           as_pg(), g.pg_bindir, d, d, TLS_PG_PORT, d, d, d) != 0) {
        char path[128];
        snprintf(path, sizeof(path), "%s/server.log", d);
        char *log = slurp(path, NULL);
        fprintf(stderr, "TLS PostgreSQL log:\n%s\n", log);
        free(log);
        return "the TLS PostgreSQL did not start";
    }
    return NULL;
}

static void test_pg_tls_verify_full(void **state)
{
    char bin[1100], pipeline[128], input[128], src[256], sink[1024];
    char admin[256], table[64];
    const char *argv[4];

    (void)state;
    const char *why = tls_pg_start();
    if (why) {
        tls_pg_stop();
        h_skip("the TLS test: %s", why);
    }
    snprintf(admin, sizeof(admin),
             "host=localhost port=%d dbname=postgres user=postgres "
             "sslmode=verify-full sslrootcert=%s/ca.pem",
             TLS_PG_PORT, g.tls_dir);
    /* The server really speaks TLS, and the certificate is good for
     * "localhost". */
    assert_int_equal(pg_long(admin, "SELECT ssl::int FROM pg_stat_ssl "
                                    "WHERE pid = pg_backend_pid()"),
                     1);
    snprintf(input, sizeof(input), "%s/tls.jsonl", g.dir);
    write_file(input, 0600, "{\"text\": \"one\"}\n{\"text\": \"two\"}\n");
    snprintf(src, sizeof(src), "source:\n  kind: file\n  file: {path: %s}\n",
             input);
    snprintf(table, sizeof(table), "tls_results");

    /* Wrong name: the certificate is for localhost, we dial 127.0.0.1. */
    snprintf(pipeline, sizeof(pipeline), "%s/tls-wrong.yaml", g.dir);
    snprintf(sink, sizeof(sink),
             "    dsn: host=127.0.0.1 port=%d dbname=postgres user=postgres"
             " sslmode=verify-full sslrootcert=%s/ca.pem\n"
             "    table: %s\n    dead_letter_table: tls_dead\n",
             TLS_PG_PORT, g.tls_dir, table);
    write_pipeline(pipeline, src, "", sink);
    sluice_argv(argv, bin, sizeof(bin), pipeline);
    pid_t pid = spawn("tls-wrong", argv, NULL, NULL);
    char *log = wait_log("tls-wrong", pid, "does not match host name", 20000);
    if (!log) {
        log = tag_file("tls-wrong", "err", NULL);
        kill_wait(&pid);
        fail_msg("no TLS host name error logged:\n%s", log);
    }
    free(log);
    h_sleep_ms(1000); /* it keeps retrying; give it the chance to misbehave */
    kill(pid, SIGTERM);
    int code = wait_exit(pid, EXIT_MS);
    if (code < 0)
        kill_wait(&pid);
    /* Nothing reached the server: no table, no row. */
    assert_int_equal(pg_rows(admin, table), -1);
    log = tag_file("tls-wrong", "err", NULL);
    assert_null(strstr(log, "connected"));
    free(log);

    /* Right name: it connects and writes. */
    snprintf(pipeline, sizeof(pipeline), "%s/tls-right.yaml", g.dir);
    snprintf(sink, sizeof(sink),
             "    dsn: host=localhost port=%d dbname=postgres user=postgres"
             " sslmode=verify-full sslrootcert=%s/ca.pem\n"
             "    table: %s\n    dead_letter_table: tls_dead\n",
             TLS_PG_PORT, g.tls_dir, table);
    write_pipeline(pipeline, src, "", sink);
    pid = spawn("tls-right", argv, NULL, NULL);
    code = wait_exit(pid, EXIT_MS);
    if (code != 0) {
        kill_wait(&pid);
        log = tag_file("tls-right", "err", NULL);
        fail_msg("sluice run with host=localhost exited %d:\n%s", code, log);
    }
    assert_int_equal(pg_rows(admin, table), 2);
    tls_pg_stop();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_secret_file_source),
        cmocka_unit_test(test_no_secret_redis_source),
        cmocka_unit_test(test_inline_secret_not_echoed),
        cmocka_unit_test(test_secret_file_mode_refused),
        cmocka_unit_test(test_header_injection_refused),
        cmocka_unit_test(test_credential_headers),
        cmocka_unit_test(test_pg_tls_verify_full),
    };

    return h_status(cmocka_run_group_tests(tests, setup, teardown));
}
