/*
 * Backoff with full jitter and Retry-After parsing.  Pure functions: the
 * random state and the current time come from the caller, so tests can
 * pin both.
 */
#include "retry.h"

#include <ctype.h>
#include <curl/curl.h>
#include <string.h>

uint64_t sl_retry_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ULL;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dULL;
}

int64_t sl_retry_backoff_cap_ms(const struct sl_config_retry *rc, int retry)
{
    int64_t cap = rc->base_ms > 0 ? rc->base_ms : 0;

    for (int i = 1; i < retry && cap < rc->max_ms; i++)
        cap *= 2;
    if (cap > rc->max_ms)
        cap = rc->max_ms;
    return cap < 0 ? 0 : cap;
}

int64_t sl_retry_backoff_ms(const struct sl_config_retry *rc, int retry,
                            uint64_t *rng)
{
    int64_t cap = sl_retry_backoff_cap_ms(rc, retry);

    return (int64_t)(sl_retry_rand(rng) % (uint64_t)(cap + 1));
}

int64_t sl_retry_after_ms(const char *value, int64_t now_s, int64_t cap_ms)
{
    int64_t ms;

    if (!value)
        return -1;
    while (*value == ' ' || *value == '\t')
        value++;
    if (!*value)
        return -1;
    if (isdigit((unsigned char)*value)) {
        const char *p = value;
        int64_t secs = 0;
        while (isdigit((unsigned char)*p)) {
            if (secs < INT64_MAX / 10000)
                secs = secs * 10 + (*p - '0');
            p++;
        }
        while (*p == ' ' || *p == '\t')
            p++;
        if (*p)
            return -1;
        ms = secs >= INT64_MAX / 1000 ? INT64_MAX : secs * 1000;
    } else {
        time_t t = curl_getdate(value, NULL);
        if (t == (time_t)-1)
            return -1;
        int64_t d = (int64_t)t - now_s;
        ms = d <= 0 ? 0 : d >= INT64_MAX / 1000 ? INT64_MAX : d * 1000;
    }
    return ms > cap_ms ? cap_ms : ms;
}
