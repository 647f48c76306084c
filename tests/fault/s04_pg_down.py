#!/usr/bin/env python3
"""
PostgreSQL down for 60 s (pg_ctl stop -m fast, 60 s, start) while a
producer keeps streaming: the Kafka source stops consuming (consumed
plateaus: partitions paused once the queue and the sink's backlog are
full), there is no rebalance storm (one assignment, no revocation or lost
partitions in the log), the worker's RSS stays under a bound, and after
recovery the tables hold exactly the produced set.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 15000
RATE = 200
DOWN_S = 60
RSS_MAX_MIB = int(os.environ.get("FAULT_RSS_MAX_MIB", "64"))


def body(sc):
    topic = sc.uniq
    kafka_create_topic(topic, 4)
    pipe = sc.kafka_pipeline(("--latency-ms", "1"),
                             "queue:\n  capacity: 512\n",
                             "workers:\n  threads: 2\n  max_inflight: 32\n",
                             sink_extra="    backlog_rows: 2000\n")
    w = sc.worker(pipe)
    prod = sc.producer("kafka://%s/%s" % (KAFKA, topic), N, rate=RATE)
    sc.wait_landed(1000, 60)
    bad = sc.check_left(N, "when PostgreSQL went down")
    log("stopping PostgreSQL for %d s" % DOWN_S)
    pg_stop("fast")
    try:
        samples = []
        t0 = time.monotonic()
        while time.monotonic() - t0 < DOWN_S:  # the fault itself
            time.sleep(5)
            w.check_alive()
            samples.append(metrics(w).get("sluice_messages_consumed_total"))
        log("consumed while down (every 5 s):", samples)
    finally:
        pg_start()
    log("PostgreSQL back")
    sc.wait_producer(prod, 120)
    sc.wait_landed(N, 180)
    bad += w.term_bad(60)
    got = [s for s in samples if s is not None]
    if len(got) >= 4 and got[-1] - got[len(got) // 2] > 0:
        bad.append("kept consuming while PostgreSQL was down: %s" % got)
    text = w.log_text()
    assigned = len(re.findall(r"assigned \d+ partition", text))
    revoked = len(re.findall(r"revoke|partition\(s\) lost", text))
    log("rebalance log lines: %d assignment(s), %d revocation/lost" %
        (assigned, revoked))
    if assigned != 1 or revoked:
        bad.append("rebalance storm: %d assignments, %d revocations" %
                   (assigned, revoked))
    return sc.finish(N, expect_dead=0, extra_fail=bad,
                     rss_max_mib=None if is_asan_build() else RSS_MAX_MIB)


main("pg-down-60s", body)
