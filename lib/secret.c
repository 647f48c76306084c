/*
 * The one reader of secrets named by *_env / *_file keys, and the check
 * `sluice check` runs without reading them; the rules are in secret.h.
 */
#include "secret.h"

#include "err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool given(const char *s)
{
    return s && *s;
}

/* Length of s[0..len) without its trailing CR and LF characters. */
static size_t trimmed(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r'))
        len--;
    return len;
}

/*
 * Open 'path' for reading and check what can be known without reading
 * it.  Anything but a regular file is refused before it is opened (opening
 * a device can have effects); O_NONBLOCK: should it turn into a FIFO
 * meanwhile, the open does not block (fstat() then refuses it).
 * Returns the descriptor, or -SL_ESECRET with 'why' set.
 */
static int open_checked(const char *path, struct stat *st, char *why,
                        size_t why_size)
{
    int fd;

    if (stat(path, st) != 0)
        return sl_seterr(-SL_ESECRET, why, why_size, "file %s: cannot open: %s",
                         path, strerror(errno));
    if (!S_ISREG(st->st_mode))
        return sl_seterr(-SL_ESECRET, why, why_size,
                         "file %s: not a regular file", path);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return sl_seterr(-SL_ESECRET, why, why_size, "file %s: cannot open: %s",
                         path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return sl_seterr(-SL_ESECRET, why, why_size,
                         "file %s: not a regular file", path);
    }
    if (st->st_mode & 077) {
        close(fd);
        return sl_seterr(-SL_ESECRET, why, why_size,
                         "file %s is readable by group or others (mode %04o); "
                         "refusing it: chmod 600 %s",
                         path, (unsigned)(st->st_mode & 07777), path);
    }
    if (st->st_size == 0) {
        close(fd);
        return sl_seterr(-SL_ESECRET, why, why_size, "file %s is empty", path);
    }
    if (st->st_size > SL_SECRET_MAX) {
        close(fd);
        return sl_seterr(-SL_ESECRET, why, why_size,
                         "file %s is longer than %d bytes", path,
                         SL_SECRET_MAX);
    }
    return fd;
}

int sl_secret_check(const struct sl_secret_src *src, char *errstr,
                    size_t errstr_size)
{
    struct stat st;
    int fd;

    if (given(src->env)) {
        const char *v = getenv(src->env);
        if (!v)
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "environment variable %s is not set", src->env);
        if (trimmed(v, strlen(v)) == 0)
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "environment variable %s is empty", src->env);
        return 0;
    }
    if (!given(src->file))
        return 0;
    if ((fd = open_checked(src->file, &st, errstr, errstr_size)) < 0)
        return fd;
    close(fd);
    return 0;
}

/* Zero 'size' bytes of 'buf' and free it. */
static void wipe_free(char *buf, size_t size)
{
    if (buf) {
        explicit_bzero(buf, size);
        free(buf);
    }
}

/* Read all of 'fd' (at most SL_SECRET_MAX bytes) into buf. */
static ssize_t read_all(int fd, char *buf, size_t size)
{
    size_t n = 0;

    while (n < size) {
        ssize_t r = read(fd, buf + n, size - n);
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        n += (size_t)r;
    }
    return (ssize_t)n;
}

int sl_secret_read(const struct sl_secret_src *src, unsigned flags,
                   const char *what, char **valuep, char *errstr,
                   size_t errstr_size)
{
    char why[768];
    char *buf = NULL;
    size_t len, cap = 0;
    int err;

    *valuep = NULL;
    if (!given(src->env) && !given(src->file))
        return 0;
    if ((err = sl_secret_check(src, why, sizeof(why))) < 0)
        return sl_seterr(err, errstr, errstr_size, "%s: %s", what, why);
    if (given(src->env)) {
        const char *v = getenv(src->env);
        len = strlen(v);
        if (len > SL_SECRET_MAX)
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "%s: environment variable %s is longer than %d "
                             "bytes",
                             what, src->env, SL_SECRET_MAX);
        cap = len + 1;
        if (!(buf = malloc(cap)))
            return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        memcpy(buf, v, len);
    } else {
        struct stat st;
        int fd = open_checked(src->file, &st, why, sizeof(why));
        ssize_t n;

        if (fd < 0)
            return sl_seterr(fd, errstr, errstr_size, "%s: %s", what, why);
        cap = SL_SECRET_MAX + 2;
        if (!(buf = malloc(cap))) {
            close(fd);
            return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        }
        n = read_all(fd, buf, SL_SECRET_MAX + 1);
        err = errno;
        close(fd);
        if (n < 0 || n > SL_SECRET_MAX) {
            wipe_free(buf, cap);
            if (n < 0)
                return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                                 "%s: file %s: cannot read: %s", what,
                                 src->file, strerror(err));
            return sl_seterr(-SL_ESECRET, errstr, errstr_size,
                             "%s: file %s is longer than %d bytes", what,
                             src->file, SL_SECRET_MAX);
        }
        len = (size_t)n;
    }
    const char *from = given(src->env) ? "environment variable" : "file";
    const char *name = given(src->env) ? src->env : src->file;
    len = trimmed(buf, len);
    buf[len] = '\0';
    if (len == 0)
        err = sl_seterr(-SL_ESECRET, errstr, errstr_size,
                        "%s: %s %s holds nothing but line breaks", what, from,
                        name);
    else if (memchr(buf, '\0', len))
        err = sl_seterr(-SL_ESECRET, errstr, errstr_size,
                        "%s: %s %s holds a NUL byte", what, from, name);
    else if (!(flags & SL_SECRET_MULTILINE) && strpbrk(buf, "\r\n"))
        err = sl_seterr(-SL_ESECRET, errstr, errstr_size,
                        "%s: %s %s holds a line break inside its value (only "
                        "trailing ones are removed)",
                        what, from, name);
    else
        err = 0;
    if (err < 0) {
        wipe_free(buf, cap);
        return err;
    }
    *valuep = buf;
    return 0;
}

void sl_secret_free(char *value)
{
    if (!value)
        return;
    explicit_bzero(value, strlen(value));
    free(value);
}
