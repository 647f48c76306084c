#!/usr/bin/env python3
"""
bench/peers/asyncio_worker.py: the seed's design (sections 8, 10, 11 and
11.4: a bounded asyncio.Queue, a fixed set of worker tasks ended by None
sentinels, aiohttp with gather over the models, asyncpg) written as a fair
stream worker, for `scripts/bench --peers` to run beside sluice on the same
messages, model server and PostgreSQL.

Fair means: it does what sluice does for each message, no less and no
more, in the way a careful Python programmer would:
  - one reader task: XREADGROUP COUNT 512 (redis-py) or getmany of up to
    512 records (aiokafka, no auto-commit) into asyncio.Queue(maxsize);
  - --workers tasks (64: the in-flight bound), each taking one message,
    calling every model at once (asyncio.gather over one shared
    aiohttp.ClientSession, keep-alive, a connection limit of --workers per
    model) and handing the row to the writer;
  - one writer task: batches of up to --batch-rows rows or --flush-ms,
    written by up to 4 inserts at once from an asyncpg pool with the same
    statement sluice uses (INSERT ... SELECT * FROM unnest($1::text[], ...)
    ON CONFLICT DO NOTHING) into a table of the same shape;
  - acknowledging only after the insert: XACK of the batch's ids, or a
    Kafka commit of each partition's offset up to which every message is
    written (never past one still in flight);
  - uvloop as the event loop.
SIGTERM/SIGINT: the reader stops, one None per worker ends them once the
queue is drained, the writer flushes, acknowledges and the process exits 0.

  asyncio_worker.py --source redis --redis-url URL --stream KEY --group G
                    | --source kafka --brokers B --topic T --group G
                    --pg-dsn DSN --table T --model-url URL
                    [--models sentiment,ner,summary] [--workers 64]
                    [--queue 1024] [--batch-rows 1000] [--flush-ms 5]
  asyncio_worker.py --check     import everything and exit 0
"""
import argparse
import asyncio
import collections
import json
import os
import signal
import socket
import sys
import time

# Each model: mock-infer route and the reply member kept in the row (as the
# http-json backends' result_pointer in sluice's pipelines).
MODELS = {
    "sentiment": ("/predict/sentiment", "label"),
    "ner": ("/predict/ner", "entities"),
    "summary": ("/predict/summary", "summary"),
}
READ_COUNT = 512
INSERT_INFLIGHT = 4

COLUMNS = ("source", "topic", "partition", "offset", "entry_id", "key",
           "payload", "payload_raw", "results", "errors", "timings",
           "worker", "received_at")
ARRAY_TYPES = ("text[]", "text[]", "int4[]", "int8[]", "text[]", "text[]",
               "jsonb[]", "bytea[]", "jsonb[]", "jsonb[]", "jsonb[]",
               "text[]", "timestamptz[]")


def create_sql(table):
    """The table sluice's PostgreSQL sink creates (lib/sink_pg_sql.c)."""
    return (
        'CREATE TABLE IF NOT EXISTS %s (id bigserial PRIMARY KEY, '
        'source text NOT NULL, topic text NOT NULL, '
        'partition integer NOT NULL, "offset" bigint NOT NULL, '
        "entry_id text NOT NULL DEFAULT '', key text, payload jsonb, "
        'payload_raw bytea, results jsonb, errors jsonb, timings jsonb, '
        'worker text, received_at timestamptz, '
        'processed_at timestamptz NOT NULL DEFAULT now(), '
        'UNIQUE (source, topic, partition, "offset", entry_id))' % table)


def insert_sql(table):
    return ("INSERT INTO %s (%s) SELECT * FROM unnest(%s) "
            "ON CONFLICT DO NOTHING") % (
        table, ", ".join('"%s"' % c for c in COLUMNS),
        ", ".join("$%d::%s" % (i + 1, t) for i, t in enumerate(ARRAY_TYPES)))


class Msg:
    __slots__ = ("partition", "offset", "entry_id", "key", "value",
                 "received_at")

    def __init__(self, partition, offset, entry_id, key, value):
        self.partition = partition
        self.offset = offset
        self.entry_id = entry_id
        self.key = key
        self.value = value
        self.received_at = time.time()


class KafkaCommits:
    """Per partition, the offsets read and not yet written, in read order:
    the commit point is the first one still pending (at-least-once)."""

    def __init__(self):
        self.pending = collections.defaultdict(collections.deque)
        self.done = collections.defaultdict(set)
        self.next_commit = {}

    def read(self, partition, offset):
        self.pending[partition].append(offset)

    def written(self, partition, offset):
        self.done[partition].add(offset)

    def advance(self):
        """{partition: offset to commit} that moved since the last call."""
        out = {}
        for p, q in self.pending.items():
            d = self.done[p]
            last = None
            while q and q[0] in d:
                last = q.popleft()
                d.discard(last)
            if last is not None:
                self.next_commit[p] = last + 1
                out[p] = last + 1
        return out


class Worker:
    def __init__(self, args):
        self.args = args
        self.models = [m for m in args.models.split(",") if m]
        for m in self.models:
            if m not in MODELS:
                sys.exit("asyncio_worker: unknown model %r (%s)" %
                         (m, ", ".join(MODELS)))
        self.name = "%s/%d" % (socket.gethostname(), os.getpid())
        self.stopping = asyncio.Event()
        self.queue = asyncio.Queue(maxsize=args.queue)
        self.rows = asyncio.Queue(maxsize=args.queue)
        self.commits = KafkaCommits()
        self.written = 0

    # -- source -----------------------------------------------------------

    async def open_source(self):
        a = self.args
        if a.source == "redis":
            import redis.asyncio as aioredis
            self.redis = aioredis.from_url(a.redis_url)
            try:
                await self.redis.xgroup_create(a.stream, a.group, id="0",
                                               mkstream=True)
            except Exception as e:  # BUSYGROUP: it exists
                if "BUSYGROUP" not in str(e):
                    raise
            self.source_name, self.topic = "redis-stream", a.stream
        else:
            from aiokafka import AIOKafkaConsumer
            self.consumer = AIOKafkaConsumer(
                a.topic, bootstrap_servers=a.brokers, group_id=a.group,
                enable_auto_commit=False, auto_offset_reset="earliest",
                max_poll_records=READ_COUNT)
            await self.consumer.start()
            self.source_name, self.topic = "kafka", a.topic

    async def reader(self):
        a = self.args
        while not self.stopping.is_set():
            if a.source == "redis":
                got = await self.redis.xreadgroup(
                    a.group, self.name, {a.stream: ">"}, count=READ_COUNT,
                    block=200)
                for _, entries in got or ():
                    for eid, fields in entries:
                        key = fields.get(b"key")
                        await self.queue.put(Msg(
                            0, 0, eid.decode(),
                            key.decode() if key is not None else None,
                            fields.get(b"payload", b"")))
            else:
                batches = await self.consumer.getmany(
                    timeout_ms=200, max_records=READ_COUNT)
                for tp, records in batches.items():
                    for r in records:
                        self.commits.read(tp.partition, r.offset)
                        await self.queue.put(Msg(
                            tp.partition, r.offset, "",
                            r.key.decode() if r.key is not None else None,
                            r.value))
        for _ in range(a.workers):  # one sentinel per worker (section 11.4)
            await self.queue.put(None)

    # -- models -----------------------------------------------------------

    async def call(self, session, model, text):
        path, member = MODELS[model]
        t0 = time.monotonic()
        async with session.post(self.args.model_url + path,
                                json={"text": text}) as resp:
            resp.raise_for_status()
            body = await resp.json()
        return body.get(member), (time.monotonic() - t0) * 1000.0

    async def worker(self, session):
        while True:
            msg = await self.queue.get()
            if msg is None:
                break
            t0 = time.monotonic()
            results, errors, timings = {}, {}, {}
            try:
                doc = json.loads(msg.value)
                text = doc.get("text", "") if isinstance(doc, dict) else ""
            except ValueError:
                doc, text = None, ""
            outs = await asyncio.gather(
                *(self.call(session, m, text) for m in self.models),
                return_exceptions=True)
            for m, out in zip(self.models, outs):
                if isinstance(out, BaseException):
                    errors[m] = str(out) or type(out).__name__
                else:
                    results[m], timings[m] = out[0], round(out[1])
            timings["total"] = round((time.monotonic() - t0) * 1000.0)
            await self.rows.put((msg, doc, results, errors, timings))

    # -- sink -------------------------------------------------------------

    async def insert(self, pool, sql, batch, sem):
        try:
            cols = [[] for _ in COLUMNS]
            for msg, doc, results, errors, timings in batch:
                vals = (self.source_name, self.topic, msg.partition,
                        msg.offset, msg.entry_id, msg.key,
                        msg.value.decode() if doc is not None else None,
                        msg.value if doc is None else None,
                        json.dumps(results), json.dumps(errors),
                        json.dumps(timings), self.name,
                        _utc(msg.received_at))
                for c, v in zip(cols, vals):
                    c.append(v)
            async with pool.acquire() as conn:
                await conn.execute(sql, *cols)
            # Acknowledge only what is now in the table.
            if self.args.source == "redis":
                await self.redis.xack(self.args.stream, self.args.group,
                                      *[b[0].entry_id for b in batch])
            else:
                for b in batch:
                    self.commits.written(b[0].partition, b[0].offset)
                moved = self.commits.advance()
                if moved:
                    from aiokafka import TopicPartition
                    await self.consumer.commit(
                        {TopicPartition(self.topic, p): o
                         for p, o in moved.items()})
            self.written += len(batch)
        finally:
            sem.release()

    async def writer(self, pool):
        a = self.args
        sql = insert_sql(a.table)
        sem = asyncio.Semaphore(INSERT_INFLIGHT)
        tasks = set()
        ended = False
        while not ended:
            batch = []
            item = await self.rows.get()
            if item is None:
                break
            batch.append(item)
            deadline = time.monotonic() + a.flush_ms / 1000.0
            while len(batch) < a.batch_rows:
                try:
                    item = self.rows.get_nowait()
                except asyncio.QueueEmpty:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = await asyncio.wait_for(self.rows.get(), left)
                    except asyncio.TimeoutError:
                        break
                if item is None:
                    ended = True
                    break
                batch.append(item)
            await sem.acquire()
            t = asyncio.create_task(self.insert(pool, sql, batch, sem))
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)

    # -- run --------------------------------------------------------------

    async def run(self):
        import aiohttp
        import asyncpg
        a = self.args
        loop = asyncio.get_running_loop()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, self.stopping.set)
        pool = await asyncpg.create_pool(dsn=_pg_url(a.pg_dsn), min_size=1,
                                         max_size=INSERT_INFLIGHT)
        async with pool.acquire() as conn:
            await conn.execute(create_sql(a.table))
        await self.open_source()
        conn = aiohttp.TCPConnector(limit=0, limit_per_host=a.workers)
        async with aiohttp.ClientSession(connector=conn) as session:
            writer = asyncio.create_task(self.writer(pool))
            workers = [asyncio.create_task(self.worker(session))
                       for _ in range(a.workers)]
            await self.reader()
            await asyncio.gather(*workers)
            await self.rows.put(None)
            await writer
        if a.source == "redis":
            await self.redis.aclose()
        else:
            await self.consumer.stop()
        await pool.close()
        print("asyncio_worker: wrote %d rows" % self.written, file=sys.stderr)


def _utc(t):
    import datetime
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc)


def _pg_url(dsn):
    """asyncpg takes a URL; turn a libpq key=value DSN into one."""
    if "://" in dsn:
        return dsn
    kv = dict(p.split("=", 1) for p in dsn.split())
    auth = kv.get("user", "postgres")
    if "password" in kv:
        auth += ":" + kv["password"]
    return "postgresql://%s@%s:%s/%s" % (auth, kv.get("host", "127.0.0.1"),
                                         kv.get("port", "5432"),
                                         kv.get("dbname", "postgres"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="import every package and exit")
    ap.add_argument("--source", choices=("redis", "kafka"))
    ap.add_argument("--redis-url")
    ap.add_argument("--stream")
    ap.add_argument("--brokers")
    ap.add_argument("--topic")
    ap.add_argument("--group")
    ap.add_argument("--pg-dsn")
    ap.add_argument("--table")
    ap.add_argument("--model-url")
    ap.add_argument("--models", default="sentiment")
    ap.add_argument("--workers", type=int, default=64)
    ap.add_argument("--queue", type=int, default=1024)
    ap.add_argument("--batch-rows", type=int, default=1000)
    ap.add_argument("--flush-ms", type=float, default=5)
    a = ap.parse_args()
    import uvloop
    if a.check:
        import aiohttp  # noqa: F401
        import aiokafka  # noqa: F401
        import asyncpg  # noqa: F401
        import redis.asyncio  # noqa: F401
        print("asyncio_worker: imports ok")
        return 0
    need = ["source", "group", "pg_dsn", "table", "model_url"] + (
        ["redis_url", "stream"] if a.source == "redis" else
        ["brokers", "topic"])
    missing = [n for n in need if not getattr(a, n)]
    if missing:
        ap.error("missing " + ", ".join("--" + n.replace("_", "-")
                                        for n in missing))
    uvloop.install()
    asyncio.run(Worker(a).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
