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
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WINDOW 65536 /* lines in flight before the file source waits */
#define CHUNK 65536  /* bytes read from the input at once */

struct file_source {
    int fd;                    /* the input */
    char *path;                /* for origins and logs */
    bool is_stdin;             /* do not close */
    bool eof;                  /* read() said end of input */
    int read_errno;            /* why the input cannot be read, or 0 */
    size_t max_bytes;          /* per line */
    int batch;                 /* lines per poll */
    char *buf;                 /* max_bytes + 1: the line being read */
    size_t line_len;           /* its bytes so far (past max_bytes: counted,
                                  not kept) */
    char *chunk;               /* CHUNK bytes read, not yet scanned */
    size_t chunk_pos;          /* next byte to scan */
    size_t chunk_len;          /* bytes in chunk */
    int64_t line;              /* last line read */
    struct sl_msg *pending;    /* read but not yet queued */
    struct sl_tracker *trk;    /* dispatched/acked lines */
    _Atomic int64_t committed; /* highest line acked in order */
};

/* Line read results besides a length. */
#define LINE_EOF -1   /* end of input, no line left */
#define LINE_LONG -2  /* longer than max_bytes (*total holds its length) */
#define LINE_AGAIN -3 /* no whole line within the wait: call again */
#define LINE_ERROR -4 /* the input cannot be read (fs->read_errno) */

/*
 * Read one line into fs->buf, waiting up to 'timeout_ms' for input (a pipe
 * or a terminal that stays open must not hold the source thread past a
 * stop).  A line cut by the wait is kept and continued by the next call.
 * Returns its length, LINE_EOF, LINE_LONG, LINE_AGAIN or LINE_ERROR.
 */
static long read_line(struct file_source *fs, int timeout_ms, size_t *total)
{
    *total = 0;
    for (;;) {
        if (fs->chunk_pos < fs->chunk_len) {
            /* The line's bytes in this chunk, up to max_bytes kept. */
            const char *p = fs->chunk + fs->chunk_pos;
            size_t avail = fs->chunk_len - fs->chunk_pos;
            const char *nl = memchr(p, '\n', avail);
            size_t n = nl ? (size_t)(nl - p) : avail;
            if (fs->line_len < fs->max_bytes) {
                size_t room = fs->max_bytes - fs->line_len;
                memcpy(fs->buf + fs->line_len, p, n < room ? n : room);
            }
            fs->line_len += n;
            fs->chunk_pos += n + (nl != NULL);
            if (nl)
                goto line;
        }
        if (fs->eof) {
            if (fs->line_len == 0)
                return LINE_EOF;
            goto line;
        }
        struct pollfd pfd = {fs->fd, POLLIN, 0};
        int n = poll(&pfd, 1, timeout_ms);
        if (n == 0 || (n < 0 && errno == EINTR))
            return LINE_AGAIN;
        timeout_ms = 0; /* wait once per call */
        ssize_t got = read(fs->fd, fs->chunk, CHUNK);
        if (got < 0) {
            if (errno == EINTR || errno == EAGAIN)
                return LINE_AGAIN;
            fs->read_errno = errno;
            return LINE_ERROR;
        }
        fs->chunk_pos = 0;
        fs->chunk_len = (size_t)got;
        if (got == 0)
            fs->eof = true;
    }
line:;
    size_t n = fs->line_len;
    fs->line_len = 0;
    *total = n;
    if (n > fs->max_bytes)
        return LINE_LONG;
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
            long len = read_line(fs, timeout_ms, &total);
            if (len == LINE_EOF)
                return 1;
            if (len == LINE_AGAIN)
                return 0;
            if (len == LINE_ERROR) {
                sl_source_fail(src, -SL_EIO, "%s: cannot read: %s", fs->path,
                               strerror(fs->read_errno));
                return -SL_EIO;
            }
            fs->line++;
            if (len == 0)
                continue; /* blank lines carry nothing */
            int rc = sl_msg_new(
                &fs->pending, SL_SOURCE_FILE, fs->path, 0, fs->line, NULL, NULL,
                0, fs->buf, len < 0 ? 0 : (size_t)len, NULL, err, sizeof(err));
            if (rc < 0)
                return rc;
            fs->pending->seq = fs->line;
            if (len == LINE_LONG)
                sl_msg_set_error(fs->pending, SL_STAGE_DECODE,
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
    if (fs->fd >= 0 && !fs->is_stdin)
        close(fs->fd);
    sl_msg_destroy(fs->pending);
    sl_tracker_destroy(fs->trk);
    free(fs->buf);
    free(fs->chunk);
    free(fs->path);
    free(fs);
}

static const struct sl_source_ops file_ops = {
    .kind = "file",
    .redelivers = false,
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
    fs->fd = path ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fs->fd < 0) {
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
    fs->chunk = malloc(CHUNK);
    fs->trk = sl_tracker_new(WINDOW);
    if (!fs->path || !fs->buf || !fs->chunk || !fs->trk) {
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
