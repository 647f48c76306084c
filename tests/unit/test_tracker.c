/*
 * Unit tests for the offset tracker: the commit point only ever covers
 * positions that are acked, gaps and skips never block it, and the window
 * bound pushes back.  A randomized test checks it against a plain model.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "err.h"
#include "tracker.h"

/* Commit point, or -2 when sl_tracker_committable() says nothing new. */
static int64_t committable(const struct sl_tracker *t)
{
    int64_t pos = -7;

    if (!sl_tracker_committable(t, &pos)) {
        assert_int_equal(pos, 0);
        return -2;
    }
    return pos;
}

static void commit(struct sl_tracker *t, int64_t pos)
{
    assert_int_equal(committable(t), pos);
    assert_int_equal(sl_tracker_mark_committed(t, pos), 0);
    assert_int_equal(committable(t), -2);
}

static void test_new_bad_capacity(void **state)
{
    (void)state;
    assert_null(sl_tracker_new(0));
    assert_null(sl_tracker_new(-1));
    assert_null(sl_tracker_new(SL_TRACKER_MAX_CAPACITY + 1));
    sl_tracker_destroy(NULL);

    struct sl_tracker *t = sl_tracker_new(1);
    assert_non_null(t);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_inflight(t), 0);
    assert_int_equal(sl_tracker_lowest_unacked(t), -1);
    assert_int_equal(sl_tracker_mark_committed(t, 0), -SL_EINVAL);
    sl_tracker_destroy(t);
}

static void test_in_order(void **state)
{
    struct sl_tracker *t = sl_tracker_new(16);
    (void)state;

    for (int64_t pos = 100; pos < 110; pos++)
        assert_int_equal(sl_tracker_dispatch(t, pos), 0);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_inflight(t), 10);
    for (int64_t pos = 100; pos < 110; pos++) {
        assert_int_equal(sl_tracker_lowest_unacked(t), pos);
        assert_int_equal(sl_tracker_ack(t, pos), 0);
        commit(t, pos);
        assert_int_equal(sl_tracker_inflight(t), 109 - pos);
    }
    assert_int_equal(sl_tracker_lowest_unacked(t), -1);
    sl_tracker_destroy(t);
}

static void test_reverse(void **state)
{
    struct sl_tracker *t = sl_tracker_new(16);
    (void)state;

    for (int64_t pos = 0; pos < 10; pos++)
        assert_int_equal(sl_tracker_dispatch(t, pos), 0);
    for (int64_t pos = 9; pos >= 1; pos--) {
        assert_int_equal(sl_tracker_ack(t, pos), 0);
        assert_int_equal(committable(t), -2);
        assert_int_equal(sl_tracker_lowest_unacked(t), 0);
        /* Acked but held behind position 0: still in flight. */
        assert_int_equal(sl_tracker_inflight(t), 10);
    }
    assert_int_equal(sl_tracker_ack(t, 0), 0);
    commit(t, 9);
    assert_int_equal(sl_tracker_inflight(t), 0);
    sl_tracker_destroy(t);
}

static void test_gaps(void **state)
{
    struct sl_tracker *t = sl_tracker_new(64);
    (void)state;

    /* 6, 7 and 10..19 were skipped (compaction, transaction markers). */
    assert_int_equal(sl_tracker_dispatch(t, 5), 0);
    assert_int_equal(sl_tracker_dispatch(t, 8), 0);
    assert_int_equal(sl_tracker_dispatch(t, 9), 0);
    assert_int_equal(sl_tracker_dispatch(t, 20), 0);
    assert_int_equal(sl_tracker_ack(t, 6), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_ack(t, 15), -SL_ENOTFOUND);

    assert_int_equal(sl_tracker_ack(t, 8), 0);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_ack(t, 5), 0);
    commit(t, 8); /* 6 and 7 never block; 9 does */
    assert_int_equal(sl_tracker_lowest_unacked(t), 9);
    assert_int_equal(sl_tracker_ack(t, 20), 0);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_ack(t, 9), 0);
    commit(t, 20);
    assert_int_equal(sl_tracker_inflight(t), 0);

    /* A gap right after the last dispatched position: the commit point
     * moves to just below the next unacked position (Kafka commits it). */
    assert_int_equal(sl_tracker_dispatch(t, 30), 0);
    commit(t, 29);
    assert_int_equal(sl_tracker_ack(t, 30), 0);
    commit(t, 30);
    sl_tracker_destroy(t);
}

static void test_window_full(void **state)
{
    struct sl_tracker *t = sl_tracker_new(4);
    struct sl_tracker_stats st;
    (void)state;

    for (int64_t pos = 0; pos < 4; pos++)
        assert_int_equal(sl_tracker_dispatch(t, pos), 0);
    assert_int_equal(sl_tracker_dispatch(t, 4), -SL_EBUSY);
    sl_tracker_stats(t, &st);
    assert_int_equal(st.busy, 1);
    assert_int_equal(st.last_dispatched, 3); /* nothing recorded */
    assert_int_equal(st.window_used, 4);

    /* Acks above the gap do not make room... */
    assert_int_equal(sl_tracker_ack(t, 1), 0);
    assert_int_equal(sl_tracker_ack(t, 3), 0);
    assert_int_equal(sl_tracker_dispatch(t, 4), -SL_EBUSY);
    /* ...closing the gap does, without waiting for a commit. */
    assert_int_equal(sl_tracker_ack(t, 0), 0);
    assert_int_equal(sl_tracker_lowest_unacked(t), 2);
    assert_int_equal(sl_tracker_dispatch(t, 4), 0);
    assert_int_equal(sl_tracker_dispatch(t, 5), 0);
    assert_int_equal(sl_tracker_dispatch(t, 6), -SL_EBUSY);
    assert_int_equal(sl_tracker_inflight(t), 4); /* 2..5 */

    /* Skipped positions take window slots while something is pending. */
    assert_int_equal(sl_tracker_ack(t, 2), 0);
    assert_int_equal(sl_tracker_ack(t, 5), 0);
    assert_int_equal(sl_tracker_dispatch(t, 1000), -SL_EBUSY);
    assert_int_equal(sl_tracker_ack(t, 4), 0);
    /* Nothing pending: the window restarts at any distance. */
    assert_int_equal(sl_tracker_dispatch(t, 1000), 0);
    commit(t, 999);
    assert_int_equal(sl_tracker_ack(t, 1000), 0);
    commit(t, 1000);
    sl_tracker_destroy(t);
}

static void test_duplicate_ack(void **state)
{
    struct sl_tracker *t = sl_tracker_new(8);
    struct sl_tracker_stats st;
    (void)state;

    assert_int_equal(sl_tracker_dispatch(t, 0), 0);
    assert_int_equal(sl_tracker_dispatch(t, 1), 0);
    assert_int_equal(sl_tracker_dispatch(t, 2), 0);
    assert_int_equal(sl_tracker_ack(t, 1), 0);
    assert_int_equal(sl_tracker_ack(t, 1), -SL_ENOTFOUND); /* held */
    assert_int_equal(sl_tracker_ack(t, 0), 0);
    assert_int_equal(sl_tracker_ack(t, 0), -SL_ENOTFOUND); /* released */
    assert_int_equal(sl_tracker_ack(t, 1), -SL_ENOTFOUND);
    commit(t, 1);
    assert_int_equal(sl_tracker_inflight(t), 1);
    sl_tracker_stats(t, &st);
    assert_int_equal(st.acked, 2);
    assert_int_equal(st.bad_acks, 3);
    assert_int_equal(st.unacked, 1);
    sl_tracker_destroy(t);
}

static void test_ack_never_dispatched(void **state)
{
    struct sl_tracker *t = sl_tracker_new(8);
    (void)state;

    assert_int_equal(sl_tracker_ack(t, 0), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_dispatch(t, 10), 0);
    assert_int_equal(sl_tracker_ack(t, 9), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_ack(t, 11), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_ack(t, -1), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_ack(t, INT64_MAX), -SL_ENOTFOUND);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_inflight(t), 1);
    assert_int_equal(sl_tracker_ack(t, 10), 0);
    commit(t, 10);
    assert_int_equal(sl_tracker_ack(t, 12), -SL_ENOTFOUND);
    sl_tracker_destroy(t);
}

static void test_bad_dispatch(void **state)
{
    struct sl_tracker *t = sl_tracker_new(8);
    struct sl_tracker_stats st;
    (void)state;

    assert_int_equal(sl_tracker_dispatch(t, -1), -SL_EINVAL);
    assert_int_equal(sl_tracker_dispatch(t, 5), 0);
    assert_int_equal(sl_tracker_dispatch(t, 5), -SL_EINVAL);
    assert_int_equal(sl_tracker_dispatch(t, 4), -SL_EINVAL);
    sl_tracker_stats(t, &st);
    assert_int_equal(st.dispatched, 1);
    assert_int_equal(st.last_dispatched, 5);
    sl_tracker_destroy(t);
}

static void test_mark_committed(void **state)
{
    struct sl_tracker *t = sl_tracker_new(8);
    (void)state;

    for (int64_t pos = 0; pos < 4; pos++)
        assert_int_equal(sl_tracker_dispatch(t, pos), 0);
    assert_int_equal(sl_tracker_ack(t, 0), 0);
    assert_int_equal(committable(t), 0);
    /* An asynchronous commit of 0 completes after more acks arrived. */
    assert_int_equal(sl_tracker_ack(t, 1), 0);
    assert_int_equal(sl_tracker_mark_committed(t, 0), 0);
    assert_int_equal(committable(t), 1);
    assert_int_equal(sl_tracker_mark_committed(t, 2), -SL_EINVAL);
    assert_int_equal(sl_tracker_mark_committed(t, 1), 0);
    assert_int_equal(sl_tracker_mark_committed(t, 1), 0);
    assert_int_equal(sl_tracker_mark_committed(t, 0), -SL_EINVAL);
    assert_int_equal(committable(t), -2);
    sl_tracker_destroy(t);
}

static void test_reset(void **state)
{
    struct sl_tracker *t = sl_tracker_new(8);
    struct sl_tracker_stats st;
    (void)state;

    for (int64_t pos = 0; pos < 5; pos++)
        assert_int_equal(sl_tracker_dispatch(t, pos), 0);
    assert_int_equal(sl_tracker_ack(t, 2), 0);
    assert_int_equal(sl_tracker_generation(t), 0);

    /* Revoked, then assigned again from committed offset 3. */
    assert_int_equal(sl_tracker_reset(t, -5), -SL_EINVAL);
    assert_int_equal(sl_tracker_generation(t), 0);
    assert_int_equal(sl_tracker_reset(t, 3), 0);
    assert_int_equal(sl_tracker_generation(t), 1);
    assert_int_equal(sl_tracker_inflight(t), 0);
    assert_int_equal(sl_tracker_lowest_unacked(t), -1);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_ack(t, 0), -SL_ESTATE);
    assert_int_equal(sl_tracker_ack(t, 2), -SL_ESTATE);
    assert_int_equal(sl_tracker_ack(t, 3), -SL_ENOTFOUND);
    assert_int_equal(sl_tracker_dispatch(t, 2), -SL_EINVAL);
    assert_int_equal(sl_tracker_dispatch(t, 3), 0);
    assert_int_equal(sl_tracker_ack(t, 3), 0);
    commit(t, 3);

    /* Assigned with no known offset: the first dispatch sets the start. */
    assert_int_equal(sl_tracker_reset(t, SL_TRACKER_POS_ANY), 0);
    assert_int_equal(sl_tracker_ack(t, 3), -SL_ESTATE);
    assert_int_equal(sl_tracker_ack(t, 1000), -SL_ESTATE);
    assert_int_equal(sl_tracker_dispatch(t, 1000), 0);
    assert_int_equal(committable(t), -2);
    assert_int_equal(sl_tracker_ack(t, 999), -SL_ESTATE);
    assert_int_equal(sl_tracker_ack(t, 1000), 0);
    commit(t, 1000);
    sl_tracker_stats(t, &st);
    assert_int_equal(st.generation, 2);
    assert_int_equal(st.dispatched, 7);
    assert_int_equal(st.acked, 3);
    assert_int_equal(st.bad_acks, 6);
    sl_tracker_destroy(t);
}

static void test_stats(void **state)
{
    struct sl_tracker *t = sl_tracker_new(100);
    struct sl_tracker_stats st;
    (void)state;

    sl_tracker_stats(t, &st);
    assert_int_equal(st.capacity, 100);
    assert_int_equal(st.last_dispatched, -1);
    assert_int_equal(st.lowest_unacked, -1);
    assert_int_equal(st.commit_point, -1);
    assert_int_equal(st.committed, -1);

    assert_int_equal(sl_tracker_dispatch(t, 40), 0);
    assert_int_equal(sl_tracker_dispatch(t, 42), 0);
    assert_int_equal(sl_tracker_dispatch(t, 50), 0);
    assert_int_equal(sl_tracker_ack(t, 42), 0);
    sl_tracker_stats(t, &st);
    assert_int_equal(st.last_dispatched, 50);
    assert_int_equal(st.lowest_unacked, 40);
    assert_int_equal(st.commit_point, 39);
    assert_int_equal(st.committed, 39);
    assert_int_equal(st.inflight, 3);
    assert_int_equal(st.unacked, 2);
    assert_int_equal(st.window_used, 11);
    sl_tracker_destroy(t);
}

static void test_large_positions(void **state)
{
    struct sl_tracker *t = sl_tracker_new(3);
    (void)state;

    assert_int_equal(sl_tracker_dispatch(t, INT64_MAX - 2), 0);
    assert_int_equal(sl_tracker_dispatch(t, INT64_MAX), 0);
    assert_int_equal(sl_tracker_ack(t, INT64_MAX), 0);
    assert_int_equal(sl_tracker_ack(t, INT64_MAX - 2), 0);
    commit(t, INT64_MAX);
    assert_int_equal(sl_tracker_dispatch(t, INT64_MAX), -SL_EINVAL);
    sl_tracker_destroy(t);
}

/* ---- randomized comparison with a reference model ---------------------- */

#define PROP_ROUNDS 200
#define PROP_POSITIONS 10000

static uint64_t rng_state;

/* splitmix64: the same sequence on every platform, for reproducible runs */
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rng_below(uint64_t n)
{
    return rng() % n;
}

enum { M_NONE, M_PENDING, M_ACKED };

/*
 * The model: one state byte per position, the lowest pending position
 * found by a forward scan, and counts; no windows, no bit tricks.
 */
struct model {
    int64_t origin;    /* position of state[0] */
    unsigned char *st; /* M_* per position */
    int64_t size;      /* entries in st */
    int64_t last;      /* last dispatched position; origin - 1 if none */
    int64_t low;       /* scan index: nothing pending below it */
    int64_t committed; /* last marked committed */
    int64_t dispatched;
    int64_t released; /* acked and below the lowest pending */
    int64_t *pend;    /* pending positions, unordered */
    int64_t *where;   /* index in pend of each pending position */
    int64_t npend;
};

static int64_t model_lowest(struct model *m)
{
    while (m->origin + m->low <= m->last && m->st[m->low] != M_PENDING) {
        if (m->st[m->low] == M_ACKED)
            m->released++;
        m->low++;
    }
    return m->origin + m->low <= m->last ? m->origin + m->low : -1;
}

static int64_t model_commit_point(struct model *m)
{
    int64_t low = model_lowest(m);
    return low >= 0 ? low - 1 : m->last;
}

static int prop_round;
static long prop_step;
static uint64_t prop_busy, prop_commits, prop_bad_acks, prop_acks;

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            print_error("round %d step %ld: check failed: %s (line %d)\n",     \
                        prop_round, prop_step, #cond, __LINE__);               \
            fail();                                                            \
        }                                                                      \
    } while (0)

static void check_against_model(struct sl_tracker *t, struct model *m)
{
    int64_t low = model_lowest(m);
    int64_t cp = model_commit_point(m);
    int64_t pos = -7;
    bool ok = sl_tracker_committable(t, &pos);

    CHECK(sl_tracker_lowest_unacked(t) == low);
    CHECK(sl_tracker_inflight(t) == m->dispatched - m->released);
    CHECK(ok == (cp > m->committed));
    if (ok) {
        CHECK(pos == cp);
        /* Never past an unacked position. */
        CHECK(low < 0 || pos < low);
    }
}

static void prop_one_round(void)
{
    static const int64_t caps[] = {1, 2, 3, 7, 64, 65, 100, 1000, 4096};
    int64_t cap = caps[rng_below(sizeof(caps) / sizeof(caps[0]))];
    struct sl_tracker *t = sl_tracker_new(cap);
    int64_t *seq = malloc(PROP_POSITIONS * sizeof(*seq));
    bool known_start = rng_below(2) == 0;
    struct model m = {0};
    int64_t next = 0; /* index into seq of the next dispatch */

    assert_non_null(t);
    assert_non_null(seq);

    /* Positions: mostly dense, some short skips, a few long ones. */
    m.origin = (int64_t)rng_below(1000000000000ULL) + 10;
    int64_t pos = m.origin + (known_start ? (int64_t)rng_below(3) : 0);
    for (int64_t i = 0; i < PROP_POSITIONS; i++) {
        seq[i] = pos;
        uint64_t r = rng_below(1000);
        pos += 1;
        if (r < 150)
            pos += 1 + (int64_t)rng_below(3);
        else if (r < 152)
            pos += (int64_t)rng_below((uint64_t)cap * 2 + 1);
    }
    m.size = seq[PROP_POSITIONS - 1] - m.origin + 1;
    m.st = calloc((size_t)m.size, 1);
    m.pend = malloc(PROP_POSITIONS * sizeof(*m.pend));
    m.where = malloc((size_t)m.size * sizeof(*m.where));
    assert_non_null(m.st);
    assert_non_null(m.pend);
    assert_non_null(m.where);
    m.last = m.origin - 1;
    m.committed = m.origin - 1;

    if (known_start) {
        assert_int_equal(sl_tracker_reset(t, m.origin), 0);
        /* Acks of earlier positions are stale from now on. */
        CHECK(sl_tracker_ack(t, m.origin - 1) == -SL_ESTATE);
    }

    /* Bias toward dispatch or ack differs per round, to vary fill level. */
    uint64_t dispatch_pct = 20 + rng_below(50);
    for (prop_step = 0; next < PROP_POSITIONS || m.npend > 0; prop_step++) {
        uint64_t r = rng_below(100);

        if (r < dispatch_pct && next < PROP_POSITIONS) {
            int64_t p = seq[next];
            int64_t low = model_lowest(&m);
            int want = low >= 0 && p - low >= cap ? -SL_EBUSY : 0;
            int rc = sl_tracker_dispatch(t, p);

            CHECK(rc == want);
            if (rc == 0) {
                m.st[p - m.origin] = M_PENDING;
                m.where[p - m.origin] = m.npend;
                m.pend[m.npend++] = p;
                m.last = p;
                m.dispatched++;
                next++;
            }
            if (rng_below(100) == 0 && m.last >= m.origin)
                CHECK(sl_tracker_dispatch(t, m.last - (int64_t)rng_below(3)) ==
                      -SL_EINVAL);
        } else if (r < 90 && m.npend > 0) {
            /* Mostly uniform; sometimes the oldest, so gaps close. */
            int64_t i = (int64_t)rng_below((uint64_t)m.npend);
            if (rng_below(8) == 0)
                i = m.where[model_lowest(&m) - m.origin];
            int64_t p = m.pend[i];
            CHECK(sl_tracker_ack(t, p) == 0);
            m.st[p - m.origin] = M_ACKED;
            m.pend[i] = m.pend[--m.npend];
            m.where[m.pend[i] - m.origin] = i;
        } else if (r < 94) {
            /* A bad ack: a duplicate, a skipped or a future position. */
            int64_t p = m.origin - 3 + (int64_t)rng_below((uint64_t)m.size + 6);
            bool pending = p >= m.origin && p < m.origin + m.size &&
                           m.st[p - m.origin] == M_PENDING;
            if (!pending) {
                int want =
                    p < m.origin && known_start ? -SL_ESTATE : -SL_ENOTFOUND;
                CHECK(sl_tracker_ack(t, p) == want);
            }
        } else {
            int64_t cp = model_commit_point(&m);
            int64_t p;

            check_against_model(t, &m);
            if (cp > m.committed && rng_below(2) == 0) {
                /* Commit P, or an older P whose commit completes late. */
                p = m.committed + 1 +
                    (int64_t)rng_below((uint64_t)(cp - m.committed));
                CHECK(sl_tracker_mark_committed(t, p) == 0);
                m.committed = p;
                prop_commits++;
                CHECK(sl_tracker_mark_committed(t, cp + 1) == -SL_EINVAL);
            }
        }
        if (prop_step % 7 == 0)
            check_against_model(t, &m);
    }

    /* Everything acked: the commit point is the last dispatched position. */
    check_against_model(t, &m);
    struct sl_tracker_stats st;
    sl_tracker_stats(t, &st);
    CHECK(st.acked == PROP_POSITIONS);
    prop_busy += st.busy;
    prop_bad_acks += st.bad_acks;
    prop_acks += st.acked;
    CHECK(sl_tracker_inflight(t) == 0);
    CHECK(model_commit_point(&m) == seq[PROP_POSITIONS - 1]);
    CHECK(committable(t) == seq[PROP_POSITIONS - 1] ||
          m.committed == seq[PROP_POSITIONS - 1]);

    free(m.st);
    free(m.pend);
    free(m.where);
    free(seq);
    sl_tracker_destroy(t);
}

static void test_property_vs_model(void **state)
{
    const char *env = getenv("SLUICE_TEST_SEED");
    uint64_t seed = env && *env ? strtoull(env, NULL, 0) : 0x5eed0f7acce55ULL;
    (void)state;

    printf("tracker property test: seed=0x%" PRIx64 " (%d rounds x %d "
           "positions; set SLUICE_TEST_SEED to repeat)\n",
           seed, PROP_ROUNDS, PROP_POSITIONS);
    fflush(stdout);
    for (prop_round = 0; prop_round < PROP_ROUNDS; prop_round++) {
        rng_state = seed + (uint64_t)prop_round * 0x100000001b3ULL;
        prop_one_round();
    }
    printf("tracker property test: %" PRIu64 " acks, %" PRIu64
           " busy dispatches, %" PRIu64 " bad acks, %" PRIu64
           " commits, all as the model said\n",
           prop_acks, prop_busy, prop_bad_acks, prop_commits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_bad_capacity),
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_reverse),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_window_full),
        cmocka_unit_test(test_duplicate_ack),
        cmocka_unit_test(test_ack_never_dispatched),
        cmocka_unit_test(test_bad_dispatch),
        cmocka_unit_test(test_mark_committed),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_large_positions),
        cmocka_unit_test(test_property_vs_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
