#!/usr/bin/env python3
"""
Redis Streams faults:
  redis-restart         redis-server shut down (AOF flushed) and started on
                        the same directory mid-stream
  redis-stream-reclaim  a consumer SIGKILLed while holding pending entries;
                        another consumer of the group claims them once idle
                        (min_idle_ms 1000) and processes them
Both end with lost 0, duplicated 0, no pending entries, SIGTERM exit 0.
Usage: s11_redis.py restart|reclaim
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "restart"
N = 8000


def pending(stream, group):
    out = redis_cli("XPENDING", stream, group, check=False).split("\n")
    try:
        return int(out[0])
    except ValueError:
        return -1


def body(sc):
    stream, group = "s_" + sc.uniq, "g_" + sc.uniq
    sc.cleanups.append(lambda: redis_cli("DEL", stream, check=False))
    latency = "20" if MODE == "restart" else "100"
    mock = sc.mock("--latency-ms", latency)
    produce("redis://%s:%d/%s" % (HOST, REDIS_PORT, stream), n=N)

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
    bad = []
    if MODE == "restart":
        w = sc.worker(pipe("a"), name="a")
        sc.wait_landed(N // 4, 60)
        bad += sc.check_left(N, "when Redis was restarted")
        redis_restart()
        sc.wait_landed(N, 120)
        live = [w]
    else:
        a = sc.worker(pipe("a"), name="a")
        sc.wait_landed(500, 60)
        wait_for(lambda: pending(stream, group) > 0, 30, "pending entries")
        bad += sc.check_left(N, "when consumer a was killed")
        a.kill()
        held = pending(stream, group)
        log("SIGKILLed consumer a holding %d pending entries" % held)
        if held <= 0:
            bad.append("consumer a held no pending entries when killed")
        b = sc.worker(pipe("b"), name="b")
        sc.wait_landed(N, 120)
        live = [b]
        wait_for(lambda: pending(stream, group) == 0, 30,
                 "no pending entries")
        if "claim" not in b.log_text().lower():
            log("note: consumer b logged no claim line")
    for w in live:
        rc = w.term(60)
        if rc != 0:
            bad.append("%s exited %s after SIGTERM" % (w.name, rc))
    p = pending(stream, group)
    if p != 0:
        bad.append("%d entries still pending" % p)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main({"restart": "redis-restart", "reclaim": "redis-stream-reclaim"}[MODE],
     body)
