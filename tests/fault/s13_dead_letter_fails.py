#!/usr/bin/env python3
"""
The dead-letter write itself fails: the dead-letter table is created
beforehand with a CHECK constraint that refuses every row.  Poison messages
among good ones on one partition must then not be acked: the worker keeps
running (or drains on SIGTERM) with its committed offset held below the
first poison message.  Then the constraint is dropped and a new worker
started: the dead letters land, and the tables hold exactly the produced
set.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

GOOD = 200
POISON = (50, 120)  # seqs of invalid JSON messages


def body(sc):
    mock = sc.mock()
    topic = sc.uniq
    psql("CREATE TABLE %s (id bigserial PRIMARY KEY, "
         "source text NOT NULL, topic text NOT NULL, "
         "partition integer NOT NULL, \"offset\" bigint NOT NULL, "
         "entry_id text NOT NULL DEFAULT '', key bytea, payload bytea, "
         "stage text NOT NULL, error text, sqlstate text, "
         "attempts integer NOT NULL DEFAULT 1, "
         "first_seen timestamptz NOT NULL DEFAULT now(), "
         "last_seen timestamptz NOT NULL DEFAULT now(), "
         "UNIQUE (source, topic, partition, \"offset\", entry_id), "
         "CONSTRAINT refuse_all CHECK (stage = 'never'))" % sc.dl)
    recs = []
    for s in range(GOOD):
        if s in POISON:
            recs.append((b"p", b'{"seq": %d, "text": "poison' % s))
        else:
            recs.append((b"k", b'{"seq": %d, "text": "good"}' % s))
    kafka_create_topic(topic, 1)
    kcat_produce(topic, recs)
    pipe = sc.pipeline(kafka_source(topic, "g_" + sc.uniq),
                       sentiment_backend(mock.url), sink(sc.table, sc.dl),
                       head="shutdown_timeout_ms: 3000\n")
    w = sc.worker(pipe, name="refused")
    # Every good message becomes a row; the poison ones cannot land.
    sc.wait_landed(GOOD - len(POISON), 60)
    wait_for(lambda: "23514" in w.log_text() or "refuse_all" in w.log_text()
             or not w.alive(), 30, "the dead-letter insert to be refused")
    time.sleep(1.0)  # give a wrong ack the time to happen
    bad = []
    if table_count(sc.dl) != 0:
        bad.append("dead letters landed despite the constraint")
    if w.alive():
        rc = w.term(60)
        log("refused run: exit %s after SIGTERM" % rc)
        consumed, processed, dead, acked = stopped_counts(w)
        log("refused run: consumed %d processed %d dead %d acked %d" %
            (consumed, processed, dead, acked))
        # 'acked' counts messages acked one by one (the good ones); what
        # is committed is the contiguous prefix, which must stop at the
        # first refused dead letter.  The proof is below: the fixed run
        # finds the poison messages again (a committed offset past them
        # would show as lost).
        # 'dead-lettered' counts dead letters PostgreSQL holds: none here.
        if dead != 0 or acked != GOOD - len(POISON):
            bad.append("refused run: %d dead-lettered (expected 0), acked "
                       "%d (expected %d)" % (dead, acked, GOOD - len(POISON)))
    else:
        log("refused run exited by itself: %s / %s" % (w.p.poll(),
                                                       w.last_lines()))
        if w.p.poll() not in (0, 1):
            bad.append("refused run died with status %s" % w.p.poll())
    psql("ALTER TABLE %s DROP CONSTRAINT refuse_all" % sc.dl)
    w2 = sc.worker(pipe, name="fixed")
    # A committed offset past a refused poison message shows up as lost.
    sc.wait_landed(GOOD, 60)
    rc = w2.term(60)
    if rc != 0:
        bad.append("fixed run exited %s" % rc)
    return sc.finish(GOOD, expect_dead=len(POISON), extra_fail=bad)


main("dead-letter-write-fails", body)
