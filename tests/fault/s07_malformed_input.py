#!/usr/bin/env python3
"""
Malformed input messages on one Kafka partition, between good ones:
invalid JSON, invalid UTF-8, raw NUL bytes, a JSON array / string / number
instead of an object, a missing template field, 64-level nesting (valid:
a row), 100 000-level nesting, an empty value, a tombstone (NULL value),
and a message over max_message_bytes (dead-lettered without its payload).  The bad ones become dead letters
with the reason; the partition keeps moving (the good ones after them are
rows, and on SIGTERM every consumed message is acked).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

GOOD = 300
UNL = 3  # empty value, tombstone, oversized (payload not kept)
MAX_BYTES = 256 * 1024


def nested(seq, depth):
    return (b'{"seq": %d, "text": "deep", "d": ' % seq + b"[" * depth +
            b"]" * depth + b"}")


BAD = [  # (value template or builder, expected outcome)
    (b'{"seq": %d, "text": "unterminated', "dl"),
    (b'{"seq": %d, "text": "bad utf-8 \xc3\x28 \xff"}', "dl"),
    (b'{"seq": %d, "text": "raw nul \x00 byte"}', "dl"),
    (b'[{"seq": %d}, "an array"]', "dl"),
    (b'"{\\"seq\\": %d} a string"', "dl"),
    (b'12345.5e1 {"seq": %d}', "dl"),
    (b'{"seq": %d}', "dl"),                       # no {{text}}
    (b'{"seq": %d, "text": 42}', "any"),           # text not a string
    (lambda s: nested(s, 64), "row"),
    (lambda s: nested(s, 100000), "dl"),
    (b'{"seq": %d, "text": "trailing garbage"} xyz', "dl"),
    (b'{"seq": %d, "text": "dup", "text": "keys"}', "any"),
]


def body(sc):
    mock = sc.mock()
    topic = sc.uniq
    recs, expect = [], {}
    seq = 0
    slot = 0
    for i in range(GOOD):
        recs.append((b"k%d" % seq, b'{"seq": %d, "text": "good %d"}' %
                     (seq, seq)))
        expect[seq] = "row"
        seq += 1
        if i % 20 == 7 and slot < len(BAD):
            tmpl, want = BAD[slot]
            slot += 1
            val = tmpl(seq) if callable(tmpl) else tmpl % seq
            recs.append((b"bad%d" % seq, val))
            expect[seq] = want
            seq += 1
    # Unlabeled: an empty value, then a tombstone (NULL value), then more
    # good messages behind them.
    kafka_create_topic(topic, 1)
    kcat_produce(topic, recs[: len(recs) // 2])
    kcat_produce(topic, [(b"empty", b"")])
    kcat_produce(topic, [(b"tombstone", b"")], null_empty=True)
    kcat_produce(topic, [(b"oversized", b'{"seq": "big", "text": "' +
                          b"x" * (MAX_BYTES + 1000) + b'"}')])
    kcat_produce(topic, recs[len(recs) // 2:])
    pipe = sc.pipeline(
        kafka_source(topic, "g_" + sc.uniq,
                     extra="  max_message_bytes: %d\n" % MAX_BYTES),
        sentiment_backend(mock.url), sink(sc.table, sc.dl))
    w = sc.worker(pipe)
    sc.wait_landed(seq + UNL, 60)
    rc = w.term(60)
    bad = [] if rc == 0 else ["exit %s after SIGTERM" % rc]
    consumed, _, _, acked = stopped_counts(w)
    if consumed != seq + UNL or acked != seq + UNL:
        bad.append("consumed %d acked %d of %d" % (consumed, acked, seq + UNL))
    bad += expect_outcomes(sc, expect, unlabeled_dl=UNL)
    return sc.finish(seq, unlabeled=UNL, extra_fail=bad)


main("malformed-input", body)
