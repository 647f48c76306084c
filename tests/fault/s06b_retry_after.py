#!/usr/bin/env python3
"""
429 with every flavour of Retry-After (seconds, an HTTP date, garbage,
86400) from four backends next to a healthy one, on_error partial: every
message is a row with the healthy result and the four errors recorded;
the 86400 s and far-future date are capped by retry_after_max_ms, so the
run finishes in seconds; Retry-After: 1 is honoured (the run takes at
least a second).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

N = 400
VALUES = {"ra_secs": "1", "ra_date": "Fri, 31 Dec 2100 23:59:59 GMT",
          "ra_garbage": "soon, maybe", "ra_day": "86400"}


def backend(name, url, value):
    s = ("  %s:\n    kind: http-json\n    url: %s/predict/sentiment\n"
         "    body: '{\"text\": {{text}}}'\n    result_pointer: /label\n"
         "    retry:\n      max_attempts: 2\n      base_ms: 5\n"
         "      max_ms: 20\n      retry_after_max_ms: 1500\n"
         "    breaker:\n      failures: 0\n" % (name, url))
    if value:
        s += ('    headers:\n      X-Mock-Fault: "429"\n'
              '      X-Mock-Retry-After: "%s"\n' % value)
    return s


def body(sc):
    mock = sc.mock()
    topic = sc.uniq
    produce("kafka://%s/%s" % (KAFKA, topic), n=N, partitions=2)
    names = ["ok"] + list(VALUES)
    pipe = sc.pipeline(
        kafka_source(topic, "g_" + sc.uniq),
        "workers:\n  threads: 2\n  max_inflight: 256\n",
        "backends:\n" + "".join(backend(n, mock.url, VALUES.get(n))
                                for n in names),
        "steps:\n  - name: s\n    backends: [%s]\n    on_error: partial\n"
        % ", ".join(names),
        sink(sc.table, sc.dl))
    t0 = time.monotonic()
    w = sc.worker(pipe)
    sc.wait_landed(N, 60)
    took = time.monotonic() - t0
    rc = w.term(60)
    bad = [] if rc == 0 else ["exit %s after SIGTERM" % rc]
    full = q1("SELECT count(*) FROM %s WHERE results ? 'ok' AND errors ?& "
              "array['ra_secs','ra_date','ra_garbage','ra_day']" % sc.table)
    log("rows with ok + 4 recorded errors: %s of %d; took %.1f s" %
        (full, N, took))
    log("sample errors:", q1("SELECT errors FROM %s LIMIT 1" % sc.table))
    if int(full or 0) != N:
        bad.append("only %s of %d rows have the result and 4 errors" %
                   (full, N))
    if took < 1.0:
        bad.append("finished in %.1f s: Retry-After: 1 not honoured" % took)
    if took > 40:
        bad.append("took %.1f s: Retry-After not capped" % took)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main("retry-after-429", body)
