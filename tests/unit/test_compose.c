/*
 * docker-compose.yml and the Dockerfile stay deployable: the compose file
 * validates (`docker-compose config -q`) for every SLUICE_PIPELINE value,
 * every service that runs `sluice run` names a pipeline file that `sluice
 * check` accepts in that service's environment, and the producer feeds the
 * topic or stream that pipeline reads.  No server and no Docker engine.
 */
#include "cmocka_shim.h"
#include "integration/harness.h"

#include "config.h"

#include <libfyaml.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_OUTPUT (4u << 20) /* longest `docker-compose config` output */
#define MAX_ENV 64            /* environment entries of one service */

static const char *const pipelines[] = {"review-sentiment", "multi-model",
                                        "embeddings"};

static char srcdir[1024]; /* the repository */
static char sluice[1200]; /* the sluice binary under test */
static char compose[64];  /* "docker-compose" or "docker compose"; or "" */
static char compose_file[1200];

/* Run 'cmd' through the shell; its exit status (128: killed).  Standard
 * output goes to *outp (malloc'd, NUL-terminated) when 'outp' is set. */
static int run(const char *cmd, char **outp)
{
    FILE *fp = popen(cmd, "r");
    size_t len = 0, cap = 8192;
    char *out = malloc(cap);
    size_t n;

    assert_non_null(fp);
    assert_non_null(out);
    while ((n = fread(out + len, 1, cap - len - 1, fp)) > 0) {
        len += n;
        if (cap - len - 1 == 0) {
            assert_true(cap < MAX_OUTPUT);
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
    }
    out[len] = '\0';
    int st = pclose(fp);
    if (outp)
        *outp = out;
    else
        free(out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* The scalar 'node' as a NUL-terminated copy in 'buf'; "" if not scalar. */
static const char *scalar(struct fy_node *node, char *buf, size_t size)
{
    size_t len = 0;
    const char *s =
        node && fy_node_is_scalar(node) ? fy_node_get_scalar(node, &len) : NULL;
    if (!s)
        len = 0;
    if (len >= size)
        len = size - 1;
    memcpy(buf, s ? s : "", len);
    buf[len] = '\0';
    return buf;
}

/* Item 'i' of a sequence node (or word 'i' of a scalar command line). */
static const char *arg_at(struct fy_node *node, int i, char *buf, size_t size)
{
    buf[0] = '\0';
    if (!node)
        return buf;
    if (fy_node_is_sequence(node))
        return scalar(fy_node_sequence_get_by_index(node, i), buf, size);
    if (fy_node_is_scalar(node)) {
        char line[2048], *save = NULL, *w;
        scalar(node, line, sizeof(line));
        w = strtok_r(line, " \t\n", &save);
        for (int k = 0; w && k < i; k++)
            w = strtok_r(NULL, " \t\n", &save);
        snprintf(buf, size, "%s", w ? w : "");
    }
    return buf;
}

/* Every scalar under 'node' appended to 'buf', space-separated. */
static void flatten(struct fy_node *node, char *buf, size_t size)
{
    void *iter = NULL;
    struct fy_node *item;
    char s[4096];

    if (!node)
        return;
    if (fy_node_is_scalar(node)) {
        size_t len = strlen(buf);
        snprintf(buf + len, size - len, "%s ", scalar(node, s, sizeof(s)));
    } else if (fy_node_is_sequence(node)) {
        while ((item = fy_node_sequence_iterate(node, &iter)))
            flatten(item, buf, size);
    }
}

/* Set (or, with 'set' false, unset) the service's environment variables. */
static void apply_env(struct fy_node *svc, bool set)
{
    struct fy_node *env =
        fy_node_mapping_lookup_by_string(svc, "environment", FY_NT);
    void *iter = NULL;
    char k[256], v[2048];

    if (!env)
        return;
    if (fy_node_is_mapping(env)) {
        struct fy_node_pair *p;
        while ((p = fy_node_mapping_iterate(env, &iter))) {
            scalar(fy_node_pair_key(p), k, sizeof(k));
            scalar(fy_node_pair_value(p), v, sizeof(v));
            if (set)
                setenv(k, v, 1);
            else
                unsetenv(k);
        }
    } else if (fy_node_is_sequence(env)) {
        struct fy_node *item;
        while ((item = fy_node_sequence_iterate(env, &iter))) {
            char *eq;
            scalar(item, v, sizeof(v));
            if (!(eq = strchr(v, '=')))
                continue;
            *eq = '\0';
            if (set)
                setenv(v, eq + 1, 1);
            else
                unsetenv(v);
        }
    }
}

/* `docker-compose config` with SLUICE_PIPELINE=name, parsed. */
static struct fy_document *compose_config(const char *name)
{
    char cmd[2048], *out = NULL;
    struct fy_document *fyd;

    setenv("SLUICE_PIPELINE", name, 1);
    snprintf(cmd, sizeof(cmd), "%s -f '%s' config", compose, compose_file);
    int rc = run(cmd, &out);
    unsetenv("SLUICE_PIPELINE");
    if (rc != 0)
        fail_msg("'%s' exited %d with SLUICE_PIPELINE=%s", cmd, rc, name);
    fyd = fy_document_build_from_malloc_string(NULL, out, FY_NT);
    if (!fyd)
        fail_msg("cannot parse the output of '%s':\n%s", cmd, out);
    return fyd;
}

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("SLUICE_SOURCE_DIR");
    const char *bin = getenv("SLUICE_BINARY_DIR");

    snprintf(srcdir, sizeof(srcdir), "%s", src && *src ? src : ".");
    snprintf(sluice, sizeof(sluice), "%s/sluice", bin && *bin ? bin : ".");
    snprintf(compose_file, sizeof(compose_file), "%s/docker-compose.yml",
             srcdir);
    if (run("command -v docker-compose >/dev/null 2>&1", NULL) == 0)
        snprintf(compose, sizeof(compose), "docker-compose");
    else if (run("docker compose version >/dev/null 2>&1", NULL) == 0)
        snprintf(compose, sizeof(compose), "docker compose");
    else
        print_message("docker-compose is not installed (scripts/setup "
                      "installs it): the compose checks are skipped\n");
    return 0;
}

static void test_compose_file_validates(void **state)
{
    (void)state;
    char cmd[2048], *out = NULL;

    if (!compose[0])
        h_skip("docker-compose is not installed (scripts/setup installs it)");
    assert_true(file_exists(compose_file));
    for (size_t i = 0; i < sizeof(pipelines) / sizeof(pipelines[0]); i++) {
        setenv("SLUICE_PIPELINE", pipelines[i], 1);
        snprintf(cmd, sizeof(cmd), "%s -f '%s' config -q 2>&1", compose,
                 compose_file);
        int rc = run(cmd, &out);
        unsetenv("SLUICE_PIPELINE");
        if (rc != 0)
            fail_msg("SLUICE_PIPELINE=%s %s: exit %d\n%s", pipelines[i], cmd,
                     rc, out);
        free(out);
    }
}

/* For one SLUICE_PIPELINE value: every `run` service's pipeline passes
 * `sluice check` with that service's environment, it is the selected one,
 * and some service produces to its topic or stream. */
static void check_pipeline(const char *name)
{
    struct fy_document *fyd = compose_config(name);
    struct fy_node *services = fy_node_by_path(
        fy_document_root(fyd), "/services", FY_NT, FYNWF_DONT_FOLLOW);
    struct fy_node_pair *p;
    void *iter = NULL;
    int runners = 0;
    char want_target[512] = "";
    static char producers[64 * 1024];

    producers[0] = '\0';
    assert_non_null(services);
    while ((p = fy_node_mapping_iterate(services, &iter))) {
        struct fy_node *svc = fy_node_pair_value(p);
        struct fy_node *ep =
            fy_node_mapping_lookup_by_string(svc, "entrypoint", FY_NT);
        struct fy_node *cmdn =
            fy_node_mapping_lookup_by_string(svc, "command", FY_NT);
        char svcname[128], a0[256], ep0[256], path[1024], local[2048];
        char cmd[4096], *out = NULL;

        scalar(fy_node_pair_key(p), svcname, sizeof(svcname));
        /* Remember every command line that mentions `sluice produce`. */
        {
            char line[16384] = "";
            flatten(ep, line, sizeof(line));
            flatten(cmdn, line, sizeof(line));
            if (strstr(line, "produce")) {
                size_t len = strlen(producers);
                snprintf(producers + len, sizeof(producers) - len, "%s\n",
                         line);
            }
        }
        /* The image's ENTRYPOINT is sluice; a service that keeps it (or
         * names sluice) and whose command begins with `run` is a worker. */
        arg_at(ep, 0, ep0, sizeof(ep0));
        if (ep0[0] && strcmp(ep0, "sluice") &&
            !(strlen(ep0) > 7 && !strcmp(ep0 + strlen(ep0) - 7, "/sluice")))
            continue;
        if (strcmp(arg_at(cmdn, 0, a0, sizeof(a0)), "run"))
            continue;
        runners++;
        arg_at(cmdn, 1, path, sizeof(path));
        const char *prefix = "/etc/sluice/pipelines/";
        if (strncmp(path, prefix, strlen(prefix)))
            fail_msg("service %s runs '%s', not a file under %s", svcname, path,
                     prefix);
        snprintf(local, sizeof(local), "%s/pipelines/%s", srcdir,
                 path + strlen(prefix));
        if (!file_exists(local))
            fail_msg("service %s runs %s, but %s does not exist", svcname, path,
                     local);
        char want[256];
        snprintf(want, sizeof(want), "%s%s.yaml", prefix, name);
        if (strcmp(path, want))
            fail_msg("SLUICE_PIPELINE=%s, yet service %s runs %s", name,
                     svcname, path);

        /* `sluice check` as the container would see the file. */
        apply_env(svc, true);
        snprintf(cmd, sizeof(cmd), "'%s' check '%s' 2>&1", sluice, local);
        int rc = run(cmd, &out);
        if (rc != 0)
            fail_msg("service %s: %s: exit %d\n%s", svcname, cmd, rc, out);
        free(out);

        /* Where the producer must write for this pipeline. */
        struct sl_config *cfg = NULL;
        assert_int_equal(sl_config_load(local, &cfg, NULL), 0);
        if (cfg->source.present && cfg->source.kind == SL_CONFIG_SOURCE_KAFKA)
            snprintf(want_target, sizeof(want_target), "kafka://%s/%s",
                     cfg->source.kafka.brokers,
                     cfg->source.kafka.topics.items[0]);
        else if (cfg->source.present &&
                 cfg->source.kind == SL_CONFIG_SOURCE_REDIS_STREAM)
            snprintf(want_target, sizeof(want_target), "%s/%s",
                     cfg->source.redis.url, cfg->source.redis.key);
        sl_config_destroy(cfg);
        apply_env(svc, false);
    }
    if (runners == 0)
        fail_msg("SLUICE_PIPELINE=%s: no service runs `sluice run`", name);
    if (want_target[0] && !strstr(producers, want_target))
        fail_msg("SLUICE_PIPELINE=%s: no producer writes to %s; producer "
                 "commands:\n%s",
                 name, want_target, producers);
    print_message("SLUICE_PIPELINE=%s: %d worker service(s) pass `sluice "
                  "check`; producer feeds %s\n",
                  name, runners, want_target);
    fy_document_destroy(fyd);
}

static void test_workers_run_checked_pipelines(void **state)
{
    (void)state;
    if (!compose[0])
        h_skip("docker-compose is not installed (scripts/setup installs it)");
    if (!file_exists(sluice))
        fail_msg("%s not built", sluice);
    for (size_t i = 0; i < sizeof(pipelines) / sizeof(pipelines[0]); i++)
        check_pipeline(pipelines[i]);
}

/* The image puts the pipelines where the compose file looks for them. */
static void test_dockerfile_layout(void **state)
{
    (void)state;
    char path[1200], *text = NULL, cmd[1400];

    snprintf(path, sizeof(path), "%s/Dockerfile", srcdir);
    assert_true(file_exists(path));
    snprintf(cmd, sizeof(cmd), "cat '%s'", path);
    assert_int_equal(run(cmd, &text), 0);
    assert_non_null(strstr(text, "/etc/sluice/pipelines"));
    assert_non_null(strstr(text, "ENTRYPOINT [\"sluice\"]"));
    assert_non_null(strstr(text, "HEALTHCHECK"));
    assert_non_null(strstr(text, "/healthz"));
    assert_non_null(strstr(text, "\nUSER "));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compose_file_validates),
        cmocka_unit_test(test_workers_run_checked_pipelines),
        cmocka_unit_test(test_dockerfile_layout),
    };
    return h_status(cmocka_run_group_tests(tests, setup, NULL));
}
