/*
 * The pipeline file loader: reads the file (size and kind checks), builds
 * the YAML document with libfyaml (first in a forked guard child, so that
 * a parser crash or hang on a hostile file is an error, not a dead
 * process), hands the root to the schema walk (config_walk.c) and sorts
 * the errors; plus the small public accessors of struct sl_config.
 */
#include "config.h"

#include "clock.h"
#include "config_int.h"
#include "err.h"
#include "secret.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define GUARD_MS 10000 /* the guard child's time to parse */

static bool blank_text(const char *text, size_t len)
{
    bool comment = false;

    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '\n')
            comment = false;
        else if (c == '#')
            comment = true;
        else if (!comment && c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return true;
}

/*
 * Parse the first YAML document of 'text' with parser *fypp (made here;
 * the caller destroys the document, then the parser, even on failure),
 * then read one more event: a second document's start sets *nextp to its
 * place.  Returns the document, or NULL after a YAML error (in the
 * parser's diagnostics).
 */
static struct fy_document *build_document(const struct fy_parse_cfg *pcfg,
                                          const char *text, size_t len,
                                          struct fy_parser **fypp,
                                          struct sl_config_mark *nextp)
{
    struct fy_document *fyd;
    struct fy_event *fye;

    *nextp = (struct sl_config_mark){0, 0};
    if (!(*fypp = fy_parser_create(pcfg)) ||
        fy_parser_set_string(*fypp, text, len) != 0 ||
        !(fyd = fy_parse_load_document(*fypp)))
        return NULL;
    if ((fye = fy_parser_parse(*fypp)) != NULL) {
        const struct fy_mark *fym = fy_event_start_mark(fye);
        if (fye->type == FYET_DOCUMENT_START)
            *nextp =
                fym ? (struct sl_config_mark){fym->line + 1, fym->column + 1}
                    : (struct sl_config_mark){1, 1};
        fy_parser_event_free(*fypp, fye);
    } else if (fy_parser_get_stream_error(*fypp)) {
        fy_parse_document_destroy(*fypp, fyd);
        return NULL;
    }
    return fyd;
}

/* Free what build_document() made. */
static void free_document(struct fy_parser *fyp, struct fy_document *fyd)
{
    if (fyd)
        fy_parse_document_destroy(fyp, fyd);
    if (fyp)
        fy_parser_destroy(fyp);
}

/*
 * Build the document from 'text' in a forked child first: libfyaml 0.7.12
 * (Debian 12) dies of SIGSEGV on some malformed YAML ('? b: <tab>: b'),
 * and in this process that would kill sluice.  The child only runs
 * libfyaml, writes one byte to a pipe when it returns, and _exit()s.
 * Returns 0 when the child finished (the caller then parses here, again:
 * pipeline files are small), 1 when it died first, 2 when it ran past
 * GUARD_MS (it is then killed), -1 with errno set when no child could be
 * made or watched (the caller parses unguarded).  Forking is safe because
 * loading happens before any thread starts (sl_config_load()'s contract); in
 * case another thread holds a lock the child needs, GUARD_MS bounds the wait.
 */
static int parse_in_child(const struct fy_parse_cfg *pcfg, const char *text,
                          size_t len)
{
    static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    int64_t deadline = sl_mono_ms() + GUARD_MS;
    struct pollfd pfd;
    int fds[2], rc, err;
    char byte = 0;
    pid_t pid;

    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    if ((pid = fork()) < 0) {
        err = errno;
        close(fds[0]);
        close(fds[1]);
        errno = err;
        return -1;
    }
    if (pid == 0) {
        /* Die of the signal itself: no core file, and no crash handler
         * (a sanitizer's, cmocka's) reporting or carrying on in here. */
        struct rlimit nocore = {0, 0};
        close(fds[0]);
        setrlimit(RLIMIT_CORE, &nocore);
        /* By the system call itself: a sanitizer intercepts signal() and
         * keeps its own handler (ThreadSanitizer's then hangs here).  An
         * all-zero kernel sigaction is SIG_DFL, no flags, empty mask. */
        unsigned long ksa[4] = {0};
        for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
            syscall(SYS_rt_sigaction, fatal[i], ksa, NULL, 8);
        /* All the parent will do, the clean-up too: libfyaml 0.7.12
         * crashes in fy_parser_destroy() after some errors. */
        struct fy_parser *fyp;
        struct sl_config_mark next;
        struct fy_document *fyd = build_document(pcfg, text, len, &fyp, &next);
        free_document(fyp, fyd);
        _exit(write(fds[1], "k", 1) == 1 ? 0 : 1);
    }
    close(fds[1]);
    pfd = (struct pollfd){.fd = fds[0], .events = POLLIN};
    do {
        int64_t left = deadline - sl_mono_ms();
        rc = poll(&pfd, 1, left > 0 ? (int)left : 0);
    } while (rc < 0 && errno == EINTR);
    /* Readable with no byte: the child died before writing it. */
    if (rc > 0 && read(fds[0], &byte, 1) != 1)
        byte = 0;
    err = errno;
    close(fds[0]);
    if (rc <= 0)
        kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
    errno = err;
    if (rc < 0)
        return -1; /* poll() failed: no verdict */
    return rc == 0 ? 2 : byte == 'k' ? 0 : 1;
}

static int parse_text(struct sl_config_ctx *ctx, const char *text, size_t len,
                      struct sl_config **cfgp)
{
    struct fy_diag_cfg dcfg;
    struct fy_diag *diag;
    struct fy_parse_cfg pcfg;
    struct fy_parser *fyp = NULL;
    struct fy_document *fyd;
    struct fy_node *root;
    struct sl_config *cfg;
    struct sl_config_mark next;
    int err;

    fy_diag_cfg_default(&dcfg);
    dcfg.fp = NULL;
    dcfg.output_fn = NULL;
    dcfg.colorize = false;
    if (!(diag = fy_diag_create(&dcfg)))
        return -SL_ENOMEM;
    fy_diag_set_collect_errors(diag, true);
    memset(&pcfg, 0, sizeof(pcfg));
    /* Duplicate keys are ours to report, with their key path. */
    pcfg.flags = FYPCF_QUIET | FYPCF_COLLECT_DIAG | FYPCF_ALLOW_DUPLICATE_KEYS |
                 FYPCF_JSON_NONE;
    pcfg.diag = diag;

    /* YAML is printable UTF-8 text; refuse anything else before the
     * parser sees it: libfyaml 0.7.12 loops for ever on some invalid
     * bytes and crashes on a NUL after a tab. */
    size_t ok = sl_utf8_valid_prefix(text, len);
    const char *why = "the file is not UTF-8 text";
    for (size_t i = 0; i < ok; i++) {
        unsigned char c = (unsigned char)text[i];
        if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
            ok = i;
            why = "control characters are not allowed";
            break;
        }
    }
    if (ok < len) {
        int line = 1, col = 1;
        for (size_t i = 0; i < ok; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else if (((unsigned char)text[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        sl_config_report_at(ctx, (struct sl_config_mark){line, col}, NULL,
                            "invalid YAML: %s", why);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }
    if (ctx->guard) {
        int rc = parse_in_child(&pcfg, text, len);
        if (rc > 0) {
            if (rc == 1)
                sl_config_report_file(
                    ctx, "the YAML parser (libfyaml) crashed on this "
                         "text; look for tabs or stray '?'/':' in "
                         "keys");
            else
                sl_config_report_file(
                    ctx,
                    "the YAML parser (libfyaml) did not finish "
                    "within %d s on this text and was stopped; look "
                    "for tabs or stray '?'/':' in keys",
                    GUARD_MS / 1000);
            fy_diag_destroy(diag);
            return ctx->oom ? -SL_ENOMEM : -SL_ECONFIG;
        }
        if (rc < 0)
            sl_log(SL_LOG_WARN, "config",
                   "%s: cannot start a process to try the YAML parser in "
                   "(%s); parsing without that guard",
                   ctx->file, strerror(errno));
    }
    fyd = build_document(&pcfg, text, len, &fyp, &next);
    if (!fyd) {
        void *it = NULL;
        struct fy_diag_error *de;
        size_t before = ctx->nerr;

        while ((de = fy_diag_errors_iterate(diag, &it)) != NULL) {
            if (de->type < FYET_ERROR)
                continue;
            sl_config_report_at(
                ctx, (struct sl_config_mark){de->line, de->column}, NULL,
                "invalid YAML: %s", de->msg ? de->msg : "syntax error");
        }
        if (ctx->nerr == before) {
            if (blank_text(text, len))
                sl_config_report_at(
                    ctx, (struct sl_config_mark){1, 1}, NULL,
                    "the file is empty; a pipeline needs at least "
                    "'version' and 'name'");
            else
                sl_config_report_at(ctx, (struct sl_config_mark){1, 1}, NULL,
                                    "invalid YAML");
        }
        free_document(fyp, NULL);
        fy_diag_destroy(diag);
        return ctx->oom ? -SL_ENOMEM : -SL_ECONFIG;
    }
    if (next.line) {
        /* Later documents were ignored once: refuse them. */
        sl_config_report_at(
            ctx, next, NULL,
            "a second YAML document starts here; a pipeline file holds "
            "one document (remove this '---' and what follows it, or "
            "give each pipeline a file of its own)");
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }

    root = fy_document_root(fyd);
    if (root && fy_node_is_alias(root))
        root = fy_node_resolve_alias(root);
    if (!root || !fy_node_is_mapping(root)) {
        char got[128];
        if (!root || sl_config_is_null(root))
            sl_config_report_at(
                ctx, (struct sl_config_mark){1, 1}, NULL,
                "the file is empty; a pipeline needs at least 'version' "
                "and 'name'");
        else
            sl_config_report_at(
                ctx, sl_config_node_mark(root), NULL,
                "expected a mapping of pipeline settings, got %s",
                sl_config_describe_node(root, NULL, got, sizeof(got)));
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ECONFIG;
    }

    if (!(cfg = calloc(1, sizeof(*cfg))) || !(cfg->path = strdup(ctx->file))) {
        free(cfg);
        free_document(fyp, fyd);
        fy_diag_destroy(diag);
        return -SL_ENOMEM;
    }
    err = sl_config_apply_defaults(&sl_config_schema_root, cfg);
    if (err == 0) {
        struct sl_config_mark at = sl_config_node_mark(root);
        ctx->root = root;
        sl_config_parse_obj(ctx, &sl_config_schema_root, cfg, root, at, "");
        if (ctx->oom)
            err = -SL_ENOMEM;
        else if (ctx->nerr)
            err = -SL_ECONFIG;
    }
    ctx->root = NULL;
    free_document(fyp, fyd);
    fy_diag_destroy(diag);
    if (err < 0) {
        sl_config_destroy(cfg);
        return err;
    }
    *cfgp = cfg;
    return 0;
}

/* What kind of file 'st' is, for "not a regular file (it is ...)". */
static const char *file_kind(const struct stat *st)
{
    switch (st->st_mode & S_IFMT) {
    case S_IFDIR:
        return "a directory";
    case S_IFIFO:
        return "a FIFO";
    case S_IFCHR:
        return "a character device";
    case S_IFBLK:
        return "a block device";
    case S_IFSOCK:
        return "a socket";
    default:
        return "not a file";
    }
}

/*
 * Read 'fd' to its end, at most SL_CONFIG_MAX_FILE_BYTES, into *bufp
 * (malloc'd; the caller frees it, even on failure) and *lenp.  Returns 0,
 * or a negative code after reporting why.
 */
static int read_all(struct sl_config_ctx *ctx, int fd, char **bufp,
                    size_t *lenp)
{
    size_t n = 0;

    *lenp = 0;
    if (!(*bufp = malloc(SL_CONFIG_MAX_FILE_BYTES + 1)))
        return -SL_ENOMEM;
    while (n <= SL_CONFIG_MAX_FILE_BYTES) {
        ssize_t got = read(fd, *bufp + n, SL_CONFIG_MAX_FILE_BYTES + 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            int err = errno;
            sl_config_report_file(ctx, "cannot read: %s", strerror(err));
            return sl_err_from_errno(err);
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    if (n > SL_CONFIG_MAX_FILE_BYTES) {
        sl_config_report_file(ctx, "too large (more than %d bytes)",
                              SL_CONFIG_MAX_FILE_BYTES);
        return -SL_ETOOBIG;
    }
    *lenp = n;
    return 0;
}

/*
 * Open pipeline file 'path' for reading: a regular file only.  A FIFO
 * would block until a writer comes (or be read until some timeout), a
 * device or directory is no pipeline: refused at once.  Returns the
 * descriptor, or a negative code after reporting why.
 */
static int open_file(struct sl_config_ctx *ctx, const char *path)
{
    struct stat st;
    int fd, err;

    /* O_NONBLOCK: opening a FIFO must not wait for its writer. */
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        err = errno;
        sl_config_report_file(ctx, "cannot open: %s", strerror(err));
        return err == ENOENT ? -SL_ENOTFOUND : sl_err_from_errno(err);
    }
    if (fstat(fd, &st) != 0) {
        err = errno;
        close(fd);
        sl_config_report_file(ctx, "cannot open: %s", strerror(err));
        return sl_err_from_errno(err);
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        sl_config_report_file(
            ctx,
            "not a regular file (it is %s); give the path of a "
            "pipeline file",
            file_kind(&st));
        return -SL_EINVAL;
    }
    return fd;
}

/*
 * Load from 'path' when not NULL, else from 'fd' when >= 0, else parse
 * 'text'; errors go to 'errs' (or nowhere), sorted by place.  'guard':
 * try libfyaml in a child first.
 */
static int with_ctx(const char *name, struct sl_config_errors *errs,
                    const char *text, size_t len, const char *path, int fd,
                    bool guard, struct sl_config **cfgp)
{
    struct sl_config_errors local = {0};
    struct sl_config_ctx ctx = {
        .file = name, .errs = errs ? errs : &local, .guard = guard};
    size_t from = ctx.errs->cnt;
    int err = 0;

    if (path || fd >= 0) {
        /* Read it ourselves: errno for operators, and a size cap. */
        int own = path ? open_file(&ctx, path) : fd;
        char *buf = NULL;
        size_t n = 0;

        if (own < 0)
            err = own;
        else if ((err = read_all(&ctx, own, &buf, &n)) == 0)
            err = parse_text(&ctx, buf, n, cfgp);
        if (path && own >= 0)
            close(own);
        free(buf);
    } else {
        err = parse_text(&ctx, text, len, cfgp);
    }
    sl_config_errors_sort(ctx.errs, from);
    sl_config_errors_clear(&local);
    return err;
}

int sl_config_load(const char *path, struct sl_config **cfgp,
                   struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(path, errs, NULL, 0, path, -1, true, cfgp);
}

int sl_config_load_fd(const char *name, int fd, struct sl_config **cfgp,
                      struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, NULL, 0, NULL, fd, true, cfgp);
}

int sl_config_parse(const char *name, const char *text, size_t len,
                    struct sl_config **cfgp, struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, text, len, NULL, -1, true, cfgp);
}

int sl_config_parse_unguarded(const char *name, const char *text, size_t len,
                              struct sl_config **cfgp,
                              struct sl_config_errors *errs)
{
    *cfgp = NULL;
    return with_ctx(name, errs, text, len, NULL, -1, false, cfgp);
}

void sl_config_destroy(struct sl_config *cfg)
{
    if (!cfg)
        return;
    sl_config_free_obj(&sl_config_schema_root, cfg);
    free(cfg->path);
    free(cfg);
}

int sl_config_kv_value(const struct sl_config_kv *kv, unsigned flags,
                       const char *what, char **valuep, char *errstr,
                       size_t errstr_size)
{
    struct sl_secret_src src = {kv->value_env, kv->value_file};

    *valuep = NULL;
    if (kv->value) {
        if (!(*valuep = strdup(kv->value)))
            return sl_seterr(-SL_ENOMEM, errstr, errstr_size, "out of memory");
        return 0;
    }
    if (!src.env && !src.file) /* the loader never leaves it so */
        return sl_seterr(-SL_ESECRET, errstr, errstr_size, "%s: no value",
                         what);
    return sl_secret_read(&src, flags, what, valuep, errstr, errstr_size);
}

const struct sl_config_backend *
sl_config_backend_find(const struct sl_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->backend_cnt; i++)
        if (cfg->backends[i].name && !strcmp(cfg->backends[i].name, name))
            return &cfg->backends[i];
    return NULL;
}

const char *sl_config_source_kind_name(enum sl_config_source_kind kind)
{
    return (unsigned)kind <= SL_CONFIG_SOURCE_STDIN
               ? sl_config_source_kinds[kind]
               : "unknown";
}

const char *sl_config_backend_kind_name(enum sl_config_backend_kind kind)
{
    return (unsigned)kind <= SL_CONFIG_BACKEND_HTTP_JSON
               ? sl_config_backend_kinds[kind]
               : "unknown";
}
