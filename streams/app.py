"""The Faust worker: input topics -> BatchProcessor -> ClickHouse, dead letters, state.

At-least-once with idempotent sinks (SPEC §6): a batch's rows are written to ClickHouse
and its dead letters acknowledged by the broker *before* the batch's messages are acked,
and Faust commits only acked offsets.  A worker killed mid-batch re-reads the batch; the
ReplacingMergeTree tables and the state's event digests make the second pass a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import faust
import orjson
from faust.streams import _current_event
from faust.transport.drivers import aiokafka as faust_kafka
from faust.types import TP
from mode.utils.futures import notify
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from detectors.findings import RULES
from streams import metrics
from streams.offsets import fetched_ends
from streams.pipeline import BatchProcessor, BatchResult, Message, deadletter_headers
from streams.settings import INPUT_KINDS, Settings
from streams.storage import Storage, apply_schema, open_storage

log = logging.getLogger("entwatch.worker")

SINK_ORDER = ("events", "enterprises", "utility_daily", "tax_monthly", "social_monthly", "complaints", "deadletters",
              "alerts", "risk")
READ_ONLY = ("select", "with", "show", "describe", "desc", "exists")


class Sink:
    """Writes a batch's rows to storage from one thread; retries until it succeeds.

    A failing ClickHouse holds the batch (and so the offsets) back instead of dropping it:
    back-pressure, not loss.
    """

    def __init__(self, storage: Storage, max_backoff: float = 30.0):
        self.storage = storage
        self.max_backoff = max_backoff
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="entwatch-sink")

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def write(self, rows: dict[str, list[dict]]) -> None:
        for table in SINK_ORDER:
            batch = rows.get(table)
            if not batch:
                continue
            backoff = 0.5
            while True:
                try:
                    await self.call(self.storage.insert, table, batch)
                    break
                except Exception as exc:
                    metrics.SINK_FAILURES.labels(table).inc()
                    metrics.SINK_RETRIES.labels(table).inc()
                    log.warning("writing %d rows to %s failed (%s); retrying in %.1f s", len(batch), table, exc, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff)
            metrics.SINK_BATCHES.labels(table).inc()
            metrics.SINK_ROWS.labels(table).inc(len(batch))


class _ConsumerThread(faust_kafka.AIOKafkaConsumerThread):
    """Faust's consumer with the fetch wait from the settings: Faust hard-codes 1,500 ms,
    which a caught-up worker waits on every fetch that finds nothing new (the broker
    answers a fetch as soon as data arrives, so a shorter wait costs nothing under load)."""

    def _create_worker_consumer(self, transport):
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.app.fetch_max_wait_ms  # read by the fetcher it starts
        return consumer

    async def _highwaters(self, partitions):
        """End offsets for table recovery, as fetches report them (``streams.offsets``)."""
        return await fetched_ends(self.app.bootstrap, await super()._highwaters(partitions))


class _Consumer(faust_kafka.Consumer):
    """Faust's consumer, except that the input topics' messages of each fetch go to the
    app's ``on_batch`` together, instead of one by one through a stream.

    Faust's per-message delivery (a task pair per message in the fetch loop, an event, a
    queue, the stream's iteration) costs 140-170 µs a message on a CI machine, more than
    entwatch's own work on it (docs/BENCHMARKS.md, pipeline).  Here a fetch costs one call.
    Everything else -- group membership, table recovery and changelogs, commits of acked
    offsets, the other topics' delivery -- stays Faust's.
    """

    def _new_consumer_thread(self):
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher) -> None:  # the fetch loop of faust.transport.consumer.Consumer
        app = self.app
        if app.on_batch is None:
            return await super()._drain_messages(fetcher)
        read_offset = self._read_offset
        unacked = self._unacked_messages
        inbound = app.monitor.stream_inbound_time  # Faust's "stream stuck" check reads it
        try:
            while not (self._stopped.is_set() or fetcher._stopped.is_set()):
                await self.sleep(0)
                if self.should_stop:
                    break
                batch = []
                generation = app.consumer_generation_id
                async for tp, message in self.getmany(timeout=1.0):
                    if tp.topic in app.input_topics:
                        # Not Faust's read-offset rule: Continuity decides what follows on.
                        batch.append(message)
                        unacked.add(message)  # from now on a rebalance waits for it
                        continue
                    offset, last = message.offset, read_offset[tp]
                    if last is not None and offset < last:
                        continue  # already read (Faust's rule): a fetch from before a seek
                    if last and offset - last > 1 and app.topics.acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)
                    await self.wait_first(self.callback(message), self.suspend_flow.wait())
                    read_offset[tp] = offset
                if not batch:
                    continue
                if not self.flow_active or app.consumer_generation_id != generation:
                    # A rebalance began meanwhile: leave the batch unprocessed and unacked;
                    # the partitions' next owner (or Continuity) reads it again.
                    self._forget(batch)
                    continue
                now = time.monotonic()
                for m in batch:
                    inbound[m.tp] = now
                try:
                    await app.on_batch(batch)
                except Exception:
                    log.exception("processing a batch of %d messages failed; the worker stops and its "
                                  "uncommitted messages are read again when it restarts", len(batch))
                    raise
        except self.consumer_stopped_errors:
            if not self.transport.app.should_stop:
                raise
        except asyncio.CancelledError:
            if not self.transport.app.should_stop:
                raise

    def _forget(self, messages) -> None:
        """No longer wait for ``messages`` (not processed; to be read again), and wake a
        rebalance that waits for the unacked ones."""
        self._unacked_messages.difference_update(messages)
        notify(self._waiting_for_ack)


class _Transport(faust_kafka.Transport):
    Consumer = _Consumer


class WorkerApp(faust.App):
    """A Faust app whose worker consumer uses ``fetch_max_wait_ms`` and true end offsets,
    and hands each fetch of ``input_topics`` to ``on_batch`` (``_Consumer``)."""

    fetch_max_wait_ms = 1500
    bootstrap = "127.0.0.1:9092"
    input_topics: frozenset[str] = frozenset()
    on_batch = None  # async (list of Faust messages of input_topics) -> None

    def _new_transport(self):
        return _Transport(self.conf.broker_consumer, self)


MAX_REREADS = 5  # seeks back to the same offset before a partition's gap is given up
IDLE_AFTER = 3.0  # seconds without a batch before Continuity checks consumer positions


class Continuity:
    """Makes sure every message of an input partition reaches the processor, in order.

    Faust's fetch loop drops fetched messages without processing or acking them when their
    consumer generation is stale or its flow control is paused, and the consumer's
    position has by then moved past them; nothing fetches them again until the next
    rebalance.  Seen on Tansu right after a restart: a worker that fetched the backlog
    in that window processed none of it, or skipped a batch in the middle.  So:

    - a batch message past the next offset expected on its partition is set aside (the
      messages before it were dropped) and the partition is sought back to that offset;
    - a worker idle for ``idle_after`` seconds whose consumer position is past the
      offset expected on a partition seeks it back too.

    The expected offset is the last processed + 1, or at first the committed offset (or
    the log start).  Re-reading is safe: every step of a batch is idempotent.  After
    ``MAX_REREADS`` seeks to the same offset (messages deleted by retention meanwhile, say)
    the gap is logged as an error and the partition goes on.
    """

    def __init__(self, app: faust.App, kind_by_topic: dict[str, str], idle_after: float):
        self.app = app
        self.topics = kind_by_topic
        self.idle_after = idle_after
        self.next: dict[TP, int] = {}  # next offset expected per input partition
        self.sought: dict[TP, tuple[int, float, int]] = {}  # offset, when, how many times
        self.busy = False
        self.last_batch = time.monotonic()

    @contextmanager
    def working(self):
        """Around each batch: the idle check leaves a worker alone while it works."""
        self.busy = True
        try:
            yield
        finally:
            self.busy = False
            self.last_batch = time.monotonic()

    def processed(self, tp: TP) -> int | None:
        """The last offset processed on ``tp`` in this assignment (or committed before it)."""
        nxt = self.expected(tp)
        return None if nxt is None else nxt - 1

    def expected(self, tp: TP) -> int | None:
        nxt = self.next.get(tp)
        return nxt if nxt is not None else self.app.consumer._committed_offset.get(tp)

    async def _know(self, tps) -> None:
        """Make the expected offset of ``tps`` known: with nothing processed or committed
        yet, a partition is read from its log start."""
        unknown = [tp for tp in tps if self.expected(tp) is None]
        if unknown:
            for tp, start in (await self.app.consumer.earliest_offsets(*unknown)).items():
                self.next.setdefault(tp, start)

    async def admit(self, messages: list) -> list:
        """The batch's messages that follow on from what was processed; seeks back where
        messages were dropped before them."""
        await self._know({m.tp for m in messages})
        out, back = [], {}
        for m in messages:
            tp, offset = m.tp, m.offset
            if tp in back:
                continue
            expected = self.expected(tp)
            if expected is not None and offset > expected:
                back[tp] = (expected, offset)
                continue
            out.append(m)
            self.next[tp] = max(offset + 1, self.next.get(tp, 0))
        for tp, (expected, arrived) in back.items():
            await self._seek(tp, expected, arrived, f"the batch went on at offset {arrived}")
        return out

    async def check_idle(self) -> None:
        """Seek back partitions whose consumer position is past what was processed, if the
        worker has had nothing to process for a while."""
        now = time.monotonic()
        if self.busy or now - self.last_batch < self.idle_after or self.app.rebalancing:
            return
        consumer = self.app.consumer
        tps = [tp for tp in consumer.assignment() if tp.topic in self.topics]
        await self._know(tps)
        for tp in tps:
            expected = self.expected(tp)
            position = await consumer.position(tp)
            if expected is not None and position is not None and position > expected:
                await self._seek(tp, expected, position, f"idle {now - self.last_batch:.0f} s at position {position}")

    async def _seek(self, tp: TP, offset: int, ahead: int, why: str) -> None:
        offset_before, at, tries = self.sought.get(tp, (None, 0.0, 0))
        if offset_before == offset:
            if time.monotonic() - at < self.idle_after:
                return  # already sought there: the messages before it are on their way
            if tries >= MAX_REREADS:  # e.g. deleted by retention meanwhile: go on rather than loop
                log.error("%s[%d]: offsets %d..%d never arrived after %d re-reads; going on from %d",
                          tp.topic, tp.partition, offset, ahead - 1, tries, ahead)
                self.next[tp] = ahead
                self.sought.pop(tp, None)
                await self.app.consumer._add_gap(tp, offset, ahead - 1)  # so commits can pass it
                return
        else:
            tries = 0
        log.warning("%s[%d]: messages from offset %d were fetched but not processed (%s); reading them again",
                    tp.topic, tp.partition, offset, why)
        metrics.REREADS.labels(self.topics[tp.topic]).inc()
        self.sought[tp] = (offset, time.monotonic(), tries + 1)
        try:
            await self.app.consumer.seek(tp, offset)
        except Exception as exc:  # revoked meanwhile: its next owner reads from the committed offset
            log.warning("%s[%d]: could not seek back to %d (%s)", tp.topic, tp.partition, offset, exc)

    def revoked(self, tps) -> None:
        for tp in tps:
            self.next.pop(tp, None)
            self.sought.pop(tp, None)


@contextmanager
def as_current(event):
    """Make ``event`` Faust's current event, so table writes go to its partition's changelog
    (None: no current event)."""
    token = _current_event.set(None if event is None else weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


# RocksDB state, per partition database: two 4 MiB write buffers and a 16 MiB block cache,
# so a worker's memory does not grow with its enterprises (Faust's defaults are 64 MiB
# buffers and a 2 GiB cache per database).
ROCKSDB_OPTIONS = {"write_buffer_size": 4 << 20, "max_write_buffer_number": 2, "block_cache_size": 16 << 20,
                   "block_cache_compressed_size": 0, "target_file_size_base": 32 << 20}


def create_app(settings: Settings, storage: Storage | None = None) -> faust.App:
    """Build the worker app for ``settings`` (storage opened on start if not given)."""
    rocksdb = settings.state_store == "rocksdb"
    settings.state_dir().mkdir(parents=True, exist_ok=True)
    app = WorkerApp(
        settings.app_id,
        broker=settings.broker_url,
        store="rocksdb://" if rocksdb else "memory://",
        datadir=str(settings.state_dir()),
        # Tansu 0.6 answers ListOffsets(latest) with the last batch's base offset + 1, below
        # the offsets it acknowledged, so a RocksDB table's persisted changelog offset can
        # be "higher than the highwater" after a restart: not a reason to refuse to start.
        recovery_consistency_check=False,
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        consumer_auto_offset_reset="earliest",
        # Short group timeouts: a worker that joins, or one killed without leaving, is
        # noticed in seconds (Tansu holds a join until the rebalance timeout has passed).
        broker_rebalance_timeout=settings.rebalance_timeout,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=max(0.5, settings.session_timeout / 5),
        web_enabled=True,
        web_bind=settings.metrics_host,
        web_port=settings.metrics_port,
        web_host=settings.metrics_host,
        key_serializer="raw",
        value_serializer="raw",
        producer_max_request_size=max(settings.max_message_bytes * 2, 1_048_576),
        consumer_max_fetch_size=max(settings.max_message_bytes * 2, 4 * 1024 * 1024),
        broker_max_poll_records=settings.batch_max,  # a fetch is a batch
    )
    app.fetch_max_wait_ms = settings.fetch_max_wait_ms
    app.bootstrap = settings.bootstrap_servers()
    kind_by_topic = {settings.topic(kind): kind for kind in INPUT_KINDS}
    inputs = app.topic(*kind_by_topic, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.topic("deadletter"), key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(settings.topic("alerts"), key_serializer="raw", value_serializer="raw")
    risk_topic = app.topic(settings.topic("risk"), key_serializer="raw", value_serializer="raw")
    table = app.Table("enterprise_state", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      options=dict(ROCKSDB_OPTIONS, driver="rocksdict") if rocksdb else None)
    states = TableStates(table)
    processor = BatchProcessor(kind_by_topic, settings.timezone, settings.max_message_bytes)
    store = storage or open_storage(settings.effective_storage_url(),
                                    settings.storage_password.get_secret_value() if settings.storage_password else None)
    apply_schema(store)
    sink = Sink(store)
    open_alerts: dict[int, Counter] = {}
    continuity = Continuity(app, kind_by_topic, idle_after=IDLE_AFTER)
    app.topics.add(inputs)  # subscribed; their messages reach on_batch a fetch at a time (_Consumer)
    app.input_topics = frozenset(kind_by_topic)

    async def on_batch(fetched: list) -> None:
        with continuity.working():
            admitted = await continuity.admit(fetched)
            if admitted:
                await handle_batch(admitted)
        consumer = app.consumer
        for m in admitted:
            consumer.ack(m)  # Faust commits acked offsets
        consumer._forget(fetched)  # the rest are to be read again

    app.on_batch = on_batch

    @app.timer(1.0)
    async def reread_dropped() -> None:
        await continuity.check_idle()

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender, revoked, **kwargs) -> None:
        continuity.revoked(revoked)

    async def handle_batch(fetched: list) -> None:
        messages = [_message(m) for m in fetched]
        result: BatchResult = processor.process(messages, states, lambda p: _behind(app, kind_by_topic, continuity, p))
        # 1. ClickHouse, 2. the output topics (acknowledged), 3. the state; then Faust may
        # commit the offsets.  A crash in between replays the batch: every step is idempotent.
        await sink.write(result.rows)
        sends = [await deadletter.send(key=m.key, value=m.value, headers=deadletter_headers(m, r))
                 for m, r in result.deadletters]
        sends += [await topic.send(key=p.uscc.encode(), value=orjson.dumps(p.body))
                  for topic, published in ((alerts_topic, result.alerts), (risk_topic, result.risk))
                  for p in published]
        if sends:
            await asyncio.gather(*sends)
        # A table write goes to the changelog partition of the current event's message.
        events = {p: faust.Event(app, None, None, None, fetched[index]) for p, (index, _) in result.clocks.items()}
        for (partition, uscc), (_, blob) in result.states.items():
            with as_current(events[partition]):
                table[state_key(partition, uscc)] = blob
        for partition, (_, blob) in result.clocks.items():
            with as_current(events[partition]):
                table[clock_key(partition)] = blob
        # Table writes queue their changelog messages in Faust's producer buffer; Faust's own
        # delivery waits for that buffer before each message, so wait for it here, once a
        # batch: unbounded, it held 1.2 GB of records for a 600,000-message backlog.
        await app.producer.buffer.flush()
        open_alerts.update(result.open_alerts)
        _count(result, messages, kind_by_topic, _assigned(app, kind_by_topic), open_alerts)

    metrics.CONSUMER_LAG.source = lambda: _lag(app, kind_by_topic)

    @app.page("/metrics")
    async def metrics_page(web, request):
        return web.bytes(generate_latest(metrics.REGISTRY), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/ready")
    async def ready_page(web, request):
        """200 once this worker has partitions assigned and its state recovered."""
        try:
            assigned = bool(app.consumer.assignment())
        except Exception:
            assigned = False
        ready = assigned and not app.rebalancing
        return web.json({"ready": ready}, status=200 if ready else 503)

    @app.page("/query")
    async def query_page(web, request):
        """Read-only SQL against this worker's storage (how other commands read chDB)."""
        sql = request.query.get("sql", "").strip()
        if not sql.lower().startswith(READ_ONLY) or ";" in sql.rstrip(";"):
            return web.json({"error": "only one read-only statement (SELECT, WITH, SHOW, DESCRIBE)"}, status=400)
        try:
            rows = await sink.call(store.query, sql)
        except Exception as exc:
            return web.json({"error": str(exc).splitlines()[0][:500]}, status=400)
        return web.json({"rows": rows})

    return app


def _message(m) -> Message:
    headers = tuple((k, v) for k, v in (m.headers or ()))
    return Message(m.topic, m.partition, m.offset, m.key, m.value, (m.timestamp or time.time()), headers)


def state_key(partition: int, uscc: str) -> bytes:
    """The table key of an enterprise: its partition, so a partition's members are known
    without reading their state."""
    return f"{partition}/{uscc}".encode()


def clock_key(partition: int) -> bytes:
    return f"clock/{partition}".encode()


class TableStates:
    """The ``StateView`` of the pipeline over the worker's Faust table.

    Reads happen with no current event: Faust's RocksDB store would otherwise look a key
    up only in the database of the current event's partition."""

    def __init__(self, table):
        self.table = table

    def get(self, partition: int, uscc: str) -> bytes | None:
        with as_current(None):
            return self.table.get(state_key(partition, uscc))

    def members(self, partition: int) -> list[str]:
        prefix = f"{partition}/".encode()
        return [key[len(prefix):].decode() for key in list(self.table.keys()) if key.startswith(prefix)]

    def clock(self, partition: int) -> bytes | None:
        with as_current(None):
            return self.table.get(clock_key(partition))


def _assigned(app, kind_by_topic: dict[str, str]) -> set[int]:
    try:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic in kind_by_topic}
    except Exception:
        return set()


def _behind(app, kind_by_topic: dict[str, str], continuity: Continuity, partition: int) -> set[str]:
    """The input kinds whose topic has messages on ``partition`` that this worker has not
    processed yet (or whose end it does not know yet): the clock waits for them.

    Known cost (docs/BENCHMARKS.md, latency): live, a sparse topic often has a message in
    flight, and the clock then waits at that topic's last event time until it is read."""
    out = set()
    for topic, kind in kind_by_topic.items():
        tp = TP(topic, partition)
        try:
            end = app.consumer.highwater(tp)
        except Exception:  # not assigned (any more): nothing to wait for
            continue
        done = continuity.processed(tp)
        if end is None or end > (-1 if done is None else done) + 1:
            out.add(kind)
    return out


def _lag(app, kind_by_topic: dict[str, str]) -> dict[str, int]:
    """Messages behind the log end per input kind, over this worker's partitions."""
    lag: Counter = Counter()
    consumer = app.consumer
    for tp in consumer.assignment():
        kind = kind_by_topic.get(tp.topic)
        if kind is None:
            continue
        end = consumer.highwater(tp)
        if end is None:
            continue
        committed = consumer._committed_offset.get(tp)  # the next offset to read
        lag[kind] += max(0, end - (committed or 0))
    return lag


def _count(result: BatchResult, messages: list[Message], kind_by_topic: dict[str, str],
           assigned: set[int], open_alerts: dict[int, Counter]) -> None:
    """Update the metrics for one batch: one increment per kind, one latency sample per message."""
    now = time.time()
    for kind, n in result.consumed.items():
        metrics.EVENTS_IN.labels(kind).inc(n)
        metrics.FRESHNESS.seen(kind, now)
    for message in messages:
        metrics.LATENCY.observe(max(0.0, now - message.timestamp))
    for message, rejection in result.deadletters:
        metrics.DEADLETTERED.labels(kind_by_topic.get(message.topic, "unknown"), rejection.reason).inc()
    metrics.READINGS.inc(result.readings)
    metrics.LATE_READINGS.inc(result.too_late)
    if result.duplicates:
        metrics.DUPLICATES.labels("utility").inc(result.duplicates)
    for published in result.alerts:
        if published.opened:
            metrics.ALERTS_RAISED.labels(published.body["rule"], published.body["severity"]).inc()
    if result.open_alerts:
        totals = sum((open_alerts[p] for p in assigned if p in open_alerts), Counter())
        for rule in RULES:
            metrics.OPEN_ALERTS.labels(rule).set(totals.get(rule, 0))
