/*
 * `sluice produce` as a user runs it: 100,000 generated messages land in
 * a fresh Kafka topic and in a Redis stream, exit status 0; an
 * unreachable broker fails with a clear message in bounded time.  Needs
 * `scripts/services start kafka redis`.
 */
#include "cmocka_shim.h"

#include "clock.h"
#include "harness.h"

#include <hiredis/hiredis.h>
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define COUNT 100000

static char sluice[1024]; /* the binary under test */

static void unique_name(char *buf, size_t size, const char *prefix)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(buf, size, "%s-%ld-%lld%09ld", prefix, (long)getpid(),
             (long long)ts.tv_sec, ts.tv_nsec);
}

/* Run 'cmd' through the shell; its exit status, output in 'out'. */
static int run(const char *cmd, char *out, size_t size)
{
    FILE *fp = popen(cmd, "r");
    size_t n = 0;

    assert_non_null(fp);
    while (n + 1 < size && fgets(out + n, (int)(size - n), fp))
        n = strlen(out);
    out[n] = '\0';
    int st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int setup(void **state)
{
    (void)state;
    const char *bin = getenv("SLUICE_PRODUCE_BINARY");
    const char *dir = getenv("SLUICE_BINARY_DIR");
    char cmd[1200], out[256];

    if (bin && *bin)
        snprintf(sluice, sizeof(sluice), "%s", bin);
    else
        snprintf(sluice, sizeof(sluice), "%s/sluice", dir ? dir : ".");
    snprintf(cmd, sizeof(cmd), "%s produce --help >/dev/null 2>&1", sluice);
    if (run(cmd, out, sizeof(out)) != 0) {
        print_message("%s has no 'produce' command\n", sluice);
        return -1;
    }
    h_require_kafka();
    h_require_redis();
    return 0;
}

static void test_kafka(void **state)
{
    (void)state;
    char topic[128], cmd[1500], out[1024];
    int64_t t0 = sl_mono_ms();

    unique_name(topic, sizeof(topic), "sluice-test-produce");
    snprintf(cmd, sizeof(cmd),
             "%s produce kafka://%s/%s --partitions 3 "
             "--linger-ms 0 --generate %d 2>&1",
             sluice, H_KAFKA, topic, COUNT);
    int rc = run(cmd, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(rc, 0);

    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", H_KAFKA, err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, kc, err, sizeof(err));
    assert_non_null(rk);
    int64_t total = 0;
    for (int p = 0; p < 3; p++) {
        int64_t lo, hi;
        assert_int_equal(
            rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000), 0);
        total += hi - lo;
    }
    rd_kafka_destroy(rk);
    assert_int_equal(total, COUNT);
    print_message("kafka: %lld ms\n", (long long)(sl_mono_ms() - t0));
}

static void test_redis_stream(void **state)
{
    (void)state;
    char stream[128], cmd[1500], out[1024];
    int64_t t0 = sl_mono_ms();

    unique_name(stream, sizeof(stream), "sluice-test-produce");
    snprintf(cmd, sizeof(cmd), "%s produce redis://%s/%s --generate %d 2>&1",
             sluice, H_REDIS, stream, COUNT);
    int rc = run(cmd, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(rc, 0);

    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", H_REDIS_PORT, tv);
    assert_true(c && !c->err);
    redisReply *r = redisCommand(c, "XLEN %s", stream);
    assert_non_null(r);
    assert_int_equal(r->type, REDIS_REPLY_INTEGER);
    assert_int_equal(r->integer, COUNT);
    freeReplyObject(r);
    r = redisCommand(c, "DEL %s", stream);
    freeReplyObject(r);
    redisFree(c);
    print_message("redis: %lld ms\n", (long long)(sl_mono_ms() - t0));
}

/*
 * A rate-limited producer sends each message when its turn comes: the
 * first ones are in the stream while it is still running (they used to
 * wait in the pipeline buffer for 256 commands or the end).
 */
static void test_redis_paced_messages_go_out_at_once(void **state)
{
    (void)state;
    char stream[128], cmd[1500];
    long long seen = 0;

    unique_name(stream, sizeof(stream), "sluice-test-produce-paced");
    snprintf(cmd, sizeof(cmd),
             "exec %s produce redis://%s/%s --generate 20 "
             "--rate 10 >/dev/null 2>&1",
             sluice, H_REDIS, stream);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", H_REDIS_PORT, tv);
    assert_true(c && !c->err);
    /* Until the producer (2 s of pacing) exits: look for its first
     * messages in the stream. */
    int st = 0;
    while (waitpid(pid, &st, WNOHANG) == 0 && seen == 0) {
        redisReply *r = redisCommand(c, "XLEN %s", stream);
        assert_non_null(r);
        seen = r->integer;
        freeReplyObject(r);
        usleep(20000);
    }
    print_message("%lld messages in the stream while the producer ran\n", seen);
    assert_true(seen >= 1);
    if (waitpid(pid, &st, 0) == pid)
        assert_int_equal(WEXITSTATUS(st), 0);
    redisReply *r = redisCommand(c, "XLEN %s", stream);
    assert_int_equal(r->integer, 20);
    freeReplyObject(r);
    freeReplyObject(redisCommand(c, "DEL %s", stream));
    redisFree(c);
}

static void test_unreachable(void **state)
{
    (void)state;
    char cmd[1500], out[2048];
    int64_t t0 = sl_mono_ms();

    snprintf(cmd, sizeof(cmd),
             "%s produce kafka://127.0.0.1:1/nowhere --generate 10 "
             "--timeout-ms 2000 2>&1",
             sluice);
    int rc = run(cmd, out, sizeof(out));
    int64_t ms = sl_mono_ms() - t0;
    print_message("exit %d after %lld ms: %s", rc, (long long)ms, out);
    assert_int_equal(rc, 1);
    assert_true(ms < 15000);
    assert_non_null(strstr(out, "10 of 10 messages not delivered"));
    assert_non_null(strstr(out, "127.0.0.1:1"));
}

static void test_bad_option_value(void **state)
{
    (void)state;
    char cmd[1500], out[1024];

    snprintf(cmd, sizeof(cmd), "%s produce kafka://%s/t --linger-ms -1 2>&1",
             sluice, H_KAFKA);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--linger-ms: expected a number in "
                                "[0, 900000], got '-1'"));

    /* --password-env follows the rules of every secret (lib/secret.h):
     * a variable not set, or holding only a line break, is refused. */
    snprintf(cmd, sizeof(cmd),
             "env -u SL_TEST_NO_PW %s produce --password-env SL_TEST_NO_PW "
             "redis://u@%s/s --generate 1 2>&1",
             sluice, H_REDIS);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    assert_string_equal(out, "sluice produce: --password-env: environment "
                             "variable SL_TEST_NO_PW is not set\n"
                             "Try 'sluice produce --help'.\n");
    snprintf(cmd, sizeof(cmd),
             "SL_TEST_NL_PW='\n' %s produce --password-env SL_TEST_NL_PW "
             "redis://u@%s/s --generate 1 2>&1",
             sluice, H_REDIS);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    assert_string_equal(out, "sluice produce: --password-env: environment "
                             "variable SL_TEST_NL_PW is empty\n"
                             "Try 'sluice produce --help'.\n");
}

/* ---- Redis authentication; a password is never printed ---- */

static char acl_user[96]; /* created by the test, removed at its end */
static char acl_pass[96]; /* its password */

static redisReply *redis_cmd(const char *fmt, const char *a, const char *b)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", H_REDIS_PORT, tv);
    redisReply *r;

    assert_true(c && !c->err);
    r = b ? redisCommand(c, fmt, a, b) : redisCommand(c, fmt, a);
    redisFree(c);
    assert_non_null(r);
    return r;
}

static int acl_teardown(void **state)
{
    (void)state;
    if (acl_user[0])
        freeReplyObject(redis_cmd("ACL DELUSER %s", acl_user, NULL));
    acl_user[0] = '\0';
    return 0;
}

static long long xlen(const char *stream)
{
    redisReply *r = redis_cmd("XLEN %s", stream, NULL);
    long long n = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;

    freeReplyObject(r);
    freeReplyObject(redis_cmd("DEL %s", stream, NULL));
    return n;
}

/*
 * An ACL user made for the test: the URL's password works, so does
 * --password-env, a wrong one fails clearly; no output holds a password.
 */
static void test_redis_auth(void **state)
{
    (void)state;
    char stream[128], cmd[2048], out[4096], rule[128], want[512];

    unique_name(acl_user, sizeof(acl_user), "sluice-test-user");
    unique_name(acl_pass, sizeof(acl_pass), "pw");
    snprintf(rule, sizeof(rule), ">%s", acl_pass);
    redisReply *r =
        redis_cmd("ACL SETUSER %s on %s ~* &* +@all", acl_user, rule);
    assert_int_equal(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    /* The URL's user and password. */
    unique_name(stream, sizeof(stream), "sluice-test-produce-auth");
    snprintf(cmd, sizeof(cmd),
             "%s produce redis://%s:%s@%s/%s --generate 5 2>&1", sluice,
             acl_user, acl_pass, H_REDIS, stream);
    int rc = run(cmd, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, acl_pass));
    snprintf(want, sizeof(want),
             "produced 5 messages to redis://%s:***@%s/%s in ", acl_user,
             H_REDIS, stream);
    assert_non_null(strstr(out, want));
    assert_int_equal(xlen(stream), 5);

    /* The URL's user, the password from --password-env. */
    unique_name(stream, sizeof(stream), "sluice-test-produce-auth");
    snprintf(cmd, sizeof(cmd),
             "SL_TEST_REDIS_PW=%s %s produce --password-env=SL_TEST_REDIS_PW "
             "redis://%s@%s/%s --generate 3 2>&1",
             acl_pass, sluice, acl_user, H_REDIS, stream);
    rc = run(cmd, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(rc, 0);
    assert_null(strstr(out, acl_pass));
    assert_int_equal(xlen(stream), 3);

    /* A wrong password: exit 1, the server's reason, no password. */
    unique_name(stream, sizeof(stream), "sluice-test-produce-auth");
    snprintf(cmd, sizeof(cmd),
             "%s produce redis://%s:wrong-%s@%s/%s --generate 3 "
             "2>&1",
             sluice, acl_user, acl_pass, H_REDIS, stream);
    rc = run(cmd, out, sizeof(out));
    print_message("%s", out);
    assert_int_equal(rc, 1);
    assert_null(strstr(out, acl_pass));
    snprintf(want, sizeof(want),
             "sluice produce: redis: authentication to %s as "
             "'%s' failed: WRONGPASS invalid username-password pair or user "
             "is disabled; nothing was sent\n",
             H_REDIS, acl_user);
    assert_string_equal(out, want);
    assert_int_equal(xlen(stream), 0);
}

/* A Kafka target with a password is refused without showing it. */
static void test_kafka_password_not_printed(void **state)
{
    (void)state;
    char cmd[1500], out[2048], want[512];

    snprintf(cmd, sizeof(cmd),
             "%s produce kafka://user:Secret-42@%s/t "
             "--generate 1 --timeout-ms 2000 2>&1",
             sluice, H_KAFKA);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    snprintf(want, sizeof(want),
             "sluice produce: bad target "
             "'kafka://user:***@%s/t': a user or "
             "password is supported for redis:// targets "
             "only\n"
             "Try 'sluice produce --help'.\n",
             H_KAFKA);
    assert_string_equal(out, want);
}

/*
 * --delivery-log: one line per message, "SEQ PARTITION OFFSET", every seq
 * once, and each (partition, offset) the one a consumer finds it at: the
 * record a fault scenario compares with the topic read back.
 */
static void test_kafka_delivery_log(void **state)
{
    (void)state;
    enum { N = 50, PARTS = 2 };
    char topic[128], cmd[3000], out[1024], path[160];
    int seen[N] = {0}, at[PARTS][N];

    unique_name(topic, sizeof(topic), "sluice-test-produce-dlog");
    snprintf(path, sizeof(path), "/tmp/%s.log", topic);
    snprintf(cmd, sizeof(cmd),
             "%s produce kafka://%s/%s --partitions %d --generate %d "
             "--delivery-log %s 2>&1",
             sluice, H_KAFKA, topic, PARTS, N, path);
    assert_int_equal(run(cmd, out, sizeof(out)), 0);
    memset(at, -1, sizeof(at));
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int seq, part, lines = 0;
    long long off;
    while (fscanf(fp, "%d %d %lld\n", &seq, &part, &off) == 3) {
        assert_true(seq >= 0 && seq < N && part >= 0 && part < PARTS);
        assert_true(off >= 0 && off < N);
        assert_int_equal(seen[seq]++, 0);
        assert_int_equal(at[part][off], -1);
        at[part][off] = seq;
        lines++;
    }
    assert_true(feof(fp));
    fclose(fp);
    unlink(path);
    assert_int_equal(lines, N);

    /* Read the topic back: the seq at each offset is the logged one. */
    char err[512];
    rd_kafka_conf_t *kc = rd_kafka_conf_new();
    rd_kafka_conf_set(kc, "bootstrap.servers", H_KAFKA, err, sizeof(err));
    rd_kafka_conf_set(kc, "group.id", topic, err, sizeof(err));
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(2);
    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, topic, p)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    int got = 0;
    int64_t deadline = sl_mono_ms() + 20000;
    while (got < N && sl_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err) {
            char buf[64];
            int s = -1;
            snprintf(buf, sizeof(buf), "%.*s", (int)(m->len < 40 ? m->len : 40),
                     (char *)m->payload);
            assert_int_equal(sscanf(buf, "{\"seq\": %d", &s), 1);
            assert_int_equal(at[m->partition][m->offset], s);
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    assert_int_equal(got, N);

    /* Only for Kafka. */
    snprintf(cmd, sizeof(cmd),
             "%s produce redis://%s/s --generate 1 --delivery-log %s 2>&1",
             sluice, H_REDIS, path);
    assert_int_equal(run(cmd, out, sizeof(out)), 2);
    assert_string_equal(out, "sluice produce: --delivery-log is for kafka:// "
                             "targets only\n"
                             "Try 'sluice produce --help'.\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka),
        cmocka_unit_test(test_redis_stream),
        cmocka_unit_test(test_redis_paced_messages_go_out_at_once),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_bad_option_value),
        cmocka_unit_test_teardown(test_redis_auth, acl_teardown),
        cmocka_unit_test(test_kafka_password_not_printed),
        cmocka_unit_test(test_kafka_delivery_log),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
