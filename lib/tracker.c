/*
 * Offset tracker: two bitmaps over a ring of positions, a power of two in
 * size, so that dispatch and ack touch one bit and the commit point moves
 * by scanning 64 positions per word.
 */
#include "tracker.h"
#include "err.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every bit outside [base, last] is zero, and last - base < cap <= ring
 * size, so a position never shares its slot with another live one.
 */
struct sl_tracker {
    int64_t cap;          /* window size in positions, as asked for */
    uint64_t mask;        /* ring size - 1; ring size >= cap, >= 64 */
    size_t nwords;        /* words per bitmap: ring size / 64 */
    uint64_t *pending;    /* per slot: dispatched, not acked */
    uint64_t *acked;      /* per slot: acked, not yet passed by the P */
    bool started;         /* 'floor' is known for this generation */
    int64_t floor;        /* lowest position allowed in this generation */
    int64_t last;         /* last dispatched; floor - 1 before the first */
    int64_t base;         /* lowest unacked; meaningful when npending > 0 */
    int64_t committed;    /* last position given to mark_committed */
    int64_t npending;     /* dispatched, not acked */
    int64_t nheld;        /* dispatched, not yet passed by the commit point */
    uint32_t gen;         /* resets so far */
    uint64_t ndispatched; /* successful dispatches, all generations */
    uint64_t nacked;      /* successful acks, all generations */
    uint64_t nbusy;       /* dispatches refused as busy */
    uint64_t nbad_acks;   /* acks refused */
};

static size_t slot_word(const struct sl_tracker *t, int64_t pos)
{
    return (size_t)(((uint64_t)pos & t->mask) >> 6);
}

static uint64_t slot_bit(int64_t pos)
{
    return (uint64_t)1 << ((uint64_t)pos & 63);
}

/*
 * Lowest pending position >= 'from'.  There must be one, and it must be
 * less than a ring size past 'from'.
 */
static int64_t next_pending(const struct sl_tracker *t, int64_t from)
{
    unsigned shift = (unsigned)((uint64_t)from & 63);
    size_t w = slot_word(t, from);
    uint64_t word = t->pending[w] & (~(uint64_t)0 << shift);
    int64_t pos = from - (int64_t)shift; /* position of bit 0 of word w */

    while (word == 0) {
        pos += 64;
        w = (w + 1) & (t->nwords - 1);
        word = t->pending[w];
    }
    return pos + __builtin_ctzll(word);
}

/* Release the acked positions in [from, to] (inclusive; empty if to<from). */
static void release(struct sl_tracker *t, int64_t from, int64_t to)
{
    if (to < from)
        return;
    uint64_t left = (uint64_t)(to - from) + 1;

    while (left > 0) {
        unsigned shift = (unsigned)((uint64_t)from & 63);
        uint64_t n = 64 - shift < left ? 64 - shift : left;
        uint64_t m = n == 64 ? ~(uint64_t)0 : (((uint64_t)1 << n) - 1) << shift;
        size_t w = slot_word(t, from);

        t->nheld -= __builtin_popcountll(t->acked[w] & m);
        t->acked[w] &= ~m;
        left -= n;
        if (left > 0) /* not past 'to', which may be INT64_MAX */
            from += (int64_t)n;
    }
}

static int64_t commit_point(const struct sl_tracker *t)
{
    if (!t->started)
        return -1;
    return t->npending > 0 ? t->base - 1 : t->last;
}

struct sl_tracker *sl_tracker_new(int64_t capacity)
{
    struct sl_tracker *t;
    uint64_t ring = 64;

    if (capacity < 1 || capacity > SL_TRACKER_MAX_CAPACITY)
        return NULL;
    while (ring < (uint64_t)capacity)
        ring <<= 1;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->cap = capacity;
    t->mask = ring - 1;
    t->nwords = (size_t)(ring / 64);
    t->pending = calloc(t->nwords, sizeof(*t->pending));
    t->acked = calloc(t->nwords, sizeof(*t->acked));
    if (!t->pending || !t->acked) {
        sl_tracker_destroy(t);
        return NULL;
    }
    t->last = -1;
    t->committed = -1;
    return t;
}

void sl_tracker_destroy(struct sl_tracker *t)
{
    if (!t)
        return;
    free(t->pending);
    free(t->acked);
    free(t);
}

int sl_tracker_dispatch(struct sl_tracker *t, int64_t pos)
{
    if (pos < 0 || (t->started && pos <= t->last))
        return -SL_EINVAL;
    if (t->npending > 0 && pos - t->base >= t->cap) {
        t->nbusy++;
        return -SL_EBUSY;
    }
    if (!t->started) {
        t->started = true;
        t->floor = pos;
        t->committed = pos - 1;
    }
    /* Nothing pending means nothing held: the window restarts at 'pos'. */
    if (t->npending == 0)
        t->base = pos;
    t->pending[slot_word(t, pos)] |= slot_bit(pos);
    t->npending++;
    t->nheld++;
    t->last = pos;
    t->ndispatched++;
    return 0;
}

int sl_tracker_ack(struct sl_tracker *t, int64_t pos)
{
    size_t w;
    uint64_t bit;

    if (!t->started || pos < t->floor) {
        t->nbad_acks++;
        return t->gen > 0 ? -SL_ESTATE : -SL_ENOTFOUND;
    }
    if (t->npending == 0 || pos < t->base || pos > t->last) {
        t->nbad_acks++;
        return -SL_ENOTFOUND;
    }
    w = slot_word(t, pos);
    bit = slot_bit(pos);
    if (!(t->pending[w] & bit)) {
        t->nbad_acks++;
        return -SL_ENOTFOUND;
    }
    t->pending[w] &= ~bit;
    t->acked[w] |= bit;
    t->npending--;
    t->nacked++;
    if (pos != t->base)
        return 0;
    /* The gap closed: move the commit point to the next gap, or to last. */
    if (t->npending == 0) {
        release(t, t->base, t->last);
    } else {
        int64_t next = next_pending(t, pos + 1);
        release(t, t->base, next - 1);
        t->base = next;
    }
    return 0;
}

bool sl_tracker_committable(const struct sl_tracker *t, int64_t *posp)
{
    int64_t cp = commit_point(t);

    if (!t->started || cp <= t->committed) {
        *posp = 0;
        return false;
    }
    *posp = cp;
    return true;
}

int sl_tracker_mark_committed(struct sl_tracker *t, int64_t pos)
{
    if (!t->started || pos > commit_point(t) || pos < t->committed)
        return -SL_EINVAL;
    t->committed = pos;
    return 0;
}

int64_t sl_tracker_inflight(const struct sl_tracker *t)
{
    return t->nheld;
}

int64_t sl_tracker_lowest_unacked(const struct sl_tracker *t)
{
    return t->npending > 0 ? t->base : -1;
}

int sl_tracker_reset(struct sl_tracker *t, int64_t next_pos)
{
    if (next_pos < 0 && next_pos != SL_TRACKER_POS_ANY)
        return -SL_EINVAL;
    memset(t->pending, 0, t->nwords * sizeof(*t->pending));
    memset(t->acked, 0, t->nwords * sizeof(*t->acked));
    t->npending = 0;
    t->nheld = 0;
    t->gen++;
    t->started = next_pos != SL_TRACKER_POS_ANY;
    t->floor = t->started ? next_pos : 0;
    t->last = t->started ? next_pos - 1 : -1;
    t->committed = t->last;
    return 0;
}

uint32_t sl_tracker_generation(const struct sl_tracker *t)
{
    return t->gen;
}

void sl_tracker_stats(const struct sl_tracker *t, struct sl_tracker_stats *st)
{
    bool any = t->started && t->last >= t->floor;

    memset(st, 0, sizeof(*st));
    st->capacity = t->cap;
    st->last_dispatched = any ? t->last : -1;
    st->lowest_unacked = sl_tracker_lowest_unacked(t);
    st->commit_point = commit_point(t);
    st->committed = t->started ? t->committed : -1;
    st->inflight = t->nheld;
    st->unacked = t->npending;
    st->window_used = t->npending > 0 ? t->last - t->base + 1 : 0;
    st->dispatched = t->ndispatched;
    st->acked = t->nacked;
    st->busy = t->nbusy;
    st->bad_acks = t->nbad_acks;
    st->generation = t->gen;
}
