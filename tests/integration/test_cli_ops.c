/*
 * The operator's commands as a user runs them: `sluice config-reference`
 * prints docs/configuration.md; `sluice check --format json` gives tools
 * one JSON array and the usual exit status; `sluice check --print-config`
 * shows the effective pipeline with secrets as their source, never their
 * value; `log_format: text` and SLUICE_LOG_FORMAT turn `sluice run`'s
 * stderr into readable lines.
 */
#include "harness.h"

static char sluice[512]; /* the binary under test */
static char dir[64];     /* this run's files */

static int setup(void **state)
{
    (void)state;
    snprintf(sluice, sizeof(sluice), "%s/sluice", h_bindir());
    h_tmpdir(dir, sizeof(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[128], out[64];

    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return h_shell(cmd, out, sizeof(out));
}

/*
 * Run `ENV sluice ARGS` in 'dir' (stdin from /dev/null unless ARGS
 * redirects it): stdout into out[size], stderr into err[size] (may be
 * NULL: then dropped).  Returns the exit status.
 */
static int run(const char *env, const char *args, char *out, size_t size,
               char *err)
{
    char cmd[4096], errpath[128];
    int rc;

    snprintf(errpath, sizeof(errpath), "%s/stderr", dir);
    snprintf(cmd, sizeof(cmd), "cd %s && %s %s %s %s 2>%s", dir, env, sluice,
             args, strchr(args, '<') ? "" : "</dev/null", errpath);
    rc = h_shell(cmd, out, size);
    if (err) {
        char *text = h_read_file(errpath);
        assert_non_null(text);
        snprintf(err, size, "%s", text);
        free(text);
    }
    return rc;
}

/* A file in 'dir'. */
static void put(const char *name, const char *text)
{
    char path[256];

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    h_write_file(path, text);
}

static void expect(const char *what, int rc, int want_rc, const char *got,
                   const char *want)
{
    if (rc != want_rc || strcmp(got, want))
        fail_msg("%s: exit %d, output:\n%s\nwanted exit %d, output:\n%s", what,
                 rc, got, want_rc, want);
}

/* The reference on stdout is docs/configuration.md; help reaches it. */
static void test_config_reference(void **state)
{
    static char out[262144], err[262144], help[4096];
    char path[512];
    int rc;

    (void)state;
    snprintf(path, sizeof(path), "%s/docs/configuration.md",
             getenv("SLUICE_SOURCE_DIR"));
    char *doc = h_read_file(path);
    assert_non_null(doc);
    rc = run("", "config-reference", out, sizeof(out), err);
    expect("config-reference", rc, 0, out, doc);
    assert_string_equal(err, "");
    assert_non_null(strstr(out, "| `source.kafka.brokers` | string | "
                                "`127.0.0.1:59092` |"));
    free(doc);

    rc = run("", "config-reference --help", help, sizeof(help), NULL);
    assert_int_equal(rc, 0);
    assert_true(!strncmp(help, "Usage: sluice config-reference\n", 31));
    rc = run("", "help config-reference", out, sizeof(out), NULL);
    expect("help config-reference", rc, 0, out, help);
    rc = run("", "--help", out, sizeof(out), NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "\n  config-reference print every pipeline "
                                "key with its type, default,\n"));
    rc = run("", "config-reference extra", out, sizeof(out), err);
    expect("config-reference extra", rc, 2, err,
           "sluice config-reference: unexpected argument 'extra'\n"
           "Try 'sluice config-reference --help'.\n");
    assert_string_equal(out, "");
}

/* Errors of every file as one JSON array on stdout; nothing on stderr. */
static void test_check_format_json(void **state)
{
    static char out[16384], err[16384];
    int rc;

    (void)state;
    put("bad.yaml", "version: 1\nname: Bad\nqueue: {capacity: 0}\n");
    put("good.yaml", "version: 1\nname: good\ngateway: {enabled: true}\n"
                     "backends:\n"
                     "  b: {kind: http-json, url: \"http://127.0.0.1:1/x\"}\n"
                     "steps:\n  - {name: s, backends: [b]}\n");
    rc = run("", "check --format json bad.yaml good.yaml nope.yaml", out,
             sizeof(out), err);
    expect("check --format json", rc, 2, out,
           "[\n"
           "  {\n"
           "    \"file\": \"bad.yaml\",\n"
           "    \"line\": 2,\n"
           "    \"column\": 7,\n"
           "    \"path\": \"name\",\n"
           "    \"message\": \"expected a name of 1 to 64 lowercase letters, "
           "digits, '_' or '-', got 'Bad'\"\n"
           "  },\n"
           "  {\n"
           "    \"file\": \"bad.yaml\",\n"
           "    \"line\": 3,\n"
           "    \"column\": 19,\n"
           "    \"path\": \"queue.capacity\",\n"
           "    \"message\": \"expected an integer between 1 and 1048576, got "
           "'0'\"\n"
           "  },\n"
           "  {\n"
           "    \"file\": \"nope.yaml\",\n"
           "    \"line\": null,\n"
           "    \"column\": null,\n"
           "    \"path\": null,\n"
           "    \"message\": \"cannot open: No such file or directory\"\n"
           "  }\n"
           "]\n");
    assert_string_equal(err, "");

    rc = run("", "check --format=json good.yaml", out, sizeof(out), err);
    expect("check --format json (valid)", rc, 0, out, "[]\n");
    assert_string_equal(err, "");
    rc = run("", "check --format json - <bad.yaml", out, sizeof(out), NULL);
    assert_int_equal(rc, 2);
    assert_non_null(strstr(out, "\"file\": \"<stdin>\",\n    \"line\": 2,"));

    /* The text form is unchanged. */
    rc = run("", "check --format text bad.yaml", out, sizeof(out), err);
    expect("check --format text", rc, 2, err,
           "bad.yaml:2:7: expected a name of 1 to 64 lowercase letters, "
           "digits, '_' or '-', got 'Bad' at name\n"
           "bad.yaml:3:19: expected an integer between 1 and 1048576, got "
           "'0' at queue.capacity\n");
    assert_string_equal(out, "");
}

/* The effective pipeline: ${VAR} applied, defaults filled in, secrets as
 * where they come from, never their value (in neither stream). */
static void test_check_print_config(void **state)
{
    static char out[16384], err[16384];
    char key[128];
    int rc;

    (void)state;
    put("key", "k3y-SECRET\n");
    snprintf(key, sizeof(key), "%s/key", dir);
    assert_int_equal(chmod(key, 0600), 0);
    put("p.yaml",
        "version: 1\n"
        "name: ops\n"
        "log_format: ${OPS_LOG_FORMAT:-text}\n"
        "gateway: {enabled: true, write_rows: false}\n"
        "backends:\n"
        "  chat:\n"
        "    kind: openai-chat\n"
        "    url: ${OPS_URL}\n"
        "    model: m1\n"
        "    api_key_file: key\n"
        "    headers:\n"
        "      X-Tenant: \"007\"\n"
        "      X-Auth-Token: {value_env: OPS_TOKEN}\n"
        "    messages:\n"
        "      - {role: system, content: \"Say yes or no.\\nOnly that.\"}\n"
        "      - {role: user, content: \"{{text}}\"}\n"
        "    retry: {max_attempts: 2}\n"
        "steps:\n"
        "  - {name: s, backends: [chat], mode: first}\n"
        "http: {listen: \"127.0.0.1:0\"}\n");
    rc = run("OPS_URL=http://127.0.0.1:9/v1 OPS_TOKEN=t0ken-SECRET",
             "check --print-config p.yaml", out, sizeof(out), err);
    expect("check --print-config", rc, 0, out,
           "version: 1\n"
           "name: ops\n"
           "log_level: info\n"
           "log_format: text\n"
           "shutdown_timeout_ms: 30000\n"
           "queue:\n"
           "  capacity: 1024\n"
           "workers:\n"
           "  threads: 2\n"
           "  max_inflight: 64\n"
           "backends:\n"
           "  chat:\n"
           "    kind: openai-chat\n"
           "    url: http://127.0.0.1:9/v1\n"
           "    model: m1\n"
           "    api_key: \"<from file key>\"\n"
           "    timeout_ms: 30000\n"
           "    connect_timeout_ms: 5000\n"
           "    low_speed_time_ms: 0\n"
           "    low_speed_bytes_per_s: 1\n"
           "    max_response_bytes: 4194304\n"
           "    max_concurrency: 64\n"
           "    retry:\n"
           "      max_attempts: 2\n"
           "      base_ms: 100\n"
           "      max_ms: 10000\n"
           "      retry_after_max_ms: 60000\n"
           "    breaker:\n"
           "      failures: 5\n"
           "      open_ms: 10000\n"
           "      half_open_probes: 1\n"
           "    messages:\n"
           "    - role: system\n"
           "      content: \"Say yes or no.\\nOnly that.\"\n"
           "    - role: user\n"
           "      content: \"{{text}}\"\n"
           "    temperature: 0\n"
           "    response_format: text\n"
           "    headers:\n"
           "      X-Tenant: \"007\"\n"
           "      X-Auth-Token: \"<from env OPS_TOKEN>\"\n"
           "steps:\n"
           "- name: s\n"
           "  backends:\n"
           "  - chat\n"
           "  mode: first\n"
           "  on_error: fail\n"
           "  deadline_ms: 60000\n"
           "http:\n"
           "  listen: \"127.0.0.1:0\"\n"
           "gateway:\n"
           "  enabled: true\n"
           "  max_concurrency: 64\n"
           "  write_rows: false\n"
           "  max_body_bytes: 1048576\n");
    assert_string_equal(err, "");
    assert_null(strstr(out, "SECRET"));

    /* An invalid file: its errors, no YAML. */
    rc = run("OPS_TOKEN=t0ken-SECRET", "check --print-config p.yaml", out,
             sizeof(out), err);
    expect("check --print-config (invalid)", rc, 2, err,
           "p.yaml:8:10: environment variable 'OPS_URL' is not set (set it, "
           "or give a default: ${OPS_URL:-default}) at backends.chat.url\n");
    assert_string_equal(out, "");
}

static void test_check_usage(void **state)
{
    char out[4096], err[4096];
    int rc;

    (void)state;
    rc = run("", "check --format xml p.yaml", out, sizeof(out), err);
    expect("check --format xml", rc, 2, err,
           "sluice check: --format: expected text or json, got 'xml'\n"
           "Try 'sluice check --help'.\n");
    rc = run("", "check --print-config a.yaml b.yaml", out, sizeof(out), err);
    expect("check --print-config a b", rc, 2, err,
           "sluice check: --print-config takes one pipeline file, got 2\n"
           "Try 'sluice check --help'.\n");
    rc = run("", "check --print-config --format json a.yaml", out, sizeof(out),
             err);
    expect("check --print-config --format json", rc, 2, err,
           "sluice check: --print-config prints YAML; it cannot be combined "
           "with --format json\n"
           "Try 'sluice check --help'.\n");
    rc = run("", "check --help", out, sizeof(out), NULL);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "  --format FORMAT  text (the default)"));
    assert_non_null(strstr(out, "  --print-config "));
}

/* "2026-12-06T04:40:00.123Z WARN  component: message..." */
static bool text_line_ok(const char *line)
{
    static const char *const levels[] = {"DEBUG ", "INFO  ", "WARN  ",
                                         "ERROR "};
    const char *c;

    if (strlen(line) < 32 || line[4] != '-' || line[10] != 'T' ||
        line[19] != '.' || line[23] != 'Z' || line[24] != ' ')
        return false;
    for (size_t i = 0; i < 4; i++) {
        if (strncmp(line + 25, levels[i], 6))
            continue;
        c = line + 31;
        while (*c && *c != ' ' && *c != ':')
            c++;
        return c > line + 31 && !strncmp(c, ": ", 2);
    }
    return false;
}

/* Every line of 'text' is a text line (or, 'json', a JSON object). */
static void expect_lines(const char *text, bool json)
{
    char copy[16384], *save = NULL;
    int n = 0;

    snprintf(copy, sizeof(copy), "%s", text);
    for (char *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), n++)
        if (json ? strncmp(line, "{\"time\":\"", 9) : !text_line_ok(line))
            fail_msg("not a %s log line: '%s' in\n%s", json ? "JSON" : "text",
                     line, text);
    assert_true(n >= 3);
}

/* log_format: text in the pipeline, SLUICE_LOG_FORMAT over it. */
static void test_run_log_format(void **state)
{
    static char out[16384], err[16384];
    char table[128], yaml[1024];
    int rc;

    (void)state;
    h_unique(table, sizeof(table), "ops_logfmt");
    snprintf(yaml, sizeof(yaml),
             "version: 1\n"
             "name: logtext\n"
             "log_format: text\n"
             "source: {kind: stdin}\n"
             "backends:\n"
             "  b: {kind: http-json, url: \"http://127.0.0.1:1/x\", "
             "retry: {max_attempts: 2, base_ms: 1, max_ms: 1}}\n"
             "steps:\n"
             "  - {name: s, backends: [b]}\n"
             "sink:\n"
             "  postgres: {table: %s, dead_letter_table: %s_dl}\n"
             "http: {listen: \"127.0.0.1:0\"}\n",
             table, table);
    put("run.yaml", yaml);

    /* A failing backend logs fields: key=value after the message. */
    put("in.jsonl", "{\"text\": \"x\"}\n");
    rc = run("", "run run.yaml <in.jsonl", out, sizeof(out), err);
    if (rc != 0)
        fail_msg("sluice run: exit %d\n%s", rc, err);
    expect_lines(err, false);
    assert_non_null(strstr(err, "Z INFO  run: running pipeline 'logtext' as "));
    assert_non_null(strstr(err, "Z WARN  infer: backend 'b' failed (connect) "
                                "on attempt 1 of 2: "));
    assert_non_null(strstr(err, " backend=b class=connect attempt=1\n"));

    rc = run("SLUICE_LOG_FORMAT=json", "run run.yaml", out, sizeof(out), err);
    assert_int_equal(rc, 0);
    expect_lines(err, true);

    rc = run("SLUICE_LOG_FORMAT=xml", "run run.yaml", out, sizeof(out), err);
    assert_int_equal(rc, 0);
    expect_lines(err, false);
    assert_true(text_line_ok(err));
    const char *warn = "WARN  run: SLUICE_LOG_FORMAT is not one of json, "
                       "text; using the pipeline's log_format\n";
    assert_true(!strncmp(err + 25, warn, strlen(warn)));

    PGconn *db = h_db();
    char sql[512];
    snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s, %s_dl", table, table);
    PQclear(PQexec(db, sql));
    PQfinish(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_reference),
        cmocka_unit_test(test_check_format_json),
        cmocka_unit_test(test_check_print_config),
        cmocka_unit_test(test_check_usage),
        cmocka_unit_test(test_run_log_format),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
