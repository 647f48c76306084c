/*
 * The Kafka source against librdkafka's mock cluster with Kafka request
 * errors injected: OffsetCommit fails (timed out, coordinator not
 * available, not coordinator) mid-stream, JoinGroup fails at start and
 * when a second member joins.  Every message is still acked, the source
 * never fails, and the group ends committed at the log end.  Needs no
 * server: the mock brokers run in this process.
 */
#include "harness.h"
#include "kafka_member.h"

#include "clock.h"
#include "err.h"
#include "log.h"
#include "source_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Kafka protocol API keys (librdkafka's rdkafka_protocol.h is private). */
enum {
    API_PRODUCE = 0,
    API_OFFSET_COMMIT = 8,
    API_JOIN_GROUP = 11,
};

#define PARTS 4               /* partitions of the mock topic */
#define COUNT 5000            /* messages produced */
#define PER (COUNT / PARTS)   /* messages per partition */
#define BROKERS 3             /* mock brokers */
#define COORD 1               /* the group coordinator's broker id */
#define MEMBERS 2             /* the first member and the mid-stream joiner */
#define FAST_US_PER_MSG 2000  /* sink latency per message: ~500 msg/s */
#define SLOW_US_PER_MSG 10000 /* ~100 msg/s while a rebalance settles */
#define WAIT_MS 20000         /* bound on each phase */

/* ------------------------------------------------------------------ */
/* Log tee: counts what the source and librdkafka said about commits    */

struct tee {
    int fds[2];                /* pipe: sl_log writes, tee_main reads */
    pthread_t thread;          /* runs tee_main() */
    _Atomic int commit_fail;   /* librdkafka COMMITFAIL warnings */
    _Atomic int revoke_fail;   /* "revoke: commit ... failed" */
    _Atomic int final_fail;    /* "final commit failed" */
    _Atomic int rebalance_err; /* "rebalance failed" */
    _Atomic int fatal;         /* "fatal consumer error" */
};

static struct tee logtee;

/* Count the interesting lines, echo warnings and errors to stderr. */
static void *tee_main(void *arg)
{
    struct tee *t = arg;
    FILE *fp = fdopen(t->fds[0], "r");
    char line[8192];

    if (!fp)
        return NULL;
    while (fgets(line, sizeof(line), fp)) {
        if (strstr(line, "COMMITFAIL"))
            atomic_fetch_add(&t->commit_fail, 1);
        if (strstr(line, "revoke: commit"))
            atomic_fetch_add(&t->revoke_fail, 1);
        if (strstr(line, "final commit failed"))
            atomic_fetch_add(&t->final_fail, 1);
        if (strstr(line, "rebalance failed"))
            atomic_fetch_add(&t->rebalance_err, 1);
        if (strstr(line, "fatal consumer error"))
            atomic_fetch_add(&t->fatal, 1);
        if (strstr(line, "\"level\":\"warn\"") ||
            strstr(line, "\"level\":\"error\"") || getenv("SLUICE_TEST_LOG"))
            fputs(line, stderr);
    }
    fclose(fp);
    return NULL;
}

/* Before any thread logs. */
static void tee_start(void)
{
    memset(&logtee, 0, sizeof(logtee));
    assert_int_equal(pipe(logtee.fds), 0);
    assert_int_equal(pthread_create(&logtee.thread, NULL, tee_main, &logtee),
                     0);
    sl_log_set_fd(logtee.fds[1]);
    if (getenv("SLUICE_TEST_LOG"))
        sl_log_set_level(SL_LOG_DEBUG);
}

/* After every thread that logs has ended. */
static void tee_stop(void)
{
    sl_log_set_fd(2);
    close(logtee.fds[1]);
    pthread_join(logtee.thread, NULL);
}

/* ------------------------------------------------------------------ */
/* Mock cluster                                                         */

/* Errors pushed onto the coordinator's stack, per API, for the report. */
struct injected {
    int16_t api;                  /* API key */
    const char *name;             /* its name */
    rd_kafka_resp_err_t errs[32]; /* pushed, in order */
    size_t cnt;                   /* how many */
};

static struct injected inj[] = {
    {API_OFFSET_COMMIT, "OffsetCommit", {0}, 0},
    {API_JOIN_GROUP, "JoinGroup", {0}, 0},
};
#define INJ_CNT (sizeof(inj) / sizeof(inj[0]))

static struct injected *inj_of(int16_t api)
{
    for (size_t i = 0; i < INJ_CNT; i++)
        if (inj[i].api == api)
            return &inj[i];
    fail_msg("no API %d", (int)api);
    return NULL;
}

/* Push 'errs' onto the coordinator's error stack for 'api'. */
static void inject(rd_kafka_mock_cluster_t *mc, int16_t api,
                   const rd_kafka_resp_err_t *errs, size_t cnt)
{
    struct injected *in = inj_of(api);

    for (size_t i = 0; i < cnt; i++) {
        assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                             mc, COORD, api, 1, errs[i], 0),
                         0);
        assert_true(in->cnt < sizeof(in->errs) / sizeof(in->errs[0]));
        in->errs[in->cnt++] = errs[i];
    }
}

/* Injected errors for 'api' not yet returned to a request. */
static size_t pending(rd_kafka_mock_cluster_t *mc, int16_t api)
{
    size_t cnt = 0;
    assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(mc, COORD, api, &cnt),
                     0);
    return cnt;
}

/* ------------------------------------------------------------------ */
/* Members: a source and a thread that pops and acks in random order    */

static struct km_acks acks;        /* of both members */
static _Atomic int ack_us_per_msg; /* the sink latency now */
static struct km_member members[MEMBERS];

static const struct sl_kafka_property fast_group[] = {
    /* The mock holds a rebalance open for session.timeout.ms - 1 s. */
    {"session.timeout.ms", "3000"},
    {"heartbeat.interval.ms", "300"},
    {"max.poll.interval.ms", "10000"},
    {"topic.metadata.refresh.interval.ms", "2000"},
    {"debug", "cgrp"}, /* last: only with SLUICE_TEST_LOG set */
};

static void member_start(struct km_member *m, const char *bootstraps,
                         const char *topic, const char *group, unsigned seed)
{
    const char *topics[] = {topic};
    struct sl_source_kafka_conf conf = {
        .brokers = bootstraps,
        .topics = topics,
        .topic_cnt = 1,
        .group = group,
        .revoke_timeout_ms = 5000,
        .max_inflight = 256,
        .commit_interval_ms = 200,
        .properties = fast_group,
        .property_cnt = sizeof(fast_group) / sizeof(fast_group[0]) -
                        (getenv("SLUICE_TEST_LOG") ? 0 : 1),
    };
    char err[512];

    m->acks = &acks;
    m->us_per_msg = &ack_us_per_msg;
    m->q = km_queue_new();
    m->src = sl_source_kafka_new(&conf, m->q, err, sizeof(err));
    if (!m->src)
        fail_msg("sl_source_kafka_new: %s", err);
    assert_int_equal(sl_source_start(m->src, err, sizeof(err)), 0);
    km_member_run(m, seed);
}

/* No running member's source has failed. */
static void assert_no_failure(void)
{
    char err[512];

    for (int i = 0; i < MEMBERS; i++) {
        if (!members[i].running)
            continue;
        int rc = sl_source_error(members[i].src, err, sizeof(err));
        if (rc != 0)
            fail_msg("member %d: source failed: %s (%s)", i, sl_strerror(rc),
                     err);
    }
}

/* ------------------------------------------------------------------ */
/* Conditions to wait for                                               */

struct cond {
    const char *what;                  /* for the failure message */
    bool (*met)(const struct cond *c); /* true when reached */
    int target;                        /* distinct acks */
    rd_kafka_mock_cluster_t *mc;       /* for the error stacks */
    rd_kafka_t *rk;                    /* for committed offsets */
    const char *topic;                 /* the topic */
};

static bool acked_at_least(const struct cond *c)
{
    return atomic_load(&acks.distinct) >= c->target;
}

static bool stacks_drained(const struct cond *c)
{
    for (size_t i = 0; i < INJ_CNT; i++)
        if (pending(c->mc, inj[i].api) > 0)
            return false;
    return true;
}

/* Both members own partitions, all of them between the two. */
static bool rebalanced(const struct cond *c)
{
    struct sl_source_kafka_stats st[MEMBERS];

    (void)c;
    for (int i = 0; i < MEMBERS; i++)
        sl_source_kafka_stats(members[i].src, &st[i]);
    return st[0].assigned > 0 && st[1].assigned > 0 &&
           st[0].assigned + st[1].assigned == PARTS;
}

/* The committed offsets, as another client of the group sees them. */
static bool committed_to_end(const struct cond *c)
{
    rd_kafka_topic_partition_list_t *l =
        rd_kafka_topic_partition_list_new(PARTS);
    bool done;

    for (int p = 0; p < PARTS; p++)
        rd_kafka_topic_partition_list_add(l, c->topic, p);
    done = rd_kafka_committed(c->rk, l, 5000) == 0;
    for (int p = 0; done && p < PARTS; p++)
        done = l->elems[p].err == 0 && l->elems[p].offset == PER;
    rd_kafka_topic_partition_list_destroy(l);
    return done;
}

/* Poll 'c' every 10 ms for up to WAIT_MS; fail on a source failure. */
static void wait_for(const struct cond *c)
{
    int64_t t0 = sl_mono_ms(), deadline = t0 + WAIT_MS;

    for (;;) {
        assert_no_failure();
        if (c->met(c))
            break;
        if (sl_mono_ms() > deadline)
            fail_msg("not reached within %d ms: %s (%d of %d acked)", WAIT_MS,
                     c->what, atomic_load(&acks.distinct), COUNT);
        usleep(10000);
    }
    print_message("%6lld ms  %s (%d acked)\n", (long long)(sl_mono_ms() - t0),
                  c->what, atomic_load(&acks.distinct));
}

/* ------------------------------------------------------------------ */
/* The test                                                             */

static void report(rd_kafka_mock_cluster_t *mc)
{
    for (size_t i = 0; i < INJ_CNT; i++) {
        struct injected *in = &inj[i];
        size_t left = pending(mc, in->api);
        char list[1024] = "";
        size_t off = 0;
        if (in->cnt == 0)
            continue;
        for (size_t k = 0; k < in->cnt && off < sizeof(list); k++)
            off +=
                (size_t)snprintf(list + off, sizeof(list) - off, "%s%s",
                                 k ? ", " : "", rd_kafka_err2name(in->errs[k]));
        print_message("injected %zu %s error(s), %zu returned to requests: "
                      "%s\n",
                      in->cnt, in->name, in->cnt - left, list);
    }
    print_message(
        "log: %d COMMITFAIL (auto-commit failed, retried at the "
        "next interval), %d revoke commit(s) failed, %d final "
        "commit(s) failed, %d rebalance error(s), %d fatal\n",
        atomic_load(&logtee.commit_fail), atomic_load(&logtee.revoke_fail),
        atomic_load(&logtee.final_fail), atomic_load(&logtee.rebalance_err),
        atomic_load(&logtee.fatal));
}

static void test_commit_and_join_errors(void **state)
{
    (void)state;
    char topic[128], group[128];
    int64_t t0 = sl_mono_ms();
    rd_kafka_t *mrk, *rk;
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;

    h_unique(topic, sizeof(topic), "sluice-mock-faults");
    h_unique(group, sizeof(group), "sluice-mock-faults-g");
    atomic_store(&ack_us_per_msg, FAST_US_PER_MSG);
    km_acks_init(&acks, PARTS, PER);
    tee_start();

    mrk = km_client(RD_KAFKA_PRODUCER, NULL, NULL);
    mc = rd_kafka_mock_cluster_new(mrk, BROKERS);
    assert_non_null(mc);
    bootstraps = rd_kafka_mock_cluster_bootstraps(mc);
    assert_int_equal(rd_kafka_mock_topic_create(mc, topic, PARTS, 1), 0);
    assert_int_equal(rd_kafka_mock_coordinator_set(mc, "group", group, COORD),
                     0);
    km_produce(bootstraps, topic, PARTS, COUNT, 100);
    print_message("mock cluster %s: produced %d messages to %d partitions in "
                  "%lld ms\n",
                  bootstraps, COUNT, PARTS, (long long)(sl_mono_ms() - t0));
    /* A client of the group that never joins it: reads committed offsets. */
    rk = km_client(RD_KAFKA_CONSUMER, bootstraps, group);

    /* The first member's JoinGroup fails twice before it gets in. */
    static const rd_kafka_resp_err_t join_errs[] = {
        RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
    };
    inject(mc, API_JOIN_GROUP, join_errs, 2);
    member_start(&members[0], bootstraps, topic, group, 1);
    wait_for(&(struct cond){.what = "first member consuming",
                            .met = acked_at_least,
                            .target = COUNT / 5});
    assert_int_equal(pending(mc, API_JOIN_GROUP), 0);

    /* Mid-stream: commits fail, three kinds of error three times each. */
    static const rd_kafka_resp_err_t commit_errs[] = {
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
        RD_KAFKA_RESP_ERR_NOT_COORDINATOR,
    };
    inject(mc, API_OFFSET_COMMIT, commit_errs, 9);
    wait_for(&(struct cond){.what = "offset commit errors returned",
                            .met = stacks_drained,
                            .mc = mc});
    /*
     * A second member joins: its JoinGroup (or the first member's rejoin)
     * fails twice, and the commits around the rebalance (the revoke's
     * synchronous one included) fail three more times.  The sink slows
     * down meanwhile so that messages are left for the joiner.
     */
    atomic_store(&ack_us_per_msg, SLOW_US_PER_MSG);
    inject(mc, API_JOIN_GROUP, join_errs, 2);
    inject(mc, API_OFFSET_COMMIT, commit_errs, 3);
    member_start(&members[1], bootstraps, topic, group, 2);
    wait_for(&(struct cond){.what = "partitions shared by both members",
                            .met = rebalanced});
    atomic_store(&ack_us_per_msg, FAST_US_PER_MSG);
    wait_for(&(struct cond){
        .what = "all acked", .met = acked_at_least, .target = COUNT});
    wait_for(&(struct cond){
        .what = "injected errors returned", .met = stacks_drained, .mc = mc});
    wait_for(&(struct cond){.what = "offsets committed at the log end",
                            .met = committed_to_end,
                            .rk = rk,
                            .topic = topic});

    struct sl_source_kafka_stats st[MEMBERS];
    for (int i = 0; i < MEMBERS; i++)
        sl_source_kafka_stats(members[i].src, &st[i]);
    print_message(
        "member 0: %llu assignments, %llu revocations, %llu lost, popped %ld; "
        "member 1: %llu assignments, %llu revocations, %llu lost, popped %ld\n",
        (unsigned long long)st[0].assignments,
        (unsigned long long)st[0].revocations, (unsigned long long)st[0].lost,
        atomic_load(&members[0].popped), (unsigned long long)st[1].assignments,
        (unsigned long long)st[1].revocations, (unsigned long long)st[1].lost,
        atomic_load(&members[1].popped));
    /*
     * Partitions may be reported lost: a member whose rejoin spends the
     * injected JoinGroup errors misses the mock's rebalance window and is
     * dropped from the group.  Its in-flight messages are redelivered,
     * which the checks below allow.
     */
    /*
     * The joiner may find its partitions already consumed: the first
     * member takes a partition's prefetched run at once.
     */
    km_member_leave(&members[1]);
    km_member_leave(&members[0]);
    assert_int_equal(members[0].commit_errors, 0);
    assert_int_equal(members[1].commit_errors, 0);

    long dups = km_acks_dups(&acks);
    assert_int_equal(atomic_load(&acks.distinct), COUNT);
    print_message("all %d messages acked; %ld redelivered\n", COUNT, dups);

    /* After close, still committed at the log end. */
    km_assert_committed_to_end(rk, topic, PARTS, PER);
    rd_kafka_destroy(rk);

    report(mc);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
    tee_stop();
    km_acks_free(&acks);
    assert_int_equal(atomic_load(&logtee.fatal), 0);
    print_message("mock faults test: %lld ms\n",
                  (long long)(sl_mono_ms() - t0));
}

/*
 * `sluice produce` against a broker that answers its first Produce request
 * with DUPLICATE_SEQUENCE_NUMBER without having stored the batch (what a
 * Kafka 4 broker did to the first batch of a fresh topic in the fault
 * suite's net-pg-cut-30s): librdkafka reports that message delivered with
 * no offset.  produce must not count it delivered unseen: it looks for it
 * in the topic, sends it again when it is not there, says so, and every
 * message's delivery report then has an offset.
 */
static void test_produce_duplicate_sequence_answer(void **state)
{
    (void)state;
    enum { N = 20 };
    char topic[128], cmd[2048], out[8192] = "";
    const char *dir = getenv("SLUICE_BINARY_DIR");
    rd_kafka_t *mrk = km_client(RD_KAFKA_PRODUCER, NULL, NULL);
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(mrk, 1);
    int seen[N] = {0};

    assert_non_null(mc);
    h_unique(topic, sizeof(topic), "sluice-mock-dupseq");
    assert_int_equal(rd_kafka_mock_topic_create(mc, topic, 1, 1), 0);
    rd_kafka_mock_push_request_errors(
        mc, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_DUPLICATE_SEQUENCE_NUMBER);
    /* stdout: the summary; stderr: the delivery log and produce's notes */
    snprintf(cmd, sizeof(cmd),
             "%s/sluice produce kafka://%s/%s --generate %d --linger-ms 0 "
             "--timeout-ms 5000 --delivery-log /dev/stdout 2>&1",
             dir ? dir : ".", rd_kafka_mock_cluster_bootstraps(mc), topic, N);
    FILE *fp = popen(cmd, "r");
    assert_non_null(fp);
    size_t len = fread(out, 1, sizeof(out) - 1, fp);
    out[len] = '\0';
    int st = pclose(fp);
    print_message("%s", out);
    assert_int_equal(WIFEXITED(st) ? WEXITSTATUS(st) : 128, 0);
    assert_non_null(strstr(out, "1 message(s) reported delivered without an "
                                "offset (the broker answered 'duplicate "
                                "sequence number'): 0 found in the topic, "
                                "1 not found and sent again\n"));
    /* Each seq once in the delivery log, at a real offset. */
    for (char *line = out; line && *line; line = strchr(line, '\n')) {
        int seq, part;
        long long off;
        if (*line == '\n')
            line++;
        if (sscanf(line, "%d %d %lld", &seq, &part, &off) != 3)
            continue;
        assert_true(seq >= 0 && seq < N);
        if (off < 0)
            fail_msg("seq %d reported delivered at offset %lld", seq, off);
        seen[seq]++;
    }
    for (int i = 0; i < N; i++)
        if (seen[i] != 1)
            fail_msg("seq %d has %d delivery report(s) with an offset", i,
                     seen[i]);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(mrk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_and_join_errors),
        cmocka_unit_test(test_produce_duplicate_sequence_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
