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
    return sc.worker(pipe, name=host, replica="%s-%s" % (host, sc.uniq),
                     prefix=lab.prefix(host), listen=lab.addr(host) + ":0")


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
    n, rate, cut_s = 6000, 150, 30
    lab, mock = up(sc, ["pg", "kafka", "model", "r0"], ["postgres", "kafka"],
                   mock_args=("--latency-ms", "1"))
    topic = sc.uniq
    kafka_create_topic(topic, 4)
    pipe = kafka_pipeline(sc, mock, topic, extra="queue:\n  capacity: 512\n",
                          sink_extra="    backlog_rows: 2000\n")
    r0 = replica(sc, lab, pipe, "r0")
    prod = produce_bg("kafka://%s/%s" % (faultlib.KAFKA, topic), n,
                      rate=rate, logpath=os.path.join(sc.dir, "produce.log"),
                      prefix=lab.prefix("kafka"))
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
    try:
        sc.wait_landed(n, 120)
    except Fail:
        stuck_report(sc, r0)
        raise
    log("all landed %.1f s after the heal" % (time.monotonic() - t0 - cut_s))
    term_all((r0,), bad)
    return sc.finish(n, expect_dead=0, extra_fail=bad,
                     rss_max_mib=None if is_asan_build() else RSS_MAX_MIB)


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
