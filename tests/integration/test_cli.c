/*
 * The sluice command line as a user meets it, with no server: every usage
 * error is one line in one format plus a hint, exit 2, before anything
 * starts; `sluice help CMD` is `sluice CMD --help`; --name=value works;
 * `check -` reads standard input; help texts hold no printf escapes;
 * `sluice version` names every library, the build type and the commit.
 */
#include "harness.h"

#include <curl/curl.h>
#include <libfyaml.h>
#include <yajl/yajl_version.h>

static char sluice[512]; /* the binary under test */

static int setup(void **state)
{
    (void)state;
    snprintf(sluice, sizeof(sluice), "%s/sluice", h_bindir());
    return 0;
}

/*
 * Run `sluice ARGS` through the shell with stdin from /dev/null unless
 * ARGS redirects it; 'which' is 1 to capture stdout, 2 for stderr (the
 * other goes to /dev/null).  Returns the exit status.
 */
static int cli(int which, char *out, size_t size, const char *args)
{
    char cmd[4096];

    snprintf(cmd, sizeof(cmd), "%s %s %s %s", sluice, args,
             strchr(args, '<') ? "" : "</dev/null",
             which == 1 ? "2>/dev/null" : "2>&1 >/dev/null");
    return h_shell(cmd, out, size);
}

/* `sluice ARGS` exits 2 with exactly 'want' on stderr. */
static void expect_usage(const char *args, const char *want)
{
    char out[4096];
    int rc = cli(2, out, sizeof(out), args);

    if (rc != 2 || strcmp(out, want))
        fail_msg("sluice %s: exit %d, stderr:\n%s\nwanted exit 2, stderr:\n%s",
                 args, rc, out, want);
}

/* Malformed flag values: exit 2 before the pipeline file is even read. */
static void test_bad_flag_values(void **state)
{
    (void)state;
    expect_usage("run --listen garbage /nonexistent/p.yaml",
                 "sluice run: --listen: expected host:port with an IPv4 "
                 "address or 'localhost' as host and a port between 0 and "
                 "65535, got 'garbage'\n"
                 "Try 'sluice run --help'.\n");
    expect_usage("run --listen '[::1]:9464' /nonexistent/p.yaml",
                 "sluice run: --listen: expected host:port with an IPv4 "
                 "address or 'localhost' as host and a port between 0 and "
                 "65535, got '[::1]:9464'\n"
                 "Try 'sluice run --help'.\n");
    expect_usage("run --listen 127.0.0.1:65536 /nonexistent/p.yaml",
                 "sluice run: --listen: expected host:port with an IPv4 "
                 "address or 'localhost' as host and a port between 0 and "
                 "65535, got '127.0.0.1:65536'\n"
                 "Try 'sluice run --help'.\n");
    expect_usage("run --replica-id '' /nonexistent/p.yaml",
                 "sluice run: --replica-id: expected 1 to 127 characters, "
                 "none of them a control character, got ''\n"
                 "Try 'sluice run --help'.\n");
    /* A newline in an echoed value does not make a second line. */
    expect_usage("run --replica-id \"$(printf 'a\\nb')\" /nonexistent/p.yaml",
                 "sluice run: --replica-id: expected 1 to 127 characters, "
                 "none of them a control character, got 'a?b'\n"
                 "Try 'sluice run --help'.\n");
}

/* Extra arguments, unknown options, missing values: one format. */
static void test_usage_errors(void **state)
{
    (void)state;
    expect_usage("", "sluice: no command given\nTry 'sluice --help'.\n");
    expect_usage("nosuch",
                 "sluice: unknown command 'nosuch'\nTry 'sluice --help'.\n");
    expect_usage("help nosuch",
                 "sluice: unknown command 'nosuch'\nTry 'sluice --help'.\n");
    expect_usage("help run extra", "sluice help: unexpected argument 'extra'\n"
                                   "Try 'sluice help --help'.\n");
    expect_usage("version extra",
                 "sluice version: unexpected argument 'extra'\n"
                 "Try 'sluice version --help'.\n");
    expect_usage("run", "sluice run: no pipeline file given\n"
                        "Try 'sluice run --help'.\n");
    expect_usage("run a.yaml b.yaml", "sluice run: unexpected argument "
                                      "'b.yaml'\n"
                                      "Try 'sluice run --help'.\n");
    expect_usage("run --bogus a.yaml", "sluice run: unknown option '--bogus'\n"
                                       "Try 'sluice run --help'.\n");
    expect_usage("run a.yaml --listen", "sluice run: option '--listen' needs "
                                        "a value\n"
                                        "Try 'sluice run --help'.\n");
    expect_usage("run --help=yes", "sluice run: option '--help' takes no "
                                   "value\n"
                                   "Try 'sluice run --help'.\n");
    expect_usage("check", "sluice check: no pipeline file given\n"
                          "Try 'sluice check --help'.\n");
    expect_usage("check -x a.yaml", "sluice check: unknown option '-x'\n"
                                    "Try 'sluice check --help'.\n");
    expect_usage("check - -", "sluice check: '-' (standard input) given 2 "
                              "times\n"
                              "Try 'sluice check --help'.\n");
    expect_usage("produce", "sluice produce: no TARGET given\n"
                            "Try 'sluice produce --help'.\n");
    expect_usage("produce --bogus", "sluice produce: unknown option "
                                    "'--bogus'\n"
                                    "Try 'sluice produce --help'.\n");
    expect_usage("produce redis://127.0.0.1:1/s extra",
                 "sluice produce: 1 unexpected argument(s) after TARGET\n"
                 "Try 'sluice produce --help'.\n");
    expect_usage("produce --generate 1 --file x redis://127.0.0.1:1/s",
                 "sluice produce: --file and --generate exclude each other\n"
                 "Try 'sluice produce --help'.\n");
    expect_usage("produce redis://127.0.0.1:abc/s",
                 "sluice produce: bad target 'redis://127.0.0.1:abc/s': redis "
                 "url: bad port 'abc'\n"
                 "Try 'sluice produce --help'.\n");
    expect_usage("produce ftp://h/x", "sluice produce: bad target 'ftp://h/x': "
                                      "expected kafka://... or redis://...\n"
                                      "Try 'sluice produce --help'.\n");
}

/* --name=value reads as --name value, for every command. */
static void test_opt_equals_value(void **state)
{
    (void)state;
    expect_usage("run --listen=garbage /nonexistent/p.yaml",
                 "sluice run: --listen: expected host:port with an IPv4 "
                 "address or 'localhost' as host and a port between 0 and "
                 "65535, got 'garbage'\n"
                 "Try 'sluice run --help'.\n");
    expect_usage("run --replica-id= /nonexistent/p.yaml",
                 "sluice run: --replica-id: expected 1 to 127 characters, "
                 "none of them a control character, got ''\n"
                 "Try 'sluice run --help'.\n");
    expect_usage("produce --linger-ms=-1 kafka://127.0.0.1:1/t",
                 "sluice produce: --linger-ms: expected a number in [0, "
                 "900000], got '-1'\n"
                 "Try 'sluice produce --help'.\n");
    expect_usage("produce --rate=x kafka://127.0.0.1:1/t",
                 "sluice produce: --rate: expected a number in [0, 1e+09], "
                 "got 'x'\n"
                 "Try 'sluice produce --help'.\n");
}

/* `sluice help CMD` prints what `sluice CMD --help` prints, exit 0. */
static void test_help_command(void **state)
{
    static const char *const cmds[] = {"run", "check", "produce", "version"};
    (void)state;

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        char a[8192], b[8192], args[64], usage[64];

        snprintf(args, sizeof(args), "help %s", cmds[i]);
        assert_int_equal(cli(1, a, sizeof(a), args), 0);
        snprintf(args, sizeof(args), "%s --help", cmds[i]);
        assert_int_equal(cli(1, b, sizeof(b), args), 0);
        snprintf(usage, sizeof(usage), "Usage: sluice %s", cmds[i]);
        if (strncmp(a, usage, strlen(usage)))
            fail_msg("sluice help %s printed:\n%s", cmds[i], a);
        assert_string_equal(a, b);
        /* No printf escape left in a help text: "%%", "\t", "\n". */
        assert_null(strstr(a, "%%"));
        assert_null(strchr(a, '\\'));
        assert_null(strchr(a, '\t'));
    }
}

/* produce --help shows the generated keys as they are. */
static void test_produce_help_text(void **state)
{
    char out[8192];
    (void)state;

    assert_int_equal(cli(1, out, sizeof(out), "produce --help"), 0);
    assert_non_null(strstr(out, "(generated messages are keyed "
                                "k<seq % 1000>)"));
    assert_non_null(strstr(out, "--password-env NAME"));
}

/* `check -` reads the pipeline from standard input. */
static void test_check_stdin(void **state)
{
    char out[4096], args[1024];
    (void)state;

    snprintf(args, sizeof(args), "check - < %s/pipelines/review-sentiment.yaml",
             getenv("SLUICE_SOURCE_DIR") ? getenv("SLUICE_SOURCE_DIR") : ".");
    assert_int_equal(cli(1, out, sizeof(out), args), 0);
    assert_string_equal(out, "ok\n");

    assert_int_equal(h_shell("printf 'version: 1\\nname: x\\nnosuch: 1\\n' | "
                             "\"$SLUICE_BINARY_DIR\"/sluice check - "
                             "2>&1 >/dev/null",
                             out, sizeof(out)),
                     2);
    assert_string_equal(out, "<stdin>:3:1: unknown key 'nosuch' at nosuch\n");
}

/* The first line of `cmd`'s output, without its newline ("" if none). */
static void first_line(const char *cmd, char *out, size_t size)
{
    char buf[256];

    h_shell(cmd, buf, sizeof(buf));
    buf[strcspn(buf, "\n")] = '\0';
    snprintf(out, size, "%s", buf);
}

/* sluice version: the build, then one line per linked library. */
static void test_version(void **state)
{
    char out[4096], want[512], commit[64], type[64], cmd[1024];
    const char *src = getenv("SLUICE_SOURCE_DIR");
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    (void)state;

    assert_int_equal(cli(1, out, sizeof(out), "version"), 0);
    print_message("%s", out);

    snprintf(cmd, sizeof(cmd),
             "[ \"$(git -C '%s' rev-parse --show-toplevel 2>/dev/null)\" = "
             "\"$(cd '%s' && pwd -P)\" ] && git -C '%s' rev-parse --short "
             "HEAD || echo unknown",
             src ? src : ".", src ? src : ".", src ? src : ".");
    first_line(cmd, commit, sizeof(commit));
    snprintf(cmd, sizeof(cmd),
             "sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' '%s/CMakeCache.txt'",
             h_bindir());
    first_line(cmd, type, sizeof(type));
    snprintf(want, sizeof(want), "sluice %s (commit %s, %s build)\n",
             SLUICE_VERSION, commit, type);
    assert_int_equal(strncmp(out, want, strlen(want)), 0);

    snprintf(want, sizeof(want), "\nlibfyaml %s\n", fy_library_version());
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nTLS (libcurl's) %s\n",
             cv->ssl_version ? cv->ssl_version : "none");
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nlibcurl %s\n", cv->version);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "\nyajl %d.%d.%d\n", yajl_version() / 10000,
             yajl_version() / 100 % 100, yajl_version() % 100);
    assert_non_null(strstr(out, want));
    static const char *const libs[] = {"\nlibrdkafka ", "\nlibpq ",
                                       "\nhiredis ", "\njansson ",
                                       "\nlibmicrohttpd "};
    for (size_t i = 0; i < sizeof(libs) / sizeof(libs[0]); i++)
        assert_non_null(strstr(out, libs[i]));
}

#define MAX_FLAGS 64

/* The distinct "--name" words of 'text' (only at line starts: 'lead'). */
static size_t flags_of(const char *text, bool lead, char flags[][40])
{
    size_t n = 0;

    for (const char *p = text; (p = strstr(p, "--")) != NULL; p += 2) {
        size_t len = strspn(p + 2, "abcdefghijklmnopqrstuvwxyz-");
        if (len == 0 || len > 36)
            continue;
        if (lead) { /* "  --name" opening a line of the option list */
            const char *b = p;
            while (b > text && b[-1] == ' ')
                b--;
            if (b > text && b[-1] != '\n')
                continue;
        }
        char f[40];
        snprintf(f, sizeof(f), "--%.*s", (int)len, p + 2);
        size_t i = 0;
        while (i < n && strcmp(flags[i], f))
            i++;
        if (i == n && n < MAX_FLAGS)
            snprintf(flags[n++], 40, "%s", f);
    }
    return n;
}

/* README's mock-infer section and `mock-infer --help` list the same flags. */
static void test_mock_infer_flags_documented(void **state)
{
    char help[8192], cmd[1024], fh[MAX_FLAGS][40], fr[MAX_FLAGS][40];
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char path[1024];
    (void)state;

    snprintf(cmd, sizeof(cmd), "%s/mock-infer --help", h_bindir());
    assert_int_equal(h_shell(cmd, help, sizeof(help)), 0);
    snprintf(path, sizeof(path), "%s/README.md", src ? src : ".");
    char *readme = h_read_file(path);
    assert_non_null(readme);
    char *sec = strstr(readme, "\n## mock-infer");
    assert_non_null(sec);
    char *end = strstr(sec + 1, "\n## ");
    if (end)
        *end = '\0';

    size_t nh = flags_of(help, true, fh), nr = flags_of(sec, false, fr);
    assert_true(nh >= 16);
    for (size_t i = 0; i < nh; i++) {
        size_t j = 0;
        while (j < nr && strcmp(fh[i], fr[j]))
            j++;
        if (j == nr)
            fail_msg("mock-infer %s is not in README's mock-infer section",
                     fh[i]);
    }
    for (size_t j = 0; j < nr; j++) {
        size_t i = 0;
        while (i < nh && strcmp(fh[i], fr[j]))
            i++;
        if (i == nh)
            fail_msg("README names mock-infer %s, which --help does not list",
                     fr[j]);
    }
    free(readme);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_flag_values),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_opt_equals_value),
        cmocka_unit_test(test_help_command),
        cmocka_unit_test(test_produce_help_text),
        cmocka_unit_test(test_check_stdin),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_mock_infer_flags_documented),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
