/*
 * The file source through the shared source thread: lines become
 * messages with their line numbers, an over-long line is marked for the
 * dead-letter table, acks in any order commit the contiguous prefix, and
 * stop pushes one sentinel per worker after every message.
 */
#include "cmocka_shim.h"

#include "clock.h"
#include "err.h"
#include "row.h"
#include "source_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *write_input(const char *text)
{
    static char path[] = "/tmp/sluice-test-file-XXXXXX";
    strcpy(path, "/tmp/sluice-test-file-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_lines_acks_and_sentinels(void **state)
{
    (void)state;
    char *path = write_input("{\"n\":1}\n"
                             "{\"n\":2}\r\n"
                             "\n"
                             "{\"n\":4,\"text\":\"this line is too long\"}\n"
                             "{\"n\":5}");
    struct sl_queue *q = sl_queue_new(16, (void (*)(void *))sl_msg_destroy);
    struct sl_source_file_conf conf = {path, 16, 8};
    char err[256];
    struct sl_source *src = sl_source_file_new(&conf, q, err, sizeof(err));

    assert_non_null(src);
    assert_int_equal(sl_source_start(src, err, sizeof(err)), 0);

    struct sl_msg *got[4];
    for (int i = 0; i < 4; i++) {
        void *item;
        assert_int_equal(sl_queue_pop(q, &item, 10000), 0);
        got[i] = item;
    }
    assert_int_equal(got[0]->origin.offset, 1);
    assert_memory_equal(got[0]->payload, "{\"n\":1}", 7);
    assert_int_equal(got[1]->origin.offset, 2);
    assert_int_equal(got[1]->payload_len, 7); /* the \r is dropped */
    assert_int_equal(got[2]->origin.offset, 4);
    assert_non_null(got[2]->error);
    assert_string_equal(sl_row_stage_name(got[2]->error_stage), "decode");
    assert_string_equal(got[2]->error, "message of 38 bytes exceeds "
                                       "max_message_bytes (16)");
    assert_int_equal(got[3]->origin.offset, 5);

    /* The whole input was read: the source says so. */
    int64_t deadline = sl_mono_ms() + 10000;
    while (!sl_source_finished(src) && sl_mono_ms() < deadline)
        usleep(1000);
    assert_true(sl_source_finished(src));

    /* Acks out of order: nothing past the gap at line 1 commits. */
    sl_source_ack(got[3]);
    sl_source_ack(got[1]);
    deadline = sl_mono_ms() + 10000;
    while (atomic_load(&sl_source_stats(src)->acked) < 2 &&
           sl_mono_ms() < deadline)
        usleep(1000);
    assert_int_equal(sl_source_file_committed(src), 0);
    sl_source_ack(got[0]);
    sl_source_ack(got[2]);

    sl_source_stop(src, 3);
    assert_int_equal(sl_source_wait_stopped(src, 10000), 0);
    for (int i = 0; i < 3; i++) {
        void *item = (void *)1;
        assert_int_equal(sl_queue_pop(q, &item, 0), 0);
        assert_null(item);
    }
    assert_int_equal(sl_source_close(src), 0);
    assert_int_equal(sl_source_file_committed(src), 5);
    assert_int_equal(atomic_load(&sl_source_stats(src)->consumed), 4);
    sl_source_destroy(src);
    sl_queue_destroy(q);
    unlink(path);
}

/* perf #15: lines across the 64 KiB reads, kept whole or cut at the limit
 * as the byte-at-a-time reader did. */
static void test_lines_across_reads(void **state)
{
    (void)state;
    size_t n1 = 150000, n2 = 200001, len = n1 + 1 + n2 + 1 + 3;
    char *text = malloc(len + 1);
    assert_non_null(text);
    for (size_t i = 0; i < n1; i++)
        text[i] = (char)('a' + i % 26);
    text[n1] = '\n';
    memset(text + n1 + 1, 'x', n2);
    memcpy(text + n1 + 1 + n2, "\nok\n", 5);
    text[len] = '\0';
    char *path = write_input(text);
    struct sl_queue *q = sl_queue_new(16, (void (*)(void *))sl_msg_destroy);
    struct sl_source_file_conf conf = {path, 200000, 8};
    char err[256];
    struct sl_source *src = sl_source_file_new(&conf, q, err, sizeof(err));

    assert_non_null(src);
    assert_int_equal(sl_source_start(src, err, sizeof(err)), 0);
    struct sl_msg *got[3];
    for (int i = 0; i < 3; i++) {
        void *item;
        assert_int_equal(sl_queue_pop(q, &item, 10000), 0);
        got[i] = item;
    }
    assert_int_equal(got[0]->payload_len, n1);
    assert_memory_equal(got[0]->payload, text, n1);
    assert_null(got[0]->error);
    assert_string_equal(got[1]->error, "message of 200001 bytes exceeds "
                                       "max_message_bytes (200000)");
    assert_int_equal(got[2]->origin.offset, 3);
    assert_int_equal(got[2]->payload_len, 2);
    assert_memory_equal(got[2]->payload, "ok", 2);
    for (int i = 0; i < 3; i++)
        sl_source_ack(got[i]);
    sl_source_stop(src, 1);
    assert_int_equal(sl_source_wait_stopped(src, 10000), 0);
    assert_int_equal(sl_source_close(src), 0);
    sl_source_destroy(src);
    sl_queue_destroy(q);
    unlink(path);
    free(text);
}

static void test_missing_file(void **state)
{
    (void)state;
    struct sl_queue *q = sl_queue_new(4, NULL);
    struct sl_source_file_conf conf = {"/nonexistent/in.jsonl", 0, 0};
    char err[256];
    assert_null(sl_source_file_new(&conf, q, err, sizeof(err)));
    assert_string_equal(err, "/nonexistent/in.jsonl: cannot open: No such "
                             "file or directory");
    sl_queue_destroy(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_acks_and_sentinels),
        cmocka_unit_test(test_lines_across_reads),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
