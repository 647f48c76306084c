/*
 * Offset tracker throughput: 10M acks in random order within a window of
 * 4096 positions, as workers finishing out of order would produce, with a
 * commit every 1000 acks.  Prints one table line per case; not a test.
 * Usage: bench_tracker [acks] [capacity]
 */
#include "err.h"
#include "tracker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t rng_state = 0x7261636b6572ULL;

static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

enum order { IN_ORDER, RANDOM };

/*
 * Dispatch until the tracker pushes back, then ack one pending position
 * (the oldest, or one at random), until 'nacks' acks are done.  'skip_pct'
 * percent of positions are skipped (never dispatched).
 */
static void run(const char *name, enum order order, unsigned skip_pct,
                int64_t nacks, int64_t capacity)
{
    struct sl_tracker *t = sl_tracker_new(capacity);
    int64_t *pool = malloc((size_t)capacity * sizeof(*pool));
    int64_t npool = 0, head = 0, acks = 0, commits = 0, next = 0, cp;
    struct sl_tracker_stats st;
    double t0, dt;

    if (!t || !pool) {
        fprintf(stderr, "bench_tracker: out of memory\n");
        exit(1);
    }
    t0 = now_s();
    while (acks < nacks) {
        for (;;) {
            while (skip_pct && rng() % 100 < skip_pct)
                next++;
            if (sl_tracker_dispatch(t, next) != 0)
                break;
            pool[(head + npool++) % capacity] = next++;
        }
        int64_t i = order == IN_ORDER ? 0 : (int64_t)(rng() % (uint64_t)npool);
        int64_t slot = (head + i) % capacity;
        int64_t pos = pool[slot];
        /* Remove by moving the oldest entry into the hole. */
        pool[slot] = pool[head];
        head = (head + 1) % capacity;
        npool--;
        if (sl_tracker_ack(t, pos) != 0) {
            fprintf(stderr, "bench_tracker: ack %" PRId64 " failed\n", pos);
            exit(1);
        }
        if (++acks % 1000 == 0 && sl_tracker_committable(t, &cp)) {
            sl_tracker_mark_committed(t, cp);
            commits++;
        }
    }
    dt = now_s() - t0;
    sl_tracker_stats(t, &st);
    printf("%-22s %8" PRId64 " %10" PRId64 " %8.3f %10.2f %8.1f %10" PRIu64
           " %8" PRId64 "\n",
           name, capacity, acks, dt, (double)acks / dt / 1e6,
           dt * 1e9 / (double)acks, st.busy, commits);
    free(pool);
    sl_tracker_destroy(t);
}

int main(int argc, char **argv)
{
    int64_t nacks = argc > 1 ? strtoll(argv[1], NULL, 10) : 10000000;
    int64_t capacity = argc > 2 ? strtoll(argv[2], NULL, 10) : 4096;

    if (nacks < 1 || capacity < 1 || capacity > SL_TRACKER_MAX_CAPACITY) {
        fprintf(stderr, "usage: bench_tracker [acks] [capacity]\n");
        return 2;
    }
    printf("%-22s %8s %10s %8s %10s %8s %10s %8s\n", "case", "capacity", "acks",
           "seconds", "Macks/s", "ns/ack", "busy", "commits");
    run("in-order", IN_ORDER, 0, nacks, capacity);
    run("random", RANDOM, 0, nacks, capacity);
    run("random, 25% skipped", RANDOM, 25, nacks, capacity);
    return 0;
}
