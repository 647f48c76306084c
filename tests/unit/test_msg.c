/*
 * The message envelope: copies, size caps with a clear error, headers,
 * and the origin as operators see it.
 */
#include "cmocka_shim.h"

#include "err.h"
#include "msg.h"

#include <string.h>

static void test_new_copies_and_terminates(void **state)
{
    (void)state;
    struct sl_msg *msg;
    char payload[] = {'{', '}', '\0', 'x'}; /* embedded NUL kept */
    char err[128];

    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_KAFKA, "reviews", 3, 1234, NULL,
                                "k1", 2, payload, sizeof(payload), NULL, err,
                                sizeof(err)),
                     0);
    assert_string_equal(msg->origin.topic, "reviews");
    assert_int_equal(msg->payload_len, 4);
    assert_memory_equal(msg->payload, payload, 4);
    assert_int_equal(msg->payload[4], '\0');
    assert_string_equal(msg->key, "k1");
    assert_int_equal(msg->attempts, 1);
    assert_true(msg->recv_time_us > 0);
    assert_int_equal(sl_msg_add_header(msg, "trace", "abc", 3, NULL), 0);
    assert_string_equal(msg->headers[0].value, "abc");

    char buf[96];
    assert_string_equal(sl_origin_format(&msg->origin, buf, sizeof(buf)),
                        "kafka:reviews/3@1234");
    sl_msg_destroy(msg);
    sl_msg_destroy(NULL);
}

static void test_caps(void **state)
{
    (void)state;
    struct sl_msg *msg = (struct sl_msg *)1;
    struct sl_msg_limits limits = {.max_payload = 8, .max_headers = 1};
    char err[128];

    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_FILE, "in.jsonl", 0, 7, NULL,
                                NULL, 0, "0123456789", 10, &limits, err,
                                sizeof(err)),
                     -SL_ETOOBIG);
    assert_null(msg);
    assert_string_equal(err, "payload of 10 bytes exceeds the cap of 8 bytes");

    assert_int_equal(sl_msg_new(&msg, SL_SOURCE_REDIS_STREAM, "s", 0, 0,
                                "1700000000000-0", NULL, 0, "{}", 2, &limits,
                                err, sizeof(err)),
                     0);
    assert_null(msg->key);
    assert_int_equal(sl_msg_add_header(msg, "a", NULL, 0, &limits), 0);
    assert_int_equal(sl_msg_add_header(msg, "b", NULL, 0, &limits),
                     -SL_ETOOBIG);
    char buf[96];
    assert_string_equal(sl_origin_format(&msg->origin, buf, sizeof(buf)),
                        "redis-stream:s@1700000000000-0");
    sl_msg_destroy(msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_copies_and_terminates),
        cmocka_unit_test(test_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
