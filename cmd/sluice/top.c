/*
 * sluice top [URL...]: a live view of one or more workers' /metrics in a
 * terminal, refreshed every second: per replica the messages per second
 * in and out, the lag, what is in flight, the sink's batch latency; per
 * backend its breaker and its errors by class.  Plain ANSI escapes and a
 * raw-mode terminal (restored on exit and on SIGINT/SIGTERM), so it works
 * over any SSH session; 'q' quits.
 */
#include "commands.h"

#include <curl/curl.h>
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* The default http.listen's metrics. */
#define DEFAULT_URL "http://127.0.0.1:9464/metrics"
#define MAX_URLS 32
#define MAX_BODY (8 << 20) /* a larger /metrics is cut off */
#define MAX_SAMPLES 20000  /* per scrape */

static const char top_usage[] =
    "Usage: sluice top [options] [URL...]\n"
    "\n"
    "A live view of running workers, read from their /metrics: per replica\n"
    "messages per second in (consumed, gateway requests) and out (acked,\n"
    "gateway answers 200), consumer lag, messages in flight, the sink's\n"
    "batch latency (mean and p99 over the last interval) and whether it is\n"
    "connected; per backend its circuit breaker and its errors by class\n"
    "(total, and per second now).  Press q to quit.\n"
    "\n"
    "URL is http://HOST:PORT/metrics, or HOST:PORT (the default "
    "is\n" DEFAULT_URL ",\n"
    "the default http.listen).  Give one per replica.\n"
    "\n"
    "  -i, --interval MS  refresh period (1000; 100 .. 60000)\n"
    "  -1, --once         print one view without escapes after two scrapes\n"
    "                     one interval apart, and exit (0 when every worker\n"
    "                     answered, 1 otherwise)\n"
    "  -h, --help         this help\n";

/* ---- the Prometheus text, as far as needed ---- */

struct sample {
    char *name;   /* metric name; points into the scrape's text */
    char *labels; /* 'a="x",b="y"' without braces, unescaped; "" if none */
    double value; /* the sample's value */
};

/* One scrape of one worker. */
struct scrape {
    char *text;             /* the body, owned; samples point into it */
    size_t len;             /* bytes in 'text' */
    struct sample *samples; /* parsed, owned */
    size_t n;               /* samples parsed */
    double at;              /* CLOCK_MONOTONIC seconds when fetched */
    bool ok;                /* 200 with a body */
    char error[160];        /* why not, when !ok */
};

static void scrape_free(struct scrape *s)
{
    free(s->text);
    free(s->samples);
    memset(s, 0, sizeof(*s));
}

/*
 * Parse the text exposition format in place: lines 'name{labels} value'
 * or 'name value'; comments and malformed lines are skipped.
 */
static void parse(struct scrape *s)
{
    char *line = s->text;

    s->samples = calloc(MAX_SAMPLES, sizeof(*s->samples));
    if (!s->samples)
        return;
    while (line && *line && s->n < MAX_SAMPLES) {
        char *eol = strchr(line, '\n');
        if (eol)
            *eol = '\0';
        if (*line != '#' && *line) {
            struct sample *sm = &s->samples[s->n];
            char *p = line + strcspn(line, "{ ");
            sm->name = line;
            sm->labels = "";
            if (*p == '{') {
                *p++ = '\0';
                sm->labels = p;
                /* The closing brace outside quotes; unescape as we go. */
                char *w = p;
                bool quoted = false;
                for (; *p && (quoted || *p != '}'); p++) {
                    if (quoted && *p == '\\' && p[1]) {
                        p++;
                        *w++ = *p == 'n' ? '\n' : *p;
                        continue;
                    }
                    if (*p == '"')
                        quoted = !quoted;
                    *w++ = *p;
                }
                if (*p != '}') {
                    line = eol ? eol + 1 : NULL;
                    continue;
                }
                *w = '\0';
                p++;
            }
            if (*p == ' ') {
                *p++ = '\0';
                char *end;
                sm->value = strtod(p, &end);
                if (end != p)
                    s->n++;
            }
        }
        line = eol ? eol + 1 : NULL;
    }
}

/* Label 'key' of 'sm' into 'out' (size > 0); false when it has none. */
static bool label(const struct sample *sm, const char *key, char *out,
                  size_t size)
{
    size_t kl = strlen(key);
    const char *p = sm->labels;

    while (*p) {
        const char *eq = strchr(p, '=');
        if (!eq || eq[1] != '"')
            break;
        const char *v = eq + 2, *q = strchr(v, '"');
        if (!q)
            break;
        if ((size_t)(eq - p) == kl && !strncmp(p, key, kl)) {
            snprintf(out, size, "%.*s", (int)(q - v), v);
            return true;
        }
        p = q + 1;
        if (*p == ',')
            p++;
    }
    out[0] = '\0';
    return false;
}

/*
 * The sum of the samples of 'name' whose label 'key' is 'value' (every
 * sample when 'key' is NULL); *found says whether there was one.
 */
static double sum(const struct scrape *s, const char *name, const char *key,
                  const char *value, bool *found)
{
    double total = 0;
    char v[256];

    if (found)
        *found = false;
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->samples[i].name, name))
            continue;
        if (key &&
            (!label(&s->samples[i], key, v, sizeof(v)) || strcmp(v, value)))
            continue;
        total += s->samples[i].value;
        if (found)
            *found = true;
    }
    return total;
}

/* ---- fetching ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct scrape *s = arg;
    size_t n = size * nmemb;

    if (s->len + n > MAX_BODY)
        return 0; /* cut off: the transfer fails */
    char *text = realloc(s->text, s->len + n + 1);
    if (!text)
        return 0;
    s->text = text;
    memcpy(s->text + s->len, data, n);
    s->len += n;
    s->text[s->len] = '\0';
    return n;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Fetch every URL at once, each within 'timeout_ms'; fills 'out'. */
static void fetch_all(char **urls, int n, struct scrape *out, long timeout_ms)
{
    CURLM *multi = curl_multi_init();
    CURL *easy[MAX_URLS] = {0};
    int running = 0;

    for (int i = 0; i < n; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        snprintf(out[i].error, sizeof(out[i].error), "no answer");
        easy[i] = curl_easy_init();
        if (!multi || !easy[i])
            continue;
        curl_easy_setopt(easy[i], CURLOPT_URL, urls[i]);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(easy[i], CURLOPT_WRITEDATA, &out[i]);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_PRIVATE, &out[i]);
        curl_multi_add_handle(multi, easy[i]);
    }
    do {
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            break;
        if (running)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    } while (running);
    CURLMsg *msg;
    int left;
    while (multi && (msg = curl_multi_info_read(multi, &left))) {
        struct scrape *s;
        long status = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (msg->data.result != CURLE_OK)
            snprintf(s->error, sizeof(s->error), "%s",
                     curl_easy_strerror(msg->data.result));
        else if (status != 200)
            snprintf(s->error, sizeof(s->error), "HTTP %ld", status);
        else if (s->text) {
            s->ok = true;
            s->error[0] = '\0';
        }
    }
    for (int i = 0; i < n; i++) {
        out[i].at = now_s();
        if (out[i].ok)
            parse(&out[i]);
        if (easy[i]) {
            curl_multi_remove_handle(multi, easy[i]);
            curl_easy_cleanup(easy[i]);
        }
    }
    curl_multi_cleanup(multi);
}

/* ---- the view ---- */

/* A growing text: the frame is built, then written at once. */
struct out {
    char buf[64 << 10]; /* the frame; lines past it are dropped */
    size_t len;         /* bytes used */
    bool ansi;          /* clear each line's end (live view) */
    int width;          /* cut lines to this many bytes; 0: never */
};

static void put(struct out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    char line[1024];

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (o->width > 0 && (size_t)o->width < sizeof(line))
        line[o->width] = '\0'; /* a wrapped line would shift the view */
    int n = snprintf(o->buf + o->len, sizeof(o->buf) - o->len, "%s%s\n", line,
                     o->ansi ? "\033[K" : "");
    if (n > 0 && o->len + (size_t)n < sizeof(o->buf))
        o->len += (size_t)n;
}

/* (cur - prev) per second of counter 'name'; NAN without a previous. */
static double rate(const struct scrape *cur, const struct scrape *prev,
                   const char *name, const char *key, const char *value)
{
    if (!prev || !prev->ok || cur->at <= prev->at)
        return NAN;
    double a = sum(cur, name, key, value, NULL);
    double b = sum(prev, name, key, value, NULL);
    double d = a >= b ? a - b : a; /* a restart resets counters */
    return d / (cur->at - prev->at);
}

static void fmt_num(char *buf, size_t size, double v, int decimals)
{
    if (isnan(v))
        snprintf(buf, size, "-");
    else
        snprintf(buf, size, "%.*f", decimals, v);
}

/*
 * The sink's batch latency over the interval: mean and p99 (the upper
 * bound of the bucket that holds it), in ms, from the histogram's
 * deltas; "-" without batches.
 */
static void sink_latency(const struct scrape *cur, const struct scrape *prev,
                         char *buf, size_t size)
{
    const char *h = "sluice_sink_batch_latency_seconds";
    char name[96], le[32];
    bool found;

    snprintf(buf, size, "-");
    snprintf(name, sizeof(name), "%s_count", h);
    double count = sum(cur, name, NULL, NULL, &found);
    if (!found)
        return;
    double dcount =
        count - (prev && prev->ok ? sum(prev, name, NULL, NULL, NULL) : 0);
    snprintf(name, sizeof(name), "%s_sum", h);
    double dsum = sum(cur, name, NULL, NULL, NULL) -
                  (prev && prev->ok ? sum(prev, name, NULL, NULL, NULL) : 0);
    if (dcount <= 0)
        return;
    /* p99: the first bucket whose cumulative delta reaches 99 %. */
    snprintf(name, sizeof(name), "%s_bucket", h);
    double p99 = NAN;
    for (size_t i = 0; i < cur->n; i++) {
        const struct sample *sm = &cur->samples[i];
        if (strcmp(sm->name, name) || !label(sm, "le", le, sizeof(le)))
            continue;
        double d = sm->value -
                   (prev && prev->ok ? sum(prev, name, "le", le, NULL) : 0);
        if (d >= 0.99 * dcount) {
            p99 = strtod(le, NULL);
            break;
        }
    }
    if (isinf(p99) || isnan(p99))
        snprintf(buf, size, "%.0f ms, p99 >10 s", dsum / dcount * 1000);
    else
        snprintf(buf, size, "%.0f ms, p99 <=%.0f ms", dsum / dcount * 1000,
                 p99 * 1000);
}

static const char *breaker_name(double v)
{
    return v == 0 ? "closed" : v == 1 ? "open" : v == 2 ? "half-open" : "?";
}

/* A short name for a URL: HOST:PORT. */
static void short_url(const char *url, char *buf, size_t size)
{
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    snprintf(buf, size, "%.*s", (int)strcspn(p, "/"), p);
}

/* Render one frame into 'o'. */
static void render(struct out *o, char **urls, int n, const struct scrape *cur,
                   const struct scrape *prev, int interval_ms)
{
    char when[32];
    time_t t = time(NULL);
    struct tm tm;

    strftime(when, sizeof(when), "%H:%M:%S", localtime_r(&t, &tm));
    put(o, "sluice top  %d replica%s  every %.1f s  %s%s", n, n == 1 ? "" : "s",
        interval_ms / 1000.0, when, o->ansi ? "  (q quits)" : "");
    put(o, "%s", "");
    put(o, "%-20s %9s %9s %9s %9s  %-24s %s", "REPLICA", "IN/S", "OUT/S", "LAG",
        "INFLIGHT", "SINK BATCH", "STATE");
    for (int i = 0; i < n; i++) {
        const struct scrape *c = &cur[i];
        const struct scrape *p = prev ? &prev[i] : NULL;
        char name[64], in[24], out[24], lag[24], inflight[24], sink[48];
        char state[200];
        bool found = false;
        struct sample *info = NULL;

        short_url(urls[i], name, sizeof(name));
        if (!c->ok) {
            put(o, "%-20.20s %9s %9s %9s %9s  %-24s unreachable: %s", name, "-",
                "-", "-", "-", "-", c->error);
            continue;
        }
        for (size_t k = 0; k < c->n && !info; k++)
            if (!strcmp(c->samples[k].name, "sluice_replica_info"))
                info = &c->samples[k];
        if (info)
            label(info, "replica", name, sizeof(name));
        fmt_num(in, sizeof(in),
                rate(c, p, "sluice_messages_consumed_total", NULL, NULL) +
                    rate(c, p, "sluice_gateway_responses_total", NULL, NULL),
                1);
        fmt_num(out, sizeof(out),
                rate(c, p, "sluice_messages_acked_total", NULL, NULL) +
                    rate(c, p, "sluice_gateway_responses_total", "code", "200"),
                1);
        double l = sum(c, "sluice_source_lag_messages", NULL, NULL, &found);
        bool pfound = false;
        l += sum(c, "sluice_source_pending_messages", NULL, NULL, &pfound);
        fmt_num(lag, sizeof(lag), found || pfound ? l : NAN, 0);
        fmt_num(inflight, sizeof(inflight),
                sum(c, "sluice_inflight", NULL, NULL, NULL) +
                    sum(c, "sluice_gateway_inflight", NULL, NULL, NULL),
                0);
        sink_latency(c, p, sink, sizeof(sink));
        double connected = sum(c, "sluice_sink_connected", NULL, NULL, &found);
        snprintf(state, sizeof(state), "%s%s",
                 sum(c, "sluice_draining", NULL, NULL, NULL) > 0 ? "draining"
                                                                 : "running",
                 !found          ? ""
                 : connected > 0 ? ", sink connected"
                                 : ", SINK DISCONNECTED");
        put(o, "%-20.20s %9s %9s %9s %9s  %-24s %s", name, in, out, lag,
            inflight, sink, state);
    }
    put(o, "%s", "");
    put(o, "%-20s %-16s %-10s %s", "REPLICA", "BACKEND", "BREAKER",
        "ERRORS BY CLASS (total, per second)");
    for (int i = 0; i < n; i++) {
        const struct scrape *c = &cur[i];
        const struct scrape *p = prev ? &prev[i] : NULL;
        char name[64];
        struct sample *info = NULL;

        if (!c->ok)
            continue;
        short_url(urls[i], name, sizeof(name));
        for (size_t k = 0; k < c->n && !info; k++)
            if (!strcmp(c->samples[k].name, "sluice_replica_info"))
                info = &c->samples[k];
        if (info)
            label(info, "replica", name, sizeof(name));
        for (size_t k = 0; k < c->n; k++) {
            const struct sample *b = &c->samples[k];
            char backend[64], errs[512] = "", cls[64], be[64];
            size_t el = 0;
            if (strcmp(b->name, "sluice_backend_circuit_state") ||
                !label(b, "backend", backend, sizeof(backend)))
                continue;
            for (size_t e = 0; e < c->n; e++) {
                const struct sample *x = &c->samples[e];
                if (strcmp(x->name, "sluice_backend_errors_total") ||
                    x->value <= 0 || !label(x, "backend", be, sizeof(be)) ||
                    strcmp(be, backend) || !label(x, "class", cls, sizeof(cls)))
                    continue;
                /* The rate of this backend's class: its own sample. */
                double now = x->value, before = NAN;
                if (p && p->ok)
                    for (size_t q = 0; q < p->n; q++) {
                        char pb[64], pc[64];
                        const struct sample *y = &p->samples[q];
                        if (!strcmp(y->name, x->name) &&
                            label(y, "backend", pb, sizeof(pb)) &&
                            label(y, "class", pc, sizeof(pc)) &&
                            !strcmp(pb, backend) && !strcmp(pc, cls))
                            before = y->value;
                    }
                char r[24];
                fmt_num(r, sizeof(r),
                        isnan(before) || c->at <= p->at
                            ? NAN
                            : (now >= before ? now - before : now) /
                                  (c->at - p->at),
                        1);
                int w =
                    snprintf(errs + el, sizeof(errs) - el, "%s%s %.0f (%s/s)",
                             el ? ", " : "", cls, now, r);
                if (w > 0 && el + (size_t)w < sizeof(errs))
                    el += (size_t)w;
            }
            put(o, "%-20.20s %-16.16s %-10s %s", name, backend,
                breaker_name(b->value), el ? errs : "none");
        }
    }
}

/* ---- the terminal ---- */

static volatile sig_atomic_t stop_signal; /* SIGINT or SIGTERM came */
static struct termios saved;              /* the terminal as found */
static bool raw_on;                       /* 'saved' must be restored */

static void on_signal(int sig)
{
    stop_signal = sig;
}

static void restore_terminal(void)
{
    if (!raw_on)
        return;
    /* Show the cursor, leave the alternate screen, then the old modes. */
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
    raw_on = false;
}

/* Keys one at a time, no echo; signals (Ctrl-C) still work. */
static void raw_terminal(void)
{
    struct termios t;

    if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &saved) != 0)
        return;
    t = saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &t) != 0)
        return;
    raw_on = true;
    atexit(restore_terminal);
    fputs("\033[?1049h\033[?25l\033[H\033[2J", stdout);
}

/* Wait up to 'ms' for a key; true when it says quit. */
static bool wait_key(int ms)
{
    struct pollfd pfd = {STDIN_FILENO, POLLIN, 0};
    double end = now_s() + ms / 1000.0;

    while (!stop_signal) {
        int left = (int)((end - now_s()) * 1000);
        if (left <= 0)
            return false;
        int rc = poll(&pfd, 1, left);
        if (rc < 0 && errno != EINTR)
            return false;
        if (rc > 0) {
            char c;
            ssize_t n = read(STDIN_FILENO, &c, 1);
            if (n == 1 && (c == 'q' || c == 'Q'))
                return true;
            if (n == 0) /* stdin closed: no more keys; only signals */
                pfd.fd = -1;
        }
    }
    return false;
}

int sl_cmd_top(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"interval", required_argument, NULL, 'i'},
        {"once", no_argument, NULL, '1'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    char *urls[MAX_URLS];
    char *owned[MAX_URLS] = {0};
    struct scrape a[MAX_URLS], b[MAX_URLS];
    struct scrape *cur = a, *prev = NULL;
    static struct out o;
    int interval = 1000, n = 0, c, status = 0;
    bool once = false;

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    optind = 1;
    while ((c = sl_cli_getopt("top", argc, argv, longopts)) != -1) {
        char *end;
        switch (c) {
        case 'i':
            errno = 0;
            interval = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || interval < 100 ||
                interval > 60000)
                return sl_cli_usage_error(
                    "top",
                    "--interval wants milliseconds from 100 to 60000, "
                    "not '%s'",
                    optarg);
            break;
        case '1':
            once = true;
            break;
        case 'h':
            fputs(top_usage, stdout);
            return 0;
        default:
            return 2;
        }
    }
    if (argc - optind > MAX_URLS)
        return sl_cli_usage_error("top", "at most %d URLs", MAX_URLS);
    for (int i = optind; i < argc; i++) {
        const char *u = argv[i];
        if (strstr(u, "://")) {
            urls[n++] = argv[i];
            continue;
        }
        /* HOST:PORT */
        size_t len = strlen(u) + 32;
        if (!(owned[n] = malloc(len)))
            return 1;
        snprintf(owned[n], len, "http://%s/metrics", u);
        urls[n] = owned[n];
        n++;
    }
    if (n == 0)
        urls[n++] = DEFAULT_URL;

    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal; /* no SA_RESTART: poll() returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (!once && isatty(STDOUT_FILENO))
        raw_terminal();
    o.ansi = raw_on;

    long timeout = interval > 2000 ? 2000 : interval * 9 / 10;
    for (int frame = 0; !stop_signal; frame++) {
        fetch_all(urls, n, cur, timeout);
        if (!once || frame == 1) {
            struct winsize ws;
            o.len = 0;
            o.width = o.ansi && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0
                          ? ws.ws_col
                          : 0;
            if (o.ansi)
                o.len = (size_t)snprintf(o.buf, sizeof(o.buf), "\033[H");
            render(&o, urls, n, cur, prev, interval);
            if (o.ansi)
                o.len += (size_t)snprintf(o.buf + o.len, sizeof(o.buf) - o.len,
                                          "\033[J");
            fwrite(o.buf, 1, o.len, stdout);
            fflush(stdout);
        }
        if (once && frame == 1) {
            for (int i = 0; i < n; i++)
                if (!cur[i].ok)
                    status = 1;
            break;
        }
        if (prev)
            for (int i = 0; i < n; i++)
                scrape_free(&prev[i]);
        prev = cur;
        cur = cur == a ? b : a;
        if (wait_key(interval))
            break;
    }
    for (int i = 0; i < n; i++) {
        scrape_free(&cur[i]);
        if (prev && prev != cur)
            scrape_free(&prev[i]);
        free(owned[i]);
    }
    restore_terminal();
    curl_global_cleanup();
    if (stop_signal) {
        /* Die of the signal, as a shell expects, the terminal restored. */
        signal(stop_signal, SIG_DFL);
        raise(stop_signal);
    }
    return status;
}
