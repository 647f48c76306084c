#!/usr/bin/env python3
"""
PostgreSQL faults mid-stream (Kafka source, producer running):
  pg-restart-fast       pg_ctl restart -m fast
  pg-restart-immediate  pg_ctl stop -m immediate (crash, WAL recovery), start
  pg-terminate-backend  pg_terminate_backend() on application_name 'sluice%',
                        three times
Each ends with lost 0, duplicated 0 and a clean SIGTERM exit.
Usage: s03_pg_restart.py fast|immediate|terminate
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from faultlib import *  # noqa: F401,F403,E402

MODE = sys.argv[1] if len(sys.argv) > 1 else "fast"
# A killed backend's rows wait in the sink's backlog while it reconnects,
# then land at once: three kills in a 10,000-message stream could see the
# last threshold only once everything had landed (check_left's failure).
# At 2,000 msg/s, 30,000 keep the producer running well past the faults.
N = 30000 if MODE == "terminate" else 10000
NAMES = {"fast": "pg-restart-fast", "immediate": "pg-restart-immediate",
         "terminate": "pg-terminate-backend"}


def restart(mode):
    def fn(sc, ws):
        log("pg_ctl stop -m %s" % mode)
        try:
            pg_stop(mode)
        finally:
            pg_start()
        log("postgres back")
    return fn


def terminate(sc, ws):
    # Only this scenario's workers (application_name 'sluice-<replica>'):
    # the server is shared.  Wait for the sink to be connected first.
    wait_for(lambda: int(q1("SELECT count(*) FROM pg_stat_activity WHERE "
                            "application_name LIKE 'sluice-%%%s'" % sc.uniq,
                            "0")) > 0, 30, "a sluice backend")
    n = q1("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
           "WHERE application_name LIKE 'sluice-%%%s' AND pid <> pg_backend_pid()" % sc.uniq)
    log("terminated %s sluice backend(s)" % n)
    if not n or int(n) < 1:
        raise Fail("no sluice backend to terminate")


def body(sc):
    if MODE == "terminate":
        faults = [(2000, terminate), (4500, terminate), (7000, terminate)]
    else:
        faults = [(3000, restart(MODE))]
    ws, bad = kafka_stream(sc, N, faults)
    return sc.finish(N, expect_dead=0, extra_fail=bad)


main(NAMES[MODE], body)
