/*
 * JSON-lines file source.  Lines are read with a bounded buffer: a line
 * past the size cap is skipped to its end and handed on as a message
 * marked for the dead-letter table, so memory never grows with input.
 */
#include "source_file.h"
#include "err.h"
#include "log.h"
#include "tracker.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW 65536 /* lines in flight before the file source waits */

struct file_source {
    FILE *fp;                  /* the input */
    char *path;                /* for origins and logs */
    bool is_stdin;             /* do not fclose */
    size_t max_bytes;          /* per line */
    int batch;                 /* lines per poll */
    char *buf;                 /* max_bytes + 1 */
    int64_t line;              /* last line read */
    struct sl_msg *pending;    /* read but not yet queued */
    struct sl_tracker *trk;    /* dispatched/acked lines */
    _Atomic int64_t committed; /* highest line acked in order */
};

/*
 * Read one line into fs->buf.  Returns its length, -1 at end of input,
 * or -2 when it was longer than max_bytes (then *total holds its length).
 */
static long read_line(struct file_source *fs, size_t *total)
{
    size_t n = 0;
    int c;

    *total = 0;
    while ((c = getc_unlocked(fs->fp)) != EOF && c != '\n') {
        if (n < fs->max_bytes)
            fs->buf[n] = (char)c;
        n++;
    }
    if (c == EOF && n == 0)
        return -1;
    *total = n;
    if (n > fs->max_bytes)
        return -2;
    if (n > 0 && fs->buf[n - 1] == '\r')
        n--;
    return (long)n;
}

static int file_poll(struct sl_source *src, int timeout_ms)
{
    struct file_source *fs = sl_source_impl(src);
    char err[256];

    for (int i = 0; i < fs->batch; i++) {
        if (!fs->pending) {
            size_t total;
            long len = read_line(fs, &total);
            if (len == -1)
                return 1;
            fs->line++;
            if (len == 0)
                continue; /* blank lines carry nothing */
            int rc = sl_msg_new(
                &fs->pending, SL_SOURCE_FILE, fs->path, 0, fs->line, NULL, NULL,
                0, fs->buf, len < 0 ? 0 : (size_t)len, NULL, err, sizeof(err));
            if (rc < 0)
                return rc;
            fs->pending->seq = fs->line;
            if (len == -2)
                sl_msg_set_error(fs->pending, "decode",
                                 "message of %zu bytes exceeds "
                                 "max_message_bytes (%zu)",
                                 total, fs->max_bytes);
        }
        /* Room in the tracker's window?  Otherwise wait for acks. */
        int64_t lo = sl_tracker_lowest_unacked(fs->trk);
        if (lo >= 0 && fs->pending->seq - lo >= WINDOW)
            return 0;
        int64_t seq = fs->pending->seq;
        int rc = sl_source_push(src, fs->pending, timeout_ms);
        if (rc != 0)
            return rc == -SL_ETIMEDOUT ? 0 : rc; /* keep it for later */
        /* Acks are applied on this thread, so none can precede this. */
        sl_tracker_dispatch(fs->trk, seq);
        fs->pending = NULL;
    }
    return 0;
}

static void file_acked(struct sl_source *src, struct sl_msg *msg)
{
    struct file_source *fs = sl_source_impl(src);
    int64_t pos;

    if (sl_tracker_ack(fs->trk, msg->seq) == 0 &&
        sl_tracker_committable(fs->trk, &pos)) {
        sl_tracker_mark_committed(fs->trk, pos);
        atomic_store(&fs->committed, pos);
    }
    sl_msg_destroy(msg);
}

static void file_destroy(void *impl)
{
    struct file_source *fs = impl;
    if (!fs)
        return;
    if (fs->fp && !fs->is_stdin)
        fclose(fs->fp);
    sl_msg_destroy(fs->pending);
    sl_tracker_destroy(fs->trk);
    free(fs->buf);
    free(fs->path);
    free(fs);
}

static const struct sl_source_ops file_ops = {
    .kind = "file",
    .poll = file_poll,
    .acked = file_acked,
    .commit = NULL,
    .destroy = file_destroy,
};

struct sl_source *sl_source_file_new(const struct sl_source_file_conf *conf,
                                     struct sl_queue *q, char *errstr,
                                     size_t errstr_size)
{
    struct file_source *fs = calloc(1, sizeof(*fs));
    const char *path =
        conf->path && strcmp(conf->path, "-") ? conf->path : NULL;

    if (!fs)
        return NULL;
    fs->is_stdin = path == NULL;
    fs->fp = path ? fopen(path, "r") : stdin;
    if (!fs->fp) {
        sl_seterr(sl_err_from_errno(errno), errstr, errstr_size,
                  "%s: cannot open: %s", path, strerror(errno));
        file_destroy(fs);
        return NULL;
    }
    fs->path = strdup(path ? path : "stdin");
    fs->max_bytes =
        conf->max_message_bytes ? conf->max_message_bytes : 1024 * 1024;
    fs->batch = conf->batch > 0 ? conf->batch : 64;
    fs->buf = malloc(fs->max_bytes + 1);
    fs->trk = sl_tracker_new(WINDOW);
    if (!fs->path || !fs->buf || !fs->trk) {
        sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        file_destroy(fs);
        return NULL;
    }
    return sl_source_new(&file_ops, fs, q, 1000);
}

int64_t sl_source_file_committed(struct sl_source *src)
{
    struct file_source *fs = sl_source_impl(src);
    return atomic_load(&fs->committed);
}
