"""
Shared helpers of the fault suite: the local servers, mock-infer, sluice
workers, waiting on conditions with deadlines, RSS sampling and the checker
(produced set vs. the results and dead-letter tables).  Python 3 stdlib only;
PostgreSQL is reached through psql.
"""
import json
import os
import shutil
import re
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))


def _build_dir():
    for d in (os.environ.get("SLUICE_BUILD"), os.path.join(ROOT, "build-fault"),
              os.path.join(ROOT, "build")):
        if d and os.access(os.path.join(d, "sluice"), os.X_OK):
            return d
    sys.exit("fault: no sluice binary (set SLUICE_BUILD to a build directory)")


BUILD = _build_dir()
SLUICE = os.path.join(BUILD, "sluice")
MOCK = os.path.join(BUILD, "mock-infer")
HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("SLUICE_PG_PORT", "55432"))
REDIS_PORT = int(os.environ.get("SLUICE_REDIS_PORT", "56379"))
KAFKA_PORT = int(os.environ.get("SLUICE_KAFKA_PORT", "59092"))
PG_HOST = REDIS_HOST = HOST
PG_DSN = "host=%s port=%d dbname=sluice user=postgres" % (HOST, PG_PORT)
KAFKA = "%s:%d" % (HOST, KAFKA_PORT)


def use_servers(pg=None, redis=None, kafka=None):
    """
    Point the helpers below (psql, redis-cli, pipeline snippets, the
    checker) at other servers, each a (host, port): the multi-host
    scenarios run their own inside network namespaces.
    """
    global PG_HOST, PG_PORT, PG_DSN, REDIS_HOST, REDIS_PORT, KAFKA
    if pg:
        PG_HOST, PG_PORT = pg
        PG_DSN = "host=%s port=%d dbname=sluice user=postgres" % pg
    if redis:
        REDIS_HOST, REDIS_PORT = redis
    if kafka:
        KAFKA = "%s:%d" % kafka
OUT = os.environ.get("FAULT_OUT") or "/tmp/sluice-fault"

SEQ_RE = re.compile(rb'"seq\\?"\s*:\s*(\d+)')  # also inside a JSON string


class Fail(Exception):
    """A scenario's expectation did not hold."""


class Skip(Exception):
    """The scenario cannot run here (a missing kernel feature or tool); the
    reason says which.  Never a pass: the table line says SKIP and `run`
    counts it apart (and fails under CI=true)."""


EXIT_SKIP = 77


def log(*a):
    print("[%s] %s" % (time.strftime("%H:%M:%S"), " ".join(str(x) for x in a)),
          file=sys.stderr, flush=True)


# ---- PostgreSQL ----------------------------------------------------------

def psql(sql, db="sluice", check=True, timeout=60):
    """Run 'sql'; returns stdout (unaligned, tuples only)."""
    p = subprocess.run(
        ["psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", PG_HOST,
         "-p", str(PG_PORT), "-U", "postgres", "-d", db, "-c", sql],
        capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise Fail("psql failed (%s): %s" % (sql[:120], p.stderr.strip()))
    return p.stdout if p.returncode == 0 else None


def q1(sql, default=None):
    """First value of 'sql', or 'default' when PostgreSQL cannot answer."""
    try:
        out = psql(sql, check=False, timeout=10)
    except subprocess.TimeoutExpired:
        return default
    if out is None:
        return default
    out = out.strip().split("\n")[0]
    return out if out != "" else default


def table_count(table):
    v = q1("SELECT count(*) FROM %s" % table)
    return int(v) if v is not None else -1


def landed(table, dl):
    """Rows plus dead letters (-1 when a table is missing or PG is down)."""
    a, b = table_count(table), table_count(dl)
    return -1 if a < 0 or b < 0 else a + b


def drop_tables(*tables):
    psql("DROP TABLE IF EXISTS %s" % ", ".join(tables), check=False)


def pg_pgdata():
    d = os.environ.get("SLUICE_PGDATA")
    if d:
        return d
    return os.path.join(os.path.realpath(os.path.join(ROOT, ".run", "postgres")),
                        "data")


def pg_bindir():
    d = os.environ.get("SLUICE_PG_BINDIR")
    if d:
        return d
    cands = sorted((p for p in os.listdir("/usr/lib/postgresql")),
                   key=lambda s: [int(x) for x in re.findall(r"\d+", s)],
                   reverse=True)
    for c in cands:
        b = "/usr/lib/postgresql/%s/bin" % c
        if os.access(os.path.join(b, "pg_ctl"), os.X_OK):
            return b
    raise Fail("pg_ctl not found")


def pg_ctl(*args):
    cmd = [os.path.join(pg_bindir(), "pg_ctl"), "-D", pg_pgdata()] + list(args)
    if os.getuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        raise Fail("pg_ctl %s failed: %s %s" % (" ".join(args), p.stdout,
                                                p.stderr))


def pg_stop(mode="fast"):
    pg_ctl("stop", "-m", mode, "-w", "-t", "60")


def pg_start():
    logf = os.path.join(os.path.dirname(pg_pgdata()), "log")
    pg_ctl("start", "-w", "-t", "60", "-l", logf)
    wait_for(lambda: q1("SELECT 1") == "1", 60, "postgres accepting queries")


def pg_running():
    return q1("SELECT 1") == "1"


# ---- Kafka / Redis ---------------------------------------------------------

def produce(target, n=None, partitions=None, rate=None, file=None, extra=()):
    cmd = [SLUICE, "produce", target]
    if n is not None:
        cmd += ["--generate", str(n)]
    if file is not None:
        cmd += ["--file", file]
    if partitions:
        cmd += ["--partitions", str(partitions)]
    if rate:
        cmd += ["--rate", str(rate)]
    cmd += list(extra)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise Fail("produce failed: %s %s" % (p.stdout, p.stderr))
    log(p.stdout.strip() or p.stderr.strip())


def produce_bg(target, n, partitions=None, rate=None, logpath=None,
               prefix=(), extra=()):
    cmd = list(prefix) + [SLUICE, "produce", target, "--generate", str(n)]
    if partitions:
        cmd += ["--partitions", str(partitions)]
    if rate:
        cmd += ["--rate", str(rate)]
    cmd += list(extra)
    out = open(logpath, "wb") if logpath else subprocess.DEVNULL
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)


def kafka_create_topic(topic, partitions):
    """Create 'topic' (producing nothing: --generate 0)."""
    produce("kafka://%s/%s" % (KAFKA, topic), n=0, partitions=partitions)


def redis_cli(*args, check=True):
    p = subprocess.run(["redis-cli", "-h", REDIS_HOST, "-p", str(REDIS_PORT)] +
                       [str(a) for a in args], capture_output=True, text=True,
                       timeout=30)
    if check and p.returncode != 0:
        raise Fail("redis-cli %s: %s" % (args, p.stderr))
    return p.stdout.strip()


# ---- waiting ---------------------------------------------------------------

def wait_for(cond, timeout, what, interval=0.1):
    """Poll cond() until true; Fail after 'timeout' seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Fail("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---- RSS ---------------------------------------------------------------------

class RssSampler:
    """Samples VmRSS/VmHWM of watched pids every 'interval' seconds."""

    def __init__(self, interval=0.05):
        self.interval = interval
        self.pids = set()
        self.worst_kb = 0
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def watch(self, pid):
        with self.lock:
            self.pids.add(pid)

    def sample_once(self):
        with self.lock:
            pids = list(self.pids)
        for pid in pids:
            kb = read_rss_kb(pid)
            if kb is None:
                with self.lock:
                    self.pids.discard(pid)
            elif kb > self.worst_kb:
                self.worst_kb = kb

    def _run(self):
        while not self.stop_ev.is_set():
            self.sample_once()
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        self.t.join()


def read_rss_kb(pid):
    """max(VmHWM, VmRSS) of 'pid' in KiB, or None once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            txt = f.read()
    except OSError:
        return None
    if "\nState:\tZ" in txt:
        return None
    best = 0
    for k in ("VmHWM", "VmRSS"):
        m = re.search(r"^%s:\s+(\d+) kB" % k, txt, re.M)
        if m:
            best = max(best, int(m.group(1)))
    return best


RSS = RssSampler()


# ---- processes ---------------------------------------------------------------

class Mock:
    """A mock-infer server on a free port."""

    def __init__(self, workdir, *args, host="127.0.0.1", prefix=()):
        self.portfile = os.path.join(workdir, "mock.port.%d" % id(self))
        if os.path.exists(self.portfile):
            os.unlink(self.portfile)
        self.logf = open(os.path.join(workdir, "mock-infer.log"), "ab")
        self.p = subprocess.Popen(
            list(prefix) + [MOCK, "--listen", host + ":0", "--port-file",
                            self.portfile] + list(args),
            stdout=self.logf, stderr=subprocess.STDOUT)
        wait_for(lambda: os.path.exists(self.portfile) and
                 open(self.portfile).read().strip(), 10, "mock-infer port")
        self.port = int(open(self.portfile).read().strip())
        self.url = "http://%s:%d" % (host, self.port)

    def stats(self):
        import urllib.request
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Worker:
    """One `sluice run` process; its log goes to WORKDIR/NAME.log."""

    def __init__(self, workdir, pipeline, name="w", replica=None, env=None,
                 prefix=(), listen="127.0.0.1:0"):
        self.name = name
        self.path = os.path.join(workdir, "%s.log" % name)
        self.logf = open(self.path, "ab")
        e = dict(os.environ)
        e.update(env or {})
        # prefix: e.g. `ip netns exec NS`, which execs: the pid is sluice's
        cmd = list(prefix) + [SLUICE, "run", pipeline, "--listen", listen]
        if replica:
            cmd += ["--replica-id", replica]
        self.p = subprocess.Popen(cmd, stdout=self.logf,
                                  stderr=subprocess.STDOUT, env=e)
        self.pid = self.p.pid
        self.expected_exit = False  # set once we stop it on purpose
        RSS.watch(self.pid)

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGINT):
            self.expected_exit = True
        if self.p.poll() is None:
            self.p.send_signal(sig)

    def term(self, timeout=60):
        """SIGTERM and wait; returns the exit status."""
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self):
        self.signal(signal.SIGKILL)
        return self.p.wait(30)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            raise Fail("%s (pid %d) did not exit within %ss" %
                       (self.name, self.pid, timeout))

    def log_text(self):
        self.logf.flush()
        with open(self.path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def last_lines(self, n=2):
        return " / ".join(self.log_text().strip().splitlines()[-n:])[-400:]

    def check_alive(self):
        if not self.alive():
            raise Fail("%s exited by itself (status %s): %s" %
                       (self.name, self.p.poll(), self.last_lines()))

    def count_log(self, pattern):
        return len(re.findall(pattern, self.log_text()))


# ---- pipeline files ------------------------------------------------------------

def kafka_source(topic, group, instance=None, props=None, extra=""):
    s = ("source:\n  kind: kafka\n%s  kafka:\n    brokers: %s\n"
         "    topics: [%s]\n    group: %s\n" % (extra, KAFKA, topic, group))
    if instance:
        s += "    group_instance_id: %s\n" % instance
    if props:
        s += "    properties:\n" + "".join(
            '      %s: "%s"\n' % kv for kv in props.items())
    return s


def redis_stream_source(stream, group, extra_redis="", extra=""):
    return ("source:\n  kind: redis-stream\n%s  redis:\n"
            "    url: redis://%s:%d\n    key: %s\n    group: %s\n%s" %
            (extra, REDIS_HOST, REDIS_PORT, stream, group, extra_redis))


def file_source(path, extra=""):
    return "source:\n  kind: file\n%s  file:\n    path: %s\n" % (extra, path)


def sentiment_backend(url, extra="", name="sentiment"):
    return ("backends:\n  %s:\n    kind: http-json\n"
            "    url: %s/predict/sentiment\n"
            "    body: '{\"text\": {{text}}}'\n    result_pointer: /label\n%s"
            "steps:\n  - name: s\n    backends: [%s]\n" %
            (name, url, extra, name))


def sink(table, dl, extra=""):
    return ("sink:\n  postgres:\n    dsn: %s\n    table: %s\n"
            "    dead_letter_table: %s\n%s" % (PG_DSN, table, dl, extra))


def write_pipeline(path, name, *parts, head=""):
    text = ("version: 1\nname: %s\nlog_level: info\n%s" % (name, head) +
            "".join(parts))
    with open(path, "w") as f:
        f.write(text)
    return path


# ---- the checker -------------------------------------------------------------

def seqs_of(table, dl):
    """(row seqs, dead-letter seqs, rows without seq, dls without seq,
    dead letters as (seq, stage, error, sqlstate))."""
    rows, dls, rows_unl, dls_unl, dl_info = [], [], 0, 0, []
    out = psql("SELECT coalesce(payload->>'seq', ''), "
               "coalesce(encode(payload_raw, 'hex'), '') FROM %s" % table)
    for line in out.splitlines():
        seq, raw = line.split("|", 1)
        if seq.isdigit():
            rows.append(int(seq))
            continue
        m = SEQ_RE.search(bytes.fromhex(raw)) if raw else None
        if m:
            rows.append(int(m.group(1)))
        else:
            rows_unl += 1
    out = psql("SELECT coalesce(encode(payload, 'hex'), ''), stage, "
               "replace(replace(coalesce(error, ''), '|', '/'), E'\\n', ' '), "
               "coalesce(sqlstate, '') FROM %s" % dl)
    for line in out.splitlines():
        raw, stage, error, sqlstate = line.split("|", 3)
        m = SEQ_RE.search(bytes.fromhex(raw))
        seq = int(m.group(1)) if m else None
        if seq is None:
            dls_unl += 1
        else:
            dls.append(seq)
        dl_info.append((seq, stage, error, sqlstate))
    return rows, dls, rows_unl, dls_unl, dl_info


class Result:
    def __init__(self, scenario, produced, rows, dead, lost, dup, ok, why,
                 rss_kb, dl_info):
        self.scenario, self.produced, self.rows, self.dead = (
            scenario, produced, rows, dead)
        self.lost, self.dup, self.ok, self.why = lost, dup, ok, why
        self.rss_kb, self.dl_info = rss_kb, dl_info

    def line(self):
        verdict = "PASS" if self.ok else "FAIL: " + "; ".join(self.why)
        if self.rss_kb:
            verdict += " (worst RSS %.1f MiB)" % (self.rss_kb / 1024.0)
        return "%s | %d | %d | %d | %d | %d | %s" % (
            self.scenario, self.produced, self.rows, self.dead, self.lost,
            self.dup, verdict)


def check(scenario, produced, table, dl, expect_dead=None, unlabeled=0,
          rss_kb=None, rss_max_mib=None, extra_fail=()):
    """
    Compare seqs 0..produced-1 with 'table' and 'dl'.  expect_dead: exact
    count of dead letters, a (min, max) pair, or None (any).  unlabeled:
    messages with no seq in their payload (empty lines, tombstones) that
    must each land exactly once as a row or a dead letter.
    """
    rows, dls, rows_unl, dls_unl, dl_info = seqs_of(table, dl)
    expected = set(range(produced))
    seen_rows, seen_dls = {}, {}
    for s in rows:
        seen_rows[s] = seen_rows.get(s, 0) + 1
    for s in dls:
        seen_dls[s] = seen_dls.get(s, 0) + 1
    lost = [s for s in sorted(expected) if s not in seen_rows and
            s not in seen_dls]
    dup = sum(c - 1 for c in seen_rows.values() if c > 1)
    dup += sum(c - 1 for c in seen_dls.values() if c > 1)
    dup += sum(1 for s in seen_rows if s in seen_dls)
    stray = [s for s in list(seen_rows) + list(seen_dls) if s not in expected]
    n_rows, n_dead = len(rows) + rows_unl, len(dls) + dls_unl
    why = list(extra_fail)
    unl = rows_unl + dls_unl
    lost_n = len(lost) + max(0, unlabeled - unl)
    dup += max(0, unl - unlabeled)
    if lost_n:
        why.append("lost %d (first: %s)" % (lost_n, lost[:10]))
    if dup:
        why.append("duplicated %d" % dup)
    if stray:
        why.append("%d rows with unknown seq %s" % (len(stray), stray[:5]))
    if expect_dead is not None:
        lo, hi = (expect_dead, expect_dead) if isinstance(expect_dead, int) \
            else expect_dead
        if not lo <= n_dead <= hi:
            why.append("dead letters %d, expected %s" % (
                n_dead, lo if lo == hi else "%d..%d" % (lo, hi)))
    if rss_max_mib is not None and rss_kb and rss_kb > rss_max_mib * 1024:
        why.append("worst RSS %.1f MiB > %d MiB" % (rss_kb / 1024.0,
                                                    rss_max_mib))
    return Result(scenario, produced + unlabeled, n_rows, n_dead, lost_n, dup,
                  not why, why, rss_kb, dl_info)


# ---- scenario frame ------------------------------------------------------------

class Scenario:
    """
    Per-scenario state: a unique name (scenario + pid) for topics, streams
    and tables, a work directory for logs, and the workers to clean up.
    """

    def __init__(self, name):
        self.name = name
        self.uniq = re.sub(r"[^a-z0-9_]", "_", name) + "_%d" % os.getpid()
        self.table = "f_" + self.uniq
        self.dl = self.table + "_dl"
        self.dir = os.path.join(OUT, name)
        # A run's logs only: workers append to theirs (a restarted worker
        # keeps one log), so a previous run's lines would be read as ours.
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir, exist_ok=True)
        self.workers = []
        self.mocks = []
        self.cleanups = []
        self.stopped = []  # workers stopped on purpose mid-scenario
        # servers of its own, gone after cleanup (tests/fault/netlab.py):
        # nothing to drop, and their addresses must not be tried any more
        self.own_servers = False
        self.t0 = time.monotonic()

    def mock(self, *args, host="127.0.0.1", prefix=()):
        m = Mock(self.dir, *args, host=host, prefix=prefix)
        self.mocks.append(m)
        return m

    def worker(self, pipeline, name=None, replica=None, env=None, prefix=(),
               listen="127.0.0.1:0"):
        w = Worker(self.dir, pipeline, name or "w%d" % len(self.workers),
                   replica, env, prefix, listen)
        self.workers.append(w)
        return w

    def pipeline(self, *parts, head=""):
        return write_pipeline(os.path.join(self.dir, "pipeline.yaml"),
                              self.uniq.replace("_", "-")[:60], *parts,
                              head=head)

    def check_workers(self):
        """Fail at once when a worker we did not stop has exited."""
        for w in self.workers:
            if not w.expected_exit:
                w.check_alive()

    def wait_landed(self, n, timeout, what=None):
        def cond():
            self.check_workers()
            return landed(self.table, self.dl) >= n
        wait_for(cond, timeout,
                 what or "%d rows + dead letters in %s" % (n, self.table),
                 interval=0.2)

    def left(self, n):
        """How many of 'n' messages have not landed yet (n while PostgreSQL
        cannot answer)."""
        got = landed(self.table, self.dl)
        return n if got < 0 else max(n - got, 0)

    def check_left(self, n, what):
        """
        [] when some of the 'n' messages are still to land, else a failure:
        a fault or restart ('what') that comes after everything landed
        tests nothing (as s12's "no lag to test" guard says).  Scenarios
        size their streams so that this cannot happen on a fast machine.
        """
        if self.left(n) > 0:
            return []
        return ["nothing left %s: all %d had landed already" % (what, n)]

    def wait_progress(self, w, before, n, timeout, what):
        """
        Wait until more than 'before' of the 'n' messages have landed.
        Returns True on progress, False when nothing is left to do (all n
        landed: there can be no progress, which is success for a loop of
        faults, not a timeout); Fail when 'w' exits or after 'timeout' s
        with messages left and no progress.
        """
        def cond():
            w.check_alive()
            got = landed(self.table, self.dl)
            if got >= n:
                return "done"
            return "progress" if got > before else None
        return wait_for(cond, timeout, what, interval=0.02) == "progress"

    def finish(self, produced, expect_dead=None, unlabeled=0, rss_max_mib=None,
               extra_fail=(), keep_tables=False):
        RSS.sample_once()
        res = check(self.name, produced, self.table, self.dl,
                    expect_dead=expect_dead, unlabeled=unlabeled,
                    rss_kb=RSS.worst_kb, rss_max_mib=rss_max_mib,
                    extra_fail=extra_fail)
        return res

    def cleanup(self):
        for w in self.workers:
            if w.alive():
                w.signal(signal.SIGCONT)
                w.kill()
        for m in self.mocks:
            m.stop()
        for fn in self.cleanups:
            try:
                fn()
            except Exception as e:  # noqa: BLE001 - best effort
                log("cleanup:", e)


def main(name, body):
    """
    Run body(sc) -> Result; print the table line; exit 0 on PASS.  An
    exception is a FAIL line with the reason.  Tables are dropped on PASS
    (FAULT_KEEP=1 keeps them) and kept for inspection on FAIL.  Skip: a
    SKIP line with the reason, exit EXIT_SKIP.
    """
    sc = Scenario(name)
    res = skipped = None
    try:
        res = body(sc)
    except Skip as e:
        log("SKIP:", e)
        skipped = str(e)
    except Fail as e:
        log("FAIL:", e)
        res = Result(name, 0, 0, 0, 0, 0, False, [str(e)], RSS.worst_kb, [])
    except Exception as e:  # noqa: BLE001
        import traceback
        traceback.print_exc()
        res = Result(name, 0, 0, 0, 0, 0, False,
                     ["%s: %s" % (type(e).__name__, e)], RSS.worst_kb, [])
    finally:
        sc.cleanup()
        RSS.stop()
    if skipped is not None:
        print("%s | - | - | - | - | - | SKIP: %s" % (name, skipped),
              flush=True)
        sys.exit(EXIT_SKIP)
    if res.ok and not os.environ.get("FAULT_KEEP") and not sc.own_servers:
        drop_tables(sc.table, sc.dl)
    elif not res.ok:
        log("tables kept: %s %s; logs in %s" % (sc.table, sc.dl, sc.dir))
    log("%s took %.1f s" % (name, time.monotonic() - sc.t0))
    print(res.line(), flush=True)
    sys.exit(0 if res.ok else 1)


# ---- a stream with faults along the way --------------------------------------

def kafka_stream(sc, n, faults, pipe=None, partitions=4, rate=2000,
                 timeout=240, mock_args=("--latency-ms", "2"), workers=1,
                 sink_extra="    batch_rows: 100\n    flush_ms: 10\n",
                 props=None, head="shutdown_timeout_ms: 20000\n"):
    """
    Produce n messages at 'rate' into a fresh topic while 'workers' workers
    consume it; each (threshold, fn) in 'faults' runs fn(sc, workers) once
    threshold messages have landed.  Then wait for all n, SIGTERM every
    worker and expect exit 0.  Returns (workers, extra failures).
    """
    topic = sc.uniq
    if pipe is None:
        mock = sc.mock(*mock_args)
        pipe = sc.pipeline(
            kafka_source(topic, "g_" + sc.uniq, props=props),
            "workers:\n  threads: 2\n  max_inflight: 64\n",
            sentiment_backend(mock.url), sink(sc.table, sc.dl, sink_extra),
            head=head)
    kafka_create_topic(topic, partitions)
    ws = [sc.worker(pipe, name="w%d" % i, replica="r%d-%s" % (i, sc.uniq))
          for i in range(workers)]
    prod = produce_bg("kafka://%s/%s" % (KAFKA, topic), n, rate=rate,
                      logpath=os.path.join(sc.dir, "produce.log"))
    sc.cleanups.append(lambda: prod.poll() is None and prod.kill())
    bad = []
    for threshold, fn in faults:
        wait_for(lambda: landed(sc.table, sc.dl) >= threshold or
                 not all(w.alive() for w in ws), timeout,
                 "%d landed before the next fault" % threshold, interval=0.05)
        for w in ws:
            w.check_alive()
        bad += sc.check_left(n, "for the fault at %d landed" % threshold)
        fn(sc, ws)
    if prod.wait(timeout) != 0:
        raise Fail("producer failed (see %s/produce.log)" % sc.dir)
    wait_for(lambda: landed(sc.table, sc.dl) >= n or
             not all(w.alive() for w in ws if w not in sc.stopped), timeout,
             "%d landed" % n, interval=0.2)
    for w in ws:
        if w in sc.stopped:
            continue
        w.check_alive()
        rc = w.term(60)
        if rc != 0:
            bad.append("%s exited %s after SIGTERM: %s" % (w.name, rc,
                                                          w.last_lines()))
    return ws, bad


def kcat_produce(topic, records, partition=0, null_empty=False):
    """
    Send (key, value) byte pairs to 'topic' with kcat (arbitrary bytes:
    NUL, invalid UTF-8, empty values).  key None: no key.  null_empty:
    an empty value is sent as NULL (a tombstone).
    """
    rs, us = b"\x1e", b"\x1f"
    data = b""
    for key, value in records:
        assert rs not in value and us not in value and (key is None or (
            rs not in key and us not in key))
        data += (key or b"") + us + value + rs
    cmd = ["kcat", "-P", "-b", KAFKA, "-t", topic, "-p", str(partition),
           "-D", rs.decode(), "-K", us.decode()]
    if null_empty:
        cmd.append("-Z")
    p = subprocess.run(cmd, input=data, capture_output=True, timeout=60)
    if p.returncode != 0:
        raise Fail("kcat -P failed: %s" % p.stderr.decode("utf-8", "replace"))


def outcomes(table, dl):
    """{seq: [("row", None, None) | ("dl", stage, error, sqlstate)...]}."""
    rows, dls, _, _, dl_info = seqs_of(table, dl)
    out = {}
    for s in rows:
        out.setdefault(s, []).append(("row", None, None, None))
    for seq, stage, error, sqlstate in dl_info:
        if seq is not None:
            out.setdefault(seq, []).append(("dl", stage, error, sqlstate))
    return out


def stopped_counts(worker):
    """(consumed, processed, dead-lettered, acked) of the 'stopped:' line."""
    m = re.findall(r"stopped: (\d+) consumed, (\d+) processed, (\d+) "
                   r"dead-lettered, (\d+) acked", worker.log_text())
    if not m:
        raise Fail("%s logged no 'stopped:' line" % worker.name)
    return tuple(int(x) for x in m[-1])


def expect_outcomes(sc, expect, unlabeled_dl=0):
    """
    expect: {seq: "row" | "dl" | "any"}; each must have landed exactly once
    in the expected place, dead letters with a non-empty reason.  Logs the
    outcome of each.  Returns a list of failures.
    """
    got = outcomes(sc.table, sc.dl)
    bad = []
    for seq, want in sorted(expect.items()):
        o = got.get(seq, [])
        desc = ", ".join(
            x[0] if x[0] == "row" else "dead letter [stage %s, sqlstate %s]: %s"
            % (x[1], x[3] or "-", x[2][:160]) for x in o) or "nothing"
        if want != "row" or [x[0] for x in o] != ["row"]:
            log("  seq %d (expected %s) -> %s" % (seq, want, desc))
        if len(o) != 1:
            continue  # lost/duplicated: the checker reports it
        if want != "any" and o[0][0] != want:
            bad.append("seq %d: %s, expected %s" % (seq, o[0][0], want))
        if o[0][0] == "dl" and not o[0][2]:
            bad.append("seq %d: dead letter without a reason" % seq)
    if unlabeled_dl:
        reasons = ["%s: %s" % (x[1], x[2]) for x in
                   seqs_of(sc.table, sc.dl)[4] if x[0] is None]
        for r in reasons:
            log("  (no seq) -> dead letter %s" % r[:160])
        if len(reasons) != unlabeled_dl:
            bad.append("%d dead letters without seq, expected %d" %
                       (len(reasons), unlabeled_dl))
    return bad


def metrics(worker):
    """{name: value} of the worker's /metrics (unlabelled samples summed)."""
    import urllib.request
    # "listening on http://HOST:PORT" (a worker in a network namespace
    # listens on its own address); the older "metrics on ... (port N)"
    m = re.findall(r"listening on http://([^\s:]+):(\d+)", worker.log_text())
    if m:
        host, port = m[-1]  # the log is appended to: the last run
    else:
        m = re.search(r"metrics on \S+ \(port (\d+)\)", worker.log_text())
        if not m:
            return {}
        host, port = "127.0.0.1", m.group(1)
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    try:
        with urllib.request.urlopen("http://%s:%s/metrics" % (host, port),
                                    timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, val = line.rpartition(" ")
        name = name.split("{")[0]
        try:
            out[name] = out.get(name, 0.0) + float(val)
        except ValueError:
            pass
    return out


def is_asan_build():
    try:
        with open(SLUICE, "rb") as f:
            return b"AddressSanitizer" in f.read()
    except OSError:
        return False


# ---- Kafka broker and Redis server restarts, keeping their data -------------

def _pidfile_pid(path):
    try:
        pid = int(open(path).read().strip())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def _wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return True
        time.sleep(0.1)
    return False


def kafka_restart(down_s=0.0):
    """
    Stop the broker that scripts/services started (SIGTERM: a controlled
    shutdown that keeps its data), wait down_s, start it again with the same
    command line, and wait for metadata.  `scripts/services restart kafka`
    would wipe the data.
    """
    pidfile = os.path.join(ROOT, ".run", "kafka", "kafka.pid")
    pid = _pidfile_pid(pidfile)
    if not pid:
        raise Fail("no Kafka broker pid in %s" % pidfile)
    argv = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[:-1]
    cwd = os.readlink("/proc/%d/cwd" % pid)
    logpath = os.path.join(ROOT, ".run", "kafka", "kafka.log")
    os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, 90):
        raise Fail("Kafka broker %d did not stop within 90 s" % pid)
    log("kafka broker stopped")
    if down_s:
        time.sleep(down_s)
    with open(logpath, "ab") as lf:
        p = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL,
                             stdout=lf, stderr=subprocess.STDOUT,
                             start_new_session=True)
    with open(pidfile, "w") as f:
        f.write("%d\n" % p.pid)
    wait_for(lambda: subprocess.run(
        ["kcat", "-b", KAFKA, "-L", "-m", "2"], capture_output=True,
        timeout=30).returncode == 0, 120, "the Kafka broker back",
        interval=0.5)
    log("kafka broker back (pid %d)" % p.pid)


def redis_restart():
    """SHUTDOWN (the AOF is flushed) and start redis-server on its config."""
    rdir = os.path.join(ROOT, ".run", "redis")
    pid = _pidfile_pid(os.path.join(rdir, "redis.pid"))
    if not pid:
        raise Fail("no redis-server pid in %s/redis.pid" % rdir)
    redis_cli("SHUTDOWN", check=False)
    if not _wait_gone(pid, 30):
        raise Fail("redis-server %d did not stop" % pid)
    subprocess.run(["redis-server", os.path.join(rdir, "redis.conf")],
                   check=True, stdin=subprocess.DEVNULL, timeout=30)
    wait_for(lambda: redis_cli("PING", check=False) == "PONG", 30,
             "redis back")
    log("redis restarted")
