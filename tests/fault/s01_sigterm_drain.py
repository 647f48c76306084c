#!/usr/bin/env python3
"""
SIGTERM in the middle of a batch: the worker drains and exits 0; a restart
processes the rest; the tables hold exactly the produced set.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

# SIGTERM comes at N // 10 landed.  The drain finishes what was consumed by
# then: at most the queue (1024), the calls in flight (64), the sink's
# backlog (backlog_rows, 2,000) and its batches in flight (800) beyond
# what had landed -- 1,400 to 4,100 in runs so far.  So a large rest is
# left for the restart whatever the machine's speed, as check_left demands.
N = 30000


def body(sc):
    topic = sc.uniq
    produce("kafka://%s/%s" % (KAFKA, topic), n=N, partitions=4)
    pipe = sc.kafka_pipeline(("--latency-ms", "20"),
                             "workers:\n  threads: 2\n  max_inflight: 32\n",
                             sink_extra="    batch_rows: 200\n")
    w = sc.worker(pipe)
    sc.wait_landed(N // 10, 60)
    first = landed(sc.table, sc.dl)
    rc = w.term(60)
    mid = landed(sc.table, sc.dl)
    log("SIGTERM after %d landed; drained to %d; exit %s" % (first, mid, rc))
    bad = []
    if rc != 0:
        bad.append("first run exited %s after SIGTERM" % rc)
    if "stopped:" not in w.log_text():
        bad.append("no 'stopped:' line after SIGTERM")
    # The restart must have work: the drain is bounded by the queue and
    # the in-flight limit, and the models' latency bounds the rate.
    bad += sc.check_left(N, "to restart after the SIGTERM drain")
    w2 = sc.worker(pipe)
    sc.wait_landed(N, 120)
    rc = w2.term(60)
    if rc != 0:
        bad.append("second run exited %s after SIGTERM" % rc)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main("sigterm-drain", body)
