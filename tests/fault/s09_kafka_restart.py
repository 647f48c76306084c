#!/usr/bin/env python3
"""
The Kafka broker stopped (SIGTERM, data kept) and started again mid-stream,
with a producer running: the worker rides it out (retrying, no exit) and
the tables hold exactly the produced set; SIGTERM then exits 0.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 10000


def body(sc):
    topic = sc.uniq
    kafka_create_topic(topic, 4)
    w = sc.worker(sc.kafka_pipeline(("--latency-ms", "2")))
    prod = sc.producer("kafka://%s/%s" % (KAFKA, topic), N, rate=1000,
                       extra=("--timeout-ms", "180000"))
    sc.wait_landed(2500, 60)
    bad = sc.check_left(N, "when the broker was stopped")
    kafka_restart(down_s=3)
    sc.wait_producer(prod, 240)
    sc.wait_landed(N, 180)
    bad += w.term_bad(60)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main("kafka-broker-restart", body)
