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
from datetime import timedelta
from zoneinfo import ZoneInfo
from collections import Counter

import faust
import orjson
from faust.types import TP

from detectors.citywide import CityCohorts
from detectors.findings import RULES
from streams import cloudevents, metrics
from streams.cohorts import CohortFeed, encode
from streams.continuity import IDLE_AFTER, Continuity
from streams.health import watch
from streams.pipeline import BatchProcessor, BatchResult, Message, deadletter_record
from streams.seam import WorkerApp, as_current
from streams.settings import INPUT_KINDS, Settings
from streams.sink import Sink, set_aside
from streams.storage import Storage, apply_schema, open_storage
from streams.web import add_pages

log = logging.getLogger("entwatch.worker")



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
        broker_credentials=settings.faust_credentials(),  # SASL/TLS from ENTWATCH_BROKER_* (None: plaintext)
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
        broker_commit_interval=settings.commit_interval,  # Faust's 2.8 s: a killed worker's work since is redone
        web_enabled=True,
        web_router_enabled=False,  # Faust's own pages: nothing of entwatch's is served there
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
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
    app.kafka_security = settings.aiokafka_security()
    kind_by_topic = {settings.topic(kind): kind for kind in INPUT_KINDS}
    inputs = app.topic(*kind_by_topic, key_serializer="raw", value_serializer="raw")
    deadletter = app.topic(settings.topic("deadletter"), key_serializer="raw", value_serializer="raw")
    alerts_topic = app.topic(settings.topic("alerts"), key_serializer="raw", value_serializer="raw")
    risk_topic = app.topic(settings.topic("risk"), key_serializer="raw", value_serializer="raw")
    ce_source = cloudevents.source(settings.app_id)
    table = app.Table("enterprise_state", key_type=bytes, value_type=bytes, partitions=settings.partitions,
                      options=dict(ROCKSDB_OPTIONS, driver="rocksdict") if rocksdb else None)
    states = TableStates(table)
    lateness = timedelta(days=settings.utility_lateness_days)
    # The city-wide peer cohorts: this worker's partitions' contributions go to
    # monitor.cohorts, everyone's are read back from it (streams/cohorts.py).
    # A partition follows the city's readings only once idle (ENTWATCH_COHORT_IDLE_SECONDS): its
    # topics are read at their own speed, and its unread data must not be judged late.
    city = CityCohorts(settings.partitions, idle_lag=None, tz=ZoneInfo(settings.timezone), publish=True)
    feed = CohortFeed(settings, city)
    cohorts_topic = app.topic(settings.topic("cohorts"), key_serializer="raw", value_serializer="raw")
    processor = BatchProcessor(kind_by_topic, settings.timezone, settings.max_message_bytes,
                               lateness=lateness, cohorts=city, thresholds=settings.thresholds())
    judging = asyncio.Lock()  # one batch, or one wake-up of waiting partitions, at a time
    last_input: dict[int, float] = {}
    city_input: list[float] = []  # when input was first seen anywhere in the city (here, or reported)

    def idle(partition: int) -> bool:
        """No input on ``partition`` for ENTWATCH_COHORT_IDLE_SECONDS since the city's input
        began: it is empty (if it never had any) or its input has ended, and it follows the
        city's readings.  Before any input, no partition is idle: a partition the consumer
        has not fetched yet must not be taken for an empty one."""
        now = time.monotonic()
        if not city_input:
            if not last_input and not any(r.events for r in city.reports.values()):
                return False
            city_input.append(now)
        return now - max(last_input.get(partition, 0.0), city_input[0]) >= settings.cohort_idle_seconds
    store = storage or open_storage(settings.effective_storage_url(),
                                    settings.storage_password.get_secret_value() if settings.storage_password else None)
    apply_schema(store)
    sink = Sink(store, time_limit=settings.stall_seconds / 2)
    open_alerts: dict[int, Counter] = {}
    continuity = Continuity(app, kind_by_topic, idle_after=IDLE_AFTER)
    app.topics.add(inputs)  # subscribed; their messages reach on_batch a fetch at a time (_Consumer)
    app.input_topics = frozenset(kind_by_topic)

    async def on_batch(fetched: list) -> None:
        await feed.ready.wait()  # the city's cohorts as published before this worker started
        with continuity.working():
            admitted = await continuity.admit(fetched)
            if admitted:
                async with judging:
                    await handle_batch(admitted)
        consumer = app.consumer
        for m in admitted:
            consumer.ack(m)  # Faust commits acked offsets
        consumer.forget(fetched)  # the rest are to be read again

    app.on_batch = on_batch

    @app.timer(1.0)
    async def reread_dropped() -> None:
        await continuity.check_idle()

    @app.task
    async def follow_cohorts() -> None:
        """Read monitor.cohorts to its end, then follow it; wake the partitions that wait
        for the city (another worker's partitions closed a day) or have gone idle, even
        without input of their own."""
        try:
            await feed.start()
            while True:
                try:
                    await asyncio.wait_for(feed.changed.wait(), 1.0)
                except asyncio.TimeoutError:
                    pass
                feed.changed.clear()
                if app.rebalancing or app.in_recovery:
                    continue  # the partitions' records are not all here yet
                async with judging:
                    await handle_batch([])
        finally:
            await feed.stop()

    @app.on_partitions_revoked.connect
    async def forget_revoked(sender, revoked, **kwargs) -> None:
        continuity.revoked(revoked)

    async def handle_batch(fetched: list) -> None:
        messages = [_message(m) for m in fetched]
        now = time.monotonic()
        for m in messages:
            last_input[m.partition] = now
        result: BatchResult = processor.process(messages, states, lambda p: _behind(app, kind_by_topic, continuity, p),
                                                owned=_assigned(app, kind_by_topic), final=idle, settled=idle)
        # 1. ClickHouse, 2. the output topics and the partitions' cohort contributions
        # (acknowledged), 3. the state, 4. the reports that those partitions closed their days
        # (monitor.cohorts: the city folds a day only then); then Faust may commit the offsets.
        # A crash in between replays the batch: every step is idempotent, and a day whose
        # report was not sent is closed again against the same cohorts (detectors/citywide.py).
        refused = await sink.write(result.rows)
        if refused:  # rows ClickHouse cannot hold for their values: dead letters (streams.sink)
            await set_aside(refused, sink, deadletter, ce_source)
        sends = [await deadletter.send(key=key, value=value,  # cut to fit the broker; CloudEvents headers
                                       headers=cloudevents.with_deadletter_headers(
                                           letter, m.topic, m.partition, m.offset, m.timestamp, ce_source))
                 for m, (key, value, letter) in ((m, deadletter_record(m, r))
                                                 for m, r in result.deadletters)]
        sends += [await topic.send(key=p.uscc.encode(), value=orjson.dumps(p.body), headers=headers(p, ce_source))
                  for topic, published, headers in ((alerts_topic, result.alerts, cloudevents.alert_headers),
                                                    (risk_topic, result.risk, cloudevents.risk_headers))
                  for p in published]  # CloudEvents headers, binary mode (streams.cloudevents)
        outbox, city.outbox[:] = list(city.outbox), []
        reports = [m for m in outbox if m[0].startswith("clock/")]
        sends += [await cohorts_topic.send(key=key, value=value)
                  for key, value in (encode(*m) for m in outbox if not m[0].startswith("clock/"))]
        if sends:
            await asyncio.gather(*sends)
        # A table write goes to the changelog partition of the current event's message (a
        # partition that closed days without a message of its own in the batch: one made for it).
        events = {p: faust.Event(app, None, None, None, fetched[index] if index >= 0 else _stand_in(inputs, p))
                  for p, (index, _) in result.clocks.items()}
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
        if reports:  # once the state is acknowledged (Faust's own commit flushes the same way)
            await app.producer.flush()
            await asyncio.gather(*[await cohorts_topic.send(key=key, value=value)
                                   for key, value in (encode(*m) for m in reports)])
        open_alerts.update(result.open_alerts)
        _count(result, messages, kind_by_topic, _assigned(app, kind_by_topic), open_alerts)

    watch(app, sink, settings, kind_by_topic)  # /ready, stall gauges, lag from the broker

    add_pages(app, settings)  # /metrics, /ready, the read API (reads on their own threads, not the sink's)
    return app


def _stand_in(inputs, partition: int) -> faust.types.Message:
    """A message of ``partition`` (of the first input topic) to make current for its table
    writes when the batch had none of its own."""
    topic = sorted(inputs.topics)[0]
    return faust.types.Message(topic, partition, -1, time.time(), 0, [], None, None, None)


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
