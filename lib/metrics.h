/*
 * Metrics in the Prometheus text format.  Counters live where they are
 * counted (atomics in each part's stats); at scrape time the runner walks
 * them and writes text through these helpers.  Histograms have fixed
 * bucket bounds and are lock-free to observe.
 */
#ifndef SL_METRICS_H
#define SL_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define SL_HISTO_MAX_BUCKETS 24

/* A histogram; observe from any thread. */
struct sl_histo {
    const double *bounds; /* upper bounds, ascending; borrowed, static */
    int nbounds;          /* number of bounds, <= SL_HISTO_MAX_BUCKETS */
    _Atomic uint64_t buckets[SL_HISTO_MAX_BUCKETS + 1]; /* last is +Inf */
    _Atomic uint64_t count;                             /* observations */
    _Atomic uint64_t sum_milli; /* sum of values x 1000 */
};

/* Latency bounds in milliseconds, 1 ms .. 10 s. */
extern const double sl_histo_latency_ms[];
extern const int sl_histo_latency_ms_count;

/* Set up 'h' with 'n' bounds (static storage).  Before any observe. */
void sl_histo_init(struct sl_histo *h, const double *bounds, int n);

/* Count one observation of 'value'.  Any thread. */
void sl_histo_observe(struct sl_histo *h, double value);

/* A text buffer for one scrape, capped. */
struct sl_prom {
    char *buf;     /* the text, NUL-terminated */
    size_t len;    /* bytes used */
    size_t cap;    /* bytes allocated */
    size_t max;    /* the cap: past it, writes are dropped */
    int truncated; /* 1 when something was dropped */
};

/* Start an empty buffer of at most 'max' bytes.  Returns 0 or -SL_ENOMEM. */
int sl_prom_init(struct sl_prom *p, size_t max);

/* Free the buffer.  Safe on a zeroed struct. */
void sl_prom_free(struct sl_prom *p);

/* "# HELP" and "# TYPE" lines; type is counter, gauge or histogram. */
void sl_prom_family(struct sl_prom *p, const char *name, const char *type,
                    const char *help);

/*
 * One sample line.  'labels' is NULL or alternating names and values,
 * ending in NULL: sl_prom_sample(p, "x_total", v, "backend", name, NULL).
 * Values are escaped as the format requires.
 */
void sl_prom_sample(struct sl_prom *p, const char *name, double value, ...);

/* The _bucket, _sum and _count lines of 'h', with labels as above. */
void sl_prom_histo(struct sl_prom *p, const char *name,
                   const struct sl_histo *h, ...);

#endif
