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
    mock = sc.mock("--latency-ms", "2")
    topic = sc.uniq
    kafka_create_topic(topic, 4)
    pipe = sc.pipeline(kafka_source(topic, "g_" + sc.uniq),
                       sentiment_backend(mock.url), sink(sc.table, sc.dl),
                       head="shutdown_timeout_ms: 20000\n")
    w = sc.worker(pipe)
    prod = subprocess.Popen(
        [SLUICE, "produce", "kafka://%s/%s" % (KAFKA, topic), "--generate",
         str(N), "--rate", "1000", "--timeout-ms", "180000"],
        stdout=open(os.path.join(sc.dir, "produce.log"), "wb"),
        stderr=subprocess.STDOUT)
    sc.cleanups.append(lambda: prod.poll() is None and prod.kill())
    sc.wait_landed(2500, 60)
    bad = sc.check_left(N, "when the broker was stopped")
    kafka_restart(down_s=3)
    if prod.wait(240) != 0:
        raise Fail("producer failed (see produce.log)")
    sc.wait_landed(N, 180)
    rc = w.term(60)
    if rc != 0:
        bad.append("exit %s after SIGTERM" % rc)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main("kafka-broker-restart", body)
