/*
 * Fuzz Retry-After handling: the header as libcurl hands it to
 * on_header() (lib/infer_req.c), then sl_retry_after_ms() on what was
 * kept, and sl_retry_after_ms() on the raw input; plus the backoff with
 * parameters inside the schema's ranges.
 *
 * Input: the header value (any bytes; cut at the first NUL for the direct
 * call).  The first 8 bytes also seed the backoff parameters.
 */
#include "fuzz_engine.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    sl_log_set_level(SL_LOG_OFF);
    return 0;
}

static void check_after(const char *value, int64_t now_s, int64_t cap_ms)
{
    int64_t ms = sl_retry_after_ms(value, now_s, cap_ms);

    if (ms != -1 && (ms < 0 || ms > cap_ms))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int64_t nows[] = {0, 1700000000, 4102444800}; /* 2100 */
    static const int64_t caps[] = {0, 1, 60000, 3600000, INT64_MAX};
    char *value = strndup((const char *)data, size);

    if (!value)
        return 0;
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++)
        for (size_t j = 0; j < sizeof(caps) / sizeof(caps[0]); j++)
            check_after(value, nows[i], caps[j]);

    /* The header line as received: "Retry-After: <value>\r\n". */
    static const char name[] = "Retry-After: ";
    size_t n = sizeof(name) - 1 + size + 2;
    char *line = malloc(n);
    struct req req = {0};
    if (!line)
        abort();
    memcpy(line, name, sizeof(name) - 1);
    memcpy(line + sizeof(name) - 1, data, size);
    memcpy(line + n - 2, "\r\n", 2);
    if (on_header(line, 1, n, &req) != n)
        abort();
    if (!memchr(req.retry_after, '\0', sizeof(req.retry_after)))
        abort();
    check_after(req.retry_after, 1700000000, 60000);
    free(line);

    /* Backoff inside the schema's ranges: base 1..600000 <= max 1..3600000,
     * retry 1..100 (max_attempts). */
    if (size >= 8) {
        uint32_t a, b;
        memcpy(&a, data, 4);
        memcpy(&b, data + 4, 4);
        struct sl_config_retry rc = {.max_attempts = 100};
        rc.max_ms = 1 + (int)(a % 3600000);
        rc.base_ms = 1 + (int)(b % 600000);
        if (rc.base_ms > rc.max_ms)
            rc.base_ms = rc.max_ms;
        uint64_t rng = a ^ ((uint64_t)b << 32);
        for (int retry = 1; retry <= 100; retry += 1 + data[7] % 16) {
            int64_t cap = sl_retry_backoff_cap_ms(&rc, retry);
            int64_t ms = sl_retry_backoff_ms(&rc, retry, &rng);
            if (cap < 0 || cap > rc.max_ms || ms < 0 || ms > cap)
                abort();
        }
    }
    free(value);
    return 0;
}
