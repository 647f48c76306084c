/*
 * Prometheus text output and lock-free histograms.
 */
#include "metrics.h"
#include "err.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double sl_histo_latency_ms[] = {1,   2,   5,    10,   20,   50,   100,
                                      200, 500, 1000, 2000, 5000, 10000};
const int sl_histo_latency_ms_count =
    (int)(sizeof(sl_histo_latency_ms) / sizeof(sl_histo_latency_ms[0]));

void sl_histo_init(struct sl_histo *h, const double *bounds, int n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = n < SL_HISTO_MAX_BUCKETS ? n : SL_HISTO_MAX_BUCKETS;
}

void sl_histo_observe(struct sl_histo *h, double value)
{
    int i = 0;
    while (i < h->nbounds && value > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    if (value > 0)
        atomic_fetch_add_explicit(&h->sum_milli, (uint64_t)(value * 1000.0),
                                  memory_order_relaxed);
}

int sl_prom_init(struct sl_prom *p, size_t max)
{
    memset(p, 0, sizeof(*p));
    p->cap = 4096;
    p->max = max;
    p->buf = malloc(p->cap);
    if (!p->buf)
        return -SL_ENOMEM;
    p->buf[0] = '\0';
    return 0;
}

void sl_prom_free(struct sl_prom *p)
{
    free(p->buf);
    memset(p, 0, sizeof(*p));
}

static void put(struct sl_prom *p, const char *s, size_t n)
{
    if (p->truncated || p->len + n + 1 > p->max) {
        p->truncated = 1;
        return;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap;
        while (p->len + n + 1 > cap)
            cap *= 2;
        char *buf = realloc(p->buf, cap);
        if (!buf) {
            p->truncated = 1;
            return;
        }
        p->buf = buf;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->len += n;
    p->buf[p->len] = '\0';
}

static void puts_(struct sl_prom *p, const char *s)
{
    put(p, s, strlen(s));
}

static void put_number(struct sl_prom *p, double v)
{
    char num[64];
    if (isinf(v))
        snprintf(num, sizeof(num), "%s", v > 0 ? "+Inf" : "-Inf");
    else if (v == floor(v) && fabs(v) < 9e15)
        snprintf(num, sizeof(num), "%.0f", v);
    else
        snprintf(num, sizeof(num), "%.15g", v); /* a timestamp keeps its ms */
    puts_(p, num);
}

void sl_prom_family(struct sl_prom *p, const char *name, const char *type,
                    const char *help)
{
    puts_(p, "# HELP ");
    puts_(p, name);
    puts_(p, " ");
    puts_(p, help);
    puts_(p, "\n# TYPE ");
    puts_(p, name);
    puts_(p, " ");
    puts_(p, type);
    puts_(p, "\n");
}

static void put_escaped(struct sl_prom *p, const char *value)
{
    for (const char *c = value ? value : ""; *c; c++) {
        if (*c == '\\')
            puts_(p, "\\\\");
        else if (*c == '"')
            puts_(p, "\\\"");
        else if (*c == '\n')
            puts_(p, "\\n");
        else
            put(p, c, 1);
    }
}

/*
 * Write {a="x",b="y"} from a NULL-terminated name/value list, plus one
 * more label when 'extra_name' is not NULL (a histogram's le).
 */
static void put_labels(struct sl_prom *p, va_list ap, const char *extra_name,
                       const char *extra_value)
{
    const char *name;
    int n = 0;

    while ((name = va_arg(ap, const char *)) != NULL) {
        const char *value = va_arg(ap, const char *);
        puts_(p, n++ ? "," : "{");
        puts_(p, name);
        puts_(p, "=\"");
        put_escaped(p, value);
        puts_(p, "\"");
    }
    if (extra_name) {
        puts_(p, n++ ? "," : "{");
        puts_(p, extra_name);
        puts_(p, "=\"");
        put_escaped(p, extra_value);
        puts_(p, "\"");
    }
    if (n)
        puts_(p, "}");
}

void sl_prom_sample(struct sl_prom *p, const char *name, double value, ...)
{
    va_list ap;

    puts_(p, name);
    va_start(ap, value);
    put_labels(p, ap, NULL, NULL);
    va_end(ap);
    puts_(p, " ");
    put_number(p, value);
    puts_(p, "\n");
}

void sl_prom_histo(struct sl_prom *p, const char *name,
                   const struct sl_histo *h, ...)
{
    char series[256], le[64];
    uint64_t cumulative = 0;
    va_list ap;

    snprintf(series, sizeof(series), "%s_bucket", name);
    for (int i = 0; i <= h->nbounds; i++) {
        cumulative +=
            atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
        if (i < h->nbounds)
            snprintf(le, sizeof(le), "%g", h->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        puts_(p, series);
        va_start(ap, h);
        put_labels(p, ap, "le", le);
        va_end(ap);
        puts_(p, " ");
        put_number(p, (double)cumulative);
        puts_(p, "\n");
    }
    snprintf(series, sizeof(series), "%s_sum", name);
    puts_(p, series);
    va_start(ap, h);
    put_labels(p, ap, NULL, NULL);
    va_end(ap);
    puts_(p, " ");
    put_number(p, (double)atomic_load(&h->sum_milli) / 1000.0);
    puts_(p, "\n");
    snprintf(series, sizeof(series), "%s_count", name);
    puts_(p, series);
    va_start(ap, h);
    put_labels(p, ap, NULL, NULL);
    va_end(ap);
    puts_(p, " ");
    put_number(p, (double)cumulative);
    puts_(p, "\n");
}
