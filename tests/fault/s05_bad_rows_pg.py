#!/usr/bin/env python3
"""
Messages that sluice can decode but PostgreSQL would refuse as they stand:
a \\u0000 escape in a JSON string (jsonb: 22P05), a lone surrogate escape,
a key with invalid UTF-8 or a NUL byte (text: 22021), a 100 KB key, a huge
number.  Each must land exactly once -- as a row (payload kept as bytes in
payload_raw, key sanitised) or as a dead letter with its reason -- and the
good messages around them commit (one partition: it keeps moving; on
SIGTERM every consumed message is acked).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

GOOD = 200


def good(seq):
    return (b"k%d" % seq,
            b'{"seq": %d, "text": "a good and friendly message %d"}' % (seq, seq))


BAD = [
    (None, b'{"seq": %d, "text": "nul \\u0000 inside a string"}'),
    (None, b'{"seq": %d, "a\\u0000b": 1, "text": "nul in a member name"}'),
    (None, b'{"seq": %d, "text": "lone surrogate \\ud800 here"}'),
    (b"\xff\xfe\xfd", b'{"seq": %d, "text": "key with invalid UTF-8"}'),
    (b"k\x00k", b'{"seq": %d, "text": "key with a NUL byte"}'),
    (b"K" * 100000, b'{"seq": %d, "text": "a 100 KB key"}'),
    (None, b'{"seq": %d, "text": "huge number", "n": 1e400}'),
    (None, b'{"seq": %d, "text": "\\ud83d\\ude00 a valid surrogate pair"}'),
]


def body(sc):
    mock = sc.mock()
    topic = sc.uniq
    recs, expect = [], {}
    seq = 0
    for i in range(GOOD):
        recs.append(good(seq))
        expect[seq] = "row"
        seq += 1
        if i % 20 == 10 and i // 20 < len(BAD):
            key, val = BAD[i // 20]
            recs.append((key, val % seq))
            expect[seq] = "any"
            seq += 1
    kafka_create_topic(topic, 1)
    kcat_produce(topic, recs)
    pipe = sc.pipeline(kafka_source(topic, "g_" + sc.uniq),
                       sentiment_backend(mock.url), sink(sc.table, sc.dl))
    w = sc.worker(pipe)
    sc.wait_landed(seq, 60)
    rc = w.term(60)
    bad = [] if rc == 0 else ["exit %s after SIGTERM" % rc]
    consumed, _, _, acked = stopped_counts(w)
    if consumed != seq or acked != seq:
        bad.append("consumed %d acked %d of %d" % (consumed, acked, seq))
    bad += expect_outcomes(sc, expect)
    return sc.finish(seq, extra_fail=bad)


main("bad-rows-for-postgres", body)
