#!/usr/bin/env python3
"""
SIGKILL at random moments, ten times in a row, while a producer streams into
a 4-partition topic; each kill is followed by a restart (static group
membership, so the restarted worker takes its partitions back at once).
A random kill cannot target the instant right after a COMMIT (of the
PostgreSQL batch or of the Kafka offsets), but with batches committing every
few milliseconds, ten kills spread over a fast stream land in every phase:
before the batch COMMIT, between COMMIT and the offset commit, and after.
Then a last worker finishes, drains on SIGTERM and exits 0: the tables hold
exactly the produced set.
"""
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 20000
KILLS = 10


def body(sc):
    rnd = random.Random(int(os.environ.get("FAULT_SEED", os.getpid())))
    mock = sc.mock("--latency-ms", "2")
    topic = sc.uniq
    kafka_create_topic(topic, 4)
    pipe = sc.pipeline(
        kafka_source(topic, "g_" + sc.uniq, instance="i_" + sc.uniq,
                     props={"session.timeout.ms": "6000",
                            "auto.commit.interval.ms": "200"}),
        "workers:\n  threads: 2\n  max_inflight: 64\n",
        sentiment_backend(mock.url),
        sink(sc.table, sc.dl, "    batch_rows: 100\n    flush_ms: 5\n"),
        head="shutdown_timeout_ms: 20000\n")
    prod = sc.producer("kafka://%s/%s" % (KAFKA, topic), N, rate=1500)
    kills = []
    for i in range(KILLS):
        w = sc.worker(pipe, name="w%d" % i)
        before = max(landed(sc.table, sc.dl), 0)
        # Wait until this incarnation has written something, then a random
        # extra moment, so that each kill hits a worker in full flow.  Once
        # the whole stream has landed there is nothing left to kill in
        # flow: the loop is done (a fast machine gets there first).
        if not sc.wait_progress(w, before, N, 60,
                                "worker %d making progress" % i):
            log("the stream had fully landed before kill %d" % (i + 1))
            w.kill()
            break
        time.sleep(rnd.uniform(0.0, 0.8))  # the random moment of the fault
        w.check_alive()
        w.kill()
        kills.append(landed(sc.table, sc.dl))
    log("landed at each of the %d SIGKILLs:" % len(kills), kills)
    if not kills:
        raise Fail("the stream landed before the first SIGKILL")
    sc.wait_producer(prod, 120)
    w = sc.worker(pipe, name="final")
    sc.wait_landed(N, 180)
    rc = w.term(60)
    bad = [] if rc == 0 else ["final worker exited %s after SIGTERM" % rc]
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main("sigkill-random-x10", body)
