#!/usr/bin/env python3
"""
Model server faults drawn at random per request by mock-infer: 500, 503,
429, timeout (held past the backend's timeout), trickle (one byte per
500 ms, cut by low_speed_time_ms), bad-json, huge (past max_response_bytes)
and reset.  Retries absorb most; what exhausts its budget becomes a dead
letter with the reason.  Every message ends as a row or a dead letter,
none lost, none twice; every dead letter names its cause.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 3000
FAULTS = ["500=0.05", "503=0.05", "429=0.04", "timeout=0.03",
          "trickle=0.03", "bad-json=0.04", "huge=0.02", "reset=0.05"]


def body(sc):
    args = ["--timeout-hold-ms", "3000", "--trickle-interval-ms", "400",
            "--huge-bytes", "4194304", "--seed", str(os.getpid())]
    for f in FAULTS:
        args += ["--fault-rate", f]
    mock = sc.mock(*args)
    topic = sc.uniq
    produce("kafka://%s/%s" % (KAFKA, topic), n=N, partitions=2)
    be = ("    timeout_ms: 1500\n    connect_timeout_ms: 1000\n"
          "    low_speed_time_ms: 1000\n    low_speed_bytes_per_s: 8\n"
          "    max_response_bytes: 65536\n"
          "    retry:\n      max_attempts: 3\n      base_ms: 5\n"
          "      max_ms: 50\n      retry_after_max_ms: 100\n"
          "    breaker:\n      failures: 0\n")
    pipe = sc.pipeline(kafka_source(topic, "g_" + sc.uniq),
                       "workers:\n  threads: 2\n  max_inflight: 128\n",
                       sentiment_backend(mock.url, be),
                       sink(sc.table, sc.dl))
    w = sc.worker(pipe)
    sc.wait_landed(N, 180)
    rc = w.term(60)
    bad = [] if rc == 0 else ["exit %s after SIGTERM" % rc]
    st = mock.stats()
    log("mock-infer faults served:", st.get("faults"))
    res = sc.finish(N, expect_dead=(1, N // 4), extra_fail=bad)
    reasons = {}
    for seq, stage, error, sqlstate in res.dl_info:
        if not error:
            res.ok = False
            res.why.append("dead letter seq %s without a reason" % seq)
        k = re.sub(r"\d+", "N", error)[:90]
        reasons[k] = reasons.get(k, 0) + 1
    for k, v in sorted(reasons.items(), key=lambda kv: -kv[1]):
        log("  %4d x %s" % (v, k))
    return res


main("model-faults-mix", body)
