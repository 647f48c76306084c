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
    print_message("%s -> %d\n%s", env, rc, out);
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

/* CTest reads 77 as Skipped: the property is set on the real test. */
static void test_ctest_knows_77(void **state)
{
    char cmd[1024];

    (void)state;
    snprintf(cmd, sizeof(cmd),
             "ctest --test-dir '%s' -R '^integration_test_run$' "
             "--show-only=json-v1 2>&1",
             h_bindir());
    assert_int_equal(h_shell(cmd, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"name\" : \"SKIP_RETURN_CODE\""));
    assert_non_null(strstr(out, "\"value\" : 77"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_developer_sees_skipped),
        cmocka_unit_test(test_ci_fails),
        cmocka_unit_test(test_ctest_knows_77),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
