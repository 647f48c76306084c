/*
 * A test whose server is missing is never counted as passed: run
 * integration_test_run with PostgreSQL moved to a closed port
 * (SLUICE_PG_PORT) and check it exits 77 (CTest: Skipped) for a developer
 * and fails under CI=true or SLUICE_REQUIRE_SERVERS=1.  Needs no server.
 */
#include "harness.h"

#include <arpa/inet.h>

static char out[8192];

/* A loopback port that refuses connections while 'fd' stays open: bound,
 * never listening. */
static int closed_port(int *fd)
{
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);

    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(*fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&sin, &len), 0);
    return ntohs(sin.sin_port);
}

/* Run integration_test_run with PostgreSQL on a closed port and 'env'
 * (assignments for env(1)); its exit status, output in 'out'. */
static int run_without_pg(const char *env, int *port)
{
    char cmd[1024];
    int fd, rc;

    *port = closed_port(&fd);
    snprintf(cmd, sizeof(cmd),
             "env -u CI -u SLUICE_REQUIRE_SERVERS SLUICE_PG_PORT=%d %s "
             "'%s/integration_test_run' 2>&1",
             *port, env, h_bindir());
    rc = h_shell(cmd, out, sizeof(out));
    close(fd);
    print_message("%s -> %d\n%s", *env ? env : "no CI", rc, out);
    return rc;
}

static void test_developer_sees_skipped(void **state)
{
    char want[128];
    int port;

    (void)state;
    assert_int_equal(run_without_pg("", &port), H_SKIP_RC);
    snprintf(want, sizeof(want),
             "SKIPPED: PostgreSQL not reachable on 127.0.0.1:%d", port);
    assert_non_null(strstr(out, want));
    assert_null(strstr(out, "PASSED"));
}

static void test_ci_fails(void **state)
{
    const char *envs[] = {"CI=true", "SLUICE_REQUIRE_SERVERS=1"};
    char want[128];
    int port;

    (void)state;
    for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++) {
        int rc = run_without_pg(envs[i], &port);
        assert_int_not_equal(rc, 0);
        assert_int_not_equal(rc, H_SKIP_RC);
        snprintf(want, sizeof(want),
                 "FAILED: PostgreSQL not reachable on 127.0.0.1:%d", port);
        assert_non_null(strstr(out, want));
    }
}

/*
 * What ctest itself prints: the build's own add_test and
 * set_tests_properties lines of integration_test_run, copied into a
 * scratch CTest directory (a nested ctest in the build directory would
 * rewrite the running one's logs), run with PostgreSQL on a closed port.
 */
static void test_ctest_reports_skipped_or_failed(void **state)
{
    char path[512], tmp[64], cmd[1024], *text;
    int fd, port;

    (void)state;
    snprintf(path, sizeof(path), "%s/CTestTestfile.cmake", h_bindir());
    text = h_read_file(path);
    assert_non_null(text);
    h_tmpdir(tmp, sizeof(tmp));
    snprintf(path, sizeof(path), "%s/CTestTestfile.cmake", tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    int lines = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        if (strstr(line, "([=[integration_test_run]=]")) {
            fprintf(f, "%s\n", line);
            lines++;
        }
    assert_int_equal(fclose(f), 0);
    free(text);
    assert_int_equal(lines, 2);

    port = closed_port(&fd);
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && env -u CI -u SLUICE_REQUIRE_SERVERS "
             "SLUICE_PG_PORT=%d ctest 2>&1",
             tmp, port);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
    print_message("without CI:\n%s", out);
    assert_non_null(strstr(out, "***Skipped"));
    assert_non_null(strstr(out, "integration_test_run (Skipped)"));
    snprintf(cmd, sizeof(cmd),
             "cd '%s' && env CI=true SLUICE_PG_PORT=%d ctest 2>&1", tmp, port);
    assert_int_not_equal(h_shell(cmd, out, sizeof(out)), 0);
    print_message("with CI=true:\n%s", out);
    assert_non_null(strstr(out, "***Failed"));
    assert_non_null(strstr(out, "integration_test_run (Failed)"));
    close(fd);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_developer_sees_skipped),
        cmocka_unit_test(test_ci_fails),
        cmocka_unit_test(test_ctest_reports_skipped_or_failed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
