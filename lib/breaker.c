/*
 * Circuit breaker: one mutex, one state machine.  Every change of state
 * goes through set_state() so that the transitions can be traced.  Time
 * comes from the caller (tests inject it).
 */
#include "breaker.h"

#include "err.h"

#include <pthread.h>
#include <stdlib.h>

struct sl_breaker {
    pthread_mutex_t lock;          /* guards everything below */
    struct sl_config_breaker conf; /* copied settings */
    enum sl_breaker_state state;   /* as of the last call */
    int consecutive;               /* failures in a row while closed */
    int64_t opened_ms;             /* when it last opened */
    int probes;                    /* probes admitted while half-open */
};

struct sl_breaker *sl_breaker_new(const struct sl_config_breaker *bc)
{
    struct sl_breaker *b = calloc(1, sizeof(*b));

    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    b->conf = *bc;
    if (b->conf.half_open_probes < 1)
        b->conf.half_open_probes = 1;
    b->state = SL_BREAKER_CLOSED;
    return b;
}

void sl_breaker_destroy(struct sl_breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

static void set_state(struct sl_breaker *b, enum sl_breaker_state state,
                      int64_t now_ms)
{
    b->state = state;
    b->consecutive = 0;
    b->probes = 0;
    if (state == SL_BREAKER_OPEN)
        b->opened_ms = now_ms;
}

/* Move open -> half-open when open_ms has passed.  Lock held. */
static void tick(struct sl_breaker *b, int64_t now_ms)
{
    if (b->state == SL_BREAKER_OPEN && now_ms - b->opened_ms >= b->conf.open_ms)
        set_state(b, SL_BREAKER_HALF_OPEN, now_ms);
}

int sl_breaker_allow(struct sl_breaker *b, int64_t now_ms)
{
    int err = 0;

    if (b->conf.failures <= 0)
        return 0;
    pthread_mutex_lock(&b->lock);
    tick(b, now_ms);
    if (b->state == SL_BREAKER_OPEN)
        err = -SL_EBREAKER;
    else if (b->state == SL_BREAKER_HALF_OPEN) {
        if (b->probes < b->conf.half_open_probes)
            b->probes++;
        else
            err = -SL_EBREAKER;
    }
    pthread_mutex_unlock(&b->lock);
    return err;
}

int sl_breaker_record(struct sl_breaker *b, enum sl_breaker_outcome outcome,
                      int64_t now_ms)
{
    int moved = -1;

    if (b->conf.failures <= 0)
        return -1;
    pthread_mutex_lock(&b->lock);
    tick(b, now_ms);
    switch (b->state) {
    case SL_BREAKER_CLOSED:
        if (outcome == SL_BREAKER_SUCCESS)
            b->consecutive = 0;
        else if (outcome == SL_BREAKER_FAILURE &&
                 ++b->consecutive >= b->conf.failures)
            set_state(b, moved = SL_BREAKER_OPEN, now_ms);
        break;
    case SL_BREAKER_HALF_OPEN:
        if (outcome == SL_BREAKER_SUCCESS)
            set_state(b, moved = SL_BREAKER_CLOSED, now_ms);
        else if (outcome == SL_BREAKER_FAILURE)
            set_state(b, moved = SL_BREAKER_OPEN, now_ms);
        else if (b->probes > 0)
            b->probes--; /* a cancelled probe frees its slot */
        break;
    case SL_BREAKER_OPEN:
        break; /* late answers of calls admitted before it opened */
    }
    pthread_mutex_unlock(&b->lock);
    return moved;
}

enum sl_breaker_state sl_breaker_state(struct sl_breaker *b, int64_t now_ms)
{
    enum sl_breaker_state s;

    pthread_mutex_lock(&b->lock);
    tick(b, now_ms);
    s = b->state;
    pthread_mutex_unlock(&b->lock);
    return s;
}

const char *sl_breaker_state_name(enum sl_breaker_state state)
{
    switch (state) {
    case SL_BREAKER_CLOSED:
        return "closed";
    case SL_BREAKER_OPEN:
        return "open";
    case SL_BREAKER_HALF_OPEN:
        return "half_open";
    }
    return "unknown";
}
