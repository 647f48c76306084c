#!/usr/bin/env python3
"""
A producer ten times faster than the models (mock latency 50 ms, 1 worker
x 8 in flight: ~160 msg/s; producer 1600 msg/s): the lag grows in Kafka,
not in the worker -- consumed minus landed stays within the queue capacity
plus the in-flight bound, and the worker's RSS stays under 64 MiB
(FAULT_RSS_MAX_MIB; not checked in a sanitizer build).  Everything lands
once in the end.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 4000
QUEUE = 256
INFLIGHT = 8
RSS_MAX_MIB = int(os.environ.get("FAULT_RSS_MAX_MIB", "64"))


def body(sc):
    topic = sc.uniq
    kafka_create_topic(topic, 2)
    pipe = sc.kafka_pipeline(
        ("--latency-ms", "50"), "queue:\n  capacity: %d\n" % QUEUE,
        "workers:\n  threads: 1\n  max_inflight: %d\n" % INFLIGHT)
    w = sc.worker(pipe)
    produce("kafka://%s/%s" % (KAFKA, topic), n=N, rate=1600)
    bad = []
    at_end = landed(sc.table, sc.dl)
    log("landed when the producer finished: %d of %d" % (at_end, N))
    if at_end > N // 2:
        bad.append("models kept up (%d landed): no lag to test" % at_end)
    worst_gap = 0
    deadline = time.monotonic() + 120
    while landed(sc.table, sc.dl) < N:
        sc.check_workers()
        if time.monotonic() > deadline:
            raise Fail("timed out waiting for %d landed" % N)
        c = metrics(w).get("sluice_messages_consumed_total")
        n = landed(sc.table, sc.dl)
        if c is not None and n >= 0:
            worst_gap = max(worst_gap, c - n)
        time.sleep(0.5)
    # queue + in flight + rows handed to the sink but not yet visible
    bound = QUEUE + INFLIGHT + 500 + 64
    log("worst consumed-minus-landed: %d (bound %d)" % (worst_gap, bound))
    if worst_gap > bound:
        bad.append("consumed ran %d ahead of landed (bound %d)" %
                   (worst_gap, bound))
    bad += w.term_bad(60)
    return sc.finish(N, expect_dead=0, extra_fail=bad,
                     rss_max_mib=None if is_asan_build() else RSS_MAX_MIB)


main("slow-models-bounded-rss", body)
