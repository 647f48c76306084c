#!/usr/bin/env python3
"""
sluice as several hosts on a network that fails (tests/fault/netlab.py:
each replica, the Kafka broker, PostgreSQL, Redis and the model server in a
network namespace of its own, on a bridge; root only).  Each mode starts
its own servers there and ends with the checker (lost 0, duplicated 0):

  broker-partition  two replicas on a 4-partition topic; r0 is cut off from
                    the broker for 15 s (session timeout 6 s): it logs its
                    partitions lost, r1 takes all four, r0 rejoins after the
                    heal, gets some back and works on them while the stream
                    goes on; afterwards a fresh consumer of
                    the group (kcat) finds nothing after the committed
                    offsets: no stale commit moved a partition back
  pg-cut            one replica cut off from PostgreSQL for 30 s while the
                    producer goes on: consumption pauses (consumed
                    plateaus), RSS stays flat, everything lands after the
                    heal, SIGTERM exit 0
  slow-links        netem delay 50 ms +- 10 ms, loss 2 % on the links of
                    PostgreSQL and the model server while three replicas
                    drain a 6-partition topic (SKIP when the kernel lacks
                    the netem qdisc)
  redis-partition   two consumers of one Redis Streams group; r0, holding
                    pending entries, is cut off from Redis (still reaching
                    PostgreSQL and the model): r1, on the side that reaches
                    Redis, claims them (XAUTOCLAIM after min_idle_ms 1000);
                    after the heal nothing is pending

Usage: s14_multihost.py broker-partition|pg-cut|slow-links|redis-partition
"""
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultlib  # noqa: E402
from faultlib import *  # noqa: F401,F403,E402
from netlab import Lab  # noqa: E402

MODE = sys.argv[1] if len(sys.argv) > 1 else ""
NAMES = {"broker-partition": "net-broker-partition",
         "pg-cut": "net-pg-cut-30s",
         "slow-links": "net-slow-links-3-replicas",
         "redis-partition": "net-redis-partition"}
RSS_MAX_MIB = int(os.environ.get("FAULT_RSS_MAX_MIB", "64"))


def up(sc, hosts, servers, mock_args=("--latency-ms", "2"), netem=()):
    """The lab, its servers and mock-infer; faultlib's helpers point at
    them.  netem: hosts whose links get the slow/lossy qdisc (first, so a
    kernel without netem skips before any server starts)."""
    for f in os.listdir(sc.dir):  # logs of an earlier run: counted below
        if f.endswith(".log"):
            os.unlink(os.path.join(sc.dir, f))
    lab = Lab(sc, hosts)
    for h in netem:
        lab.netem(h, "delay 50ms 10ms loss 2%")
    srv = lab.start_servers(*servers)
    use_servers(pg=srv.get("postgres"), redis=srv.get("redis"),
                kafka=srv.get("kafka"))
    mock = sc.mock(*mock_args, host=lab.addr("model"),
                   prefix=lab.prefix("model"))
    return lab, mock


def replica(sc, lab, pipe, host):
    # FAULT_DEBUG=1: debug log lines (librdkafka's too, with the pipeline's
    # kafka property 'debug') in HOST.log
    env = {"SLUICE_LOG_LEVEL": "debug"} if os.environ.get(
        "FAULT_DEBUG") == "1" else None
    return sc.worker(pipe, name=host, replica="%s-%s" % (host, sc.uniq),
                     prefix=lab.prefix(host), listen=lab.addr(host) + ":0",
                     env=env)


def assigned_total(w):
    """Partitions the worker holds after its last rebalance (-1: none)."""
    m = re.findall(r"assigned \d+ partition\(s\), (\d+) in total",
                   w.log_text())
    return int(m[-1]) if m else -1


def term_all(ws, bad):
    for w in ws:
        w.check_alive()
        rc = w.term(60)
        if rc != 0:
            bad.append("%s exited %s after SIGTERM: %s" % (w.name, rc,
                                                          w.last_lines()))


def kafka_pipeline(sc, mock, topic, props=None, extra="", sink_extra=""):
    if os.environ.get("FAULT_DEBUG") == "1":
        props = dict(props or {}, debug="cgrp,topic,fetch")
    return sc.pipeline(
        kafka_source(topic, "g_" + sc.uniq, props=props),
        extra, "workers:\n  threads: 2\n  max_inflight: 32\n",
        sentiment_backend(mock.url), sink(sc.table, sc.dl, sink_extra),
        head="shutdown_timeout_ms: 20000\n")


def uncommitted(topic, group):
    """
    Messages a fresh consumer of 'group' gets (kcat, from the committed
    offsets, earliest where none, until the end of every partition): 0 when
    every partition's commit is at its end.  Run after all replicas left.
    """
    p = subprocess.run(
        ["kcat", "-b", faultlib.KAFKA, "-G", group, "-X",
         "auto.offset.reset=earliest", "-X", "enable.auto.commit=false",
         "-e", "-q", "-f", "%p:%o\n", topic],
        capture_output=True, text=True, timeout=120)
    if p.returncode != 0:
        raise Fail("kcat -G %s failed: %s" % (group, p.stderr.strip()))
    return [ln for ln in p.stdout.splitlines() if ln.strip()]


# ---- broker-partition -------------------------------------------------------

def broker_partition(sc):
    # 45 s of production: r0 rejoins (10-15 s after the heal) while the
    # stream still goes on, so it works on its new partitions again
    n, rate, cut_s = 13500, 300, 15
    lab, mock = up(sc, ["pg", "kafka", "model", "r0", "r1"],
                   ["postgres", "kafka"])
    topic, group = sc.uniq, "g_" + sc.uniq
    kafka_create_topic(topic, 4)
    pipe = kafka_pipeline(sc, mock, topic,
                          props={"session.timeout.ms": "6000",
                                 "heartbeat.interval.ms": "1000"})
    r0 = replica(sc, lab, pipe, "r0")
    r1 = replica(sc, lab, pipe, "r1")
    wait_for(lambda: sc.check_workers() or (
        assigned_total(r0) > 0 and assigned_total(r1) > 0 and
        assigned_total(r0) + assigned_total(r1) == 4), 60,
        "both replicas assigned")
    # the producer runs in the broker's namespace: a crashed run's leftover
    # cleanup ends it with the namespace
    prod = produce_bg("kafka://%s/%s" % (faultlib.KAFKA, topic), n,
                      rate=rate, logpath=os.path.join(sc.dir, "produce.log"),
                      prefix=lab.prefix("kafka"))
    sc.cleanups.append(lambda: prod.poll() is None and prod.kill())
    sc.wait_landed(1500, 60)
    bad = sc.check_left(n, "when r0 was cut off from the broker")
    before = landed(sc.table, sc.dl)
    lab.partition("r0", "kafka")
    t0 = time.monotonic()
    wait_for(lambda: sc.check_workers() or assigned_total(r1) == 4, 60,
             "r1 holding all 4 partitions")
    moved_s = time.monotonic() - t0
    wait_for(lambda: sc.check_workers() or
             r0.count_log(r"partition\(s\) lost") > 0, 60,
             "r0 noticing its partitions lost")
    lost_s = time.monotonic() - t0
    rest = cut_s - (time.monotonic() - t0)
    if rest > 0:
        time.sleep(rest)  # the fault: longer than the session timeout
    during = landed(sc.table, sc.dl) - before
    rejoins = r0.count_log(r"assigned \d+ partition")
    lab.heal("r0", "kafka")
    log("r1 held all partitions after %.1f s, r0 logged them lost after "
        "%.1f s; %d landed during the %.0f s cut" %
        (moved_s, lost_s, during, time.monotonic() - t0))
    wait_for(lambda: sc.check_workers() or (
        r0.count_log(r"assigned \d+ partition") > rejoins and
        assigned_total(r0) > 0), 90, "r0 rejoined with partitions")
    producing = prod.poll() is None
    done_before = metrics(r0).get("sluice_messages_processed_total", 0)
    log("r0 rejoined: %d, r1: %d partition(s); %d left to land" % (
        assigned_total(r0), assigned_total(r1), sc.left(n)))
    if prod.wait(180) != 0:
        raise Fail("producer failed (see %s/produce.log)" % sc.dir)
    sc.wait_landed(n, 120)
    after = metrics(r0).get("sluice_messages_processed_total", 0) - \
        done_before
    log("r0 processed %d after rejoining" % after)
    if producing and after <= 0:
        bad.append("r0 processed nothing after rejoining while the stream "
                   "went on")
    term_all((r0, r1), bad)
    stale = uncommitted(topic, group)
    log("a fresh consumer of the group got %d message(s) after the commits"
        % len(stale))
    if stale:
        bad.append("%d message(s) after the group's committed offsets "
                   "(stale commit?), first %s" % (len(stale), stale[:5]))
    return sc.finish(n, expect_dead=0, extra_fail=bad)


# ---- pg-cut -----------------------------------------------------------------

def pg_cut(sc):
    n, rate, cut_s, parts = 6000, 150, 30, 4
    lab, mock = up(sc, ["pg", "kafka", "model", "r0"], ["postgres", "kafka"],
                   mock_args=("--latency-ms", "1"))
    topic = sc.uniq
    kafka_create_topic(topic, parts)
    pipe = kafka_pipeline(sc, mock, topic, extra="queue:\n  capacity: 512\n",
                          sink_extra="    backlog_rows: 2000\n")
    r0 = replica(sc, lab, pipe, "r0")
    dlog = os.path.join(sc.dir, "delivery.log")
    prod = produce_bg("kafka://%s/%s" % (faultlib.KAFKA, topic), n,
                      rate=rate, logpath=os.path.join(sc.dir, "produce.log"),
                      prefix=lab.prefix("kafka"),
                      extra=("--delivery-log", dlog))
    sc.cleanups.append(lambda: prod.poll() is None and prod.kill())
    sc.wait_landed(1000, 90)
    bad = sc.check_left(n, "when PostgreSQL was cut off")
    lab.partition("r0", "pg")
    t0 = time.monotonic()
    consumed, rss = [], []
    try:
        while time.monotonic() - t0 < cut_s:  # the fault itself
            time.sleep(5)
            r0.check_alive()
            consumed.append(metrics(r0).get("sluice_messages_consumed_total"))
            rss.append(read_rss_kb(r0.pid))
    finally:
        lab.heal("r0", "pg")
    log("consumed while cut off (every 5 s): %s" % consumed)
    log("RSS while cut off (KiB, every 5 s): %s" % rss)
    got = [c for c in consumed if c is not None]
    if len(got) < 4:
        bad.append("no /metrics from r0 while cut off: %s" % consumed)
    elif got[-1] - got[len(got) // 2] > 0:
        bad.append("kept consuming while PostgreSQL was cut off: %s" % got)
    mem = [k for k in rss if k]
    # flat once paused: the second half of the cut adds at most 2 MiB
    if mem and mem[-1] - mem[len(mem) // 2] > 2048:
        bad.append("RSS grew while paused: %s KiB" % mem)
    if prod.wait(180) != 0:
        raise Fail("producer failed (see %s/produce.log)" % sc.dir)
    # the broker's own count first: what the producer says it delivered
    # must all be in the topic, or a shortfall is not the worker's
    ends = end_offsets(topic, parts)
    log("topic high watermarks after the producer: %s (%d in all); leader "
        "epochs (epoch start-offset): %s" % (
            ends, sum(ends.values()), leader_epochs(lab, topic, parts)))
    if len(ends) == parts and sum(ends.values()) != n:
        bad.append("the topic holds %d messages, the producer reported %d "
                   "delivered" % (sum(ends.values()), n))
    try:
        sc.wait_landed(n, 120)
    except Fail as e:
        stuck_report(sc, r0)
        gauges = partition_metrics(r0)
        log("r0 stopped for the diagnosis: exit %s" % r0.term(60))
        raise Fail("%s; %s" % (e, where_lost(sc, lab, topic, parts, n, dlog,
                                             r0, gauges)))
    log("all landed %.1f s after the heal" % (time.monotonic() - t0 - cut_s))
    term_all((r0,), bad)
    res = sc.finish(n, expect_dead=0, extra_fail=bad,
                    rss_max_mib=None if is_asan_build() else RSS_MAX_MIB)
    if res.lost or res.dup:
        res.why.append(where_lost(sc, lab, topic, parts, n, dlog, r0, {}))
    return res


# ---- where a shortfall comes from --------------------------------------------

def read_topic(topic):
    """{(partition, offset): seq or None} of every message in 'topic',
    read back from offset 0 to the end of each partition (kcat)."""
    p = subprocess.run(
        ["kcat", "-C", "-b", faultlib.KAFKA, "-t", topic, "-o", "beginning",
         "-e", "-q", "-f", "%p %o %s\n"],
        capture_output=True, timeout=120)
    if p.returncode != 0:
        raise Fail("kcat -C %s failed: %s" % (topic, p.stderr.decode(
            "utf-8", "replace").strip()))
    out = {}
    for ln in p.stdout.splitlines():
        f = ln.split(b" ", 2)
        if len(f) < 2 or not f[0].isdigit() or not f[1].isdigit():
            continue
        m = faultlib.SEQ_RE.search(f[2]) if len(f) > 2 else None
        out[(int(f[0]), int(f[1]))] = int(m.group(1)) if m else None
    return out


def end_offsets(topic, parts):
    """{partition: high watermark} as the broker answers (kcat -Q)."""
    argv = ["kcat", "-Q", "-b", faultlib.KAFKA]
    for i in range(parts):
        argv += ["-t", "%s:%d:-1" % (topic, i)]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    res = {}
    for m in re.finditer(r"\[(\d+)\]\s+offset\s+(-?\d+)", p.stdout):
        res[int(m.group(1))] = int(m.group(2))
    return res


def leader_epochs(lab, topic, parts):
    """{partition: "epoch start-offset / ..."} from the broker's
    leader-epoch-checkpoint files (more than one epoch: the leadership
    moved, e.g. the broker was fenced and came back)."""
    res = {}
    data = os.path.join(lab.dir, "run-kafka", "kafka", "data")
    for p in range(parts):
        try:
            with open(os.path.join(data, "%s-%d" % (topic, p),
                                   "leader-epoch-checkpoint")) as f:
                res[p] = " / ".join(f.read().split("\n")[2:]).strip(" /")
        except OSError as e:
            res[p] = "? (%s)" % e.strerror
    return res


def partition_metrics(w):
    """{(metric, partition): value} of w's per-partition Kafka gauges."""
    import urllib.request
    m = re.findall(r"listening on http://([^\s:]+):(\d+)", w.log_text())
    if not m:
        return {}
    try:
        with urllib.request.urlopen("http://%s:%s/metrics" % m[-1],
                                    timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    res = {}
    for ln in text.splitlines():
        g = re.match(r'(sluice_kafka_\w+|sluice_source_lag_messages)\{[^}]*'
                     r'partition="(\d+)"[^}]*\} (\S+)$', ln)
        if g:
            res[(g.group(1), int(g.group(2)))] = float(g.group(3))
    return res


def spans(nums):
    """[1, 2, 3, 7] -> "1..3, 7"."""
    out, nums = [], sorted(nums)
    i = 0
    while i < len(nums):
        j = i
        while j + 1 < len(nums) and nums[j + 1] == nums[j] + 1:
            j += 1
        out.append(str(nums[i]) if i == j else "%d..%d" % (nums[i], nums[j]))
        i = j + 1
    return ", ".join(out)


def where_lost(sc, lab, topic, parts, n, dlog, w, gauges):
    """
    Why rows are missing, from the records that can disagree: the
    producer's delivery reports (partition and offset the broker gave each
    seq), the topic as read back from offset 0, the rows (each keyed on its
    partition and offset) and the group's committed offsets (what a fresh
    consumer of the group gets: a missing message there is redelivered, not
    lost; one before the commits was committed without a row, lost).  Run
    after worker w left the group; 'gauges' are its per-partition gauges
    from before.  Logs the details (and w's log lines about the offsets
    concerned) and returns a one-line verdict naming the place of each
    missing seq.  The broker's
    partition directories are copied to the log directory (kafka-data/:
    segments and leader-epoch checkpoints, for kafka-dump-log).
    """
    data = os.path.join(lab.dir, "run-kafka", "kafka", "data")
    for p in range(parts):
        d = os.path.join(data, "%s-%d" % (topic, p))
        try:
            shutil.copytree(d, os.path.join(sc.dir, "kafka-data",
                                            os.path.basename(d)))
        except OSError as e:
            log("  partition %d: no copy of %s: %s" % (p, d, e))
    log("  leader epochs (epoch start-offset): %s" %
        leader_epochs(lab, topic, parts))
    try:
        return _where_lost(sc, topic, parts, n, dlog, w, gauges)
    except Exception as e:  # noqa: BLE001 - a report must not hide the fail
        log("diagnosis failed: %s: %s" % (type(e).__name__, e))
        return "no diagnosis (%s)" % e


def _where_lost(sc, topic, parts, n, dlog, w, gauges):
    delivered, dl_errors = {}, []
    if os.path.exists(dlog):
        for ln in open(dlog):
            f = ln.split(None, 2)
            if len(f) == 3 and f[1] != "-":
                delivered[int(f[0])] = (int(f[1]), int(f[2]))
            elif f:
                dl_errors.append(ln.strip())
    in_topic = read_topic(topic)
    ends = end_offsets(topic, parts)
    seq_at = {s: po for po, s in in_topic.items() if s is not None}
    rows = {}
    for ln in psql('SELECT partition, "offset", coalesce(payload->>\'seq\', '
                   '\'-\') FROM %s' % sc.table).splitlines():
        p, o, s = ln.split("|")
        rows[(int(p), int(o))] = s
    for ln in psql('SELECT partition, "offset", \'dl\' FROM %s' %
                   sc.dl).splitlines():
        p, o, s = ln.split("|")
        rows[(int(p), int(o))] = s
    log("diagnosis: %d delivery reports (%d failed), %d messages in the "
        "topic, %d rows + dead letters" % (len(delivered), len(dl_errors),
                                            len(in_topic), len(rows)))
    for p in range(parts):
        offs = sorted(o for (q, o) in in_topic if q == p)
        got = sorted(o for (q, o) in rows if q == p)
        dr = sorted(o for (q, o) in delivered.values() if q == p)
        gaps = sorted(set(range(offs[-1] + 1)) - set(offs)) if offs else []
        log("  partition %d: high watermark %s; topic holds %d (offsets "
            "%s; gaps %s); %d delivery reports up to %s; rows for %d, "
            "missing offsets %s" % (
                p, ends.get(p, "?"), len(offs),
                "%d..%d" % (offs[0], offs[-1]) if offs else "-",
                spans(gaps) or "none", len(dr), dr[-1] if dr else "-",
                len(got), spans(set(offs) - set(got)) or "none"))
    if gauges:
        log("  %s per partition: %s" % (w.name, "; ".join(
            "%s[%d]=%g" % (k[0][7:], k[1], v)
            for k, v in sorted(gauges.items()))))
    redeliver = set()
    for ln in uncommitted(topic, "g_" + sc.uniq):
        p, _, o = ln.partition(":")
        redeliver.add((int(p), int(o)))
    log("  after the group's committed offsets: %d message(s)%s" % (
        len(redeliver), " (%s)" % ", ".join(
            "%d@%d" % po for po in sorted(redeliver)[:10])
        if redeliver else ""))
    landed_seqs = set()
    for s in rows.values():
        if s.isdigit():
            landed_seqs.add(int(s))
    missing = sorted(set(range(n)) - landed_seqs)
    verdict = []
    for s in missing[:20]:
        dr = delivered.get(s)
        at = seq_at.get(s)
        if at is None:
            where = ("not in the topic; the producer's report said "
                     "partition %d offset %d, which holds %s" % (
                         dr[0], dr[1], "seq %s" % in_topic[dr]
                         if dr in in_topic else "nothing")
                     if dr else "not in the topic, no delivery report")
            short = "seq %d not in the topic%s" % (
                s, " (reported at %d@%d)" % dr if dr else "")
        else:
            row = rows.get(at)
            fate = ("after the committed offset: redelivered on restart, "
                    "not lost (stuck)" if at in redeliver else
                    "before the committed offset: LOST")
            where = "in the topic at partition %d offset %d; %s; %s" % (
                at[0], at[1], "no row for that offset" if row is None else
                "the row for that offset holds seq %s" % row, fate)
            short = "seq %d at %d@%d %s, %s" % (
                s, at[0], at[1], "no row" if row is None else
                "row holds seq %s" % row,
                "not committed" if at in redeliver else "committed past")
        log("  missing seq %d: %s" % (s, where))
        verdict.append(short)
        if at is not None:
            pat = re.compile(r"\[%d\]" % at[0])
            hits = [ln for ln in w.log_text().splitlines()
                    if pat.search(ln) and re.search(
                        r"\b(%s)\b" % "|".join(
                            str(at[1] + d) for d in range(-2, 3)), ln)]
            for ln in hits[-20:]:
                log("    %s" % ln[:300])
    if len(missing) > 20:
        verdict.append("and %d more" % (len(missing) - 20))
    if not missing:
        return "diagnosis: every seq has a row"
    return "diagnosis: " + "; ".join(verdict)


def landed_count(sc):
    """The checker's view, or why it has none."""
    try:
        return "%d" % landed(sc.table, sc.dl)
    except Exception as e:  # noqa: BLE001 - a report, not a check
        return "unknown (%s)" % e


def stuck_report(sc, w):
    """What a worker that stopped making progress is doing, for the log."""
    m = metrics(w)
    log("%s of the rows and dead letters landed" % landed_count(sc))
    log("%s metrics: %s" % (w.name, ", ".join(
        "%s %g" % (k[7:], v) for k, v in sorted(m.items())
        if k.startswith("sluice_") and not k.endswith(("_bucket", "_sum")))))
    log("pg_stat_activity: %s" % (psql(
        "SELECT string_agg(format('%s %s %s %s', pid, state, "
        "coalesce(wait_event, '-'), left(query, 50)), ' / ') "
        "FROM pg_stat_activity WHERE datname = 'sluice' "
        "AND pid <> pg_backend_pid()", check=False) or "").strip())


# ---- slow-links -------------------------------------------------------------

def slow_links(sc):
    n = 4000
    lab, mock = up(sc, ["pg", "kafka", "model", "r0", "r1", "r2"],
                   ["postgres", "kafka"], netem=("pg", "model"))
    topic = sc.uniq
    kafka_create_topic(topic, 6)
    pipe = kafka_pipeline(sc, mock, topic)
    ws = [replica(sc, lab, pipe, h) for h in ("r0", "r1", "r2")]
    wait_for(lambda: sc.check_workers() or (
        all(assigned_total(w) > 0 for w in ws) and
        sum(assigned_total(w) for w in ws) == 6), 90,
        "three replicas sharing the 6 partitions")
    t0 = time.monotonic()
    produce("kafka://%s/%s" % (faultlib.KAFKA, topic), n=n)
    try:
        sc.wait_landed(n, 150)
    except Fail:
        for w in ws:
            stuck_report(sc, w)
        raise
    log("three replicas drained %d over the slow links in %.1f s" %
        (n, time.monotonic() - t0))
    for w in ws:
        m = metrics(w)
        log("%s: %d processed, %d backend retries, %d sink reconnects" % (
            w.name, m.get("sluice_messages_processed_total", -1),
            m.get("sluice_backend_retries_total", -1),
            m.get("sluice_sink_reconnects_total", -1)))
    bad = []
    term_all(ws, bad)
    for w in ws:
        if stopped_counts(w)[0] == 0:
            bad.append("%s consumed nothing" % w.name)
    stale = uncommitted(topic, "g_" + sc.uniq)
    if stale:
        bad.append("%d message(s) after the committed offsets" % len(stale))
    return sc.finish(n, expect_dead=0, extra_fail=bad)


# ---- redis-partition --------------------------------------------------------

def pending_by_consumer(stream, group):
    """{consumer: pending count} (XPENDING summary); None when unknown."""
    out = redis_cli("XPENDING", stream, group, check=False).split("\n")
    try:
        total = int(out[0])
    except ValueError:
        return None
    res = {}
    rest = out[3:] if total else []
    for i in range(0, len(rest) - 1, 2):
        try:
            res[rest[i]] = int(rest[i + 1])
        except ValueError:
            pass
    return res


def redis_partition(sc):
    n = 6000
    lab, mock = up(sc, ["pg", "redis", "model", "r0", "r1"],
                   ["postgres", "redis"], mock_args=("--latency-ms", "50"))
    stream, group = "s_" + sc.uniq, "g_" + sc.uniq
    produce("redis://%s:%d/%s" % (faultlib.REDIS_HOST, faultlib.REDIS_PORT,
                                   stream), n=n)

    def pipe(consumer):
        return write_pipeline(
            os.path.join(sc.dir, "pipeline-%s.yaml" % consumer),
            sc.uniq.replace("_", "-")[:60],
            redis_stream_source(stream, group,
                                "    consumer: %s\n    count: 64\n"
                                "    min_idle_ms: 1000\n"
                                "    claim_interval_ms: 200\n" % consumer),
            "workers:\n  threads: 2\n  max_inflight: 32\n",
            sentiment_backend(mock.url), sink(sc.table, sc.dl),
            head="shutdown_timeout_ms: 20000\n")
    r0 = replica(sc, lab, pipe("r0"), "r0")
    r1 = replica(sc, lab, pipe("r1"), "r1")
    sc.wait_landed(500, 60)
    wait_for(lambda: sc.check_workers() or
             (pending_by_consumer(stream, group) or {}).get("r0", 0) > 0, 30,
             "r0 holding pending entries")
    bad = sc.check_left(n, "when r0 was cut off from Redis")
    lab.partition("r0", "redis")
    t0 = time.monotonic()
    held = (pending_by_consumer(stream, group) or {}).get("r0", 0)
    log("r0 cut off from Redis holding %d pending entries" % held)
    def r0_clear():
        p = pending_by_consumer(stream, group)
        return p is not None and p.get("r0", 0) == 0
    wait_for(lambda: sc.check_workers() or r0_clear(), 60,
             "r1 claiming r0's pending entries", interval=0.2)
    claimed_s = time.monotonic() - t0
    rest = 5 - claimed_s
    if rest > 0:
        time.sleep(rest)  # the fault: a few seconds at least
    claimed = metrics(r1).get("sluice_redis_claimed_total", 0)
    lab.heal("r0", "redis")
    log("r0's entries claimed after %.1f s; r1 claimed %d entries in all; "
        "cut for %.1f s" % (claimed_s, claimed, time.monotonic() - t0))
    if claimed <= 0:
        bad.append("r1 claimed nothing (sluice_redis_claimed_total %s)" %
                   claimed)
    sc.wait_landed(n, 120)
    wait_for(lambda: pending_by_consumer(stream, group) == {}, 30,
             "no pending entries", interval=0.2)
    term_all((r0, r1), bad)
    left = pending_by_consumer(stream, group)
    if left != {}:
        bad.append("entries still pending: %s" % left)
    return sc.finish(n, expect_dead=0, extra_fail=bad)


if MODE not in NAMES:
    sys.exit("usage: s14_multihost.py %s" % "|".join(NAMES))
main(NAMES[MODE], {"broker-partition": broker_partition, "pg-cut": pg_cut,
                   "slow-links": slow_links,
                   "redis-partition": redis_partition}[MODE])
